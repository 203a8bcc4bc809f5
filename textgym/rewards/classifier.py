"""Classifier rewards: a score of the completion's class (sentiment, ...)."""

from __future__ import annotations

from typing import Any


class VaderSentiment:
    """VADER lexicon sentiment of the completion: the compound score in [-1, 1] (positive is high).

    Example:
        >>> reward = VaderSentiment()
        >>> good, bad = reward(["", ""], ["What a wonderful, moving film.", "A dull, awful mess."])
        >>> good > 0 > bad
        True
    """

    name = "vader"

    def __init__(self) -> None:
        self._analyzer: Any = None  # built lazily: picklable and cheap to construct

    def __getstate__(self) -> dict[str, Any]:
        return {"_analyzer": None}

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()
        return [float(self._analyzer.polarity_scores(text)["compound"]) for text in completions]
