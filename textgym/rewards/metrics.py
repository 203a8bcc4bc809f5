"""Metric rewards: compare the completion with the references, or score its form."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _references(info: dict[str, Any], n: int) -> list[Sequence[str]]:
    references = info.get("references")
    if references is None or len(references) != n:
        raise ValueError(f"this reward needs references=[...] with one entry per completion ({n})")
    return [[r] if isinstance(r, str) else list(r) for r in references]


def answer_text(completion: str, first_line: bool) -> str:
    """The part of a completion a metric scores: all of it, or its first line (the answer, in a few-shot prompt
    whose solved examples are one a line: the model may go on to write the next example).

    Example:
        >>> answer_text(" c b a\\nr: d e ->", first_line=True)
        ' c b a'
    """
    return completion.split("\n", 1)[0] if first_line else completion


class ExactMatch:
    """1.0 when the stripped completion equals one of its references, else 0.0.

    Example:
        >>> ExactMatch()(["Q"], [" yes "], references=[["yes", "y"]])
        [1.0]
    """

    name = "exact_match"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        return [float(c.strip() in [r.strip() for r in rs]) for c, rs in zip(completions, refs, strict=True)]


class NumericMatch:
    """1.0 when the first number in the completion equals the reference number (a verifiable reward).

    Example:
        >>> NumericMatch()(["17+25=", "3-5="], ["42 is it", "2"], references=[["42"], ["-2"]])
        [1.0, 0.0]
    """

    name = "numeric_match"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        scores = []
        for completion, options in zip(completions, refs, strict=True):
            found = _NUMBER.search(completion)
            value = float(found.group()) if found else None
            scores.append(float(value is not None and any(value == float(r) for r in options)))
        return scores


class SequenceMatch:
    """Fraction of positions where the completion's characters (spaces ignored) match the reference's.

    Normalised by the longer of the two, so extra or missing characters cost; 1.0 only for an exact match.

    Args:
        first_line: score only the completion's first line (see :func:`answer_text`).

    Example:
        >>> SequenceMatch()(["r: a b c ->"], [" c b a"], references=[["c b a"]])
        [1.0]
        >>> SequenceMatch()(["r: a b c ->"], [" c x"], references=[["c b a"]])
        [0.3333333333333333]
        >>> SequenceMatch(first_line=True)(["r: a b c ->"], [" c b a\\nr: d e ->"], references=[["c b a"]])
        [1.0]
    """

    name = "sequence_match"

    def __init__(self, first_line: bool = False) -> None:
        self.first_line = first_line

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        scores = []
        for completion, options in zip(completions, refs, strict=True):
            got = answer_text(completion, self.first_line).replace(" ", "").strip()
            best = 0.0
            for ref in options:
                want = ref.replace(" ", "")
                hits = sum(a == b for a, b in zip(got, want, strict=False))
                best = max(best, hits / max(len(got), len(want), 1))
            scores.append(best)
        return scores


class LengthReward:
    """Number of whitespace-separated words in the completion, divided by ``scale`` (a shaping signal).

    Example:
        >>> LengthReward(scale=10)(["p"], ["one two three"])
        [0.3]
    """

    name = "length"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        return [len(c.split()) / self.scale for c in completions]
