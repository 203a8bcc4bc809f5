"""A task from the user's own prompts: a list, a text/JSONL file, or a ``datasets`` dataset."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgym.tasks.base import Example, Task

PromptSource = str | Path | Sequence[str] | Sequence[dict[str, Any]] | Any


def _example(item: Any, where: str) -> Example:
    if isinstance(item, str):
        return Example(item)
    if isinstance(item, dict) and isinstance(item.get("prompt"), str):
        refs = item.get("references", item.get("reference", ()))
        return Example(item["prompt"], (refs,) if isinstance(refs, str) else tuple(refs))
    raise ValueError(f"{where}: expected a string or a dict with a 'prompt' string, got {item!r}")


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
        if "prompt" not in source.column_names:
            raise ValueError(f"dataset needs a 'prompt' column, has {source.column_names}")
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
        self._sources = {"train": prompts, "eval": eval_prompts if eval_prompts is not None else prompts}
        self.max_new_tokens, self.max_prompt_tokens = max_new_tokens, max_prompt_tokens

    def _build(self, split: str) -> Sequence[Example]:
        return load_examples(self._sources[split])
