"""Multi-turn episodes: the environment writes its own turns into the token stream between the policy's.

A multi-turn task (``task.multi_turn``, e.g. :class:`textgym.tasks.guess.GuessNumberTask`) has a
``respond(example, completion) -> (text, game_over)`` method. The policy's turn ends at a token whose text holds
a newline, or after ``task.max_turn_tokens`` tokens (the environment then starts its turn with a newline). The
environment's reply is then written one token per step: at those steps the action is ignored, the token written
is the environment's, and ``info["forced"]`` is True. When the game is over the environment writes EOS, which
ends the episode and scores the whole transcript. The observation always holds the whole conversation.

Learners must leave the forced tokens out of the policy's loss: :func:`agents.rollout.collect` reads
``info["forced"]`` and masks them (they still count as steps for returns and values). A learner that knows nothing
of this (stock SB3) trains on the ignored actions at those steps: noise, not bias toward the env's text.

Example:
    >>> import gymnasium as gym, textgym
    >>> env = gym.make("TextGen-GuessNumber-v0")
    >>> tok = env.unwrapped.setup.tokenizer
    >>> _ = env.reset(seed=0, options={"split": "eval", "prompt_index": 0})
    >>> forced = [env.step(t)[4]["forced"] for t in tok(" 5\\n")["input_ids"]]
    >>> _, _, _, _, info = env.step(0)  # the environment's turn: this action is ignored
    >>> forced, info["forced"], tok.decode(env.unwrapped._generated)
    ([False, False, False], True, ' 5\\nAnswer')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from textgym.env import TextGenEnv, validate_action
from textgym.episode import EpisodeSetup
from textgym.tasks.base import Example
from textgym.vector import TextGenVectorEnv, _add


@dataclass
class Turns:
    """One episode's turn bookkeeping: the environment's tokens still to write, and the policy's turn length."""

    pending: list[int] = field(default_factory=list)
    policy_tokens: int = 0


class TurnKeeper:
    """Decides, token by token, whose turn it is, and what the environment writes (shared by both envs)."""

    def __init__(self, setup: EpisodeSetup) -> None:
        self.setup, self.task = setup, setup.task
        self.max_turn_tokens = setup.task.max_turn_tokens
        self.ends_turn = newline_tokens(setup.tokenizer, setup.vocab_size)

    def choose(self, turns: Turns, action: int) -> tuple[int, bool]:
        """The token written at this step and whether it is the environment's (then ``action`` is ignored)."""
        if turns.pending:
            return turns.pending.pop(0), True
        return action, False

    def turn_ends(self, turns: Turns, token: int, forced: bool) -> bool:
        """Book a written token; True when it ends the policy's turn (then call :meth:`reply`)."""
        if forced or token == self.setup.eos_token_id:
            return False
        turns.policy_tokens += 1
        return bool(self.ends_turn[token]) or turns.policy_tokens >= self.max_turn_tokens

    def reply(self, turns: Turns, token: int, example: Example, completion: str) -> None:
        """Queue the environment's reply to the turn that ``token`` ended (and EOS when the episode is over)."""
        by_newline = bool(self.ends_turn[token])
        text, over = self.task.respond(example, completion if by_newline else completion + "\n")
        ids = self.setup.tokenizer(text if by_newline else "\n" + text, add_special_tokens=False)["input_ids"]
        turns.pending, turns.policy_tokens = [*ids, *([self.setup.eos_token_id] if over else [])], 0


@functools.lru_cache(maxsize=8)
def newline_tokens(tokenizer: Any, vocab_size: int) -> np.ndarray:
    """``(vocab_size,)`` bool: the token ids whose text holds a newline (they end a policy's turn)."""
    texts = tokenizer.batch_decode([[i] for i in range(min(len(tokenizer), vocab_size))])
    ends: np.ndarray = np.zeros(vocab_size, dtype=bool)
    ends[: len(texts)] = ["\n" in text for text in texts]
    ends.flags.writeable = False
    return ends


class MultiTurnEnv(TextGenEnv):
    """:class:`TextGenEnv` for multi-turn tasks: the environment's turns are written into the episode (see above)."""

    multi_turn = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keeper = TurnKeeper(self.setup)
        self._turns = Turns()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self._turns = Turns()
        return obs, info

    def step(self, action: Any):
        if not self._started or self._done:
            return super().step(action)  # raises ResetNeeded with the reason
        token, forced = self._keeper.choose(self._turns, validate_action(action, self.setup.vocab_size))
        obs, reward, terminated, truncated, info = super().step(token)
        if not terminated and self._keeper.turn_ends(self._turns, token, forced):
            (completion,) = self.setup.decode([self._generated])
            try:
                self._keeper.reply(self._turns, token, self._example, completion)
            except BaseException:  # as a reward error: the episode is half written, step() refuses until reset()
                self._started, self._reward_failed = False, True
                raise
        info["forced"] = forced
        return obs, reward, terminated, truncated, info


class MultiTurnVectorEnv(TextGenVectorEnv):
    """:class:`TextGenVectorEnv` for multi-turn tasks; ``infos["forced"]`` marks the sub-envs whose token this step
    was the environment's. The turn logic runs per sub-env on the host: this env is for correctness, not speed."""

    multi_turn = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keeper = TurnKeeper(self.setup)
        self._turns = [Turns() for _ in range(self.num_envs)]

    def _reset_rows(self, rows: np.ndarray, options: dict[str, Any]) -> dict[str, Any]:
        infos = super()._reset_rows(rows, options)
        for row in rows:
            self._turns[int(row)] = Turns()
        return infos

    def step(self, actions: torch.Tensor | np.ndarray | Any):
        if not self._started:
            return super().step(actions)  # raises: reset first
        values, _ = self._actions(actions)
        tokens = torch.as_tensor(self._ops.host(values)).clone()
        running = np.flatnonzero(~self._ops.host(self._ops.copy(self._done)))
        forced: np.ndarray = np.zeros(self.num_envs, dtype=bool)
        for row in running:
            tokens[row], forced[row] = self._keeper.choose(self._turns[row], int(tokens[row]))
        obs, rewards, terminated, truncated, infos = super().step(tokens.to(self.device))
        done = self._ops.host(self._ops.copy(self._done))
        ended = [
            r for r in running if not done[r] and self._keeper.turn_ends(self._turns[r], int(tokens[r]), forced[r])
        ]
        try:
            for row, completion in zip(ended, self.completions(np.asarray(ended, dtype=np.int64)), strict=True):
                example = Example(self._prompts[row], self._references[row] or (), extra=self._extras[row] or {})
                self._keeper.reply(self._turns[row], int(tokens[row]), example, completion)
        except BaseException:  # as a reward error: step() refuses until a reset of every sub-env
            self._started, self._reward_failed = False, True
            raise
        _add(infos, "forced", np.arange(self.num_envs), forced, self.num_envs)
        return obs, rewards, terminated, truncated, infos
