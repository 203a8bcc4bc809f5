"""PPO: clipped surrogate, clipped value loss, minibatch epochs, target-KL early stop, adaptive KL penalty.

Per batch: GAE advantages from the value head (whitened), then ``n_epochs`` passes over shuffled
minibatches of episodes minimising ``clip_loss + vf_coef * value_loss - entropy_coef * entropy``; an epoch
loop stops early once the approximate KL between the new and the rollout policy passes
``1.5 * target_kl``. The per-token KL-to-reference penalty in the rewards may use an adaptive coefficient
(``kl_target``; Ziegler et al. 2019).

Example:
    >>> agent = PPO(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, minibatch_size=2,
    ...             tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
from dataclasses import dataclass
from typing import ClassVar

import torch

from agents.config import TrainConfig, importance_correction_option, option, score_normalization_option
from agents.losses import gae, masked_mean, ppo_policy_loss, value_loss
from agents.policy import TokenScores
from agents.rollout import Rollout
from agents.trainer import Scored, Trainer


@dataclass
class PPOConfig(TrainConfig):
    # batch: every learning test learns on every seed with it (tests/test_agents.py); the sweep suite compares it
    score_normalization: str = score_normalization_option("batch")
    n_epochs: int = option(2, "passes over each batch", low=1)
    minibatch_size: int = option(8, "episodes per gradient step", low=1)
    clip_range: float = option(0.2, "policy ratio clip", low=0, low_inclusive=False)
    importance_correction: bool = importance_correction_option()
    clip_range_vf: float | None = option(
        0.2, "value clip around the rollout values (None = off)", low=0, low_inclusive=False
    )
    vf_coef: float = option(0.1, "value loss weight", low=0)
    gae_lambda: float = option(0.95, "GAE lambda", low=0, high=1)
    target_kl: float | None = option(
        None, "stop the epochs once approx KL > 1.5 * target_kl (None = off)", low=0, low_inclusive=False
    )


class PPO(Trainer):
    """Proximal policy optimisation on the LM policy with a value head on its trunk."""

    config_class: ClassVar[type[TrainConfig]] = PPOConfig
    config: PPOConfig
    algo: ClassVar[str] = "ppo"
    actor_critic: ClassVar[bool] = True

    @property
    def one_pass_update(self) -> bool:
        """One epoch of one minibatch: the update's forward is the scoring forward (see ``Trainer``)."""
        return self.config.n_epochs == 1 and self.config.minibatch_size >= self.envs.num_envs  # episodes a batch

    def update(self, batch: Rollout, scored: Scored, forward: TokenScores | None = None) -> dict[str, float]:
        c = self.config
        advantages, returns = gae(scored.rewards, scored.values, batch.step_mask, c.gamma, c.gae_lambda)
        advantages = self.whiten_advantages(advantages, batch.mask)
        generator = self._generator(10_000_000 + self.iteration)
        stats: dict[str, list[float]] = {"policy": [], "value": [], "entropy": [], "approx_kl": [], "clipfrac": []}
        epochs = 0
        if forward is not None and self.one_pass_update:  # the one minibatch is the batch, already evaluated
            everything = torch.arange(len(batch.scores), device=advantages.device)
            self._minibatch_step(batch, scored, everything, advantages, returns, stats, forward)
            epochs = 1
        while epochs < c.n_epochs:
            order = torch.randperm(len(batch.scores), generator=generator, device=generator.device)
            for index in order.split(c.minibatch_size):
                self._minibatch_step(batch.select(index), scored, index, advantages, returns, stats)
            epochs += 1
            if c.target_kl is not None and sum(stats["approx_kl"]) / len(stats["approx_kl"]) > 1.5 * c.target_kl:
                break
        metrics = {f"losses/{k}": sum(v) / len(v) for k, v in stats.items()}
        metrics["losses/epochs"] = epochs
        return metrics

    def _minibatch_step(
        self, mb: Rollout, scored: Scored, index, advantages, returns, stats, ev: TokenScores | None = None
    ) -> None:
        c = self.config
        ev = ev if ev is not None else self.score_tokens(mb)
        old = mb.ratio_logprobs(scored.logprobs[index], c.importance_correction)
        policy_loss, info = ppo_policy_loss(ev.logprobs, old, advantages[index], mb.mask, c.clip_range)
        assert scored.values is not None  # PPO scores with its value head
        v_loss = value_loss(ev.values, returns[index], mb.step_mask, scored.values[index], c.clip_range_vf)
        entropy = masked_mean(ev.entropy, mb.mask)
        loss = policy_loss + c.vf_coef * v_loss - self.entropy_coef_at(self.iteration) * entropy
        self.optimizer_step(loss, tokens=mb.mask.sum())
        for key, value in (("policy", policy_loss), ("value", v_loss), ("entropy", entropy)):
            stats[key].append(value.item())
        stats["approx_kl"].append(info["approx_kl"])
        stats["clipfrac"].append(info["clipfrac"])
