"""Pure loss and advantage functions for token-level RL on language models.

Every function here is stateless (except the two small KL-coefficient controllers) and operates on
batched tensors of shape ``(B, T)`` over generated tokens, with a float ``mask`` of the same shape
that is 1 at real generated tokens and 0 at padding after an episode ended. An episode ends at its
last valid token and is terminal: nothing is bootstrapped past it.

The TRPO helpers (:func:`conjugate_gradient`, :func:`flat_params`, :func:`set_flat_params`,
:func:`flat_grad`, :func:`trpo_step`) work on any list of parameters and closures that recompute
the surrogate objective and the mean KL divergence at the current parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "conjugate_gradient",
    "discounted_returns",
    "entropy_from_logits",
    "flat_grad",
    "flat_params",
    "gae",
    "kl_penalty",
    "leave_one_out_baseline",
    "masked_mean",
    "masked_whiten",
    "normalization_affine",
    "normalize_scores",
    "ppo_policy_loss",
    "reinforce_loss",
    "set_flat_params",
    "trpo_step",
    "value_loss",
]

KL_ESTIMATORS = ("k1", "k2", "k3")
_EPS = 1e-8


# --------------------------------------------------------------------------------------------------
# Masked statistics
# --------------------------------------------------------------------------------------------------


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is non-zero.

    Args:
        x: Values, any shape.
        mask: Float weights (usually 0/1) broadcastable to ``x``.
        dim: Dimension to reduce; ``None`` reduces over everything.

    Returns:
        The masked mean (a scalar when ``dim`` is ``None``); 0 where the mask is empty.

    >>> masked_mean(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([1.0, 1.0, 0.0]))
    tensor(1.5000)
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(_EPS)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(_EPS)


def masked_whiten(
    x: Tensor, mask: Tensor, shift_mean: bool = True, total: Callable[[Tensor], Tensor] | None = None
) -> Tensor:
    """Normalise ``x`` to unit variance (and zero mean) using only the masked entries.

    The variance is the biased (``unbiased=False``) masked variance; padding positions are set to 0.

    Args:
        x: Values, shape ``(B, T)`` (any shape works).
        mask: Float 0/1 mask of the same shape.
        shift_mean: If False the masked mean is added back after scaling.
        total: Sums the statistics over a batch held in parts (one per process), e.g. an all-reduce.

    Returns:
        Whitened tensor of the same shape as ``x``.

    >>> masked_whiten(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 0.0]))
    tensor([-1.,  1.,  0.])
    """
    if total is not None:  # a batch spread over processes: its sums reduced by ``total`` (e.g. an all-reduce)
        weights = mask.to(x.dtype)
        sums = total(torch.stack([(x * weights).sum(), (x * x * weights).sum(), weights.sum()]))
        mean = sums[0] / sums[2].clamp_min(1)
        var = (sums[1] / sums[2].clamp_min(1) - mean**2).clamp_min(0)
    else:
        mean = masked_mean(x, mask)
        var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + _EPS)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


# --------------------------------------------------------------------------------------------------
# Returns and advantages
# --------------------------------------------------------------------------------------------------


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go within each episode: ``G_t = r_t + gamma * G_{t+1}``, zero at padding.

    Args:
        rewards: Per-token rewards, shape ``(B, T)``.
        mask: Float 0/1 mask, shape ``(B, T)``.
        gamma: Discount factor.

    Returns:
        Returns of shape ``(B, T)``.

    >>> discounted_returns(torch.tensor([[1.0, 1.0, 5.0]]), torch.tensor([[1.0, 1.0, 0.0]]), 0.5)
    tensor([[1.5000, 1.0000, 0.0000]])
    """
    mask = mask.to(rewards.dtype)
    out = torch.zeros_like(rewards)  # (B, T)
    running = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(rewards.shape[1])):
        running = (rewards[:, t] + gamma * running) * mask[:, t]
        out[:, t] = running
    return out


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016) with terminal episode ends.

    The value after the last valid token is 0 (terminal); padding gets 0 advantage and 0 return.

    Args:
        rewards: Per-token rewards, shape ``(B, T)``.
        values: Value estimates ``V(s_t)``, shape ``(B, T)`` (treated as constants).
        mask: Float 0/1 mask, shape ``(B, T)``.
        gamma: Discount factor.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)``, both ``(B, T)``, with ``returns = (advantages + values) * mask``.

    >>> adv, ret = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2), 1.0, 1.0)
    >>> adv, ret
    (tensor([[0.5000, 0.5000]]), tensor([[1., 1.]]))
    """
    values = values.detach()
    mask = mask.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)  # (B, T)
    last_adv = torch.zeros_like(rewards[:, 0])  # (B,)
    next_value = torch.zeros_like(rewards[:, 0])  # (B,) value of s_{t+1}, 0 past the end
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        last_adv = (delta + gamma * lam * last_adv) * mask[:, t]
        advantages[:, t] = last_adv
        next_value = values[:, t] * mask[:, t]
    returns = (advantages + values) * mask
    return advantages, returns


# --------------------------------------------------------------------------------------------------
# Policy / value losses
# --------------------------------------------------------------------------------------------------


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled from pi (Schulman's k1/k2/k3).

    With ``log r = logq - logp``: k1 = ``-log r``, k2 = ``0.5 * (log r)^2``, k3 = ``(r - 1) - log r``.
    k1 and k3 are unbiased; k3 is always non-negative.

    Args:
        logprobs: Log-probs of the sampled tokens under pi, shape ``(B, T)``.
        ref_logprobs: Log-probs of the same tokens under the reference policy, shape ``(B, T)``.
        estimator: One of ``"k1"``, ``"k2"``, ``"k3"``.

    Returns:
        Per-token estimates, shape ``(B, T)``.

    Raises:
        ValueError: For an unknown estimator name.

    >>> kl_penalty(torch.tensor([0.0]), torch.tensor([0.0]), "k3")
    tensor([0.])
    """
    diff = logprobs - ref_logprobs  # (B, T) log p - log q
    if estimator == "k1":
        return diff
    if estimator == "k2":
        return 0.5 * diff**2
    if estimator == "k3":
        return torch.expm1(-diff) + diff
    raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")


