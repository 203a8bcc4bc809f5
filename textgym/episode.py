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

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from textgym.decoding import make_decoder
from textgym.rewards import make_reward, reward_name, validate_scores
from textgym.tasks import SPLITS, Example, Task, make_task
from textgym.tasks.prompts import PromptSource, PromptTask

MAX_TOKEN_BUDGET = 4096
"""The most ``max_new_tokens`` (and ``max_prompt_tokens``) an env takes: an observation row is ``L`` int64s and a
vector env keeps ``(2, B, L)`` of them on its device, so a mistyped budget (``10**7``) fails here, not in an
allocation. 4096 is far above every shipped task's budget (at most 48 prompt and 32 new tokens)."""

PROMPT_CACHE_SIZE = 4096
"""Default ``prompt_cache_size``: how many custom prompts (``reset(options={"prompt": text})``) keep their token ids
(and, in a vector env, their prompt-bank row on the device), least recently used dropped first. The prompts of the
task's splits are always kept (their number is fixed)."""

CUSTOM = "custom"
"""The split name of a draw from ``options["prompt"]``."""

OPTION_KEYS = ("split", "prompt_index", "prompt", "references")
"""The keys ``reset(options=...)`` takes (the vector env adds ``reset_mask``)."""


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
    prompt_cache_size: int = PROMPT_CACHE_SIZE
    chat_template: bool = False  # render prompts with the tokenizer's chat template
    dense_reward: bool = False  # pay the reward's per-token (dense) scores step by step (see token_rewards)
    _encoded: dict[tuple[str, int], list[int]] = field(default_factory=dict, repr=False)
    _custom: OrderedDict[str, list[int]] = field(default_factory=OrderedDict, repr=False)  # text -> ids, LRU first
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

    def prompt_text(self, example: Example) -> str:
        """The text the policy sees: the prompt, or with ``chat_template`` its turns (one user turn when it has
        none) rendered by the tokenizer's chat template, ready for the assistant's reply."""
        if not self.chat_template:
            return example.prompt
        turns = [dict(turn) for turn in example.messages] or [{"role": "user", "content": example.prompt}]
        return self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)

    def encode(self, split: str, index: int, example: Example) -> list[int]:
        """Prompt token ids, left-truncated to ``max_prompt_tokens`` (cached per example).

        An empty prompt becomes the BOS token (EOS when there is none), so a model always has a context.
        """
        return self.encode_many(split, [index], [example])[0]

    def encode_many(self, split: str, indices: Sequence[int], examples: Sequence[Example]) -> list[list[int]]:
        """:meth:`encode` for many examples, tokenizing the ones not cached yet in one batched call.

        Custom prompts (split ``"custom"``) are cached by text, the ``prompt_cache_size`` most recently used.
        """
        if split == CUSTOM:
            return [self._encode_custom(self.prompt_text(e)) for e in examples]
        missing = {
            (split, i): self.prompt_text(e)
            for i, e in zip(indices, examples, strict=True)
            if (split, i) not in self._encoded
        }
        if missing:
            for (_, i), text in missing.items():
                check_text(text, f"prompt {i} of split {split!r}")
            encoded = self.tokenizer(list(missing.values()), add_special_tokens=False)["input_ids"]
            for key, ids in zip(missing, encoded, strict=True):
                self._encoded[key] = self._fit_prompt(ids)
        return [self._encoded[split, i] for i in indices]

    def _encode_custom(self, text: str) -> list[int]:
        """A custom prompt's ids through the LRU cache of ``prompt_cache_size`` texts."""
        ids = self._custom.get(text)
        if ids is not None:
            self._custom.move_to_end(text)
            return ids
        ids = self._custom[text] = self._fit_prompt(self.tokenizer([text], add_special_tokens=False)["input_ids"][0])
        if len(self._custom) > self.prompt_cache_size:
            self._custom.popitem(last=False)
        return ids

    def _fit_prompt(self, ids: Sequence[int]) -> list[int]:
        if self.chat_template and len(ids) > self.max_prompt_tokens:  # cutting would drop the template's opening
            raise ValueError(
                f"a prompt renders to {len(ids)} tokens with the chat template, more than max_prompt_tokens="
                f"{self.max_prompt_tokens}: raise max_prompt_tokens (the template itself takes some of them)"
            )
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
        self,
        prompts: list[str],
        completions: list[str],
        references: list[tuple[str, ...]],
        extras: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[list[float], dict[str, list[float]]]:
        """One batched reward call, validated (right length, finite), and the parts of a composite reward.

        ``extras``: each episode's extra example columns (:attr:`Example.extra`); every column any of them has
        reaches the reward as a keyword argument with one value per episode (``None`` where one lacks it), as
        TRL passes a dataset's columns. Returns ``(scores, parts)``; ``parts`` maps ``"reward/<part>"`` to each
        part's scores when the reward has ``breakdown``/``combine`` (see ``textgym.rewards.compose``; each part
        is scored once), else ``{}``.
        """
        columns = extra_columns(extras)
        breakdown = getattr(self.reward, "breakdown", None)
        if breakdown is None:
            scores = self.reward(prompts, completions, references=references, **columns)
            return validate_scores(scores, prompts, completions), {}
        parts = breakdown(prompts, completions, references=references, **columns)
        scores = validate_scores(self.reward.combine(parts), prompts, completions)  # type: ignore[attr-defined]
        return scores, {f"reward/{name}": validate_scores(v, prompts, completions) for name, v in parts.items()}

    def token_rewards(
        self,
        prompts: list[str],
        token_rows: Sequence[Sequence[int]],
        references: list[tuple[str, ...]],
        extras: Sequence[Mapping[str, Any]] = (),
    ) -> list[list[float]]:
        """The reward's per-token scores (its ``dense`` protocol, ``textgym.rewards.compose``) of each row of
        generated token ids, one per token (special tokens are empty pieces), validated as finite."""
        from textgym.rewards.compose import dense_scores

        pieces = [self.tokenizer.batch_decode([[t] for t in row], skip_special_tokens=True) for row in token_rows]
        completions = ["".join(row) for row in pieces]
        columns = extra_columns(extras)
        rows = dense_scores(
            self.reward, prompts, completions, references=references, completion_tokens=pieces, **columns
        )
        for row, ids, completion in zip(rows, token_rows, completions, strict=True):
            if len(row) != len(ids) or not all(math.isfinite(v) for v in row):
                raise ValueError(
                    f"dense reward must give one finite score per token ({len(ids)}), got {row!r} for {completion!r}"
                )
        return [[float(v) for v in row] for row in rows]

    def dense_pay(self, row: Sequence[float], written: int) -> float:
        """What a step of a dense-reward episode pays once ``written`` tokens are written (the episode still
        running): the score of the token before the last one, now that the next token is there (a part of the
        reward that sits on the last piece, as a terminal-only part does, is never paid early). The final step
        pays the rest, so the episode's rewards sum to its terminal score."""
        return row[written - 2] if written >= 2 else 0.0

    @property
    def reward_key(self) -> str:
        return f"reward/{reward_name(self.reward)}"


