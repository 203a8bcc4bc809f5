"""REINFORCE with a baseline: none, a moving average, or leave-one-out over several samples per prompt.

The advantage of token ``t`` is its reward-to-go ``G_t`` (terminal score plus the KL penalties still to
come) minus a baseline ``b``; the loss is ``-mean(log pi(a_t|s_t) * (G_t - b))`` minus the entropy bonus.
With ``baseline="leave_one_out"`` each prompt is sampled ``samples_per_prompt`` times and ``b_t`` is the mean
reward-to-go at step ``t`` of the other samples of the same prompt (RLOO, per step: with per-token rewards or a
discount the rewards-to-go of later steps are smaller than the episode's return).

Example:
    >>> agent = Reinforce(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, kl_coef=0.0,
    ...                   tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from agents.config import TrainConfig, option
from agents.losses import discounted_returns, leave_one_out_baseline, masked_mean, reinforce_loss
from agents.policy import TokenScores
from agents.rollout import Rollout
from agents.trainer import Scored, Trainer

BASELINES = ("none", "moving_average", "leave_one_out")


@dataclass
class ReinforceConfig(TrainConfig):
    baseline: str = option("leave_one_out", "what the returns are compared with", choices=BASELINES)
    samples_per_prompt: int = option(4, "samples of each prompt per batch (leave_one_out needs >= 2)", low=1)
    baseline_decay: float = option(
        0.9, "decay of the moving-average baseline (1 would freeze it)", low=0, high=1, high_inclusive=False
    )


class Reinforce(Trainer):
    """Monte-Carlo policy gradient with a baseline; no critic."""

    config_class: ClassVar[type[TrainConfig]] = ReinforceConfig
    config: ReinforceConfig
    algo: ClassVar[str] = "reinforce"
    needs_values: ClassVar[bool] = False

    def __init__(self, config: ReinforceConfig | None = None, env: Any = None, policy: Any = None, **overrides: Any):
        super().__init__(config, env, policy, **overrides)
        c = self.config
        if c.baseline == "leave_one_out" and c.samples_per_prompt < 2:  # the trainer checked that it divides
            raise ValueError(f"leave_one_out needs samples_per_prompt >= 2, got {c.samples_per_prompt}")
        self.moving_average: float | None = None

    def baseline(self, returns: torch.Tensor) -> torch.Tensor:
        """The baseline of rewards-to-go ``(B, T)``: per step for leave-one-out (the other samples' ``G_t``, so
        a reward paid early or a discount does not bias the later steps' advantages), else one value per episode
        from the episode returns ``G_0`` (``(B, 1)``)."""
        if self.config.baseline == "leave_one_out":
            group = self.config.samples_per_prompt
            return torch.stack([leave_one_out_baseline(column, group) for column in returns.unbind(1)], 1)
        episode = returns[:, 0]
        if self.config.baseline == "moving_average":
            mean = self.global_mean(episode)
            previous = mean if self.moving_average is None else self.moving_average
            self.moving_average = self.config.baseline_decay * previous + (1 - self.config.baseline_decay) * mean
            return torch.full_like(episode, previous)[:, None]
        return torch.zeros_like(episode)[:, None]

    one_pass_update: ClassVar[bool] = True  # one gradient step per batch: scoring and update share the forward

    def update(self, batch: Rollout, scored: Scored, forward: TokenScores | None = None) -> dict[str, float]:
        returns = discounted_returns(scored.rewards, batch.step_mask, self.config.gamma)  # (B, T)
        advantages = (returns - self.baseline(returns)) * batch.mask
        ev = forward if forward is not None else self.score_tokens(batch)
        policy_loss = reinforce_loss(ev.logprobs, advantages, batch.mask)
        entropy = masked_mean(ev.entropy, batch.mask)
        loss = policy_loss - self.entropy_coef_at(self.iteration) * entropy
        grad_norm = self.optimizer_step(loss, tokens=batch.mask.sum())
        return {
            "losses/policy": policy_loss.item(),
            "losses/entropy": entropy.item(),
            "losses/grad_norm": grad_norm,
            "charts/advantage_std": float(advantages[batch.mask.bool()].std()),
        }

    def extra_state(self) -> dict[str, Any]:
        return {"moving_average": self.moving_average}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.moving_average = state.get("moving_average")
