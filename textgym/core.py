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

    @property
    def length(self) -> int:
        """Observation length ``L = max_prompt_tokens + max_new_tokens``."""
        return self.max_prompt_tokens + self.max_new_tokens

    def observation_space(self) -> spaces.Dict:
        box = spaces.Box(0, self.vocab_size - 1, (self.length,), np.int64)
        return spaces.Dict({"input_ids": box, "attention_mask": spaces.Box(0, 1, (self.length,), np.int64)})

    def encode(self, split: str, index: int, example: Example) -> list[int]:
        """Prompt token ids, left-truncated to ``max_prompt_tokens`` (cached per example).

        An empty prompt becomes the BOS token (EOS when there is none), so a model always has a context.
        """
        key = (split, index)
        if key not in self._encoded:
            ids = self.tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
            ids = list(ids[-self.max_prompt_tokens :]) if self.max_prompt_tokens else []
            bos = self.tokenizer.bos_token_id
            self._encoded[key] = ids or (
                [bos if bos is not None else self.eos_token_id] if self.max_prompt_tokens else []
            )
        return self._encoded[key]

    def decode(self, rows: Sequence[Sequence[int]]) -> list[str]:
        """Completion texts of generated ids (EOS and other special tokens dropped).

        Uses the Rust tokenizer's batch decoder directly when it gives the same text (no clean-up of
        tokenization spaces), skipping transformers' per-token Python conversion.
        """
        rows = [list(r) for r in rows]
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and not getattr(self.tokenizer, "clean_up_tokenization_spaces", True):
            return backend.decode_batch(rows, skip_special_tokens=True)
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True)

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


def draw_example(
    setup: EpisodeSetup, rng: np.random.Generator, options: dict[str, Any] | None
) -> tuple[str, int, Example]:
    """Pick ``(split, index, example)`` from ``options`` or, by default, uniformly with ``rng``.

    Options: ``split`` (``"train"``/``"eval"``), ``prompt_index`` (int), or ``prompt`` (a text of your own).
    """
    options = options or {}
    split = options.get("split", "train")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
    if "prompt" in options:
        text = options["prompt"]
        if not isinstance(text, str):
            raise ValueError(f"options['prompt'] must be a string, got {text!r}")
        return "custom", hash(text), Example(text, tuple(options.get("references", ())))
    examples = setup.task.examples(split)
    index = options.get("prompt_index")
    if index is None:
        index = int(rng.integers(len(examples)))
    elif not isinstance(index, int | np.integer) or not 0 <= index < len(examples):
        raise ValueError(f"prompt_index must be an int in [0, {len(examples)}) for split {split!r}, got {index!r}")
    return split, int(index), examples[int(index)]


def prompt_row(setup: EpisodeSetup, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The initial observation row for a prompt: left-padded ids and mask of length L."""
    input_ids = np.full(setup.length, setup.pad_token_id, dtype=np.int64)
    mask = np.zeros(setup.length, dtype=np.int64)
    start = setup.max_prompt_tokens - len(ids)
    input_ids[start : setup.max_prompt_tokens] = ids
    mask[start : setup.max_prompt_tokens] = 1
    return input_ids, mask
