"""A task from the user's own prompts: a list, a text/JSONL file, or a ``datasets`` dataset."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textgym.tasks.base import Example, Task

PromptSource = str | Path | Sequence[str] | Sequence[dict[str, Any]] | Any


REFERENCE_KEYS = ("references", "reference")
EVAL_SPLITS = ("test", "validation")  # a DatasetDict's held-out split, in order of preference
RESERVED_COLUMNS = {"prompts", "completions"}  # a reward's positional arguments; extra columns are keywords


def _example(item: Any, where: str) -> Example:
    if isinstance(item, str):
        return Example(item)
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a string or a dict with a 'prompt' or 'messages', got {item!r}")
    prompt = item.get("prompt", item.get("messages"))
    turns = () if isinstance(prompt, str) else _turns(prompt, where)
    refs = next((item[k] for k in REFERENCE_KEYS if k in item), ())
    refs = (refs,) if isinstance(refs, str) else tuple(refs)
    answers: list[str] = []
    while turns and turns[-1]["role"] == "assistant":  # a finished conversation: its reply is the target, not input
        answers.insert(0, turns[-1]["content"])
        turns = turns[:-1]
    if not isinstance(prompt, str) and not turns:
        raise ValueError(f"{where}: the conversation has no turn before the assistant's reply: {prompt!r}")
    extra = {k: v for k, v in item.items() if k not in ("prompt", "messages", *REFERENCE_KEYS)}
    reserved = sorted(set(extra) & RESERVED_COLUMNS)
    if reserved:
        raise ValueError(f"{where}: column names {reserved} are taken by the reward's own arguments: rename them")
    users = [t["content"] for t in turns if t["role"] == "user"]
    text = prompt if isinstance(prompt, str) else (users or [turns[-1]["content"]])[-1]
    return Example(text, refs or tuple(answers[-1:]), turns, extra)


def _turns(prompt: Any, where: str) -> tuple[dict[str, str], ...]:
    """A conversation: a non-empty list of ``{"role": str, "content": str}``."""
    turns = prompt if isinstance(prompt, list | tuple) else None
    if not turns or not all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in turns):
        raise ValueError(
            f"{where}: 'prompt' must be a string or a list of turns like {{'role': 'user', 'content': '...'}} "
            f"(or give 'messages'), got {prompt!r}"
        )
    if not all(isinstance(t["role"], str) and isinstance(t["content"], str) for t in turns):
        raise ValueError(f"{where}: every turn's 'role' and 'content' must be strings, got {prompt!r}")
    return tuple({"role": t["role"], "content": t["content"]} for t in turns)


def _read_file(path: Path) -> list[Any]:
    if not path.exists():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        return lines
    items = []
    for number, line in enumerate(lines, 1):
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
    return items


def load_examples(source: PromptSource) -> list[Example]:
    """Examples from a list of strings/dicts, a ``.txt`` (one prompt a line) or ``.jsonl`` file, or a dataset.

    Example:
        >>> load_examples(["Hi", {"prompt": "2+2=", "references": ["4"]}])[1]
        Example(prompt='2+2=', references=('4',))
    """
    if isinstance(source, str | Path):
        items, where = _read_file(Path(source)), str(source)
    elif hasattr(source, "column_names"):  # a datasets.Dataset
        if not {"prompt", "messages"} & set(source.column_names):
            raise ValueError(f"dataset needs a 'prompt' or 'messages' column, has {source.column_names}")
        items, where = list(source), "dataset"
    else:
        items, where = list(source), "prompts"
    return [_example(item, f"{where}[{i}]") for i, item in enumerate(items)]


class PromptTask(Task):
    """Prompts the user supplies; the eval split is ``eval_prompts`` or, when not given, the same prompts.

    Example:
        >>> PromptTask(["Tell me a joke."]).examples("eval")[0].prompt
        'Tell me a joke.'
    """

    name = "prompts"

    def __init__(
        self,
        prompts: PromptSource,
        eval_prompts: PromptSource | None = None,
        max_new_tokens: int = 32,
        max_prompt_tokens: int = 64,
    ) -> None:
        super().__init__()
        if isinstance(prompts, Mapping):  # a DatasetDict, or {"train": ..., "test": ...}
            prompts, eval_prompts = _dataset_splits(prompts, eval_prompts)
        self._sources = {"train": prompts, "eval": eval_prompts if eval_prompts is not None else prompts}
        self.max_new_tokens, self.max_prompt_tokens = max_new_tokens, max_prompt_tokens

    def _build(self, split: str) -> Sequence[Example]:
        return load_examples(self._sources[split])


def _dataset_splits(splits: Mapping[str, Any], eval_prompts: PromptSource | None) -> tuple[Any, Any]:
    """A split mapping's (``DatasetDict``, ``{"train": [...], "test": [...]}``) train split, and its test (or
    validation) split unless ``eval_prompts`` is given."""
    if "train" not in splits:
        raise ValueError(f"prompts given by split need a 'train' split, got the splits {sorted(splits)}")
    held_out = next((splits[name] for name in EVAL_SPLITS if name in splits), None)
    return splits["train"], eval_prompts if eval_prompts is not None else held_out
