"""What the single and the vector env share: setup from kwargs, spaces, prompt drawing, scoring.

Observation layout (fixed size ``L = P + N``, ``P = max_prompt_tokens``, ``N = max_new_tokens``)::

    input_ids      [pad ... pad  p_1 ... p_k | g_1 ... g_t  pad ... pad]
    attention_mask [ 0  ...  0    1  ...  1  |  1  ...  1    0  ...  0 ]
                   <------- prompt: P -------> <--- generated: N ------>

The prompt is left-padded into the first ``P`` columns (a prompt longer than ``P`` tokens keeps its last
``P`` tokens: it is truncated from the left, so the text next to the completion survives); generated token
``t`` sits in column ``P + t``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from textgym.decoding import make_decoder
from textgym.rewards import make_reward, reward_name, validate_scores
from textgym.tasks import SPLITS, Example, Task, make_task
from textgym.tasks.prompts import PromptSource, PromptTask


@dataclass
class EpisodeSetup:
    """Everything fixed for the lifetime of an env: task, tokenizer, reward and budgets."""

    task: Task
    tokenizer: Any
    reward: Callable[..., Sequence[float]]
    max_new_tokens: int
    max_prompt_tokens: int
    eos_token_id: int
    pad_token_id: int
    vocab_size: int
    _encoded: dict[tuple[str, int], list[int]] = field(default_factory=dict, repr=False)
    _arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def length(self) -> int:
        """Observation length ``L = max_prompt_tokens + max_new_tokens``."""
        return self.max_prompt_tokens + self.max_new_tokens

    def observation_space(self) -> spaces.Dict:
        box = spaces.Box(0, self.vocab_size - 1, (self.length,), np.int64)
        return spaces.Dict({"input_ids": box, "attention_mask": spaces.Box(0, 1, (self.length,), np.int64)})

    def example_arrays(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The examples of ``split``, their prompts and references as object arrays (built once)."""
        if split not in self._arrays:
            self._arrays[split] = _example_arrays(self.task.examples(split))
        return self._arrays[split]

    def encode(self, split: str, index: int, example: Example) -> list[int]:
        """Prompt token ids, left-truncated to ``max_prompt_tokens`` (cached per example).

        An empty prompt becomes the BOS token (EOS when there is none), so a model always has a context.
        """
        return self.encode_many(split, [index], [example])[0]

    def encode_many(self, split: str, indices: Sequence[int], examples: Sequence[Example]) -> list[list[int]]:
        """:meth:`encode` for many examples, tokenizing the ones not cached yet in one batched call."""
        missing = {
            (split, i): e.prompt for i, e in zip(indices, examples, strict=True) if (split, i) not in self._encoded
        }
        if missing:
            encoded = self.tokenizer(list(missing.values()), add_special_tokens=False)["input_ids"]
            for key, ids in zip(missing, encoded, strict=True):
                self._encoded[key] = self._fit_prompt(ids)
        return [self._encoded[split, i] for i in indices]

    def _fit_prompt(self, ids: Sequence[int]) -> list[int]:
        if not self.max_prompt_tokens:
            return []
        bos = self.tokenizer.bos_token_id
        return list(ids[-self.max_prompt_tokens :]) or [bos if bos is not None else self.eos_token_id]

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Completion texts of generated ids (EOS and other special tokens dropped), exactly as the
        tokenizer's ``batch_decode`` gives them (through a byte table when it can; ``textgym.decoding``)."""
        return make_decoder(self.tokenizer)(rows)

    def decode_padded(self, ids: np.ndarray, counts: np.ndarray) -> list[str]:
        """:meth:`decode` of ``ids[i, :counts[i]]`` for each row of an ``(R, T)`` array, vectorized."""
        return make_decoder(self.tokenizer).padded(ids, counts)

    def score(
        self, prompts: list[str], completions: list[str], references: list[tuple[str, ...]]
    ) -> tuple[list[float], dict[str, list[float]]]:
        """One batched reward call, validated (right length, finite), and the parts of a composite reward.

        Returns ``(scores, parts)``; ``parts`` maps ``"reward/<part>"`` to each part's scores when the reward
        has ``breakdown``/``combine`` (see ``textgym.rewards.compose``; each part is scored once), else ``{}``.
        """
        breakdown = getattr(self.reward, "breakdown", None)
        if breakdown is None:
            scores = self.reward(prompts, completions, references=references)
            return validate_scores(scores, prompts, completions), {}
        parts = breakdown(prompts, completions, references=references)
        scores = validate_scores(self.reward.combine(parts), prompts, completions)
        return scores, {f"reward/{name}": validate_scores(v, prompts, completions) for name, v in parts.items()}

    @property
    def reward_key(self) -> str:
        return f"reward/{reward_name(self.reward)}"


