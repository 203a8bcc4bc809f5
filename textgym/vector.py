"""TextGenVectorEnv: B token-level episodes stepped as torch tensors on one device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils.seeding import np_random
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.core import build_setup, draw_example, prompt_row
from textgym.tasks import Example, Task


class TextGenVectorEnv(VectorEnv):
    """``num_envs`` episodes of :class:`textgym.env.TextGenEnv` in tensors: one tensor op per step.

    Observations, rewards and termination flags are torch tensors on ``device`` (``"cpu"`` or
    ``"cuda"``): ``obs["input_ids"]`` is ``(B, L)`` int64. Episodes that end in the same step are scored
    in one batched reward call. Sub-env ``i`` reset with ``seed=s`` draws the same prompts as a single
    ``TextGenEnv`` reset with ``seed=s + i``, so both produce exactly the same episodes.

    Autoreset (``autoreset_mode``, declared in ``metadata``):
    - ``"NextStep"`` (Gymnasium's default): the step after an episode ends resets that sub-env and
      ignores its action (reward 0, not terminated).
    - ``"Disabled"``: a finished sub-env stays finished (its actions are ignored, ``terminated`` stays
      True, reward 0) until ``reset(options={"reset_mask": mask})`` or a full ``reset()``. This is the mode
      the agents' fast path uses to collect one batch of whole episodes.

    Args: as ``TextGenEnv`` plus ``num_envs``, ``device`` and ``autoreset_mode``.

    Example:
        >>> import gymnasium as gym, textgym
        >>> envs = gym.make_vec("TextGen-Arithmetic-v0", num_envs=4, vectorization_mode="vector_entry_point")
        >>> obs, infos = envs.reset(seed=0)
        >>> tuple(obs["input_ids"].shape)
        (4, 24)
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": ["ansi"]}

    def __init__(
        self,
        num_envs: int,
        task: str | Task = "prompts",
        prompts: str | Path | Sequence[Any] | None = None,
        eval_prompts: str | Path | Sequence[Any] | None = None,
        tokenizer: str | Any = "default",
        reward: str | Callable[..., Sequence[float]] | None = None,
        max_new_tokens: int | None = None,
        max_prompt_tokens: int | None = None,
        task_kwargs: dict[str, Any] | None = None,
        reward_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.SAME_STEP:
            raise ValueError("TextGenVectorEnv supports autoreset_mode 'NextStep' and 'Disabled', not 'SameStep'")
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
        )
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.num_envs, self.device, self.render_mode = num_envs, torch.device(device), render_mode
        self.single_observation_space = self.setup.observation_space()
        self.single_action_space = spaces.Discrete(self.setup.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        length = self.setup.length
        self.input_ids = torch.full((num_envs, length), self.setup.pad_token_id, dtype=torch.long, device=self.device)
        self.attention_mask = torch.zeros((num_envs, length), dtype=torch.long, device=self.device)
        self.num_generated = torch.zeros(num_envs, dtype=torch.long, device=self.device)  # (B,)
        self.done = torch.ones(num_envs, dtype=torch.bool, device=self.device)  # (B,)
        self._rngs = [np_random(None)[0] for _ in range(num_envs)]
        self._examples: list[Example | None] = [None] * num_envs
        self._bank: dict[tuple[str, int], int] = {}  # (split, index) -> row of the prompt bank
        self._bank_ids = torch.empty((num_envs, length), dtype=torch.long, device=self.device)
        self._bank_mask = torch.empty((num_envs, length), dtype=torch.long, device=self.device)
        self._started = False

    @property
    def prompt_length(self) -> int:
        """``P``: generated token ``t`` of every sub-env sits in column ``P + t``."""
        return self.setup.max_prompt_tokens

    @property
    def max_new_tokens(self) -> int:
        return self.setup.max_new_tokens

    @property
    def prompts(self) -> list[str]:
        """The prompt of each sub-env's current episode (empty before the first reset)."""
        return [e.prompt if e is not None else "" for e in self._examples]

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset all sub-envs, or those in ``options["reset_mask"]``.

        ``seed``: an int (sub-env ``i`` gets ``seed + i``) or one seed per sub-env. ``options``: as
        ``TextGenEnv`` (``split``, ``prompt_index``: an int or one per sub-env), plus ``reset_mask``.
        """
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, bool)), dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        self._seed(seed)
        indices = np.flatnonzero(mask)
        self._reset_rows(indices, options)
        self._started = True
        infos = self._prompt_infos(indices)
        return self._observation(), infos

    def step(self, actions: torch.Tensor | np.ndarray | Sequence[int]):
        """Append one token per sub-env; returns tensors ``(obs, rewards, terminated, truncated, infos)``."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = self._actions(actions)  # (B,)
        rewards = torch.zeros(self.num_envs, dtype=torch.float32, device=self.device)
        was_done = self.done.clone()
        infos: dict[str, Any] = {}
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP and bool(was_done.any()):
            restarted = np.flatnonzero(was_done.cpu().numpy())
            self._reset_rows(restarted, {})
            infos.update(self._prompt_infos(restarted))
        active = ~was_done  # (B,)
        column = (self.setup.max_prompt_tokens + self.num_generated).clamp(max=self.setup.length - 1)[:, None]
        written = torch.where(active[:, None], actions[:, None], self.input_ids.gather(1, column))  # (B, 1)
        self.input_ids.scatter_(1, column, written)
        self.attention_mask.scatter_(1, column, self.attention_mask.gather(1, column) | active[:, None].long())
        self.num_generated += active.long()
        finished = active & ((actions == self.setup.eos_token_id) | (self.num_generated >= self.max_new_tokens))
        if bool(finished.any()):
            self._score(finished, rewards, infos)
        self.done |= finished
        terminated = (
            finished.clone() if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP else self.done.clone()
        )
        truncated = torch.zeros_like(terminated)
        return self._observation(), rewards, terminated, truncated, infos

    def completions(self, rows: Sequence[int] | None = None) -> list[str]:
        """Decoded completions of the given sub-envs (all by default), as they stand now."""
        rows = range(self.num_envs) if rows is None else rows
        start = self.setup.max_prompt_tokens
        counts = self.num_generated.tolist()
        ids = self.input_ids[:, start:].tolist()
        return self.setup.decode([ids[r][: counts[r]] for r in rows])

    def render(self) -> str | None:
        if self.render_mode != "ansi" or not self._started:
            return None
        texts = self.completions()
        return "\n".join(f"{e.prompt}\u2502{t}" for e, t in zip(self._examples, texts, strict=True) if e)

    # -- internals -------------------------------------------------------------------------------------

    def _seed(self, seed: int | Sequence[int | None] | None) -> None:
        if seed is None:
            return
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"need one seed per sub-env ({self.num_envs}), got {len(seeds)}")
        self._rngs = [np_random(s)[0] for s in seeds]

    def _reset_rows(self, rows: np.ndarray, options: dict[str, Any]) -> None:
        """Draw a prompt for each sub-env in ``rows`` (its own RNG) and write all rows in one tensor op."""
        options = dict(options)
        prompt_indices = options.pop("prompt_index", None)
        slots = []
        for i in rows:
            per_env = (
                options
                if prompt_indices is None
                else {**options, "prompt_index": _pick(prompt_indices, i, self.num_envs)}
            )
            split, index, example = draw_example(self.setup, self._rngs[i], per_env)
            slots.append(self._bank_slot(split, index, example))
            self._examples[i] = example
        if not slots:
            return
        rows_t = torch.as_tensor(rows, device=self.device)
        slots_t = torch.as_tensor(slots, device=self.device)
        self.input_ids[rows_t] = self._bank_ids[slots_t]
        self.attention_mask[rows_t] = self._bank_mask[slots_t]
        self.num_generated[rows_t] = 0
        self.done[rows_t] = False

    def _bank_slot(self, split: str, index: int, example: Example) -> int:
        """Slot of an example's initial observation row in the on-device prompt bank (added on first use)."""
        key = (split, index)
        slot = self._bank.get(key)
        if slot is None:
            ids, mask = prompt_row(self.setup, self.setup.encode(split, index, example))
            slot = self._bank[key] = len(self._bank)
            if slot == self._bank_ids.shape[0]:  # grow by doubling
                self._bank_ids = torch.cat([self._bank_ids, torch.empty_like(self._bank_ids)])
                self._bank_mask = torch.cat([self._bank_mask, torch.empty_like(self._bank_mask)])
            self._bank_ids[slot] = torch.from_numpy(ids).to(self.device)
            self._bank_mask[slot] = torch.from_numpy(mask).to(self.device)
        return slot

    def _actions(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(actions) if not isinstance(actions, torch.Tensor) else actions)
        if tensor.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(tensor.shape)}")
        if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.is_complex():
            raise ValueError(f"actions must be integer token ids, got dtype {tensor.dtype}")
        tensor = tensor.to(self.device, torch.long)
        bad = (tensor < 0) | (tensor >= self.setup.vocab_size)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"action {int(tensor[i])} of sub-env {i} is out of range: token ids are in [0, {self.setup.vocab_size})"
            )
        return tensor

    def _score(self, finished: torch.Tensor, rewards: torch.Tensor, infos: dict[str, Any]) -> None:
        rows = np.flatnonzero(finished.cpu().numpy())
        texts = self.completions(rows)
        examples = [self._examples[r] for r in rows]
        prompts = [e.prompt for e in examples]
        scores, parts = self.setup.score(prompts, texts, [e.references for e in examples])
        rewards[torch.as_tensor(rows, device=self.device)] = torch.tensor(scores, device=self.device)
        _add(infos, "completion", rows, texts, self.num_envs)
        for key, values in {self.setup.reward_key: scores, **parts}.items():
            _add(infos, key, rows, values, self.num_envs)

    def _prompt_infos(self, rows: np.ndarray) -> dict[str, Any]:
        infos: dict[str, Any] = {}
        _add(infos, "prompt", rows, [self._examples[r].prompt for r in rows], self.num_envs)
        return infos

    def _observation(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids.clone(), "attention_mask": self.attention_mask.clone()}


def _pick(values: Any, i: int, n: int) -> Any:
    if isinstance(values, int | np.integer):
        return int(values)
    if len(values) != n:
        raise ValueError(f"prompt_index must be an int or one per sub-env ({n}), got {len(values)}")
    return int(values[i])


def _add(infos: dict[str, Any], key: str, rows: Sequence[int], values: Sequence[Any], n: int) -> None:
    """Gymnasium's vector info layout: ``infos[key]`` (B,) plus the boolean mask ``infos["_" + key]``."""
    array = np.full(n, None, dtype=object) if key not in infos else infos[key]
    present = np.zeros(n, dtype=bool) if f"_{key}" not in infos else infos[f"_{key}"]
    for r, v in zip(rows, values, strict=True):
        array[r], present[r] = v, True
    infos[key], infos[f"_{key}"] = array, present