def extra_columns(extras: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Episodes' extra example columns as reward keyword arguments: every column any episode has, one value per
    episode (``None`` where one lacks it).

    Example:
        >>> extra_columns([{"answer": 4}, {}])
        {'answer': [4, None]}
    """
    return {key: [extra.get(key) for extra in extras] for key in sorted({k for e in extras for k in e})}


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
    prompt_cache_size: int = PROMPT_CACHE_SIZE,
    chat_template: bool = False,
    dense_reward: bool = False,
) -> EpisodeSetup:
    """Resolve env kwargs into an :class:`EpisodeSetup`, with clear errors for bad values."""
    from textgym.models import load_tokenizer

    cache_size = check_int(prompt_cache_size, "prompt_cache_size", 1)
    task_obj = _resolve_task(task, prompts, eval_prompts, task_kwargs)
    new_tokens = task_obj.max_new_tokens if max_new_tokens is None else max_new_tokens
    prompt_tokens = task_obj.max_prompt_tokens if max_prompt_tokens is None else max_prompt_tokens
    new_tokens = check_int(new_tokens, "max_new_tokens", 1, MAX_TOKEN_BUDGET)
    prompt_tokens = check_int(prompt_tokens, "max_prompt_tokens", 0, MAX_TOKEN_BUDGET)
    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    reward_spec = reward if reward is not None else task_obj.default_reward
    if reward_spec is None:
        raise ValueError(f"task {task_obj.name!r} has no default reward: pass reward=... (a name or a callable)")
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer {tok.name_or_path!r} has no EOS token")
    if not isinstance(chat_template, bool):
        raise ValueError(f"chat_template must be True or False, got {chat_template!r}")
    if chat_template and not getattr(tok, "chat_template", None):
        raise ValueError(f"chat_template=True but tokenizer {tok.name_or_path!r} has no chat template")
    if not isinstance(dense_reward, bool):
        raise ValueError(f"dense_reward must be True or False, got {dense_reward!r}")
    return EpisodeSetup(
        task=task_obj,
        tokenizer=tok,
        reward=make_reward(reward_spec, **(reward_kwargs or {})),
        max_new_tokens=new_tokens,
        max_prompt_tokens=prompt_tokens,
        eos_token_id=int(tok.eos_token_id),
        pad_token_id=int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id),
        vocab_size=len(tok),
        prompt_cache_size=cache_size,
        chat_template=chat_template,
        dense_reward=dense_reward,
    )


RENDER_MODES = ("ansi",)  # the prompt and completion as text


def check_turns(task: Task, env_writes_turns: bool) -> None:
    """A multi-turn task needs an env that writes its turns (:mod:`textgym.multiturn`), and such an env needs one."""
    if task.multi_turn and not env_writes_turns:
        raise ValueError(
            f"task {task.name!r} is multi-turn: make it with textgym.multiturn.MultiTurnEnv or MultiTurnVectorEnv "
            "(as TextGen-GuessNumber-v0 does)"
        )
    if env_writes_turns and not task.multi_turn:
        raise ValueError(f"task {task.name!r} is not multi-turn: use TextGenEnv or TextGenVectorEnv")
    limit = task.max_turn_tokens
    if task.multi_turn and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"task {task.name!r}: max_turn_tokens must be an int >= 1, got {limit!r}")


class RenderModeError(ValueError, TypeError):
    """An unsupported ``render_mode``. Also a ``TypeError``, which is what SB3's ``make_vec_env`` catches to retry
    without the ``render_mode="rgb_array"`` it asks for by default."""


def check_render_mode(render_mode: str | None, allowed: Sequence[str]) -> str | None:
    """``render_mode`` if it is ``None`` or one of ``allowed``, else a :class:`RenderModeError` naming both."""
    if render_mode is not None and render_mode not in allowed:
        raise RenderModeError(f"render_mode must be one of {list(allowed)} or None, got {render_mode!r}")
    return render_mode


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (no upper bound when ``high`` is None), else a ``ValueError`` naming
    ``name``, the range and the value. A bool is not an int here.

    Example:
        >>> check_int(2.5, "max_new_tokens", 1, 4096)
        Traceback (most recent call last):
        ...
        ValueError: max_new_tokens must be an int in [1, 4096], got 2.5 (float)
    """
    wanted = f"{name} must be an int in [{low}, {high}]" if high is not None else f"{name} must be an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{wanted}, got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{wanted}, got {value}")
    return int(value)


