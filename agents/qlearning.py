"""Token-level Q-learning math: Q-values read off the LM head, bootstrap values, n-step Bellman targets.

The LM head supplies the advantages of a dueling Q-function (Wang et al. 2016), the value head the state value:

    Q(s, a) = V(s) + scale * (logit(s, a) - max_b logit(s, b))

so the greedy action is the language model's argmax, ``max_a Q(s, a) = V(s)``, and a Boltzmann policy over Q
at temperature ``tau`` is the language model sampled at temperature ``tau / scale``. Learning moves the logits
of the actions it tries (an action whose return beats ``V(s)`` is pushed towards the argmax, one that falls
short away from it) and fits ``V`` to the greedy policy's return.

Example:
    >>> logits = torch.tensor([[[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]])  # (B=1, T=2, V=3)
    >>> values, actions = torch.tensor([[1.0, 0.4]]), torch.tensor([[1, 1]])
    >>> q_values(logits, values, actions, scale=0.5)  # 1 + 0.5 * (0 - 2), then the argmax: 0.4 + 0
    tensor([[0.0000, 0.4000]])
"""

from __future__ import annotations

import torch
from torch import Tensor


def advantages_from_logits(logits: Tensor, scale: float) -> Tensor:
    """``scale * (logits - max logits)`` over the last axis: every action's advantage, 0 at the argmax."""
    return scale * (logits - logits.max(-1, keepdim=True).values)


def q_values(logits: Tensor, values: Tensor, actions: Tensor, scale: float) -> Tensor:
    """``Q(s_t, a_t)`` ``(B, T)`` of the actions taken, from logits ``(B, T, V)`` and values ``(B, T)``."""
    advantages = advantages_from_logits(logits, scale).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    return values + advantages


def bootstrap_values(
    target_logits: Tensor,
    target_values: Tensor,
    scale: float,
    online_logits: Tensor | None = None,
) -> Tensor:
    """The value of each state ``(B, T)`` for Bellman targets, under the target network.

    Plain Q-learning: ``max_a Q_target(s, a)``, which is ``V_target(s)``. Double Q-learning (van Hasselt et al.
    2016; pass ``online_logits``): the online network picks ``a* = argmax_a Q_online(s, a)`` and the target
    network values it, ``Q_target(s, a*)``, which damps the max's over-estimation.

    Example:
        >>> target = torch.tensor([[[1.0, 3.0]]])
        >>> bootstrap_values(target, torch.tensor([[0.5]]), 0.1)  # the max: the target's own argmax
        tensor([[0.5000]])
        >>> bootstrap_values(target, torch.tensor([[0.5]]), 0.1, online_logits=torch.tensor([[[2.0, 0.0]]]))
        tensor([[0.3000]])
    """
    if online_logits is None:
        return target_values
    best = online_logits.argmax(-1)  # (B, T)
    return q_values(target_logits, target_values, best, scale)


def n_step_targets(rewards: Tensor, bootstrap: Tensor, mask: Tensor, gamma: float, n: int) -> Tensor:
    """n-step Bellman targets ``y_t = sum_{k<n} gamma^k r_{t+k} + gamma^n * bootstrap_{t+n}``, per episode.

    Sums stop at the episode's end, and a target whose ``t + n`` lies past the end bootstraps from nothing (the
    end is terminal). ``mask`` ``(B, T)`` marks each episode's steps, a prefix of ones; padding gets target 0.

    Args:
        rewards: Per-step rewards ``(B, T)``.
        bootstrap: Value of the state before each step ``(B, T)`` (:func:`bootstrap_values`).
        mask: Float 0/1 ``(B, T)``.
        gamma: Discount.
        n: Steps before bootstrapping (>= 1; >= T gives Monte-Carlo returns).

    Example:
        >>> n_step_targets(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[5.0, 6.0, 7.0]]),
        ...                torch.ones(1, 3), gamma=0.5, n=1)
        tensor([[3.0000, 3.5000, 1.0000]])
    """
    if n < 1:
        raise ValueError(f"n-step targets need n >= 1, got {n}")
    steps = rewards.shape[1]
    mask = mask.to(rewards.dtype)
    padded_rewards = torch.nn.functional.pad(rewards * mask, (0, n))  # (B, T + n)
    padded_mask = torch.nn.functional.pad(mask, (0, n))
    padded_bootstrap = torch.nn.functional.pad(bootstrap, (0, n))
    targets = torch.zeros_like(rewards)
    for k in range(n):
        targets = targets + gamma**k * padded_rewards[:, k : k + steps]
    targets = targets + gamma**n * (padded_bootstrap * padded_mask)[:, n : n + steps]
    return targets * mask


def huber(x: Tensor, delta: float = 1.0) -> Tensor:
    """Elementwise Huber loss of a TD error: quadratic within ``delta``, linear beyond.

    >>> huber(torch.tensor([0.5, -3.0]))
    tensor([0.1250, 2.5000])
    """
    return torch.nn.functional.huber_loss(x, torch.zeros_like(x), reduction="none", delta=delta)


@torch.no_grad()
def polyak_update(target: dict[str, Tensor], online: dict[str, Tensor], tau: float) -> None:
    """Move every target tensor ``tau`` of the way to the online tensor of the same name (``tau=1``: copy).

    >>> target = {"w": torch.zeros(2)}
    >>> polyak_update(target, {"w": torch.ones(2)}, 0.25)
    >>> target["w"]
    tensor([0.2500, 0.2500])
    """
    names = list(target)
    torch._foreach_lerp_([target[n] for n in names], [online[n].detach() for n in names], tau)
