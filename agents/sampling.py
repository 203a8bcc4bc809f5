"""Exploration controls for sampling tokens from a language-model policy.

:func:`process_logits` turns raw next-token logits ``(B, V)`` into the logits of the distribution that
is actually sampled from (the *behaviour* policy), applying, in order: Gaussian logit noise,
temperature, random candidate masking, top-k and top-p (nucleus) filtering. :func:`sample` draws
from it (or its argmax when greedy), mixed with epsilon-greedy's uniform draw over the surviving candidates,
and returns the log-probs under that same behaviour distribution.

Learners, however, use :func:`learning_logprobs`: the log-prob under the temperature-scaled policy
``log_softmax(logits / temperature)`` only, *without* top-k / top-p / noise / masking. Those are
exploration perturbations of the behaviour policy, not part of the policy being learned (this is
what TRL does as well).

:class:`Schedule` and :func:`config_at` let any numeric field of :class:`SamplingConfig` vary over
training (constant, linear or cosine interpolation).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SCHEDULABLE_FIELDS",
    "SamplingConfig",
    "Schedule",
    "config_at",
    "learning_logprobs",
    "process_logits",
    "sample",
]

SCHEDULABLE_FIELDS = ("temperature", "top_k", "top_p", "logit_noise", "mask_prob", "epsilon")
SCHEDULE_KINDS = ("constant", "linear", "cosine")


@dataclass
class SamplingConfig:
    """How the behaviour policy samples tokens.

    Attributes:
        temperature: Logits are divided by this (> 0).
        top_k: Keep only the ``top_k`` most likely tokens (0 = off).
        top_p: Keep the smallest set of tokens with cumulative prob >= ``top_p`` (1.0 = off).
        logit_noise: Std of Gaussian noise added to the logits (0 = off).
        mask_prob: Probability of masking out each of the row's ``mask_top`` most likely tokens, the argmax
            included: the policy is pushed down paths it would not take (tokens ranked below ``mask_top`` are
            never masked, so some token always remains).
        mask_top: How many of the most likely tokens random masking may remove (>= 1).
        greedy: Take the argmax of the processed logits instead of sampling.
        epsilon: Epsilon-greedy exploration: with this probability a row's token is drawn uniformly from the
            candidates that survive the filters above (the whole vocabulary when none filters), instead of
            from the distribution (or its argmax when ``greedy``). 0 = off.

    >>> SamplingConfig(temperature=0.7, top_k=50).top_p
    1.0
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    logit_noise: float = 0.0
    mask_prob: float = 0.0
    mask_top: int = 8
    greedy: bool = False
    epsilon: float = 0.0

    def __post_init__(self) -> None:
        """Validate the fields, raising ValueError naming the offending field and value."""
        checks = {
            "temperature": self.temperature > 0,
            "top_k": self.top_k >= 0,
            "top_p": 0 < self.top_p <= 1,
            "logit_noise": self.logit_noise >= 0,
            "mask_prob": 0 <= self.mask_prob < 1,
            "mask_top": isinstance(self.mask_top, int) and self.mask_top >= 1,
            "epsilon": 0 <= self.epsilon <= 1,
        }
        rules = {
            "temperature": "> 0",
            "top_k": ">= 0",
            "top_p": "in (0, 1]",
            "logit_noise": ">= 0",
            "mask_prob": "in [0, 1)",
            "mask_top": "an int >= 1",
            "epsilon": "in [0, 1]",
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SamplingConfig.{name} must be {rules[name]}, got {getattr(self, name)!r}")


def _keep_only(logits: Tensor, keep: Tensor) -> Tensor:
    """Set logits where ``keep`` is False to ``-inf``."""
    return logits.masked_fill(~keep, float("-inf"))


def _random_mask(logits: Tensor, mask_prob: float, top: int, generator: torch.Generator | None) -> Tensor:
    """Mask each of the row's ``top`` most likely tokens with probability ``mask_prob``, the argmax included.

    Masking the likeliest candidates moves probability onto the others (the entropy of the sampled distribution
    rises with ``mask_prob``). Tokens ranked below ``top`` are never masked, so some token always remains; when
    ``top`` covers the whole vocabulary and every token is drawn for masking, the least likely one is kept.

    >>> _random_mask(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), 0.999, 2, torch.Generator().manual_seed(0))
    tensor([[-inf, -inf, 1., 0.]])
    """
    top = min(top, logits.shape[-1])
    ranked = logits.topk(top, dim=-1).indices  # (B, top), most likely first
    drop = torch.rand(ranked.shape, generator=generator, device=logits.device) < mask_prob  # (B, top)
    if top == logits.shape[-1]:
        drop[:, -1] &= ~drop[:, :-1].all(-1)
    return logits.scatter(-1, ranked, logits.gather(-1, ranked).masked_fill(drop, float("-inf")))


def _top_k(logits: Tensor, k: int) -> Tensor:
    """Keep exactly the ``k`` largest logits per row."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    idx = logits.topk(k, dim=-1).indices  # (B, k)
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, idx, True)
    return _keep_only(logits, keep)


def _top_p(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose cumulative probability is >= ``p``."""
    if p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V) prob of strictly more likely tokens
    keep_sorted = mass_before < p
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return _keep_only(logits, keep)


