"""A2C: synchronous advantage actor-critic with GAE, a value loss and an entropy bonus.

One gradient step per batch on ``policy_loss + vf_coef * value_loss - entropy_coef * entropy``, where the
policy loss is ``-mean(log pi(a_t|s_t) * A_t)`` with GAE advantages ``A_t`` from the value head.

Example:
    >>> agent = A2C(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, kl_coef=0.0,
    ...             tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
from dataclasses import dataclass
from typing import ClassVar

from agents.config import TrainConfig, option, score_normalization_option
from agents.losses import gae, masked_mean, reinforce_loss, value_loss
from agents.policy import TokenScores
from agents.rollout import Rollout
from agents.trainer import Scored, Trainer


@dataclass
class A2CConfig(TrainConfig):
    # batch: every learning test learns on every seed with it (tests/test_agents.py); the sweep suite compares it
    score_normalization: str = score_normalization_option("batch")
    gae_lambda: float = option(0.95, "GAE lambda", low=0, high=1)
    vf_coef: float = option(0.5, "value loss weight", low=0)
    normalize_advantage: bool = option(True, "whiten advantages over the batch")


class A2C(Trainer):
    """Advantage actor-critic: the value head on the LM trunk is the critic."""

    config_class: ClassVar[type[TrainConfig]] = A2CConfig
    config: A2CConfig
    algo: ClassVar[str] = "a2c"
    actor_critic: ClassVar[bool] = True

    one_pass_update: ClassVar[bool] = True  # one gradient step per batch: scoring and update share the forward

    def update(self, batch: Rollout, scored: Scored, forward: TokenScores | None = None) -> dict[str, float]:
        c = self.config
        advantages, returns = gae(scored.rewards, scored.values, batch.step_mask, c.gamma, c.gae_lambda)
        if c.normalize_advantage:
            advantages = self.whiten_advantages(advantages, batch.mask)
        ev = forward if forward is not None else self.score_tokens(batch)
        policy_loss = reinforce_loss(ev.logprobs, advantages, batch.mask)
        v_loss = value_loss(ev.values, returns, batch.step_mask)
        entropy = masked_mean(ev.entropy, batch.mask)
        loss = policy_loss + c.vf_coef * v_loss - self.entropy_coef_at(self.iteration) * entropy
        grad_norm = self.optimizer_step(loss, tokens=batch.mask.sum())
        return {
            "losses/policy": policy_loss.item(),
            "losses/value": v_loss.item(),
            "losses/entropy": entropy.item(),
            "losses/grad_norm": grad_norm,
        }
