"""Entity-level F1 for answers written as ``"Japan (LOC); Asian Cup (MISC)"`` (the NER task's format).

Like seqeval's entity F1, an entity counts only when its whole span and its type are right: here a span is its
text (case-sensitive, spaces normalised), and a text that occurs twice must be listed twice. ``partial_credit``
gives that fraction of a hit to an entity whose text is right but whose type is wrong.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from textgym.rewards.metrics import _references, answer_text

_ENTITY = re.compile(r"^(?P<text>.+?)\s*\((?P<kind>[A-Z]+)\)$")


def parse_entities(answer: str) -> list[tuple[str, str]]:
    """The ``(text, TYPE)`` pairs of an answer line; items that do not read ``text (TYPE)`` are ignored.

    Example:
        >>> parse_entities(" Japan (LOC); Asian  Cup (MISC); nonsense; none; Syria (LOC).")
        [('Japan', 'LOC'), ('Asian Cup', 'MISC'), ('Syria', 'LOC')]
    """
    found = []
    for item in answer.split(";"):
        match = _ENTITY.match(" ".join(item.split()).rstrip("."))
        if match:
            found.append((match["text"], match["kind"]))
    return found


def entity_f1(predicted: list[tuple[str, str]], gold: list[tuple[str, str]], partial_credit: float = 0.0) -> float:
    """F1 of predicted against gold entities (multisets); 1.0 when both are empty.

    Example:
        >>> entity_f1([("Japan", "LOC"), ("Syria", "PER")], [("Japan", "LOC"), ("Syria", "LOC")])
        0.5
        >>> entity_f1([("Japan", "LOC"), ("Syria", "PER")], [("Japan", "LOC"), ("Syria", "LOC")], partial_credit=0.5)
        0.75
    """
    if not predicted and not gold:
        return 1.0
    exact = Counter(predicted) & Counter(gold)
    hits = float(sum(exact.values()))
    if partial_credit:
        rest_predicted = Counter(text for text, _ in (Counter(predicted) - exact).elements())
        rest_gold = Counter(text for text, _ in (Counter(gold) - exact).elements())
        hits += partial_credit * sum((rest_predicted & rest_gold).values())
    if hits == 0:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(gold)
    return 2 * precision * recall / (precision + recall)


class EntityF1:
    """Entity-level F1 of the completion's first line against the reference answer line (see the module doc).

    Args:
        partial_credit: fraction of a hit for the right text with the wrong type (0: exact spans and types only).
        first_line: score only the completion's first line (the model may go on to write another example).

    Example:
        >>> reward = EntityF1()
        >>> reward(["Sentence: ...\\nEntities:"], [" Japan (LOC); Syria (LOC)\\nSentence: x"],
        ...        references=[["Japan (LOC); Syria (LOC)"]])
        [1.0]
    """

    name = "entity_f1"

    def __init__(self, partial_credit: float = 0.0, first_line: bool = True) -> None:
        if not 0.0 <= partial_credit <= 1.0:
            raise ValueError(f"partial_credit must be in [0, 1], got {partial_credit!r}")
        self.partial_credit, self.first_line = partial_credit, first_line

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        scores = []
        for completion, options in zip(completions, refs, strict=True):
            predicted = parse_entities(answer_text(completion, self.first_line))
            scores.append(max(entity_f1(predicted, parse_entities(ref), self.partial_credit) for ref in options))
        return scores
