"""Seeded synthetic arithmetic problems (``"17+25="``) with an exact numeric-match reward."""

from __future__ import annotations

import random
from collections.abc import Sequence

from textgym.tasks.base import Example, Task

SPLIT_SEEDS = {"train": 1, "eval": 2}
SPLIT_SIZES = {"train": 10_000, "eval": 500}


class ArithmeticTask(Task):
    """Add or subtract two integers in ``[0, max_operand]``; the reward checks the first number written.

    Splits are generated from fixed seeds (train: 10,000 problems, seed 1; eval: 500, seed 2).

    Example:
        >>> ArithmeticTask(max_operand=9).examples("eval")[0].prompt[-1]
        '='
    """

    name = "arithmetic"
    default_reward = "numeric_match"
    max_new_tokens = 8
    max_prompt_tokens = 16
    description = "solve a+b= / a-b= with integers; 1 for the right number"

    def __init__(self, max_operand: int = 99, operators: str = "+-") -> None:
        super().__init__()
        if max_operand < 1 or not operators or set(operators) - set("+-*"):
            raise ValueError(f"need max_operand >= 1 and operators from '+-*', got {max_operand}, {operators!r}")
        self.max_operand, self.operators = max_operand, operators

    def _build(self, split: str) -> Sequence[Example]:
        rng = random.Random(SPLIT_SEEDS[split])
        examples = []
        for _ in range(SPLIT_SIZES[split]):
            a, b = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand)
            op = rng.choice(self.operators)
            answer = a + b if op == "+" else a - b if op == "-" else a * b
            examples.append(Example(f"{a}{op}{b}=", (str(answer),)))
        return examples

    def __repr__(self) -> str:
        return f"ArithmeticTask(max_operand={self.max_operand}, operators={self.operators!r})"
