"""Translate German example sentences into English (offline: the Ding dictionary of Debian's ``trans-de-en``).

Debian's ``trans-de-en`` package (GPL-2+, TU Chemnitz's German-English dictionary) holds, beside word entries,
some 16,000 German example sentences with their English translations (``German :: English``, alternatives split
by ``|``). textgym reads ``/usr/share/trans/de-en`` in place (``scripts/setup-system.sh`` installs it).
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

from textgym.tasks.base import Example, Task

DICTIONARY = Path("/usr/share/trans/de-en")
EVAL_SIZE = 500
SPLIT_SEED = 0
MIN_WORDS, MAX_WORDS = 4, 20
_TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "„": '"'})
_MARKUP = re.compile(r"[\[\]{}/;]")  # grammar notes, alternatives: not a plain sentence


def split_of(german: str) -> str:
    """The split of a sentence pair, fixed by its German text: about one in ten is held out.

    Example:
        >>> split_of("Ich bin hier."), split_of("Ich bin müde.")
        ('train', 'eval')
    """
    return "eval" if zlib.crc32(german.encode()) % 10 == 0 else "train"


def is_sentence(text: str) -> bool:
    """A plain sentence: 4-20 words, ends in ``.``, ``?`` or ``!``, no dictionary markup.

    Example:
        >>> is_sentence("He applied for the job."), is_sentence("eel stock | eel stocks")
        (True, False)
    """
    return MIN_WORDS <= len(text.split()) <= MAX_WORDS and text[-1:] in ".?!" and not _MARKUP.search(text)


def load_pairs(path: Path = DICTIONARY) -> list[tuple[str, str]]:
    """``(german, english)`` example sentences of the dictionary, distinct German, in file order."""
    if not path.exists():
        raise FileNotFoundError(
            f"TextGen-Translate needs Debian's German-English dictionary at {path}: "
            "sudo apt-get install trans-de-en (or bash scripts/setup-system.sh)"
        )
    pairs: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        german, english = line.translate(_TYPOGRAPHY).split(" :: ", 1)
        sides = german.split(" | "), english.split(" | ")
        if len(sides[0]) != len(sides[1]):
            continue
        for de, en in zip(*sides, strict=True):
            de, en = " ".join(de.split()), " ".join(en.split())
            if is_sentence(de) and is_sentence(en):
                pairs.setdefault(de, en)
    return list(pairs.items())


def instruction(german: str) -> str:
    """The user turn: ``Translate into English: <german>``."""
    return f"Translate into English: {german}"


class TranslateTask(Task):
    """Translate a German sentence into English; the dictionary's translation is the reference (reward: chrF).

    The prompt is one user turn (``Translate into English: ...``); the env renders it with the chat template,
    so the instruction-tuned model answers and ends its turn. Splits: each pair belongs to one split by a hash
    of its German side (:func:`split_of`); ``eval`` is 500 of the held-out pairs (fixed seed).

    Example:
        >>> example = TranslateTask().examples("eval")[0]
        >>> example.prompt.startswith("Translate into English: ") and example.references[0][-1] in ".?!"
        True
    """

    name = "translate"
    default_reward = "chrf"
    max_new_tokens = 40  # the longest reference is 30 SmolLM2 tokens
    max_prompt_tokens = 112  # the longest prompt renders to 103 tokens with SmolLM2's chat template
    description = "translate a German sentence into English; reward = chrF against the dictionary's translation"

    def _build(self, split: str) -> Sequence[Example]:
        pairs = [pair for pair in load_pairs() if split_of(pair[0]) == split]
        if split == "eval":
            random.Random(SPLIT_SEED).shuffle(pairs)
            pairs = pairs[:EVAL_SIZE]
        return [Example(instruction(de), (en,)) for de, en in pairs]

    def demonstration(self, example: Example) -> str | None:
        """The reference translation (the assistant turn's text)."""
        return example.references[0]