def process_logits(logits: Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> Tensor:
    """Return the logits of the distribution actually sampled from under ``config``.

    Order: add noise, divide by temperature, random masking, top-k, top-p; removed tokens are ``-inf``.
    With everything off the input is returned unchanged.

    Args:
        logits: Raw logits, shape ``(B, V)``.
        config: Sampling configuration.
        generator: RNG for the noise and the random masking.

    Returns:
        Processed logits, shape ``(B, V)``.

    >>> process_logits(torch.tensor([[1.0, 3.0, 2.0]]), SamplingConfig(top_k=2))
    tensor([[-inf, 3., 2.]])
    """
    x = logits  # (B, V)
    if config.logit_noise > 0:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + config.logit_noise * noise
    if config.temperature != 1.0:
        x = x / config.temperature
    if config.mask_prob > 0:
        x = _random_mask(x, config.mask_prob, config.mask_top, generator)
    x = _top_k(x, config.top_k)
    return _top_p(x, config.top_p)


def sample(logits: Tensor, config: SamplingConfig, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sample one token per row from ``softmax(process_logits(logits, config))``.

    With ``config.epsilon > 0`` the behaviour distribution is the mixture ``(1 - eps) * base + eps * uniform``
    over the candidates that survive the filters, ``base`` being the softmax (or, when greedy, the argmax).

    Args:
        logits: Raw logits, shape ``(B, V)``.
        config: Sampling configuration (``greedy=True`` takes the argmax of the processed logits).
        generator: RNG for noise, masking and ``torch.multinomial``.

    Returns:
        ``(tokens, logprobs)``: int64 tokens ``(B,)`` and their float log-probs ``(B,)`` under the
        processed (behaviour) distribution.

    >>> tokens, logprobs = sample(torch.tensor([[0.0, 5.0]]), SamplingConfig(greedy=True))
    >>> tokens
    tensor([1])
    >>> _, logprobs = sample(torch.tensor([[0.0, 5.0, -1.0]]), SamplingConfig(greedy=True, epsilon=0.3, top_k=2))
    >>> round(logprobs.exp().item(), 2) in (0.15, 0.85)  # argmax: 0.7 + 0.3 / 2; the other candidate: 0.3 / 2
    True
    """
    x = process_logits(logits, config, generator)  # (B, V)
    logp = torch.log_softmax(x.float(), dim=-1)  # (B, V)
    if config.greedy and config.epsilon == 0:
        return x.argmax(dim=-1).long(), logp.max(dim=-1).values
    probs = logp.exp()
    if config.epsilon > 0:
        probs = _epsilon_mixture(x, probs, config.epsilon, config.greedy)
        logp = probs.log()
    tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
    return tokens.long(), logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _epsilon_mixture(x: Tensor, probs: Tensor, epsilon: float, greedy: bool) -> Tensor:
    """``(1 - epsilon) * base + epsilon * uniform(candidates)``; ``base`` = ``probs`` or the argmax's one-hot.

    >>> _epsilon_mixture(torch.tensor([[2.0, 1.0, -math.inf]]), torch.tensor([[0.7, 0.3, 0.0]]), 0.5, True)
    tensor([[0.7500, 0.2500, 0.0000]])
    """
    candidates = torch.isfinite(x).float()  # (B, V)
    uniform = candidates / candidates.sum(-1, keepdim=True)
    base = torch.zeros_like(probs).scatter_(-1, x.argmax(-1, keepdim=True), 1.0) if greedy else probs
    return (1 - epsilon) * base + epsilon * uniform


def learning_logprobs(logits: Tensor, tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-prob of ``tokens`` under the temperature-scaled policy ``log_softmax(logits / T)``.

    Args:
        logits: Logits, shape ``(..., V)``.
        tokens: Token ids, shape ``(...)``.
        temperature: Sampling temperature.

    Returns:
        Log-probs, shape ``(...)``.

    >>> learning_logprobs(torch.zeros(1, 4), torch.tensor([2]), 1.0)
    tensor([-1.3863])
    """
    logp = torch.log_softmax(logits / temperature, dim=-1)  # (..., V)
    return logp.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class Schedule:
    """A scalar schedule over training steps, clamped to ``end`` after ``steps``.

    Attributes:
        kind: ``"constant"``, ``"linear"`` or ``"cosine"``.
        start: Value at step 0.
        end: Value at ``steps`` and after (required unless constant; ignored for constant).
        steps: Length of the interpolation (>= 1).

    >>> Schedule("linear", 1.0, 0.0, steps=10)(5)
    0.5
    """

    kind: str
    start: float
    end: float | None = None
    steps: int = 1

    def __post_init__(self) -> None:
        """Validate the kind, the end value and the number of steps."""
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown schedule kind {self.kind!r}; valid: {', '.join(SCHEDULE_KINDS)}")
        if self.kind != "constant" and self.end is None:
            raise ValueError(f"schedule kind {self.kind!r} needs an end value")
        if self.steps < 1:
            raise ValueError(f"schedule steps must be >= 1, got {self.steps}")

    def __call__(self, step: int) -> float:
        """Value at ``step``.

        >>> Schedule("cosine", 1.0, 0.0, steps=4)(4)
        0.0
        """
        if self.kind == "constant" or self.end is None:
            return float(self.start)
        frac = min(max(step, 0) / self.steps, 1.0)
        weight = 1.0 - frac if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))
        return float(self.end + (self.start - self.end) * weight)

    @classmethod
    def parse(cls, value: Any) -> Schedule:
        """Build a schedule from a number, a dict, a ``"kind:start:end:steps"`` string or a Schedule.

        >>> Schedule.parse("linear:1.5:0.7:100")
        Schedule(kind='linear', start=1.5, end=0.7, steps=100)
        """
        if isinstance(value, Schedule):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls("constant", float(value))
        if isinstance(value, dict):
            return cls(**value)
        if isinstance(value, str):
            return cls._parse_str(value)
        raise ValueError(f"cannot parse a schedule from {value!r}")

    @classmethod
    def _parse_str(cls, text: str) -> Schedule:
        """Parse ``"0.5"``, ``"constant:0.5"`` or ``"kind:start:end:steps"``."""
        parts = [p.strip() for p in text.split(":")]
        try:
            if len(parts) == 1:
                return cls("constant", float(parts[0]))
            if len(parts) == 2:
                return cls(parts[0], float(parts[1]))
            if len(parts) == 4:
                return cls(parts[0], float(parts[1]), float(parts[2]), int(parts[3]))
        except ValueError as err:
            raise ValueError(f"cannot parse schedule {text!r}: {err}") from err
        raise ValueError(f"cannot parse schedule {text!r}; expected 'kind:start:end:steps'")


def config_at(base: SamplingConfig, schedules: dict[str, Schedule], step: int) -> SamplingConfig:
    """Return a copy of ``base`` with each scheduled field set to its schedule's value at ``step``.

    Args:
        base: The configuration to start from (not modified).
        schedules: Field name -> schedule; ``top_k`` values are rounded to int.
        step: Training step.

    Returns:
        A new, validated :class:`SamplingConfig`.

    Raises:
        ValueError: For a field name that cannot be scheduled.

    >>> config_at(SamplingConfig(), {"temperature": Schedule("linear", 2.0, 1.0, 10)}, 5).temperature
    1.5
    """
    unknown = sorted(set(schedules) - set(SCHEDULABLE_FIELDS))
    if unknown:
        raise ValueError(f"cannot schedule {unknown}; valid fields: {', '.join(SCHEDULABLE_FIELDS)}")
    updates: dict[str, float | int] = {name: sched(step) for name, sched in schedules.items()}
    if "top_k" in updates:
        updates["top_k"] = round(updates["top_k"])
    return dataclasses.replace(base, **updates)  # type: ignore[arg-type]  # each value has its field's type
