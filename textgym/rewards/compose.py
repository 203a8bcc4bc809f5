"""Composing rewards: weighted sums with a per-part breakdown, running normalisation, dense rewards.

**Breakdown protocol.** A composite reward has ``breakdown(prompts, completions, **info) -> dict[str,
list[float]]`` (each part's raw scores, keyed by the part's name) and ``combine(parts) -> list[float]``
(the total); ``reward(...) == reward.combine(reward.breakdown(...))``, so a caller that wants both scores
each part once.

**Dense protocol.** A reward may also give per-token (dense) scores: ``dense(prompts, completions, **info)
-> list[list[float]]``, one float per *piece* of each completion whose sum is the terminal score. Pieces are
the completion's tokens when ``info["completion_tokens"]`` gives them (a list, per completion, of the
decoded text of each generated token, concatenating to the completion), else its whitespace-led words
(:func:`pieces`). :func:`dense_scores` gives dense scores for any reward, putting a reward without ``dense``
on the last piece. An env made with ``dense_reward=True`` pays these scores step by step (each token's score
once the next token is written, scored on the text so far; the rest at the end, so an episode's rewards sum to
its terminal score); otherwise the whole reward comes at the end.

Example:
    >>> from textgym.rewards.form import DistinctN, LengthPenalty
    >>> total = WeightedSum({DistinctN(1): 1.0, LengthPenalty(target=2): 0.5})
    >>> total.breakdown([""], ["a a b"])
    {'distinct_1': [0.6666666666666666], 'length_penalty': [-0.5]}
    >>> total([""], ["a a b"])
    [0.41666666666666663]
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from textgym.rewards.base import make_reward, reward_name

_PIECE = re.compile(r"\s*\S+")


@runtime_checkable
class DenseRewardFn(Protocol):
    """A reward that also scores each piece (token) of the completion; the pieces sum to the terminal score."""

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]: ...

    def dense(self, prompts: list[str], completions: list[str], **info: Any) -> list[list[float]]: ...


def pieces(completion: str, tokens: Sequence[str] | None = None) -> list[str]:
    """The pieces dense scores refer to: ``tokens`` when given, else whitespace-led words (trailing space kept).

    Example:
        >>> pieces(" a big  cat ")
        [' a', ' big', '  cat ']
    """
    if tokens is not None:
        return list(tokens)
    found = _PIECE.findall(completion)
    if found:
        found[-1] += completion[sum(map(len, found)) :]
    return found


def completion_pieces(completions: Sequence[str], info: Mapping[str, Any]) -> list[list[str]]:
    """Pieces of each completion, from ``info["completion_tokens"]`` when present."""
    tokens = info.get("completion_tokens")
    return [pieces(c, tokens[i] if tokens is not None else None) for i, c in enumerate(completions)]


def dense_scores(reward: Callable[..., Sequence[float]], prompts: list[str], completions: list[str], **info: Any):
    """``reward.dense(...)`` when it has one, else the terminal score on the last piece (zeros before it).

    A completion with no piece gets an empty list (its terminal score, if any, has no token to sit on).

    Example:
        >>> from textgym.rewards.form import LengthPenalty
        >>> dense_scores(LengthPenalty(target=1), [""], [" a b"])
        [[0.0, -1.0]]
    """
    if hasattr(reward, "dense"):
        return reward.dense(prompts, completions, **info)
    totals = reward(prompts, completions, **info)
    out = []
    for total, parts in zip(totals, completion_pieces(completions, info), strict=True):
        out.append([0.0] * (len(parts) - 1) + [float(total)] if parts else [])
    return out


class WeightedSum:
    """``sum_i w_i * reward_i``: parts given as ``{reward: weight}`` (rewards as objects, names or specs).

    Args:
        parts: mapping (or list of pairs) of reward to weight.
        name: the reward's name (default ``"weighted_sum"``).

    Part names (their ``name``) key the breakdown and must be distinct.
    """

    def __init__(self, parts: Mapping[Any, float] | Sequence[tuple[Any, float]], name: str = "weighted_sum") -> None:
        items = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
        if not items:
            raise ValueError("WeightedSum needs at least one (reward, weight) part")
        self.rewards = [make_reward(r) for r, _ in items]
        self.weights = [float(w) for _, w in items]
        self.names = [reward_name(r) for r in self.rewards]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"parts need distinct names for the breakdown, got {self.names}")
        self.name = name

    def breakdown(self, prompts: list[str], completions: list[str], **info: Any) -> dict[str, list[float]]:
        """Each part's raw (unweighted) scores, keyed by the part's name."""
        return {
            n: [float(s) for s in r(prompts, completions, **info)]
            for n, r in zip(self.names, self.rewards, strict=True)
        }

    def combine(self, parts: Mapping[str, Sequence[float]]) -> list[float]:
        """The weighted total of a breakdown."""
        columns = [parts[n] for n in self.names]
        return [sum(w * s for w, s in zip(self.weights, row, strict=True)) for row in zip(*columns, strict=True)]

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        if not completions:
            return []
        return self.combine(self.breakdown(prompts, completions, **info))

    def dense(self, prompts: list[str], completions: list[str], **info: Any) -> list[list[float]]:
        """Weighted sum of the parts' dense scores (terminal-only parts land on the last piece)."""
        per_part = [dense_scores(r, prompts, completions, **info) for r in self.rewards]
        return [
            [
                sum(w * part[i][j] for w, part in zip(self.weights, per_part, strict=True))
                for j in range(len(per_part[0][i]))
            ]
            for i in range(len(completions))
        ]