def reinforce_loss(logprobs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """REINFORCE loss ``-mean(logprobs * advantages)`` over the masked tokens.

    Args:
        logprobs: Log-probs of the taken tokens, shape ``(B, T)`` (differentiable).
        advantages: Advantages or returns, shape ``(B, T)`` (detached).
        mask: Float 0/1 mask, shape ``(B, T)``.

    Returns:
        Scalar loss.

    >>> reinforce_loss(torch.tensor([[-1.0, -2.0]]), torch.tensor([[2.0, 1.0]]), torch.ones(1, 2))
    tensor(2.)
    """
    return -masked_mean(logprobs * advantages.detach(), mask)


def ppo_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_range: float
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate loss: masked mean of ``max(-A * r, -A * clip(r, 1 - eps, 1 + eps))``.

    Args:
        logprobs: Current log-probs of the taken tokens, shape ``(B, T)``.
        old_logprobs: Learning log-probs (``agents.sampling.learning_logprobs``) of the policy that collected the
            batch, before this update, shape ``(B, T)`` (detached).
        advantages: Advantages, shape ``(B, T)`` (detached).
        mask: Float 0/1 mask, shape ``(B, T)``.
        clip_range: The PPO epsilon.

    Returns:
        ``(loss, stats)`` where stats has floats ``"clipfrac"`` (fraction of tokens where the clipped
        term is active) and ``"approx_kl"`` (masked mean of ``(r - 1) - log r``).

    >>> zeros, ones = torch.zeros(1, 1), torch.ones(1, 1)
    >>> loss, stats = ppo_policy_loss(zeros, zeros, ones, ones, clip_range=0.2)
    >>> loss, stats["clipfrac"]
    (tensor(-1.), 0.0)
    """
    advantages = advantages.detach()
    log_ratio = logprobs - old_logprobs.detach()  # (B, T)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((clipped > unclipped).to(ratio.dtype), mask)
        approx_kl = masked_mean(torch.expm1(log_ratio) - log_ratio, mask)
    return loss, {"clipfrac": float(clipfrac), "approx_kl": float(approx_kl)}


def value_loss(
    values: Tensor,
    returns: Tensor,
    mask: Tensor,
    old_values: Tensor | None = None,
    clip_range: float | None = None,
) -> Tensor:
    """Value regression loss ``0.5 * mean((V - R)^2)`` with optional PPO-style value clipping.

    Clipping is used only when both ``old_values`` and ``clip_range`` are given; then the per-token
    error is the max of the unclipped and the clipped (``old + clip(V - old, -c, c)``) squared errors.

    Args:
        values: Predicted values, shape ``(B, T)``.
        returns: Targets, shape ``(B, T)`` (detached).
        mask: Float 0/1 mask, shape ``(B, T)``.
        old_values: Values at rollout time, shape ``(B, T)``.
        clip_range: Clip range for the value change.

    Returns:
        Scalar loss.

    >>> value_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    tensor(2.)
    """
    returns = returns.detach()
    err = (values - returns) ** 2  # (B, T)
    if old_values is not None and clip_range is not None:
        old_values = old_values.detach()
        clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return 0.5 * masked_mean(err, mask)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of ``softmax(logits)`` over the last dimension, stable (also with ``-inf`` logits).

    Args:
        logits: Unnormalised log-probs, shape ``(..., V)``.

    Returns:
        Entropies, shape ``(...)``.

    >>> entropy_from_logits(torch.zeros(2, 4))
    tensor([1.3863, 1.3863])
    """
    logp = torch.log_softmax(logits, dim=-1)  # (..., V)
    p = logp.exp()
    plogp = torch.where(p > 0, p * logp, torch.zeros_like(p))
    return -plogp.sum(dim=-1)


def leave_one_out_baseline(scores: Tensor, group_size: int) -> Tensor:
    """Leave-one-out (RLOO) baseline: for each sample, the mean score of the other group members.

    Args:
        scores: Scores, shape ``(N,)`` with ``N = n_prompts * group_size`` in consecutive groups.
        group_size: Samples per prompt (>= 2, divides N).

    Returns:
        Baselines, shape ``(N,)``.

    Raises:
        ValueError: If ``group_size < 2`` or it does not divide ``N``.

    >>> leave_one_out_baseline(torch.tensor([1.0, 3.0, 0.0, 4.0]), 2)
    tensor([3., 1., 4., 0.])
    """
    n = scores.shape[0]
    if group_size < 2 or n % group_size != 0:
        raise ValueError(f"group_size must be >= 2 and divide N; got group_size={group_size}, N={n}")
    groups = scores.reshape(-1, group_size)  # (P, G)
    baseline = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return baseline.reshape(n)


def group_diversity(actions: Tensor, mask: Tensor, group_size: int, n: int = 2) -> Tensor:
    """How much each sample differs from the other samples of its prompt: ``1 - mean_j Jaccard(G_i, G_j)`` over
    the others ``j`` of its group, ``G`` being a sample's set of token n-grams (two empty sets are identical).

    Args:
        actions: Generated token ids ``(N, T)``, groups of ``group_size`` consecutive samples of one prompt.
        mask: Float 0/1 ``(N, T)``: the tokens each sample wrote.
        group_size: Samples per prompt (>= 2, divides N).
        n: n-gram length.

    Returns:
        ``(N,)`` in [0, 1]: 0 when a sample's n-grams equal every other's, 1 when it shares none with any.

    >>> actions = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 2, 4], [5, 6, 7]])
    >>> group_diversity(actions, torch.ones(4, 3), group_size=2)  # identical pair, then a disjoint one
    tensor([0., 0., 1., 1.])
    >>> group_diversity(actions[[0, 2]], torch.ones(2, 3), group_size=2)  # {12, 23} vs {12, 24}: Jaccard 1/3
    tensor([0.6667, 0.6667])
    """
    count = actions.shape[0]
    if group_size < 2 or count % group_size != 0:
        raise ValueError(f"group_size must be >= 2 and divide N; got group_size={group_size}, N={count}")
    rows = [a[m.bool()].tolist() for a, m in zip(actions, mask, strict=True)]
    grams = [set(zip(*(row[i:] for i in range(n)), strict=False)) for row in rows]
    out = torch.zeros(count, device=actions.device)
    for start in range(0, count, group_size):
        group = range(start, start + group_size)
        for i in group:
            others = [_jaccard(grams[i], grams[j]) for j in group if j != i]
            out[i] = 1.0 - sum(others) / len(others)
    return out


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


SCORE_NORMALIZATIONS = ("none", "batch", "group", "leave_one_out")


def normalize_scores(scores: Tensor, method: str = "none", group_size: int = 1) -> Tensor:
    """Episode scores turned into what the learner sees, before the per-token KL shaping is added.

    - ``"none"``: unchanged.
    - ``"batch"``: whitened over the batch, ``(s - mean) / std``.
    - ``"group"``: whitened within each group of ``group_size`` consecutive samples of one prompt, as GRPO
      does (a group whose samples all score the same gets 0).
    - ``"leave_one_out"``: minus the mean of the other samples of the same prompt, as RLOO does.

    The standard deviation is the unbiased one, floored at ``1e-4`` so that a constant batch gives zeros.

    Args:
        scores: ``(N,)`` task scores, groups of ``group_size`` consecutive samples sharing a prompt.
        method: One of :data:`SCORE_NORMALIZATIONS`.
        group_size: Samples per prompt; ``"group"`` and ``"leave_one_out"`` need ``>= 2`` dividing ``N``.

    Returns:
        ``(N,)`` normalised scores.

    Raises:
        ValueError: An unknown method, or a group size that does not fit.

    >>> normalize_scores(torch.tensor([1.0, 3.0, 0.0, 0.0]), "group", 2)
    tensor([-0.7071,  0.7071,  0.0000,  0.0000])
    >>> normalize_scores(torch.tensor([1.0, 3.0, 0.0, 4.0]), "leave_one_out", 2)
    tensor([-2.,  2., -4.,  4.])
    """
    if method not in SCORE_NORMALIZATIONS:
        raise ValueError(f"unknown score normalization {method!r}: expected one of {SCORE_NORMALIZATIONS}")
    if method == "none":
        return scores
    if method == "batch":
        return (scores - scores.mean()) / scores.std().nan_to_num(0.0).clamp_min(1e-4)
    if method == "leave_one_out":
        return scores - leave_one_out_baseline(scores, group_size)
    groups = _score_groups(scores, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred / groups.std(dim=1, keepdim=True).clamp_min(1e-4)).reshape(scores.shape[0])


def normalization_affine(scores: Tensor, method: str = "none", group_size: int = 1) -> tuple[Tensor, Tensor]:
    """:func:`normalize_scores` as a per-episode affine map: ``(shift, scale)``, each ``(N,)``, such that
    ``(scores - shift) * scale`` is the normalised score. Other values in the same units (the scores of the
    episodes' prefixes, say) map the same way. Where a batch or group scores the same throughout, ``scale`` is 0,
    as its normalised scores are.

    >>> shift, scale = normalization_affine(torch.tensor([1.0, 3.0, 0.0, 4.0]), "leave_one_out", 2)
    >>> shift.tolist(), scale.tolist()
    ([2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0])
    """
    if method not in SCORE_NORMALIZATIONS:
        raise ValueError(f"unknown score normalization {method!r}: expected one of {SCORE_NORMALIZATIONS}")
    n = scores.shape[0]
    if method == "none":
        return torch.zeros_like(scores), torch.ones_like(scores)
    if method == "batch":
        std = scores.std().nan_to_num(0.0) if n > 1 else scores.new_tensor(0.0)
        return scores.mean().expand(n), _inverse_or_zero(std).expand(n)
    groups = _score_groups(scores, group_size)
    shift = groups.mean(dim=1, keepdim=True).expand_as(groups).reshape(n)
    if method == "leave_one_out":  # s - mean(others) = G / (G - 1) * (s - mean(group))
        return shift, torch.full_like(scores, group_size / (group_size - 1))
    return shift, _inverse_or_zero(groups.std(dim=1, keepdim=True)).expand_as(groups).reshape(n)


def _score_groups(scores: Tensor, group_size: int) -> Tensor:
    """``(N,)`` scores as ``(N / G, G)`` groups of consecutive samples of one prompt."""
    n = scores.shape[0]
    if group_size < 2 or n % group_size != 0:
        raise ValueError(f"group normalization needs group_size >= 2 dividing N; got {group_size} and N={n}")
    return scores.reshape(-1, group_size)


def _inverse_or_zero(std: Tensor) -> Tensor:
    """``1 / std``, and 0 where ``std`` is below the floor of :func:`normalize_scores` (1e-4)."""
    return torch.where(std >= 1e-4, 1.0 / std.clamp_min(1e-4), torch.zeros_like(std))


# --------------------------------------------------------------------------------------------------
# KL coefficient controllers
# --------------------------------------------------------------------------------------------------


class AdaptiveKLController:
    """Adaptive KL coefficient of Ziegler et al. (2019).

    ``coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon``.

    Attributes:
        value: The current coefficient.

    >>> ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    >>> ctl.update(12.0, n_steps=100)
    >>> round(ctl.value, 6)
    0.1002
    """

    def __init__(self, init_coef: float, target: float, horizon: int) -> None:
        """Create the controller.

        Args:
            init_coef: Initial coefficient.
            target: Target KL per update.
            horizon: Adaptation horizon, in steps.
        """
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Adapt the coefficient after observing ``current_kl`` over ``n_steps`` steps.

        Args:
            current_kl: Measured KL.
            n_steps: Number of steps since the last update.

        >>> ctl = AdaptiveKLController(1.0, target=1.0, horizon=10); ctl.update(0.0, 10); ctl.value
        0.8
        """
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        """Return the serialisable state.

        >>> AdaptiveKLController(0.5, 1.0, 10).state_dict()["value"]
        0.5
        """
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore a state produced by :meth:`state_dict`.

        >>> ctl = AdaptiveKLController(0.5, 1.0, 10); ctl.load_state_dict({"value": 0.2}); ctl.value
        0.2
        """
        self.value = float(state["value"])
        self.target = float(state.get("target", self.target))
        self.horizon = int(state.get("horizon", self.horizon))


class FixedKLController:
    """Constant KL coefficient with the same interface as :class:`AdaptiveKLController`.

    >>> ctl = FixedKLController(0.05); ctl.update(100.0, 10); ctl.value
    0.05
    """

    def __init__(self, init_coef: float, target: float | None = None, horizon: int | None = None) -> None:
        """Create the controller; ``target`` and ``horizon`` are accepted and ignored."""
        self.value = float(init_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Do nothing (the coefficient is fixed).

        >>> FixedKLController(0.1).update(1.0, 1)
        """

    def state_dict(self) -> dict[str, float]:
        """Return the serialisable state.

        >>> FixedKLController(0.1).state_dict()
        {'value': 0.1}
        """
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore a state produced by :meth:`state_dict`.

        >>> ctl = FixedKLController(0.1); ctl.load_state_dict({"value": 0.3}); ctl.value
        0.3
        """
        self.value = float(state["value"])


# --------------------------------------------------------------------------------------------------
# TRPO
# --------------------------------------------------------------------------------------------------


def conjugate_gradient(
    fvp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Solve ``F x = b`` for symmetric positive-definite ``F`` given only products ``v -> F v``.

    Args:
        fvp: Function returning ``F @ v`` for a flat vector ``v``.
        b: Right-hand side, shape ``(D,)``.
        iters: Maximum number of CG iterations.
        residual_tol: Stop when the squared residual norm falls below this.

    Returns:
        Approximate solution, shape ``(D,)``.

    >>> conjugate_gradient(lambda v: 2.0 * v, torch.tensor([2.0, 4.0]))
    tensor([1., 2.])
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr < residual_tol:
            break
        fp = fvp(p)
        alpha = rr / torch.dot(p, fp)
        x = x + alpha * p
        r = r - alpha * fp
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def flat_params(params: Iterable[Tensor]) -> Tensor:
    """Concatenate parameters into one detached flat vector.

    >>> flat_params([torch.ones(2, 2), torch.zeros(1)])
    tensor([1., 1., 1., 1., 0.])
    """
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat_params(params: Iterable[Tensor], flat: Tensor) -> None:
    """Copy a flat vector (as produced by :func:`flat_params`) back into the parameters, in place.

    >>> p = nn.Parameter(torch.zeros(2)); set_flat_params([p], torch.tensor([1.0, 2.0])); p.data
    tensor([1., 2.])
    """
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def flat_grad(
    output: Tensor, params: Iterable[Tensor], retain_graph: bool = False, create_graph: bool = False
) -> Tensor:
    """Gradient of a scalar ``output`` w.r.t. ``params`` as one flat vector (zeros for unused params).

    The graph is kept when ``retain_graph`` or ``create_graph`` is set (as in ``torch.autograd.grad``).

    >>> w = nn.Parameter(torch.tensor([1.0, 2.0])); flat_grad((w**2).sum(), [w])
    tensor([2., 4.])
    """
    params = list(params)
    grads = torch.autograd.grad(
        output,
        params,
        retain_graph=retain_graph or create_graph,
        create_graph=create_graph,
        allow_unused=True,
    )
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads, strict=True)]
    )


