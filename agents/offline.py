"""Offline data for the learners that train without acting: scored completions and preference pairs as JSONL.

A dataset is a JSONL file, one object per line, of either kind (both may be mixed):

- a scored completion: ``{"prompt": str, "completion": str, "score": float}``;
- a preference pair: ``{"prompt": str, "chosen": str, "rejected": str}``, read as two scored completions, the
  chosen one scoring ``1`` and the rejected one ``0`` (the preference file format of
  :mod:`textgym.rewards.preference`).

``prompt`` is the task prompt as the env shows it to the policy (its ``prompts``, before any chat template the env
applies). :func:`save_rollouts` writes any agent's episodes in this format (``textgym rollout --save FILE``), so
a policy's own samples, scored by the env, become a dataset.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.jsonl"
    >>> _ = path.write_text('{"prompt": "2+2=", "completion": "4", "score": 1}\\n'
    ...                     '{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}\\n')
    >>> [(r.completion, r.score) for r in load_offline_data(path)]
    [('4', 1.0), ('Hello!', 1.0), ('Go away.', 0.0)]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.rollout import Rollout
from textgym.episode import CUSTOM, EpisodeSetup, prompt_row
from textgym.io import atomic_path, json_object_line
from textgym.tasks.base import Example

RECORD_SHAPE = 'a JSON object with "prompt" and "completion" strings and a "score", or "prompt", "chosen", "rejected"'


@dataclass(frozen=True)
class OfflineRecord:
    """One completion of a prompt and its score."""

    prompt: str
    completion: str
    score: float


def load_offline_data(path: str | Path) -> list[OfflineRecord]:
    """Read a dataset (see the module docs); a bad line is a ``ValueError`` naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"offline dataset {str(path)!r} does not exist")
    records: list[OfflineRecord] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                records += _records(line, f"{path}:{number}")
    if not records:
        raise ValueError(f"offline dataset {str(path)!r} holds no records")
    return records


def _records(line: str, where: str) -> list[OfflineRecord]:
    item = json_object_line(line, where, RECORD_SHAPE)
    prompt = _text(item, "prompt", where)
    if {"chosen", "rejected"} <= set(item):
        return [
            OfflineRecord(prompt, _text(item, "chosen", where), 1.0),
            OfflineRecord(prompt, _text(item, "rejected", where), 0.0),
        ]
    score = item.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise ValueError(
            f"{where}: expected a finite number 'score' beside 'prompt' and 'completion' (or 'chosen' and "
            f"'rejected' for a pair), got score={score!r}"
        )
    return [OfflineRecord(prompt, _text(item, "completion", where), float(score))]


def _text(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string {key!r}, got {value!r}")
    return value


def save_rollouts(batches: Rollout | Sequence[Rollout], path: str | Path, env_id: str = "") -> int:
    """Append the episodes of one batch, or of several, to a JSONL dataset as scored completions; returns how many
    were written.

    The file is rewritten through a temporary file and renamed, so a crash leaves the old or the new file whole;
    append many batches in one call, not one call each (every call rewrites the file).
    """
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    extra = {"env_id": env_id} if env_id else {}
    rows = [
        json.dumps({"prompt": p, "completion": c, "score": float(s), **extra})
        for batch in ([batches] if isinstance(batches, Rollout) else batches)
        for p, c, s in zip(batch.prompts, batch.completions, batch.scores.tolist(), strict=True)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text(old + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return len(rows)


def completion_ids(setup: EpisodeSetup, text: str) -> list[int]:
    """A completion's tokens then EOS, cut to the env's token budget (EOS kept when it fits)."""
    ids = setup.tokenizer.encode(text, add_special_tokens=False)[: setup.max_new_tokens - 1]
    return [*ids, setup.eos_token_id]


def layout_batch(
    setup: EpisodeSetup,
    prompt_ids: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    device: torch.device | str,
    prompts: Sequence[str] = (),
    texts: Sequence[str] = (),
    scores: Sequence[float] | None = None,
) -> Rollout:
    """Prompts and completions laid out as the env's episodes: prompt left-padded into the first
    ``max_prompt_tokens`` columns, then the completion's tokens, right-padded to the budget."""
    rows = [prompt_row(setup, ids) for ids in prompt_ids]
    input_ids = torch.as_tensor(np.stack([r[0] for r in rows]))  # (B, P + N)
    attention_mask = torch.as_tensor(np.stack([r[1] for r in rows]))
    mask = torch.zeros(len(rows), setup.max_new_tokens)  # (B, N)
    for row, tokens in enumerate(completions):
        columns = slice(setup.max_prompt_tokens, setup.max_prompt_tokens + len(tokens))
        input_ids[row, columns] = torch.as_tensor(list(tokens))
        attention_mask[row, columns] = 1
        mask[row, : len(tokens)] = 1
    return Rollout(
        input_ids.to(device),
        attention_mask.to(device),
        mask.to(device),
        torch.as_tensor(list(scores) if scores is not None else [0.0] * len(rows), device=device, dtype=torch.float),
        list(prompts),
        list(texts),
    )


def layout_texts(
    setup: EpisodeSetup,
    prompts: Sequence[str],
    completions: Sequence[str],
    device: torch.device | str,
    scores: Sequence[float] | None = None,
) -> Rollout:
    """Prompt and completion texts laid out as the env's episodes (:func:`layout_batch`: each prompt as the env
    shows it, each completion cut to the budget with its EOS), without the columns that are padding in every row."""
    prompt_ids = setup.encode_many(CUSTOM, [0] * len(prompts), [Example(p) for p in prompts])
    targets = [completion_ids(setup, text) for text in completions]
    return layout_batch(setup, prompt_ids, targets, device, prompts, completions, scores).trimmed()