def build_setup(
    task: str | Task,
    prompts: PromptSource | None,
    eval_prompts: PromptSource | None,
    tokenizer: str | Any,
    reward: str | Callable[..., Sequence[float]] | None,
    max_new_tokens: int | None,
    max_prompt_tokens: int | None,
    task_kwargs: dict[str, Any] | None = None,
    reward_kwargs: dict[str, Any] | None = None,
) -> EpisodeSetup:
    """Resolve env kwargs into an :class:`EpisodeSetup`, with clear errors for bad values."""
    from textgym.models import load_tokenizer

    task_obj = _resolve_task(task, prompts, eval_prompts, task_kwargs)
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    reward_spec = reward if reward is not None else task_obj.default_reward
    if reward_spec is None:
        raise ValueError(f"task {task_obj.name!r} has no default reward: pass reward=... (a name or a callable)")
    new_tokens = task_obj.max_new_tokens if max_new_tokens is None else max_new_tokens
    prompt_tokens = task_obj.max_prompt_tokens if max_prompt_tokens is None else max_prompt_tokens
    if new_tokens < 1 or prompt_tokens < 0:
        raise ValueError(f"need max_new_tokens >= 1 and max_prompt_tokens >= 0, got {new_tokens}, {prompt_tokens}")
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer {tok.name_or_path!r} has no EOS token")
    return EpisodeSetup(
        task=task_obj,
        tokenizer=tok,
        reward=make_reward(reward_spec, **(reward_kwargs or {})),
        max_new_tokens=int(new_tokens),
        max_prompt_tokens=int(prompt_tokens),
        eos_token_id=int(tok.eos_token_id),
        pad_token_id=int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id),
        vocab_size=len(tok),
    )


def _resolve_task(
    task: str | Task, prompts: PromptSource | None, eval_prompts: PromptSource | None, kwargs: dict[str, Any] | None
) -> Task:
    """``task="prompts"`` plus ``prompts=...`` becomes a :class:`PromptTask`; other tasks are built by name."""
    if task != "prompts":
        if prompts is not None or eval_prompts is not None:
            raise ValueError(f"prompts=... is for the generic TextGen-v0 (task='prompts'), not task={task!r}")
        return make_task(task, **(kwargs or {}))
    if prompts is None:
        raise ValueError("TextGen-v0 needs prompts=...: a list of strings, a .txt/.jsonl file or a dataset")
    return PromptTask(prompts, eval_prompts, **(kwargs or {}))


@dataclass(frozen=True)
class Draw:
    """Examples drawn for ``len(indices)`` episodes: their split and index in it (a custom prompt's index is
    the hash of its text). Examples, prompts and references come as NumPy object arrays, gathered on access
    from arrays built once per split, so a vector env copies them into its per-sub-env state without a loop."""

    split: str
    indices: np.ndarray  # (n,) int64
    positions: np.ndarray  # (n,) each draw's row in ``source``
    source: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)  # examples, prompts, references

    @property
    def examples(self) -> np.ndarray:
        return self.source[0][self.positions]

    @property
    def prompts(self) -> np.ndarray:
        return self.source[1][self.positions]

    @property
    def references(self) -> np.ndarray:
        return self.source[2][self.positions]


def draw_examples(
    setup: EpisodeSetup, options: dict[str, Any] | None, count: int, random_indices: Callable[[int], Any]
) -> Draw:
    """Pick ``count`` examples: from ``options`` or, by default, uniformly with ``random_indices(n)`` (``count``
    ints in ``[0, n)``).

    Options: ``split`` (``"train"``/``"eval"``), ``prompt_index`` (an int, or one per example), or ``prompt``
    (a text of your own, with optional ``references``).

    Example:
        >>> from textgym.env import TextGenEnv
        >>> setup = TextGenEnv(task="arithmetic").setup
        >>> draw_examples(setup, {"prompt_index": [0, 1]}, 2, None).indices.tolist()
        [0, 1]
    """
    options = options or {}
    split = options.get("split", "train")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
    if "prompt" in options:
        text = options["prompt"]
        if not isinstance(text, str):
            raise ValueError(f"options['prompt'] must be a string, got {text!r}")
        source = _example_arrays([Example(text, tuple(options.get("references", ())))])
        return Draw("custom", np.full(count, hash(text)), np.zeros(count, dtype=np.int64), source)
    source = setup.example_arrays(split)
    examples = source[0]
    chosen = options.get("prompt_index")
    if chosen is None:
        indices = np.asarray(random_indices(len(examples)), dtype=np.int64)
    else:
        picks = [chosen] * count if isinstance(chosen, int | np.integer) else list(chosen)
        if len(picks) != count:
            raise ValueError(f"prompt_index must be an int or one per sub-env ({count}), got {len(picks)}")
        for index in picks:
            if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < len(examples):
                raise ValueError(
                    f"prompt_index must be an int in [0, {len(examples)}) for split {split!r}, got {index!r}"
                )
        indices = np.asarray(picks, dtype=np.int64)
    return Draw(split, indices, indices, source)


def _example_arrays(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Examples, their prompts and their references as object arrays."""
    return _objects(examples), _objects([e.prompt for e in examples]), _objects([e.references for e in examples])


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (never a 2-D one, even when the values are sequences)."""
    return np.fromiter(values, dtype=object, count=len(values))


def prompt_row(setup: EpisodeSetup, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The initial observation row for a prompt: left-padded ids and mask of length L."""
    input_ids = np.full(setup.length, setup.pad_token_id, dtype=np.int64)
    mask = np.zeros(setup.length, dtype=np.int64)
    start = setup.max_prompt_tokens - len(ids)
    input_ids[start : setup.max_prompt_tokens] = ids
    mask[start : setup.max_prompt_tokens] = 1
    return input_ids, mask