def trpo_step(
    params: list[nn.Parameter],
    surrogate: Callable[[], Tensor],
    kl: Callable[[], Tensor],
    max_kl: float,
    cg_iters: int = 10,
    damping: float = 0.1,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    fisher_product: Callable[[Tensor], Tensor] | None = None,
    total: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, float]:
    """One TRPO update (Schulman et al. 2015): natural-gradient step with a KL-constrained line search.

    Args:
        params: Parameters to update in place.
        surrogate: Returns the scalar surrogate objective to maximise at the current params.
        kl: Returns the scalar mean KL(old || current), differentiable and 0 at the starting params.
        max_kl: Trust-region size.
        cg_iters: Conjugate-gradient iterations.
        damping: Added to the Fisher-vector product (``F v + damping * v``).
        backtrack_ratio: Step shrink factor per line-search iteration.
        max_backtracks: Maximum number of line-search iterations.
        fisher_product: ``v -> F v`` for flat ``v`` (without damping); by default the Hessian-vector product
            of ``kl()`` by double backpropagation.
        total: For a batch held in parts (one per process): sums each part's gradient, Fisher product and
            surrogate and KL values over the parts (e.g. an all-reduce), each part's terms already weighted by its
            share of the batch, so every part takes the same step, the whole batch's.

    Returns:
        Dict of floats ``"kl"``, ``"improvement"``, ``"step_fraction"`` (0 if rejected) and
        ``"accepted"`` (1.0 / 0.0). When no step is accepted the original parameters are restored.

    >>> w = nn.Parameter(torch.zeros(1))
    >>> out = trpo_step([w], lambda: w.sum(), lambda: 0.5 * (w**2).sum(), max_kl=0.01)
    >>> out["accepted"]
    1.0
    """
    total = total or (lambda t: t)
    old = flat_params(params)
    surr0 = surrogate()
    g = total(flat_grad(surr0, params))  # (D,)
    surr0_value = float(total(surr0.detach().reshape(1)))
    if fisher_product is None:
        kl_grad = flat_grad(kl(), params, create_graph=True)  # (D,) graph kept for Fisher products

        def fisher_product(v: Tensor) -> Tensor:
            return flat_grad(torch.dot(kl_grad, v), params, retain_graph=True)

    def fvp(v: Tensor) -> Tensor:
        return total(fisher_product(v)) + damping * v

    rejected = {"kl": 0.0, "improvement": 0.0, "step_fraction": 0.0, "accepted": 0.0}
    direction = conjugate_gradient(fvp, g, iters=cg_iters)
    shs = float(torch.dot(direction, fvp(direction)))
    if not math.isfinite(shs) or shs <= 0.0:
        return rejected
    full_step = math.sqrt(2.0 * max_kl / shs) * direction
    for i in range(max_backtracks):
        fraction = backtrack_ratio**i
        set_flat_params(params, old + fraction * full_step)
        with torch.no_grad():
            kl_value = float(total(kl().reshape(1)))
            improvement = float(total(surrogate().reshape(1))) - surr0_value
        if kl_value <= max_kl and improvement > 0.0:
            return {"kl": kl_value, "improvement": improvement, "step_fraction": fraction, "accepted": 1.0}
    set_flat_params(params, old)
    return rejected
