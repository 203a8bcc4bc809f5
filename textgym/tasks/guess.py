"""A multi-turn game: guess a secret number; after each guess the environment answers higher, lower or right.

The episode is the whole game. The policy's turn is its guess, ended by a newline (or cut after
``max_turn_tokens`` tokens); the environment then writes its answer and the next ``Guess:`` itself. Those tokens
are the environment's, not actions (see :mod:`textgym.multiturn`). The game ends when the guess is right (the
environment writes ``Answer: right`` and EOS) or after ``max_guesses`` guesses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from textgym.tasks.base import Example, Task

SPLIT_SEEDS = {"train": 5, "eval": 6}
SPLIT_SIZES = {"train": 2_000, "eval": 200}
SHOT_SEED = 0
_NUMBER = re.compile(r"-?\d+")


def guesses(completion: str) -> list[int | None]:
    """The guesses of a game's transcript (the completion): the first integer of each of the policy's turns.

    The first line is the first turn; every later turn follows a ``Guess:`` the environment wrote.

    Example:
        >>> guesses(" 5\\nAnswer: higher\\nGuess: eight\\nAnswer: write a number\\nGuess: 7\\nAnswer: right")
        [5, None, 7]
    """
    lines = completion.split("\n")
    turns = [lines[0]] + [line.removeprefix("Guess:") for line in lines[1:] if line.startswith("Guess:")]
    found = [_NUMBER.search(turn) for turn in turns]
    return [int(match.group()) if match else None for match in found]


def answer(guess: int | None, secret: int) -> str:
    """The environment's answer to one guess.

    Example:
        >>> answer(3, 7), answer(9, 7), answer(7, 7), answer(None, 7)
        ('higher', 'lower', 'right', 'write a number')
    """
    if guess is None:
        return "write a number"
    return "higher" if guess < secret else "lower" if guess > secret else "right"


class GuessNumberTask(Task):
    """Find a secret number in ``[1, high]`` with at most ``max_guesses`` guesses; reward 1 when found.

    Every prompt is the same (the rules and one solved game); the secret, in ``Example.extra["secret"]``,
    differs. An episode spans several turns: :meth:`respond` is the environment's side.

    Args:
        high: the largest secret number.
        max_guesses: guesses allowed per game.

    Example:
        >>> task = GuessNumberTask()
        >>> task.respond(task.examples("eval")[0], " 5\\n")
        ('Answer: higher\\nGuess:', False)
    """

    name = "guess_number"
    default_reward = "guessed_number"
    max_new_tokens = 64
    max_prompt_tokens = 96
    description = "multi-turn: find a secret number from higher/lower answers; reward 1 when found"
    multi_turn = True
    max_turn_tokens = 4  # the environment ends a turn that has gone on this long without a newline

    def __init__(self, high: int = 10, max_guesses: int = 4) -> None:
        super().__init__()
        if isinstance(high, bool) or not isinstance(high, int) or high < 2:
            raise ValueError(f"high must be an int >= 2, got {high!r}")
        if isinstance(max_guesses, bool) or not isinstance(max_guesses, int) or max_guesses < 1:
            raise ValueError(f"max_guesses must be an int >= 1, got {max_guesses!r}")
        self.high, self.max_guesses = high, max_guesses

    def rules(self) -> str:
        """The rules and one solved game (a fixed secret, found by halving the range)."""
        secret = random.Random(SHOT_SEED).randint(1, self.high)
        low, high, lines = 1, self.high, []
        while True:
            guess = (low + high) // 2
            reply = answer(guess, secret)
            lines += [f"Guess: {guess}", f"Answer: {reply}"]
            if reply == "right":
                break
            low, high = (guess + 1, high) if reply == "higher" else (low, guess - 1)
        opening = f"I think of a number from 1 to {self.high}."
        rules = f"{opening} Guess it in at most {self.max_guesses} tries; I answer higher, lower or right."
        return "\n".join([rules, *lines, f"I think of a new number from 1 to {self.high}.", "Guess:"])

    def respond(self, example: Example, completion: str) -> tuple[str, bool]:
        """The environment's turn after the policy's: ``(text to write, whether the game is over)``."""
        made = guesses(completion)
        reply = answer(made[-1], int(example.extra["secret"]))
        if reply == "right" or len(made) >= self.max_guesses:
            return f"Answer: {reply}", True
        return f"Answer: {reply}\nGuess:", False

    def _build(self, split: str) -> Sequence[Example]:
        rng, prompt = random.Random(SPLIT_SEEDS[split]), self.rules()
        return [Example(prompt, extra={"secret": rng.randint(1, self.high)}) for _ in range(SPLIT_SIZES[split])]

    def __repr__(self) -> str:
        return f"GuessNumberTask(high={self.high}, max_guesses={self.max_guesses})"


class GuessedNumber:
    """1.0 when one of the game's first ``max_guesses`` guesses is the secret (``secret=[...]``, one per game).

    Example:
        >>> GuessedNumber()(["p", "p"], [" 5\\nAnswer: higher\\nGuess: 7", " 2\\nAnswer: higher"], secret=[7, 3])
        [1.0, 0.0]
    """

    name = "guessed_number"

    def __init__(self, max_guesses: int = 4) -> None:
        self.max_guesses = max_guesses

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        secrets = info.get("secret")
        if secrets is None or len(secrets) != len(completions):
            raise ValueError(f"guessed_number needs secret=[...] with one number per completion ({len(completions)})")
        return [
            float(int(secret) in guesses(c)[: self.max_guesses]) for c, secret in zip(completions, secrets, strict=True)
        ]
