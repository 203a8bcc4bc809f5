"""Tasks: a prompt source with optional references, a default reward and a token budget.

A task serves examples per split (``"train"`` and ``"eval"``); splits are fixed and reproducible, so
evaluation always runs on the same held-out prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Example:
    """One prompt and the references a metric reward compares against (may be empty).

    ``messages``: the prompt as conversation turns (``{"role": ..., "content": ...}``), rendered with the
    tokenizer's chat template when the env has ``chat_template=True``; ``prompt`` is then the last turn's text.
    ``extra``: a dataset row's other columns (e.g. ``answer``), passed to the reward as keyword arguments.
    """

    prompt: str
    references: tuple[str, ...] = ()
    messages: tuple[Mapping[str, str], ...] = field(default=(), hash=False, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)


class Task:
    """Base class: subclasses set the class attributes and implement ``_build(split)``.

    Examples are built on first use and kept, so constructing a task is cheap.
    """

    name: str = "task"
    default_reward: str | None = None
    max_new_tokens: int = 32
    max_prompt_tokens: int = 32
    description: str = ""
    multi_turn: bool = False  # the env writes turns of its own (see respond and textgym.multiturn)
    max_turn_tokens: int = 0  # multi-turn: the env ends a policy turn this long without a newline

    def __init__(self) -> None:
        self._cache: dict[str, list[Example]] = {}

    def examples(self, split: str = "train") -> Sequence[Example]:
        """The examples of ``split`` (``"train"`` or ``"eval"``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: expected one of {SPLITS}")
        if split not in self._cache:
            self._cache[split] = list(self._build(split))
            if not self._cache[split]:
                raise ValueError(f"task {self.name!r} has no examples in split {split!r}")
        return self._cache[split]

    def _build(self, split: str) -> Sequence[Example]:
        raise NotImplementedError

    def demonstration(self, example: Example) -> str | None:
        """The completion a supervised warm start imitates for ``example`` (its first reference, as written
        right after the prompt), or ``None`` when the task has no demonstrations."""
        return example.references[0] if example.references else None

    def respond(self, example: Example, completion: str) -> tuple[str, bool]:
        """Multi-turn tasks: the environment's turn after the policy's, given the episode's text so far, as
        ``(text to write, whether the episode is over)``."""
        raise NotImplementedError(f"task {self.name!r} is not multi-turn")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


TASKS: dict[str, str] = {
    "sentiment": "textgym.tasks.sentiment:SentimentTask",
    "arithmetic": "textgym.tasks.arithmetic:ArithmeticTask",
    "reverse": "textgym.tasks.reverse:ReverseTask",
    "prompts": "textgym.tasks.prompts:PromptTask",
    "headline": "textgym.tasks.headline:HeadlineTask",
    "concepts": "textgym.tasks.concepts:ConceptsTask",
    "detox": "textgym.tasks.detox:DetoxTask",
    "dialogue": "textgym.tasks.dialogue:DialogueTask",
    "ner": "textgym.tasks.ner:NERTask",
    "translate": "textgym.tasks.translate:TranslateTask",
    "guess_number": "textgym.tasks.guess:GuessNumberTask",
}


def make_task(spec: str | Task, **kwargs: Any) -> Task:
    """Build a task from a registered name (``"sentiment"``), a ``"module:Class"`` string or an instance."""
    if isinstance(spec, Task):
        if kwargs:
            raise ValueError(f"task kwargs {sorted(kwargs)} given with an already built task {spec!r}")
        return spec
    from textgym.registry import load_entry_point

    entry = TASKS.get(spec, spec)
    if ":" not in entry:
        raise ValueError(f"unknown task {spec!r}: expected one of {sorted(TASKS)} or 'module:Class'")
    return load_entry_point(entry, "task")(**kwargs)