def check_text(text: Any, name: str) -> str:
    """``text`` if it is a string a tokenizer can take (encodable as UTF-8: no lone surrogate such as
    ``"\\ud800"``), else a ``ValueError`` naming ``name``.

    Example:
        >>> check_text(42, "options['prompt']")
        Traceback (most recent call last):
        ...
        ValueError: options['prompt'] must be a string, got 42 (int)
    """
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string, got {_short(text)} ({type(text).__name__})")
    if not text.isascii():  # the common case skips the encoding
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"{name} must be valid Unicode text (UTF-8 encodable), got {_short(text)}: {err.reason} at "
                f"position {err.start}"
            ) from None
    return text


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    setup: EpisodeSetup, options: Mapping[str, Any] | None, count: int, random_indices: Callable[[int], Any]
) -> Draw:
    """Pick ``count`` examples: from ``options`` or, by default, uniformly with ``random_indices(n)`` (``count``
    ints in ``[0, n)``).

    Options (see :func:`check_options`): ``split`` (``"train"``/``"eval"``), ``prompt_index`` (an int, or one per
    example), or ``prompt`` (a text of your own, with optional ``references``: one string or a list of them).

    Example:
        >>> from textgym.env import TextGenEnv
        >>> setup = TextGenEnv(task="arithmetic").setup
        >>> draw_examples(setup, {"prompt_index": [0, 1]}, 2, None).indices.tolist()
        [0, 1]
    """
    checked = check_options(options)
    split = checked.get("split", "train")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
    if "prompt" in checked:
        return _custom_draw(checked["prompt"], checked.get("references", ()), count)
    source = setup.example_arrays(split)
    chosen = checked.get("prompt_index")
    if chosen is None:
        indices = np.asarray(random_indices(len(source[0])), dtype=np.int64)
    else:
        indices = _checked_indices(prompt_indices(chosen, count), len(source[0]), split)
    return Draw(split, indices, indices, source)


