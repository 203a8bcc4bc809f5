"""A multi-turn game: guess a secret number; after each guess the environment answers higher, lower or right.

The episode is the whole game. The policy's turn is its guess, ended by a newline (or cut after
``max_turn_tokens`` tokens); the environment then writes its answer and the next ``Guess:`` itself. Those tokens
are the environment's, not actions (see :mod:`textgym.multiturn`). The game ends when the guess is right (the
environment writes ``Answer: right`` and EOS) or after ``max_guesses`` guesses.
"""

from __future__ import annotations

import math
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
    differs. An episode spans several turns: :meth:`respond` is the environment's side. The token limits follow
    the settings: a turn may hold the largest number and a newline, the game ``max_guesses`` rounds.

    Args:
        high: the largest secret number (2 to 100).
        max_guesses: guesses allowed per game (1 to 8).

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
        if isinstance(high, bool) or not isinstance(high, int) or not 2 <= high <= 100:
            raise ValueError(f"high must be an int in [2, 100], got {high!r}")
        if isinstance(max_guesses, bool) or not isinstance(max_guesses, int) or not 1 <= max_guesses <= 8:
            raise ValueError(f"max_guesses must be an int in [1, 8], got {max_guesses!r}")
        self.high, self.max_guesses = high, max_guesses
        # SmolLM2 tokens: " 10\n" is 4, "Answer: higher\nGuess:" 7; the rules 90 for high=10 (their solved game
        # takes about log2(high) rounds)
        self.max_turn_tokens = len(str(high)) + 2
        self.max_new_tokens = 16 * max_guesses
        self.max_prompt_tokens = 56 + 10 * math.ceil(math.log2(high + 1))

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
        reply = answer(made[-1], secret_of(example.extra))
        if reply == "right" or len(made) >= self.max_guesses:
            return f"Answer: {reply}", True
        return f"Answer: {reply}\nGuess:", False

    def _build(self, split: str) -> Sequence[Example]:
        rng, prompt = random.Random(SPLIT_SEEDS[split]), self.rules()
        return [Example(prompt, extra={"secret": rng.randint(1, self.high)}) for _ in range(SPLIT_SIZES[split])]

    def __repr__(self) -> str:
        return f"GuessNumberTask(high={self.high}, max_guesses={self.max_guesses})"


def secret_of(extra: Any) -> int:
    """The secret number of an example's extra columns, or a ``ValueError`` saying what is missing."""
    secret = (extra or {}).get("secret")
    if isinstance(secret, bool) or not isinstance(secret, int):
        raise ValueError(
            f"GuessNumber needs the example's secret number in extra['secret'], got {secret!r}: its episodes come "
            "from the task's own examples (reset options 'split' and 'prompt_index'), not from options['prompt']"
        )
    return secret


class GuessedNumber:
    """1.0 when one of the game's guesses is the secret (``secret=[...]``, one per game; the env ends the game at
    the task's ``max_guesses``).

    Example:
        >>> GuessedNumber()(["p", "p"], [" 5\\nAnswer: higher\\nGuess: 7", " 2\\nAnswer: higher"], secret=[7, 3])
        [1.0, 0.0]
    """

    name = "guessed_number"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        secrets = info.get("secret")
        if secrets is None or len(secrets) != len(completions):
            got = "none" if secrets is None else f"{len(secrets)}"
            raise ValueError(
                f"guessed_number needs secret=[...] with one number per completion ({len(completions)}), got {got}"
            )
        return [float(secret_of({"secret": s}) in guesses(c)) for c, s in zip(completions, secrets, strict=True)]