class PrefixShaped:
    """Any reward as a dense one, scored on prefixes: piece ``i`` pays ``R(prefix_{i+1}) - R(prefix_i)`` with
    ``R(prefix_0) = 0``, so the pieces telescope to the terminal score ``R(completion)`` and a reward model or
    classifier becomes a per-token critic of the text so far (potential-based shaping, Ng et al. 1999).

    Each prefix is scored once: scores are cached per (prompt, prefix) for the ``cache_size`` most recent, so an
    env that asks for the dense scores of a growing episode at every step costs one new prefix per step.

    Args:
        reward: a reward object, name or spec (:func:`textgym.rewards.make_reward`).
        cache_size: prefixes kept.

    Example:
        >>> from textgym.rewards.form import LengthPenalty
        >>> shaped = PrefixShaped(LengthPenalty(target=2))  # -|words - 2| / 2
        >>> shaped.dense([""], [" a b c"]), shaped([""], [" a b c"])
        ([[-0.5, 0.5, -0.5]], [-0.5])
    """

    def __init__(self, reward: Any, cache_size: int = 65_536) -> None:
        self.reward = make_reward(reward)
        self.name = f"prefix_{reward_name(self.reward)}"
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        return [float(v) for v in self.reward(prompts, completions, **info)]

    def dense(self, prompts: list[str], completions: list[str], **info: Any) -> list[list[float]]:
        """Per-piece differences of successive prefixes' scores; they sum to ``__call__``."""
        all_pieces = completion_pieces(completions, info)
        prefixes = [["".join(parts[: i + 1]) for i in range(len(parts))] for parts in all_pieces]
        scores = self._prefix_scores(prompts, prefixes, info)
        out = []
        for prompt, row in zip(prompts, prefixes, strict=True):
            values = [scores[prompt, text] for text in row]
            out.append([now - before for before, now in zip([0.0, *values[:-1]], values, strict=True)])
        return out

    def _prefix_scores(
        self, prompts: list[str], prefixes: list[list[str]], info: Mapping[str, Any]
    ) -> dict[tuple[str, str], float]:
        """Scores of every (prompt, prefix), the uncached ones in one call of the reward (info rows repeated)."""
        found: dict[tuple[str, str], float] = {}
        missing: dict[tuple[str, str], int] = {}  # key -> the completion it belongs to (for its info row)
        for row, (prompt, texts) in enumerate(zip(prompts, prefixes, strict=True)):
            for text in texts:
                key = (prompt, text)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[key] = self._cache[key]
                elif key not in missing:
                    missing[key] = row
        if missing:
            rows = list(missing.values())
            per_row = {k: [v[r] for r in rows] for k, v in info.items() if k != "completion_tokens" and _is_column(v)}
            texts = [text for _, text in missing]
            values = self.reward([prompt for prompt, _ in missing], texts, **per_row)
            for key, value in zip(missing, values, strict=True):
                found[key] = self._cache[key] = float(value)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return found


def _is_column(value: Any) -> bool:
    """Whether an info value is a per-completion column (a list or tuple), not a setting."""
    return isinstance(value, list | tuple)


class Normalized:
    """Running mean/std normalisation: ``(score - mean) / (std + eps)``, optionally clipped.

    The statistics are updated with each batch before normalising it (pooled over every score seen, exactly);
    ``frozen=True`` stops updating (evaluation). The statistics are part of the pickled state.

    Example:
        >>> from textgym.rewards.form import LengthPenalty
        >>> norm = Normalized(LengthPenalty(target=1))
        >>> [round(x, 6) for x in norm(["", ""], ["a", "a b c"])]
        [1.0, -1.0]
    """

    def __init__(self, reward: Any, eps: float = 1e-8, clip: float | None = None, frozen: bool = False) -> None:
        self.reward = make_reward(reward)
        self.eps, self.clip, self.frozen = eps, clip, frozen
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.name = f"normalized/{reward_name(self.reward)}"

    @property
    def std(self) -> float:
        """Population standard deviation of the scores seen (0 before two scores)."""
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 0.0

    def update(self, scores: Sequence[float]) -> None:
        """Merge a batch into the running statistics (Chan et al.'s parallel update)."""
        n = len(scores)
        if n == 0:
            return
        mean = sum(scores) / n
        m2 = sum((s - mean) ** 2 for s in scores)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta**2 * self.count * n / total
        self.count = total

    def normalize(self, scores: Sequence[float]) -> list[float]:
        """Normalise with the current statistics (no update)."""
        out = [(s - self.mean) / (self.std + self.eps) for s in scores]
        return [max(-self.clip, min(self.clip, v)) for v in out] if self.clip is not None else out

    def breakdown(self, prompts: list[str], completions: list[str], **info: Any) -> dict[str, list[float]]:
        """The wrapped reward's raw scores."""
        return {reward_name(self.reward): [float(s) for s in self.reward(prompts, completions, **info)]}

    def combine(self, parts: Mapping[str, Sequence[float]]) -> list[float]:
        """Update the statistics with the raw scores (unless frozen) and normalise them."""
        raw = list(parts[reward_name(self.reward)])
        if not self.frozen:
            self.update(raw)
        return self.normalize(raw)

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        return self.combine(self.breakdown(prompts, completions, **info))
