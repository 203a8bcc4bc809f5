"""Reverse a short sequence of letters: a synthetic task whose optimum (reward 1.0) is known."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

from textgym.tasks.base import Example, Task

SPLIT_SEEDS = {"train": 3, "eval": 4}
SPLIT_SIZES = {"train": 5_000, "eval": 200}


class ReverseTask(Task):
    """``"Reverse: a b c ->"`` should be completed by ``" c b a"``; reward: per-position character match.

    Args:
        min_len, max_len: length range of the letter sequence.
        alphabet: letters to draw from.

    Example:
        >>> ReverseTask().examples("eval")[0].prompt.startswith("Reverse:")
        True
    """

    name = "reverse"
    default_reward = "sequence_match"
    max_new_tokens = 12
    max_prompt_tokens = 16
    description = "reverse a short letter sequence; reward = fraction of positions right"

    def __init__(self, min_len: int = 3, max_len: int = 5, alphabet: str = string.ascii_lowercase) -> None:
        super().__init__()
        if not 1 <= min_len <= max_len or not alphabet:
            raise ValueError(f"need 1 <= min_len <= max_len and an alphabet, got {min_len}, {max_len}")
        self.min_len, self.max_len, self.alphabet = min_len, max_len, alphabet

    def demonstration(self, example: Example) -> str | None:
        """The reversed letters after the prompt's arrow: ``" c b a"``."""
        return " " + example.references[0]

    def _build(self, split: str) -> Sequence[Example]:
        rng = random.Random(SPLIT_SEEDS[split])
        examples = []
        for _ in range(SPLIT_SIZES[split]):
            letters = [rng.choice(self.alphabet) for _ in range(rng.randint(self.min_len, self.max_len))]
            examples.append(Example(f"Reverse: {' '.join(letters)} ->", (" ".join(reversed(letters)),)))
        return examples