def check_options(options: Any, keys: Sequence[str] = OPTION_KEYS) -> Mapping[str, Any]:
    """``reset`` options, checked: a dict (or None, read as ``{}``) whose keys are all among ``keys``, with
    ``references`` only beside ``prompt``, and not both ``prompt`` and ``prompt_index``.

    Example:
        >>> check_options({"splitt": "eval"})
        Traceback (most recent call last):
        ...
        ValueError: unknown reset option(s) ['splitt']: valid keys are ['split', 'prompt_index', 'prompt', 'references']
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        kind = type(options).__name__
        raise ValueError(f"options must be a dict with keys among {list(keys)}, got {_short(options)} ({kind})")
    if not options:  # the vector env's autoresets: nothing to check
        return options
    unknown = [key for key in options if key not in keys]
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}: valid keys are {list(keys)}")
    if "references" in options and "prompt" not in options:
        raise ValueError("options['references'] goes with options['prompt']: a task's examples have their own")
    if "prompt" in options and "prompt_index" in options:
        raise ValueError("options['prompt'] (a text of your own) and options['prompt_index'] exclude each other")
    return options


def as_references(value: Any, name: str = "options['references']") -> tuple[str, ...]:
    """References as a tuple of strings: a plain string is ONE reference, a list or tuple holds many.

    Example:
        >>> as_references("42"), as_references(["4", "four"])
        (('42',), ('4', 'four'))
    """
    if isinstance(value, str):
        return (check_text(value, name),)
    if not isinstance(value, list | tuple):
        kind = type(value).__name__
        raise ValueError(f"{name} must be a string (one reference) or a list of strings, got {_short(value)} ({kind})")
    return tuple(check_text(ref, f"{name}[{i}]") for i, ref in enumerate(value))


def prompt_indices(chosen: Any, count: int) -> list[Any]:
    """``options["prompt_index"]`` as one entry per example: an int for all ``count``, or a list of ``count``
    (entries are range-checked by the caller)."""
    if isinstance(chosen, int | np.integer):
        return [chosen] * count
    listed = isinstance(chosen, Sequence | np.ndarray) and not isinstance(chosen, str | bytes)
    if not listed or getattr(chosen, "ndim", 1) != 1:
        kind = type(chosen).__name__
        raise ValueError(
            f"prompt_index must be an int or a list of ints (one per sub-env), got {_short(chosen)} ({kind})"
        )
    if len(chosen) != count:
        raise ValueError(f"prompt_index must be an int or one per sub-env ({count}), got {len(chosen)}")
    return list(chosen)


def _checked_indices(picks: list[Any], n: int, split: str) -> np.ndarray:
    """``picks`` as an int64 array, each an int in ``[0, n)``, else a ``ValueError`` naming the bad one."""
    for index in picks:
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < n:
            raise ValueError(f"prompt_index must be an int in [0, {n}) for split {split!r}, got {index!r}")
    return np.asarray(picks, dtype=np.int64)


def _custom_draw(text: Any, references: Any, count: int) -> Draw:
    """``count`` draws of one text of the user's own (``options["prompt"]``); its index is the text's hash."""
    example = Example(check_text(text, "options['prompt']"), as_references(references))
    source = _example_arrays([example])
    return Draw(CUSTOM, np.full(count, hash(example.prompt)), np.zeros(count, dtype=np.int64), source)


def _example_arrays(examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Examples, their prompts and their references as object arrays."""
    return _objects(examples), _objects([e.prompt for e in examples]), _objects([e.references for e in examples])


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (never a 2-D one, even when the values are sequences)."""
    return np.fromiter(values, dtype=object, count=len(values))


def prompt_row(setup: EpisodeSetup, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The initial observation row for a prompt: left-padded ids and mask of length L."""
    input_ids: np.ndarray = np.full(setup.length, setup.pad_token_id, dtype=np.int64)
    mask: np.ndarray = np.zeros(setup.length, dtype=np.int64)
    start = setup.max_prompt_tokens - len(ids)
    input_ids[start : setup.max_prompt_tokens] = ids
    mask[start : setup.max_prompt_tokens] = 1
    return input_ids, mask


def why_reset(reward_failed: bool) -> str:
    """Why an env refuses ``step()``: no ``reset()`` yet, or a reward error since the last one.

    Example:
        >>> why_reset(True)
        'the reward raised in the last step(): call reset() after the reward error'
    """
    if reward_failed:
        return "the reward raised in the last step(): call reset() after the reward error"
    return "call reset() before step()"
