"""Rewards of the CommonGen-style concepts task: concept coverage and a cheap word-level fluency score."""

from __future__ import annotations

from typing import Any

from textgym.rewards._lazy import require
from textgym.rewards.compose import WeightedSum
from textgym.rewards.form import ngrams, words

_SUFFIXES = ("ing", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude stem: lower case, one common suffix removed when at least 3 letters remain.

    Example:
        >>> [stem(w) for w in ("Dogs", "walked", "catching", "bus")]
        ['dog', 'walk', 'catch', 'bus']
    """
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


class ConceptCoverage:
    """Fraction of the concept words that the completion uses (inflections count: "dogs" covers "dog").

    The concepts come from ``info["concepts"]`` (one list per completion) or are parsed from prompts made
    by :class:`textgym.tasks.concepts.ConceptsTask` (``"... using the words: a, b, c.\\n..."``).

    Example:
        >>> prompt = "Write one sentence using the words: dog, frisbee, catch.\\nSentence:"
        >>> ConceptCoverage()([prompt, prompt], [" The dog catches a frisbee.", ""])
        [1.0, 0.0]
    """

    name = "concept_coverage"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        return [_coverage(text, wanted) for text, wanted in zip(completions, _concepts(prompts, info), strict=True)]

    def dense(self, prompts: list[str], completions: list[str], **info: Any) -> list[list[float]]:
        """Per-piece scores (pieces: ``info["completion_tokens"]`` or words): what each piece adds to the coverage
        of the text so far, so a concept pays ``1 / #concepts`` on the piece that completes it (and a piece that
        turns a covering word into another, "dog" into "dogma", takes it back). They sum to ``__call__``.

        Example:
            >>> prompt = "Write one sentence using the words: dog, ball.\\nSentence:"
            >>> ConceptCoverage().dense([prompt], [" The dog ran"])
            [[0.0, 0.5, 0.0]]
        """
        from textgym.rewards.compose import completion_pieces

        out = []
        for parts, wanted in zip(completion_pieces(completions, info), _concepts(prompts, info), strict=True):
            so_far = [_coverage("".join(parts[: i + 1]), wanted) for i in range(len(parts))]
            out.append([now - before for before, now in zip([0.0, *so_far[:-1]], so_far, strict=True)])
        return out


def _concepts(prompts: list[str], info: dict[str, Any]) -> list[list[str]]:
    from textgym.tasks.concepts import parse_concepts

    return info.get("concepts") or [parse_concepts(p) for p in prompts]


def _coverage(text: str, wanted: list[str]) -> float:
    have = {stem(w) for w in words(text)}
    return sum(stem(c) in have for c in wanted) / len(wanted) if wanted else 0.0


class WordFluency:
    """A cheap fluency proxy in [0, 1]: share of words that are real English words (``wordfreq`` Zipf
    frequency >= ``min_zipf``), minus the share of repeated word bigrams, times a length factor that
    reaches 1 at ``min_words`` words. Empty text scores 0.

    Example:
        >>> fluent, junk = WordFluency()(["", ""], ["The dog caught the ball in the park.", "xq zzv qqq"])
        >>> fluent > 0.9 and junk == 0.0
        True
    """

    name = "word_fluency"

    def __init__(self, min_zipf: float = 2.0, min_words: int = 5) -> None:
        self.min_zipf, self.min_words = min_zipf, min_words

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        wordfreq = require("wordfreq", "wordfreq")
        scores = []
        for text in completions:
            tokens = words(text)
            if not tokens:
                scores.append(0.0)
                continue
            known = sum(wordfreq.zipf_frequency(w, "en") >= self.min_zipf for w in tokens) / len(tokens)
            grams = ngrams(tokens, 2)
            repeated = (len(grams) - len(set(grams))) / len(grams) if grams else 0.0
            scores.append(max(0.0, known - repeated) * min(1.0, len(tokens) / self.min_words))
        return scores


class ConceptsReward(WeightedSum):
    """The TextGen-Concepts reward: ``0.7 * coverage + 0.3 * fluency``, in [0, 1], with a breakdown.

    Example:
        >>> prompt = "Write one sentence using the words: dog, frisbee, catch.\\nSentence:"
        >>> ConceptsReward()([prompt], [" The dog jumps to catch the red frisbee."])[0] > 0.95
        True
    """

    def __init__(self, coverage: float = 0.7, fluency: float = 0.3) -> None:
        super().__init__({ConceptCoverage(): coverage, WordFluency(): fluency}, name="concepts")
