"""Reverse a short sequence of letters: a synthetic task whose optimum (reward 1.0) is known."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

from textgym.tasks.base import Example, Task

SPLIT_SEEDS = {"train": 3, "eval": 4}
SHOT_SEED = 0
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

    def __init__(
        self, min_len: int = 3, max_len: int = 5, alphabet: str = string.ascii_lowercase, few_shot: int = 0
    ) -> None:
        super().__init__()
        if not 1 <= min_len <= max_len or not alphabet:
            raise ValueError(f"need 1 <= min_len <= max_len and an alphabet, got {min_len}, {max_len}")
        if isinstance(few_shot, bool) or not isinstance(few_shot, int) or not 0 <= few_shot <= 8:
            raise ValueError(f"few_shot must be an int in [0, 8], got {few_shot!r}")
        self.min_len, self.max_len, self.alphabet, self.few_shot = min_len, max_len, alphabet, few_shot
        self.max_prompt_tokens = 16 + 24 * few_shot  # a solved line of 5 letters is 21 SmolLM2 tokens

    def puzzle(self, rng: random.Random) -> tuple[str, str]:
        """One ``("Reverse: a b c ->", "c b a")`` drawn from ``rng``."""
        letters = [rng.choice(self.alphabet) for _ in range(rng.randint(self.min_len, self.max_len))]
        return f"Reverse: {' '.join(letters)} ->", " ".join(reversed(letters))

    def preamble(self) -> str:
        """``few_shot`` solved puzzles, one a line, written before every prompt (drawn once, seed 0)."""
        rng = random.Random(SHOT_SEED)
        return "".join(f"{prompt} {answer}\n" for prompt, answer in (self.puzzle(rng) for _ in range(self.few_shot)))

    def demonstration(self, example: Example) -> str | None:
        """The reversed letters after the prompt's arrow: ``" c b a"``."""
        return " " + example.references[0]

    def _build(self, split: str) -> Sequence[Example]:
        rng, preamble = random.Random(SPLIT_SEEDS[split]), self.preamble()
        examples = []
        for _ in range(SPLIT_SIZES[split]):
            prompt, answer = self.puzzle(rng)
            examples.append(Example(preamble + prompt, (answer,)))
        return examples
