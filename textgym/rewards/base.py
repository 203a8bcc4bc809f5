"""The reward protocol, the name registry and output validation.

A reward is any callable ``reward(prompts, completions, **info) -> list[float]`` (TRL's signature): batched,
one score per completion. It can be given to an env as an object, a registered name (``"vader"``), or a
``"module:attr"`` string naming a callable or a class to instantiate.

Example:
    >>> from textgym.rewards import make_reward
    >>> reward = make_reward("exact_match")
    >>> reward(["2+2="], ["4"], references=[["4"]])
    [1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from textgym.registry import load_entry_point


@runtime_checkable
class RewardFn(Protocol):
    """A batched reward: one float per (prompt, completion) pair."""

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]: ...


# name -> "module:attr" entry point; resolved lazily so importing textgym never loads a model.
REWARDS: dict[str, str] = {
    "vader": "textgym.rewards.classifier:VaderSentiment",
    "exact_match": "textgym.rewards.metrics:ExactMatch",
    "numeric_match": "textgym.rewards.metrics:NumericMatch",
    "sequence_match": "textgym.rewards.metrics:SequenceMatch",
    "length": "textgym.rewards.metrics:LengthReward",
    "textblob": "textgym.rewards.classifier:TextBlobSentiment",
    "minilm_sentiment": "textgym.rewards.minilm_sentiment:MiniLMSentiment",
    "offensive": "textgym.rewards.classifier:Offensive",
    "non_offensive": "textgym.rewards.classifier:NonOffensive",
    "bleu": "textgym.rewards.overlap:Bleu",
    "chrf": "textgym.rewards.overlap:ChrF",
    "ter": "textgym.rewards.overlap:Ter",
    "rouge1": "textgym.rewards.overlap:Rouge1",
    "rouge2": "textgym.rewards.overlap:Rouge2",
    "rougeL": "textgym.rewards.overlap:Rouge",
    "rougeLsum": "textgym.rewards.overlap:RougeLsum",
    "meteor": "textgym.rewards.overlap:Meteor",
    "bertscore": "textgym.rewards.semantic:BertScore",
    "embedding_similarity": "textgym.rewards.semantic:EmbeddingSimilarity",
    "distinct_n": "textgym.rewards.form:DistinctN",
    "repetition": "textgym.rewards.form:RepetitionPenalty",
    "length_penalty": "textgym.rewards.form:LengthPenalty",
    "rt_preference": "textgym.rewards.preference:RTPreference",
    "dialogue_preference": "textgym.rewards.preference:DialoguePreference",
    "preference": "textgym.rewards.preference:PreferenceReward",
    "judge_sentiment": "textgym.rewards.judge:SentimentJudge",
    "judge_reply": "textgym.rewards.judge:ReplyJudge",
    "concept_coverage": "textgym.rewards.concepts:ConceptCoverage",
    "word_fluency": "textgym.rewards.concepts:WordFluency",
    "concepts": "textgym.rewards.concepts:ConceptsReward",
    "entity_f1": "textgym.rewards.entities:EntityF1",
    "guessed_number": "textgym.tasks.guess:GuessedNumber",
}


def register_reward(name: str, entry_point: str) -> None:
    """Register a reward under ``name`` as a ``"module:attr"`` entry point (a callable or a class)."""
    if ":" not in entry_point:
        raise ValueError(f"entry_point must look like 'module:attr', got {entry_point!r}")
    REWARDS[name] = entry_point


def make_reward(spec: str | Callable[..., Sequence[float]], **kwargs: Any) -> RewardFn:
    """Resolve a reward given as an object, a registered name or a ``"module:attr"`` string.

    Args:
        spec: a callable, a name from ``REWARDS``, or ``"module:attr"``.
        kwargs: constructor arguments when the spec names a class.

    Raises:
        ValueError: unknown name, unimportable entry point, or something that is not callable.
    """
    if callable(spec) and not isinstance(spec, type):
        if kwargs:
            raise ValueError(f"reward kwargs {sorted(kwargs)} given with an already built reward {spec!r}")
        return spec  # type: ignore[return-value]
    if isinstance(spec, str):
        if spec in REWARDS:
            target = load_entry_point(REWARDS[spec], "reward")
        elif ":" in spec:
            target = load_entry_point(spec, "reward")
        else:
            raise ValueError(
                f"unknown reward {spec!r}: expected one of {sorted(REWARDS)}, a 'module:attr' string "
                "or a callable (prompts, completions, **info) -> list[float]"
            )
    else:
        target = spec
    if isinstance(target, type):
        target = target(**kwargs)
    if not callable(target):
        raise ValueError(f"reward {spec!r} resolved to {target!r}, which is not callable")
    return target


def reward_name(reward: object) -> str:
    """A short name for a reward, used as its key in the reward breakdown."""
    return str(getattr(reward, "name", None) or getattr(reward, "__name__", None) or type(reward).__name__)


def validate_scores(scores: Any, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
    """Check a reward's output: one finite float per completion (a list, an array or a tensor).

    Raises:
        ValueError: not numbers, wrong length, or a NaN/inf score (the message shows the offending text).
    """
    try:
        values = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"reward must return a sequence of floats, got {scores!r}") from err
    if values.ndim != 1:
        raise ValueError(f"reward must return a sequence of floats, got {scores!r}")
    if len(values) != len(completions):
        raise ValueError(f"reward returned {len(values)} scores for {len(completions)} completions")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        shown = scores[i] if isinstance(scores, list | tuple) else values[i]  # None stays None, not nan
        raise ValueError(f"reward returned {shown} for prompt {prompts[i]!r} and completion {completions[i]!r}")
    return values.tolist()
