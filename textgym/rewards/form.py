"""Form rewards that need no reference: diversity (distinct-n), repetition and length penalties.

Words are lower-cased ``\\w+`` tokens. Every reward returns a finite score for an empty completion.

Example:
    >>> DistinctN(1)([""], ["the cat and the dog"])
    [0.8]
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """The ``n``-grams of ``tokens`` in order."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


class DistinctN:
    """Distinct-n: unique word n-grams / all word n-grams of the completion, in [0, 1] (0 with no n-gram).

    Example:
        >>> DistinctN(2)(["", ""], ["a b a b", ""])
        [0.6666666666666666, 0.0]
    """

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.name = n, f"distinct_{n}"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        scores = []
        for text in completions:
            grams = ngrams(words(text), self.n)
            scores.append(len(set(grams)) / len(grams) if grams else 0.0)
        return scores


class RepetitionPenalty:
    """Minus the fraction of word n-grams that repeat an earlier one, in [-1, 0] (0: no repetition).

    Also a dense reward (see :mod:`textgym.rewards.compose`): each repeated n-gram costs ``1 / #n-grams`` on
    the piece (token) where it ends, so the dense scores sum to the terminal one.

    Example:
        >>> RepetitionPenalty(1)(["", ""], ["good good good good", "one two"])
        [-0.75, 0.0]
        >>> RepetitionPenalty(1).dense([""], [" good good"], completion_tokens=[[" go", "od", " good"]])
        [[0.0, 0.0, -0.5]]
    """

    def __init__(self, n: int = 3) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.name = n, f"repetition_{n}"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        scores = []
        for text in completions:
            grams = ngrams(words(text), self.n)
            scores.append(0.0 - (len(grams) - len(set(grams))) / len(grams) if grams else 0.0)
        return scores

    def dense(self, prompts: list[str], completions: list[str], **info: Any) -> list[list[float]]:
        """Per-piece penalties (pieces: ``info["completion_tokens"]`` or words); they sum to ``__call__``."""
        from textgym.rewards.compose import completion_pieces

        out = []
        for text, parts in zip(completions, completion_pieces(completions, info), strict=True):
            owner = [i for i, (start, end) in enumerate(_spans(parts)) for _ in words(text[start:end])]
            tokens = words(text)
            if len(owner) != len(tokens):  # a word split across pieces: attribute it to the piece it ends in
                owner = [_piece_at(parts, m.end() - 1) for m in _WORD.finditer(text.lower())]
            grams = ngrams(tokens, self.n)
            scores = [0.0] * len(parts)
            seen: set[tuple[str, ...]] = set()
            for k, gram in enumerate(grams):
                if gram in seen:
                    scores[owner[k + self.n - 1]] -= 1 / len(grams)
                seen.add(gram)
            out.append(scores)
        return out


def _spans(parts: list[str]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for part in parts:
        spans.append((start, start + len(part)))
        start += len(part)
    return spans


def _piece_at(parts: list[str], position: int) -> int:
    for i, (start, end) in enumerate(_spans(parts)):
        if start <= position < end:
            return i
    return len(parts) - 1


class LengthPenalty:
    """``-max(0, |words - target| - tolerance) / target``: 0 within ``tolerance`` words of ``target``.

    Example:
        >>> LengthPenalty(target=4, tolerance=1)(["", "", ""], ["a b c", "a b c d e f", ""])
        [0.0, -0.25, -0.75]
    """

    name = "length_penalty"

    def __init__(self, target: int = 16, tolerance: int = 0) -> None:
        if target < 1 or tolerance < 0:
            raise ValueError(f"need target >= 1 and tolerance >= 0, got {target}, {tolerance}")
        self.target, self.tolerance = target, tolerance

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        return [0.0 - max(0, abs(len(words(c)) - self.target) - self.tolerance) / self.target for c in completions]
