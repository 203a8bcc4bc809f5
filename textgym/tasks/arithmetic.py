"""Seeded synthetic arithmetic problems (``"17+25="``) with an exact numeric-match reward.

Difficulty presets set the operand range and the operators; ``few_shot`` puts that many solved problems
(one per line, the same for every prompt) before the question, the format a small model continues best:

    2+3=5
    7+1=8
    4+4=8
    6+2=

SmolLM2-135M-Instruct, sampling at temperature 1 on 64 problems of one-digit addition: plain ``"a+b="`` 11%
right, with 3 solved examples first 39%, through its chat template (``"What is a+b?"``) 0%; one-digit sums and
differences with 3 examples 9%. The leaderboard's zero-shot rows give the figure on the eval split.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from textgym.tasks.base import Example, Task

SPLIT_SEEDS = {"train": 1, "eval": 2}
SHOT_SEED = 0
SPLIT_SIZES = {"train": 10_000, "eval": 500}
DIFFICULTIES: dict[str, tuple[int, str]] = {
    "easy": (9, "+"),  # one-digit addition
    "medium": (9, "+-"),  # one-digit addition and subtraction
    "hard": (99, "+-"),  # two-digit addition and subtraction (TextGen-Arithmetic-v0)
    "expert": (99, "+-*"),  # two-digit, with multiplication
}
OPERATORS = "+-*"


def split_of(question: str) -> str:
    """The split a problem belongs to, fixed by its text: about one problem in four is held out for ``eval``.

    Example:
        >>> split_of("2+3="), split_of("4+9=")
        ('train', 'eval')
    """
    return "eval" if zlib.crc32(question.encode()) % 4 == 0 else "train"


class ArithmeticTask(Task):
    """Add, subtract or multiply two integers in ``[0, max_operand]``; the reward checks the first number written.

    Splits are drawn from fixed seeds (train: 10,000 problems, seed 1; eval: 500, seed 2), each from its own
    problems: :func:`split_of` assigns every distinct problem to one split, so no eval problem is trained on.

    Args:
        difficulty: a preset of :data:`DIFFICULTIES` (operand range and operators).
        max_operand, operators: override the preset's range or operators (a subset of ``"+-*"``).
        few_shot: solved problems (drawn once, from their own seed) written before every question.

    Example:
        >>> ArithmeticTask(difficulty="easy", few_shot=2).examples("eval")[0].prompt.count("=")
        3
        >>> ArithmeticTask(max_operand=9).examples("eval")[0].prompt[-1]
        '='
    """

    name = "arithmetic"
    default_reward = "numeric_match"
    max_new_tokens = 8
    max_prompt_tokens = 16
    description = "solve a+b= / a-b= / a*b= with integers; 1 for the right number"

    def __init__(
        self,
        difficulty: str = "hard",
        max_operand: int | None = None,
        operators: str | None = None,
        few_shot: int = 0,
    ) -> None:
        super().__init__()
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"unknown arithmetic difficulty {difficulty!r}: expected one of {sorted(DIFFICULTIES)}")
        preset_operand, preset_operators = DIFFICULTIES[difficulty]
        self.difficulty = difficulty
        self.max_operand = preset_operand if max_operand is None else max_operand
        self.operators = preset_operators if operators is None else operators
        if isinstance(self.max_operand, bool) or not isinstance(self.max_operand, int) or self.max_operand < 1:
            raise ValueError(f"max_operand must be an int >= 1, got {self.max_operand!r}")
        if not self.operators or not isinstance(self.operators, str) or set(self.operators) - set(OPERATORS):
            raise ValueError(f"operators must be a non-empty string of {OPERATORS!r}, got {self.operators!r}")
        if isinstance(few_shot, bool) or not isinstance(few_shot, int) or not 0 <= few_shot <= 16:
            raise ValueError(f"few_shot must be an int in [0, 16], got {few_shot!r}")
        self.few_shot = few_shot
        self.max_prompt_tokens = 16 + 12 * few_shot  # "12-57=-45\n" is 9 SmolLM2 tokens

    def problem(self, rng: random.Random) -> tuple[str, int]:
        """One ``("a+b=", answer)`` drawn from ``rng``."""
        a, b = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand)
        op = rng.choice(self.operators)
        return f"{a}{op}{b}=", a + b if op == "+" else a - b if op == "-" else a * b

    def preamble(self) -> str:
        """The solved problems written before every question (train problems only; empty without ``few_shot``)."""
        rng = random.Random(SHOT_SEED)
        solved = self.draw(rng, "train", self.few_shot)
        return "".join(f"{question}{answer}\n" for question, answer in solved)

    def draw(self, rng: random.Random, split: str, n: int) -> list[tuple[str, int]]:
        """``n`` problems of ``split``: a problem belongs to one split only (:func:`split_of`), so the eval
        problems are never trained on, even where there are few distinct problems (100 one-digit sums)."""
        drawn: list[tuple[str, int]] = []
        while len(drawn) < n:
            problem = self.problem(rng)
            if split_of(problem[0]) == split:
                drawn.append(problem)
        return drawn

    def _build(self, split: str) -> Sequence[Example]:
        rng, preamble = random.Random(SPLIT_SEEDS[split]), self.preamble()
        return [
            Example(preamble + question, (str(answer),))
            for question, answer in self.draw(rng, split, SPLIT_SIZES[split])
        ]

    def __repr__(self) -> str:
        return (
            f"ArithmeticTask(difficulty={self.difficulty!r}, max_operand={self.max_operand}, "
            f"operators={self.operators!r}, few_shot={self.few_shot})"
        )
