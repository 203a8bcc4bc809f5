"""TextGenVectorEnv: B token-level episodes stepped as torch tensors on one device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.bank import PromptBank
from textgym.episode import (
    OPTION_KEYS,
    PROMPT_CACHE_SIZE,
    RENDER_MODES,
    build_setup,
    check_int,
    check_options,
    check_render_mode,
    check_turns,
    draw_examples,
    prompt_indices,
    why_reset,
)
from textgym.streams import IndexStreams
from textgym.tasks import Task


class TextGenVectorEnv(VectorEnv):
    """``num_envs`` episodes of :class:`textgym.env.TextGenEnv` in tensors, stepped together.

    Observations, rewards and termination flags are torch tensors on ``device`` (``"cpu"`` or
    ``"cuda"``): ``obs["input_ids"]`` is ``(B, L)`` int64. A step writes all B tokens with one indexed
    write; episodes that end in the same step are decoded together and scored in one batched reward call;
    sub-envs that restart together copy their prompts from an on-device prompt bank in one indexed copy.
    Sub-env ``i`` reset with ``seed=s`` draws the same prompts as a single ``TextGenEnv`` reset with
    ``seed=s + i``, so both produce exactly the same episodes.

    Per-sub-env bookkeeping (tokens written, episode ended) stays with the tensors: on CPU as NumPy
    arrays sharing their memory (a NumPy call on a small array costs about a third of a torch call), on
    CUDA as tensors on the device, with one host sync in a step where no episode is over or ending (the
    action range check and whether any action is EOS, read together), a few more in the others, and a copy
    to the host only of the token ids of episodes that end.

    Autoreset (``autoreset_mode``, declared in ``metadata``):
    - ``"NextStep"`` (Gymnasium's default): the step after an episode ends resets that sub-env and
      ignores its action (reward 0, not terminated).
    - ``"Disabled"``: a finished sub-env stays finished (its actions are ignored, ``terminated`` stays
      True, reward 0) until ``reset(options={"reset_mask": mask})`` or a full ``reset()``. This is the mode
      the agents' fast path uses to collect one batch of whole episodes.

    A reward that raises in :meth:`step` leaves that step half applied (tokens written, episodes not marked
    ended), so the env then refuses to step (``RuntimeError``) until a ``reset()`` of every sub-env.

    Args: as ``TextGenEnv`` plus ``num_envs``, ``device`` and ``autoreset_mode``.

    Example:
        >>> import gymnasium as gym, textgym
        >>> envs = gym.make_vec("TextGen-Arithmetic-v0", num_envs=4, vectorization_mode="vector_entry_point")
        >>> obs, infos = envs.reset(seed=0)
        >>> tuple(obs["input_ids"].shape)
        (4, 24)
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": list(RENDER_MODES)}
    multi_turn = False  # whether the env writes a multi-turn task's own turns (MultiTurnVectorEnv)

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
        prompt_cache_size: int = PROMPT_CACHE_SIZE,
        chat_template: bool = False,
        dense_reward: bool = False,
    ) -> None:
        num_envs = check_int(num_envs, "num_envs", 1)
        check_render_mode(render_mode, RENDER_MODES)
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
            prompt_cache_size,
            chat_template,
            dense_reward,
        )
        check_turns(self.setup.task, self.multi_turn)
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.num_envs, self.device, self.render_mode = num_envs, torch.device(device), render_mode
        self.single_observation_space = self.setup.observation_space()
        self.single_action_space = spaces.Discrete(self.setup.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        length = self.setup.length
        # token ids and attention mask share one (2, B, L) buffer, so that an observation is one copy
        tokens = torch.zeros((2, num_envs, length), dtype=torch.long, device=self.device)
        tokens[0] = self.setup.pad_token_id
        self.input_ids, self.attention_mask = tokens[0], tokens[1]  # views
        # per-sub-env state, as NumPy arrays on the tensors' own memory on CPU or as tensors on another device
        self._ops = state_ops(self.device, self.setup.vocab_size, self.setup.eos_token_id)
        self._tokens = self._ops.view(tokens)
        self._ids, self._mask = self._tokens[0], self._tokens[1]
        self._flat_ids, self._flat_mask = self._ids.reshape(-1), self._mask.reshape(-1)  # views
        self._done = self._ops.view(torch.ones(num_envs, dtype=torch.bool, device=self.device))
        first_column = torch.arange(num_envs, device=self.device) * length + self.setup.max_prompt_tokens
        # flat indices into the (B, L) buffers: each row's first generated token, the next token it writes (so
        # tokens written = cursor - first column), and the column past its token budget
        self._first_column = self._ops.view(first_column)
        self._cursor = self._ops.view(first_column.clone())
        self._budget_end = self._ops.view(first_column + self.setup.max_new_tokens)
        self._streams = IndexStreams([None] * num_envs)
        self._prompts: np.ndarray = np.full(num_envs, None, dtype=object)  # each sub-env's current prompt
        self._references: np.ndarray = np.full(num_envs, None, dtype=object)  # and its references
        self._extras: np.ndarray = np.full(num_envs, None, dtype=object)  # and its example's extra columns
        self._paid = np.zeros(num_envs)  # dense rewards paid so far in each sub-env's episode
        self._bank = PromptBank(self.setup, self.device)
        self._any_done = True  # whether some sub-env's episode has ended (kept in step with _done)
        self._steps_to_budget = 0
        self._started = False  # False before the first reset and after a reward error, so step() raises
        self._reward_failed = False  # a reward raised in step(): a reset of every sub-env is due

    @property
    def prompt_length(self) -> int:
        """``P``: generated token ``t`` of every sub-env sits in column ``P + t``."""
        return self.setup.max_prompt_tokens

    @property
    def max_new_tokens(self) -> int:
        return self.setup.max_new_tokens

    @property
    def num_generated(self) -> torch.Tensor:
        """``(B,)`` tokens written so far in each sub-env's current episode."""
        return self._ops.tensor(self._tokens_written(slice(None)))

    @property
    def done(self) -> torch.Tensor:
        """``(B,)`` whether each sub-env's episode has ended (and not been reset yet)."""
        return self._ops.tensor(self._ops.copy(self._done))

    @property
    def prompts(self) -> list[str]:
        """The prompt of each sub-env's current episode (empty before the first reset)."""
        return [p if p is not None else "" for p in self._prompts.tolist()]

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Reset all sub-envs, or those in ``options["reset_mask"]``.

        ``seed``: an int (sub-env ``i`` gets ``seed + i``) or one seed per sub-env. ``options``: as
        ``TextGenEnv`` (``split``, ``prompt_index``: an int or one per sub-env, ``prompt``, ``references``), plus
        ``reset_mask``; other keys are an error. After a reward error only a reset of every sub-env is taken.
        """
        options = dict(check_options(options, (*OPTION_KEYS, "reset_mask")))
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, bool)), dtype=bool)
        if mask.shape != (self.num_envs,):
            raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        if self._reward_failed and not mask.all():
            raise ValueError("a reward error interrupted the last step: reset every sub-env (no partial reset_mask)")
        self._seed(seed)
        indices = np.flatnonzero(mask)
        infos = self._reset_rows(indices, options)
        self._started, self._reward_failed = True, False
        return self._observation(), infos

    def step(self, actions: torch.Tensor | np.ndarray | Sequence[int]):
        """Append one token per sub-env; returns tensors ``(obs, rewards, terminated, truncated, infos)``."""
        if not self._started:
            raise RuntimeError(why_reset(self._reward_failed))
        actions, any_eos = self._actions(actions)  # (B,) int64 in the state's array type, and whether any is EOS
        ops, num_envs = self._ops, self.num_envs
        rewards = ops.zeros(num_envs, "float32")
        infos: dict[str, Any] = {}
        next_step = self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP  # callers may switch it between steps
        # sub-envs whose episode had ended ignore this step's action (reset now, or kept as they are)
        active = ~self._done if self._any_done else None  # None: all are mid-episode, the common case
        if next_step and active is not None:
            infos.update(self._reset_rows(ops.rows(self._done), {}))
        self._write(actions, active)
        self._cursor += 1 if active is None else active
        self._steps_to_budget -= 1
        finished = None
        if self._steps_to_budget <= 0 or any_eos:  # else no episode can end in this step
            finished = (actions == self.setup.eos_token_id) | (self._cursor >= self._budget_end)
            if active is not None:
                finished &= active
            if ops.any(finished):
                self._score(ops.rows(finished), rewards, infos)
                self._done |= finished
                self._any_done = True
            self._steps_to_budget = self._least_steps_to_budget()
        if self.setup.dense_reward:
            self._pay_dense(active, finished, rewards)
        if not next_step:
            terminated = ops.copy(self._done)
        else:
            terminated = finished if finished is not None else ops.zeros(num_envs, "bool")
        truncated = ops.zeros(num_envs, "bool")
        return self._observation(), ops.tensor(rewards), ops.tensor(terminated), ops.tensor(truncated), infos

    def completions(self, rows: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """Decoded completions of the given sub-envs (all by default), as they stand now."""
        rows = np.arange(self.num_envs) if rows is None else np.asarray(rows, dtype=np.int64)
        index = self._ops.index(rows)
        ids = self._ops.host(self._ids[index, self.prompt_length :])
        return self.setup.decode_padded(ids, self._ops.host(self._tokens_written(index)))

    def score_texts(self, completions: Sequence[str]) -> list[float]:
        """Score one text per sub-env as the answer to its current prompt (with the episode's references and
        extra columns), leaving the episodes as they are: e.g. an episode's prefixes, scored for a critic.

        Example:
            >>> import gymnasium as gym
            >>> envs = gym.make_vec("TextGen-Reverse-v1", num_envs=1, vectorization_mode="vector_entry_point")
            >>> _ = envs.reset(seed=0)
            >>> envs.unwrapped.prompts[0].splitlines()[-1]
            'Reverse: k j d o n ->'
            >>> envs.unwrapped.score_texts([" n o d j k"]), envs.unwrapped.score_texts([" n o d"])
            ([1.0], [0.6])
        """
        if not self._started:
            raise RuntimeError("score_texts needs a running episode in every sub-env: call reset() first")
        if len(completions) != self.num_envs:
            raise ValueError(f"need one text per sub-env ({self.num_envs}), got {len(completions)}")
        prompts, references = self._prompts.tolist(), self._references.tolist()
        scores, _ = self.setup.score(prompts, list(completions), references, self._extras.tolist())
        return scores

    def render(self) -> str | None:
        if self.render_mode != "ansi" or not self._started:
            return None
        texts = self.completions()
        pairs = zip(self._prompts.tolist(), texts, strict=True)
        return "\n".join(f"{p}\u2502{t}" for p, t in pairs if p is not None)

    # -- internals -------------------------------------------------------------------------------------

    def _seed(self, seed: int | Sequence[int | None] | None) -> None:
        if seed is None:
            return
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"need one seed per sub-env ({self.num_envs}), got {len(seeds)}")
        self._streams = IndexStreams(seeds)

    def _reset_rows(self, rows: np.ndarray, options: dict[str, Any]) -> dict[str, Any]:
        """Draw a prompt for each sub-env in ``rows`` (its own RNG stream), write all rows at once, and return
        the reset infos (the prompts)."""
        infos: dict[str, Any] = {}
        if not len(rows):
            return infos
        chosen = options.get("prompt_index")
        if chosen is not None and not isinstance(chosen, int | np.integer):
            picks = prompt_indices(chosen, self.num_envs)
            options = {**options, "prompt_index": [picks[r] for r in rows]}
        draw = draw_examples(self.setup, options, len(rows), lambda n: self._streams.draw(rows, n))
        ops = self._ops
        slots, index = ops.index(self._bank.slots(draw)), ops.index(rows)  # (may tokenize: before any state changes)
        prompts = draw.prompts
        self._prompts[rows], self._references[rows] = prompts, draw.references
        self._extras[rows] = [example.extra for example in draw.examples]
        _add(infos, "prompt", rows, prompts, self.num_envs)
        self._ids[index, : self.prompt_length] = ops.gather(ops.view(self._bank.ids), slots)
        self._ids[index, self.prompt_length :] = self.setup.pad_token_id
        prompt_lengths = ops.gather(ops.view(self._bank.lengths), slots)
        self._mask[index] = ops.gather(ops.view(self._bank.mask_by_length), prompt_lengths)
        self._cursor[index], self._done[index] = self._first_column[index], False
        self._paid[rows] = 0.0
        self._any_done = ops.any(self._done)
        self._steps_to_budget = self._least_steps_to_budget()
        return infos

    def _tokens_written(self, index: Any) -> Any:
        """Tokens written so far in the current episode of the sub-envs at ``index``."""
        return self._cursor[index] - self._first_column[index]

    def _least_steps_to_budget(self) -> int:
        """Steps until the first running episode reaches the token budget (a lower bound after EOS ends)."""
        remaining = (self._budget_end - self._cursor)[~self._done]
        return int(remaining.min()) if len(remaining) else self.max_new_tokens

    def _actions(self, actions: torch.Tensor | np.ndarray | Sequence[int]) -> tuple[Any, Any]:
        """Validated actions as ``(B,)`` int64 in the state's array type (on CPU, the caller's memory when it can),
        and whether any of them is EOS."""
        tensor = actions if isinstance(actions, torch.Tensor) else torch.as_tensor(_integer_array(actions))
        if tensor.dtype != torch.long or tensor.device != self.device:  # the fast path skips these checks
            if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.is_complex():
                raise ValueError(f"actions must be integer token ids, got dtype {tensor.dtype}")
            tensor = tensor.to(self.device, torch.long)
        if tensor.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(tensor.shape)}")
        values = self._ops.view(tensor)
        try:
            return values, self._ops.scan_actions(values)
        except IndexError:
            host = self._ops.host(values)
            i = int(np.flatnonzero((host < 0) | (host >= self.setup.vocab_size))[0])
            raise ValueError(
                f"action {host[i]} of sub-env {i} is out of range: token ids are in [0, {self.setup.vocab_size})"
            ) from None

    def _write(self, actions: Any, active: Any | None) -> None:
        """Write the token and mask bit of each active sub-env (all when ``active`` is None) at its next column."""
        flat = self._cursor
        if active is not None:
            flat, actions = flat[active], actions[active]
        self._flat_ids[flat] = actions
        self._flat_mask[flat] = 1

    def _score(self, rows: np.ndarray, rewards: Any, infos: dict[str, Any]) -> None:
        """Decode and score the episodes of ``rows``, which end in this step. If that raises, the step is half
        applied (tokens written and cursors moved, the episodes not marked ended): step() then refuses to run."""
        try:
            texts = self.completions(rows)
            prompts, references = self._prompts[rows].tolist(), self._references[rows].tolist()
            scores, parts = self.setup.score(prompts, texts, references, self._extras[rows].tolist())
        except BaseException:
            self._started, self._reward_failed = False, True
            raise
        rewards[self._ops.index(rows)] = self._ops.array(scores, "float32")
        _add(infos, "completion", rows, texts, self.num_envs)
        for key, values in {self.setup.reward_key: scores, **parts}.items():
            _add(infos, key, rows, np.asarray(values, dtype=np.float64), self.num_envs)

    def _pay_dense(self, active: Any | None, finished: Any | None, rewards: Any) -> None:
        """Dense rewards: episodes ending now get their terminal score less what was paid; running ones this step's
        share of the per-token scores (:meth:`EpisodeSetup.dense_pay`)."""
        ops = self._ops
        wrote: np.ndarray = np.ones(self.num_envs, bool) if active is None else ops.host(active).astype(bool)
        ended: np.ndarray = np.zeros(self.num_envs, bool) if finished is None else ops.host(finished).astype(bool)
        done_rows, running = np.flatnonzero(wrote & ended), np.flatnonzero(wrote & ~ended)
        if len(done_rows):
            rewards[ops.index(done_rows)] -= ops.array(self._paid[done_rows].tolist(), "float32")
        written = ops.host(self._tokens_written(ops.index(running))) if len(running) else np.zeros(0, np.int64)
        running, counts = running[written >= 2], written[written >= 2]
        if not len(running):
            return
        ids = ops.host(self._ids[ops.index(running), self.prompt_length :])
        token_rows = [row[:n].tolist() for row, n in zip(ids, counts, strict=True)]
        try:
            scores = self.setup.token_rewards(
                self._prompts[running].tolist(),
                token_rows,
                self._references[running].tolist(),
                self._extras[running].tolist(),
            )
        except BaseException:
            self._started, self._reward_failed = False, True
            raise
        pays = [self.setup.dense_pay(row, int(n)) for row, n in zip(scores, counts, strict=True)]
        self._paid[running] += pays
        rewards[ops.index(running)] = ops.array(pays, "float32")

    def _observation(self) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = self._ops.snapshot(self._tokens)
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def _integer_array(actions: np.ndarray | Sequence[int]) -> np.ndarray:
    """``actions`` as a NumPy array of integers, else a ``ValueError`` naming its dtype (strings, objects, floats)."""
    array = np.asarray(actions)
    if array.dtype.kind not in "iu":
        raise ValueError(f"actions must be integer token ids, got dtype {array.dtype} ({array!r:.80})")
    return array


def _add(infos: dict[str, Any], key: str, rows: np.ndarray, values: Sequence[Any] | np.ndarray, n: int) -> None:
    """Gymnasium's vector info layout: ``infos[key]`` (B,) plus the boolean mask ``infos["_" + key]``.

    As in Gymnasium's own vector envs, numbers go in a float array (0 where absent), anything else in an
    object array (None where absent).
    """
    if key not in infos:
        if isinstance(values, np.ndarray) and values.dtype != object:
            infos[key] = np.zeros(n, dtype=values.dtype)
        else:
            infos[key] = np.full(n, None, dtype=object)
        infos[f"_{key}"] = np.zeros(n, dtype=bool)
    infos[key][rows] = values if isinstance(values, np.ndarray) else np.fromiter(values, dtype=object, count=len(rows))
    infos[f"_{key}"][rows] = True


def state_ops(device: torch.device, vocab_size: int, eos_token_id: int) -> CpuOps | DeviceOps:
    """How the vector env keeps its per-sub-env state on ``device``, for actions in ``[0, vocab_size)``."""
    return CpuOps(vocab_size, eos_token_id) if device.type == "cpu" else DeviceOps(device, vocab_size, eos_token_id)


class CpuOps:
    """CPU: state as NumPy arrays sharing the tensors' memory (a NumPy op costs a third of a torch op here)."""

    def __init__(self, vocab_size: int, eos_token_id: int) -> None:
        # what action a is, at entry a + 1; take(mode="clip") sends every negative action to entry 0 and every
        # action >= V to entry V + 1, both out of range
        self._action_kinds: np.ndarray = np.full(vocab_size + 2, _OUT_OF_RANGE, dtype=np.uint8)
        self._action_kinds[1:-1] = 0
        self._action_kinds[eos_token_id + 1] = _EOS

    def view(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.numpy()

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array)

    def zeros(self, n: int, dtype: str) -> np.ndarray:
        return np.zeros(n, dtype=dtype)

    def array(self, values: Sequence[Any], dtype: str) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    def copy(self, array: np.ndarray) -> np.ndarray:
        return array.copy()

    def snapshot(self, array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A copy of the ``(2, ...)`` ``array`` as two tensors (one memory copy for both)."""
        copy = array.copy()
        return torch.from_numpy(copy[0]), torch.from_numpy(copy[1])

    def rows(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)

    def any(self, mask: np.ndarray) -> bool:
        return bool(np.count_nonzero(mask))  # a third of the cost of mask.any() on small arrays

    def gather(self, table: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``table[index]`` along the first axis (``take`` costs a third of fancy indexing here)."""
        return table.take(index, axis=0)

    def index(self, rows: np.ndarray) -> np.ndarray:
        return rows

    def host(self, array: np.ndarray) -> np.ndarray:
        return array

    def scan_actions(self, values: np.ndarray) -> bool:
        """Whether any of the int64 ``values`` is EOS; IndexError if any is outside ``[0, V)``."""
        kinds: np.ndarray = self._action_kinds.take(
            values + 1, mode="clip"
        )  # (int64 max + 1 wraps negative: out of range too)
        if not np.count_nonzero(kinds):  # all ordinary tokens: the common case, one cheap check
            return False
        if kinds.max() == _OUT_OF_RANGE:
            raise IndexError("action out of range")
        return True


_EOS, _OUT_OF_RANGE = 1, 2  # CpuOps' action kinds (0: an ordinary token)


class DeviceOps:
    """Another device (CUDA): state stays there as tensors; only the rows of ending episodes go to the host."""

    def __init__(self, device: torch.device, vocab_size: int, eos_token_id: int) -> None:
        self.device, self.vocab_size, self.eos_token_id = device, vocab_size, eos_token_id

    def view(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def tensor(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def zeros(self, n: int, dtype: str) -> torch.Tensor:
        return torch.zeros(n, dtype=getattr(torch, dtype), device=self.device)

    def array(self, values: Sequence[Any], dtype: str) -> torch.Tensor:
        return torch.tensor(values, dtype=getattr(torch, dtype), device=self.device)

    def copy(self, values: torch.Tensor) -> torch.Tensor:
        return values.clone()

    def snapshot(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A copy of the ``(2, ...)`` ``values`` as two tensors (one copy kernel for both)."""
        first, second = values.clone().unbind(0)
        return first, second

    def rows(self, mask: torch.Tensor) -> np.ndarray:
        return mask.nonzero().squeeze(1).cpu().numpy()

    def any(self, mask: torch.Tensor) -> bool:
        return bool(mask.any())

    def gather(self, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``table[index]`` along the first axis."""
        return table.index_select(0, index)

    def index(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(rows).to(self.device)

    def host(self, values: torch.Tensor) -> np.ndarray:
        return values.cpu().numpy()

    def scan_actions(self, values: torch.Tensor) -> bool:
        """Whether any of ``values`` is EOS; IndexError if any is outside ``[0, V)``. One host sync for both."""
        out_of_range = ((values < 0) | (values >= self.vocab_size)).any()
        out_of_range, any_eos = torch.stack([out_of_range, (values == self.eos_token_id).any()]).tolist()
        if out_of_range:
            raise IndexError("action out of range")
        return any_eos
