"""Reference-overlap metric rewards: BLEU, chrF, TER (sacrebleu), ROUGE (rouge-score), METEOR (nltk).

Every reward compares each completion with its references (``references=[[...], ...]``, one list per
completion; the env passes the task's references) and is **normalised to [0, 1], higher is better**:
BLEU and chrF are sacrebleu's 0-100 sentence scores divided by 100 (``scale=100`` gives the raw numbers),
ROUGE and METEOR are already in [0, 1]. TER is an edit rate (lower is better, may exceed 1), so its reward
is ``-TER / 100``: 0 for a perfect match, -1 when every reference word must be edited.
An empty completion scores 0 (-1 for TER) instead of raising.

Example:
    >>> bleu = Bleu()
    >>> bleu(["", ""], ["the cat sat on the mat", "dogs bark"], references=[["the cat sat on the mat"], ["a b c"]])
    [1.0, 0.0]
"""

from __future__ import annotations

import re
from typing import Any

from textgym.rewards._lazy import require
from textgym.rewards.metrics import _references

_WORD = re.compile(r"\w+")


class Bleu:
    """Sentence BLEU (sacrebleu, exponential smoothing) against the references, divided by ``scale``.

    Example:
        >>> Bleu(scale=1)([""], ["the cat sat on the mat"], references=[["the cat sat on the mat"]])
        [100.0]
    """

    name = "bleu"

    def __init__(self, scale: float = 100.0) -> None:
        self.scale = scale

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        sacrebleu = require("sacrebleu", "sacrebleu")
        refs = _references(info, len(completions))
        scores = [sacrebleu.sentence_bleu(c.strip(), list(r)).score for c, r in zip(completions, refs, strict=True)]
        return [round(s, 10) / self.scale for s in scores]


class ChrF:
    """Sentence chrF (character n-gram F-score, sacrebleu) divided by ``scale``; ``word_order=2`` gives chrF++.

    Example:
        >>> ChrF()([""], ["abc"], references=[["abc"]])
        [1.0]
    """

    name = "chrf"

    def __init__(self, word_order: int = 0, scale: float = 100.0) -> None:
        self.word_order, self.scale = word_order, scale
        if word_order:
            self.name = "chrf++"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        sacrebleu = require("sacrebleu", "sacrebleu")
        refs = _references(info, len(completions))
        metric = sacrebleu.metrics.CHRF(word_order=self.word_order)
        return [
            metric.sentence_score(c.strip(), list(r)).score / self.scale for c, r in zip(completions, refs, strict=True)
        ]


class Ter:
    """Negated translation edit rate: ``-TER / 100`` (0 is a perfect match; lower TER is better).

    Example:
        >>> Ter()([""], ["the cat sat"], references=[["the cat sat"]])
        [0.0]
    """

    name = "ter"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        sacrebleu = require("sacrebleu", "sacrebleu")
        refs = _references(info, len(completions))
        metric = sacrebleu.metrics.TER()
        return [
            0.0 - metric.sentence_score(c.strip(), list(r)).score / 100 for c, r in zip(completions, refs, strict=True)
        ]


class Rouge:
    """ROUGE F-measure (rouge-score, Porter stemming), the best over the references.

    Args:
        kind: ``"rouge1"``, ``"rouge2"``, ``"rougeL"`` or ``"rougeLsum"`` (summary-level LCS; sentences are
            split at newlines).
        stemmer: apply the Porter stemmer.

    Example:
        >>> Rouge("rouge1")([""], ["the cat"], references=[["the cat sat"]])
        [0.8]
    """

    KINDS = ("rouge1", "rouge2", "rougeL", "rougeLsum")

    def __init__(self, kind: str = "rougeL", stemmer: bool = True) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        self.kind, self.stemmer, self.name = kind, stemmer, kind
        self._scorer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scorer": None}

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        if self._scorer is None:
            rouge_scorer = require("rouge_score.rouge_scorer", "rouge-score")
            self._scorer = rouge_scorer.RougeScorer([self.kind], use_stemmer=self.stemmer)
        return [
            float(self._scorer.score_multi(list(r), c)[self.kind].fmeasure)
            for c, r in zip(completions, refs, strict=True)
        ]


class Rouge1(Rouge):
    """ROUGE-1 F (see :class:`Rouge`).

    Example:
        >>> Rouge1()([""], ["a b"], references=[["c d"]])
        [0.0]
    """

    def __init__(self) -> None:
        super().__init__("rouge1")


class Rouge2(Rouge):
    """ROUGE-2 F (see :class:`Rouge`).

    Example:
        >>> Rouge2()([""], ["a b c"], references=[["a b c"]])
        [1.0]
    """

    def __init__(self) -> None:
        super().__init__("rouge2")


class RougeLsum(Rouge):
    """ROUGE-Lsum F (see :class:`Rouge`).

    Example:
        >>> RougeLsum()([""], ["a b\\nc d"], references=[["a b\\nc d"]])
        [1.0]
    """

    def __init__(self) -> None:
        super().__init__("rougeLsum")


class Meteor:
    """METEOR (nltk; exact, stem and WordNet-synonym matches) on lower-cased word tokens, in [0, 1].

    WordNet comes from Debian's ``wordnet-base`` (see :mod:`textgym.rewards.wordnet`); no download.

    Example:
        >>> refs = [["the cat sat on the mat"]] * 2
        >>> good, bad = Meteor()(["", ""], ["the cat sat on the mat", "xyz"], references=refs)
        >>> good > 0.9 and bad == 0.0
        True
    """

    name = "meteor"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        require("nltk", "nltk")
        from nltk.translate.meteor_score import meteor_score

        from textgym.rewards.wordnet import ensure_wordnet

        ensure_wordnet()
        refs = _references(info, len(completions))
        scores = []
        for completion, options in zip(completions, refs, strict=True):
            hypothesis = _WORD.findall(completion.lower())
            references = [_WORD.findall(r.lower()) for r in options]
            scores.append(float(meteor_score(references, hypothesis)) if hypothesis else 0.0)
        return scores
