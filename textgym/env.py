"""TextGenEnv: one token-level text-generation episode as a Gymnasium environment."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from textgym.episode import (
    PROMPT_CACHE_SIZE,
    RENDER_MODES,
    build_setup,
    check_options,
    check_render_mode,
    check_turns,
    draw_examples,
    prompt_row,
    why_reset,
)
from textgym.tasks import Example, Task


def validate_action(action: Any, vocab_size: int) -> int:
    """The action as an int token id, or a ``ValueError`` naming the bad value and the valid range."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item() if np.issubdtype(action.dtype, np.integer) else action
    if isinstance(action, bool | np.bool_) or not isinstance(action, int | np.integer):
        raise ValueError(f"action must be an integer token id in [0, {vocab_size}), got {action!r}")
    if not 0 <= int(action) < vocab_size:
        raise ValueError(f"action {int(action)} is out of range: token ids are in [0, {vocab_size})")
    return int(action)


class TextGenEnv(gym.Env):
    """Token-level text generation: each step appends one token to the prompt.

    ## Description
    An episode continues a prompt drawn from a task. The agent writes one token per step; the text is scored
    by the reward when the episode ends. This is the MDP that RL fine-tuning of language models optimises.

    ## Action Space
    ``Discrete(V)``: the next token id, ``V`` the tokenizer's vocabulary size (49,152 for the default SmolLM2).

    ## Observation Space
    ``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`` with
    ``L = max_prompt_tokens + max_new_tokens``: the prompt left-padded into the first ``max_prompt_tokens``
    columns (longer prompts are truncated from the left), generated tokens after it (see ``textgym.episode``).

    ## Rewards
    0 on every step but the last; on the last, the task reward of ``(prompt, completion)``, e.g. VADER
    sentiment for ``TextGen-Sentiment-v0``. ``info["reward_breakdown"]`` names its parts.

    ## Starting State
    A prompt drawn uniformly from the train split with ``self.np_random``; ``options`` may pick the split
    (``{"split": "eval"}``), an example (``{"prompt_index": i}``) or a text (``{"prompt": "..."}``, with
    ``"references"``: one string or a list of them). Any other key is a ``ValueError`` listing the valid ones.

    ## Episode End
    Terminated when the agent writes EOS or when ``max_new_tokens`` tokens are written (the budget is part of
    the MDP: ``terminated=True``, nothing to bootstrap). Never truncated. Stepping a finished episode raises, and
    so does stepping after the reward raised, until the next ``reset()``.

    ## Arguments
    - ``task``: a task name (``"sentiment"``, ``"arithmetic"``, ``"reverse"``, ``"prompts"``) or a ``Task``.
    - ``prompts`` / ``eval_prompts``: the user's prompts for the generic ``TextGen-v0``: a list of strings or
      dicts, a ``.txt``/``.jsonl`` file, a ``datasets.Dataset``, or a ``DatasetDict`` (its ``train`` split, and
      its ``test`` or ``validation`` split as the eval split). A dict/row's ``prompt`` may be a string or a list
      of turns (``{"role", "content"}``), or it has a ``messages`` list instead (trailing assistant turns are the
      target: the last becomes the reference when the row has none; the prompt text is the last user turn); its
      other columns (say ``answer``; not ``prompts`` or ``completions``) reach the reward as keyword arguments,
      one value per episode.
    - ``tokenizer``: ``"default"`` (SmolLM2), a HF id or path, or a tokenizer object.
    - ``reward``: a registered name, ``"module:attr"`` or a callable ``(prompts, completions, **info)``.
    - ``max_new_tokens``, ``max_prompt_tokens``: budgets (task defaults when ``None``), ints up to
      ``textgym.episode.MAX_TOKEN_BUDGET`` (4096).
    - ``task_kwargs``, ``reward_kwargs``: constructor arguments for the task and a named reward.
    - ``render_mode``: ``"ansi"`` returns the prompt and completion as text.
    - ``chat_template``: render each prompt with the tokenizer's chat template (a user turn, or the example's
      turns) and the assistant's opening, as chat models expect.
    - ``prompt_cache_size``: how many custom prompts (``options={"prompt": ...}``) keep their token ids, least
      recently used dropped first (default ``textgym.episode.PROMPT_CACHE_SIZE``, 4096).

    ## Version History
    - v0: initial release.
    - TextGen-SentimentClassifier-v0 (called TextGen-Sentiment-v1 until 2026-12): the reward is the
      project-trained MiniLM sentiment classifier (``minilm_sentiment``, ``2p - 1`` in [-1, 1], 75.5% held-out
      accuracy); TextGen-Sentiment-v0 keeps VADER. A variant with its own id, not a newer version.
    - TextGen-Arithmetic-v1: one-digit addition after three solved examples (``difficulty="easy"``,
      ``few_shot=3``, 4 new tokens), which SmolLM2-135M-Instruct gets right about 20-40% of the time instead of
      v0's 1%; TextGen-Arithmetic-v0 keeps the bare two-digit ``"a+b="`` / ``"a-b="`` problems. Both now
      draw train and eval problems from disjoint sets (about a quarter of the distinct problems are eval's).
    - TextGen-Reverse-v1: three solved puzzles before each (``few_shot=3``) and only the completion's first line
      scored (``reward_kwargs={"first_line": True}``): SmolLM2-135M-Instruct scores 0.17 on 64 held-out puzzles
      where v0 (no examples, the whole completion scored) gets 0.01.

    Example:
        >>> import gymnasium as gym, textgym
        >>> env = gym.make("TextGen-Arithmetic-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs["input_ids"].shape == env.observation_space["input_ids"].shape
        True
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}
    multi_turn = False  # whether the env writes a multi-turn task's own turns (textgym.multiturn.MultiTurnEnv)

    def __init__(
        self,
        task: str | Task = "prompts",
        prompts: str | Path | Sequence[Any] | None = None,
        eval_prompts: str | Path | Sequence[Any] | None = None,
        tokenizer: str | Any = "default",
        reward: str | Callable[..., Sequence[float]] | None = None,
        max_new_tokens: int | None = None,
        max_prompt_tokens: int | None = None,
        task_kwargs: dict[str, Any] | None = None,
        reward_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        prompt_cache_size: int = PROMPT_CACHE_SIZE,
        chat_template: bool = False,
        dense_reward: bool = False,
    ) -> None:
        self.render_mode = check_render_mode(render_mode, RENDER_MODES)
        self.setup = build_setup(
            task,
            prompts,
            eval_prompts,
            tokenizer,
            reward,
            max_new_tokens,
            max_prompt_tokens,
            task_kwargs,
            reward_kwargs,
            prompt_cache_size,
            chat_template,
            dense_reward,
        )
        check_turns(self.setup.task, self.multi_turn)
        self.action_space = spaces.Discrete(self.setup.vocab_size)
        self.observation_space = self.setup.observation_space()
        self._generated: list[int] = []
        self._paid = 0.0  # dense rewards paid so far in this episode
        self._done = True
        self._started = False  # False before the first reset and after a reward error, so step() raises
        self._reward_failed = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        checked = check_options(options)  # before seeding, so a bad option changes nothing
        super().reset(seed=seed)
        draw = draw_examples(self.setup, checked, 1, lambda n: self.np_random.integers(n, size=1))
        split, index = draw.split, int(draw.indices[0])
        example = cast(Example, draw.examples[0])  # an element of an object array
        ids = self.setup.encode(split, index, example)
        self._example = example
        self._input_ids, self._attention_mask = prompt_row(self.setup, ids)
        self._generated, self._done, self._started, self._reward_failed = [], False, True, False
        self._paid = 0.0
        self._base_info = {"prompt": self._example.prompt, "prompt_index": index, "split": split}
        return self._observation(), dict(self._base_info)

    def step(self, action: Any):
        if not self._started:
            raise ResetNeeded(why_reset(self._reward_failed))
        if self._done:
            raise ResetNeeded("the episode has ended (EOS or token budget): call reset() before step()")
        token = validate_action(action, self.setup.vocab_size)
        column = self.setup.max_prompt_tokens + len(self._generated)
        self._input_ids[column], self._attention_mask[column] = token, 1
        self._generated.append(token)
        self._done = token == self.setup.eos_token_id or len(self._generated) >= self.setup.max_new_tokens
        info: dict[str, Any] = dict(self._base_info)
        reward = 0.0
        if self._done:
            reward = self._final_reward(info) - self._paid
        elif self.setup.dense_reward:
            reward = self._dense_pay()
        return self._observation(), reward, self._done, False, info

    def _dense_pay(self) -> float:
        """This step's share of a dense reward (see :meth:`EpisodeSetup.dense_pay`)."""
        if len(self._generated) < 2:
            return 0.0
        example = self._example
        try:
            generated = [self._generated]
            (row,) = self.setup.token_rewards([example.prompt], generated, [example.references], [example.extra])
        except BaseException:
            self._started, self._reward_failed = False, True
            raise
        pay = self.setup.dense_pay(row, len(self._generated))
        self._paid += pay
        return pay

    def truncate(self) -> tuple[float, dict[str, Any]]:
        """End the running episode early and score the completion so far: what a ``TimeLimit`` cut gets (see
        :class:`ScoreTruncated`). Returns the reward and the info of a final step."""
        if not self._started or self._done:
            raise ResetNeeded("no episode is running: call reset() first")
        self._done = True
        info: dict[str, Any] = dict(self._base_info)
        return self._final_reward(info) - self._paid, info

    def _final_reward(self, info: dict[str, Any]) -> float:
        """Score the finished episode into ``info``; if the reward raises, step() is refused until reset()."""
        references = self._example.references
        try:
            (completion,) = self.setup.decode([self._generated])
            example = self._example
            (reward,), parts = self.setup.score([example.prompt], [completion], [references], [example.extra])
        except BaseException:
            self._started, self._reward_failed = False, True
            raise
        info.update(
            completion=completion,
            text=self._example.prompt + completion,
            references=references,
            reward_breakdown={self.setup.reward_key: reward, **{k: v[0] for k, v in parts.items()}},
        )
        return reward

    def _observation(self) -> dict[str, np.ndarray]:
        return {"input_ids": self._input_ids.copy(), "attention_mask": self._attention_mask.copy()}

    def render(self) -> str | None:
        if self.render_mode != "ansi" or not self._started:
            return None
        (completion,) = self.setup.decode([self._generated])
        return f"{self._example.prompt}\u2502{completion}" + (" [done]" if self._done else "")
