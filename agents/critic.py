"""The reward model as critic: start the value head from the env's reward scored on prefixes.

An actor-critic (A2C, PPO, TRPO) starts with a value head that predicts 0 everywhere, so its first advantages
are the bare returns, and the critic spends the first iterations catching up. With ``value_init="reward"`` the
value head is instead fitted, before the first update, to what the env's reward (a classifier, a preference
model, a metric) says about the text so far: ``V(s_t) = R(prompt, first t tokens)``, the reward model used as
a critic of prefixes. The targets are in the units the learner sees: the same score normalisation as the
episodes' final scores (:func:`agents.losses.normalization_affine`) and the same discount.

The fit is ridge regression of the value head (a linear map of the trunk's last hidden state) on the policy's
own episodes of train prompts, in closed form; the trunk is not touched, so the policy is unchanged. A quarter
of the episodes is held out to choose the ridge penalty and to report how well the fitted critic predicts the
reward of unseen prefixes (``critic_init/r2_heldout``). The episodes' generated tokens count towards the
training budget (:meth:`agents.trainer.Trainer.learn` adds them), so a run with the warm start trains on fewer.

Example:
    >>> from agents.a2c import A2C
    >>> trainer = A2C(env_id="TextGen-Reverse-v1", model="tiny", batch_size=4, progress=False, kl_coef=0)
    >>> fit = warm_start_value_head(trainer, episodes=8)
    >>> sorted(name.split("/")[1] for name in fit)
    ['r2_heldout', 'r2_train', 'ridge', 'target_std', 'tokens']
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from agents.losses import normalization_affine

if TYPE_CHECKING:
    from agents.rollout import Rollout
    from agents.trainer import Trainer

# seeds of the warm start's episodes, far from the training iterations' (config.seed * 7919 + iteration)
WARM_START_SALT = 1_000_003


def prefix_scores(envs: object, batch: Rollout) -> Tensor:
    """``(B, T)`` the env's reward of each episode's first ``t`` generated tokens, ``t = 0 .. T - 1``, scored
    against the episode's prompt and references (the env must still hold the batch's episodes)."""
    setup, score_texts = envs.setup, envs.score_texts  # type: ignore[attr-defined]
    actions = batch.actions.cpu().numpy()
    lengths = batch.mask.sum(1).long().cpu().numpy()
    columns = []
    for t in range(batch.num_generated):
        texts = setup.decode_padded(actions, np.minimum(lengths, t))
        columns.append(torch.tensor(score_texts(texts), dtype=torch.float32))
    return torch.stack(columns, 1).to(batch.mask.device)


def value_targets(batch: Rollout, prefixes: Tensor, method: str, group_size: int, gamma: float) -> Tensor:
    """``(B, T)`` value targets from prefix scores: normalised as the episodes' final scores are, and discounted
    by the steps left to the episode's end (where its score is paid); 0 after the end."""
    shift, scale = normalization_affine(batch.scores.float(), method, group_size)
    normalised = (prefixes - shift[:, None]) * scale[:, None]
    steps = torch.arange(batch.num_generated, device=prefixes.device)
    to_go = (batch.mask.sum(1, keepdim=True) - 1 - steps).clamp(min=0)
    return normalised * gamma**to_go * batch.mask


def fit_ridge(features: Tensor, targets: Tensor, ridge: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Least squares ``targets ~ features @ w + b`` with an L2 penalty ``ridge * mean(diag(X^T X))`` on ``w``;
    closed form in float64. Returns ``(w, b)``."""
    x = features.double()
    mean_x, mean_y = x.mean(0), targets.double().mean()
    centred = x - mean_x
    gram = centred.T @ centred
    penalty = ridge * gram.diagonal().mean().clamp_min(1e-12)
    w = torch.linalg.solve(gram + penalty * torch.eye(gram.shape[0], dtype=gram.dtype), centred.T @ (targets - mean_y))
    return w, mean_y - mean_x @ w


def r_squared(predicted: Tensor, targets: Tensor) -> float:
    """Coefficient of determination, ``1 - SSE / SST`` (``nan`` when the targets are constant)."""
    total = float(((targets - targets.mean()) ** 2).sum())
    return 1.0 - float(((targets - predicted) ** 2).sum()) / total if total > 0 else math.nan


RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


@torch.no_grad()
def warm_start_value_head(trainer: Trainer, episodes: int = 64) -> dict[str, float]:
    """Fit ``trainer``'s value head to the env's reward of prefixes (see the module doc); returns the fit's
    metrics (``critic_init/...``): R^2 on the fitted and on held-out episodes, the targets' std, the ridge
    penalty chosen on the held-out episodes (from :data:`RIDGES`), and the episodes' generated tokens.

    Raises:
        ValueError: the trainer has no value head, or its env is not a single-turn textgym vector env.
    """
    head = trainer.policy.value_head
    if head is None:
        raise ValueError(f"value_init='reward' needs a value head: {trainer.algo} has none (use a2c, ppo or trpo)")
    if not trainer.fast_path or getattr(trainer.envs, "multi_turn", False):
        raise ValueError("value_init='reward' scores the episodes' prefixes: it needs a single-turn textgym vector env")
    batches = [_fit_rows(trainer, i) for i in range(max(2, math.ceil(episodes / trainer.envs.num_envs)))]
    held = max(1, len(batches) // 4)
    train_x, train_y = (torch.cat(part) for part in zip(*batches[:-held], strict=True))
    test_x, test_y = (torch.cat(part) for part in zip(*batches[-held:], strict=True))
    heldout = {ridge: r_squared(_predict(fit_ridge(train_x, train_y, ridge), test_x), test_y) for ridge in RIDGES}
    ridge = max(RIDGES, key=lambda r: -math.inf if math.isnan(heldout[r]) else heldout[r])
    all_x, all_y = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
    w, b = fit_ridge(all_x, all_y, ridge)
    head.weight.copy_(w.to(head.weight)[None])
    head.bias.copy_(b.to(head.bias).reshape(1))
    return {
        "critic_init/tokens": float(len(all_y)),
        "critic_init/target_std": float(all_y.std()),
        "critic_init/ridge": ridge,
        "critic_init/r2_heldout": heldout[ridge],
        "critic_init/r2_train": r_squared(_predict((w, b), all_x), all_y),
    }


def _fit_rows(trainer: Trainer, index: int) -> tuple[Tensor, Tensor]:
    """One batch of warm-start episodes as regression rows: the trunk's hidden state before each generated token
    ``(N, H)`` and its value target ``(N,)`` (float64, on the CPU)."""
    c = trainer.config
    batch = trainer.collect_rollout(0, salt=WARM_START_SALT + index)
    prefixes = prefix_scores(trainer.envs, batch)
    targets = value_targets(batch, prefixes, c.score_normalization, c.samples_per_prompt, c.gamma)
    hidden = trainer.policy.token_hidden(batch.input_ids, batch.attention_mask, batch.num_generated)
    steps = batch.mask.bool()
    return hidden[steps].double().cpu(), targets[steps].double().cpu()


def _predict(fit: tuple[Tensor, Tensor], features: Tensor) -> Tensor:
    w, b = fit
    return features @ w + b
