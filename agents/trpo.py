"""TRPO: natural-gradient policy steps inside a KL trust region, plus a separately fitted value head.

The policy step maximises the importance-weighted surrogate ``mean(ratio * A)`` subject to
``KL(old || new) <= max_kl``: conjugate gradient on Fisher-vector products gives the direction, a
backtracking line search accepts the first step that keeps the KL within ``max_kl`` and improves the
surrogate (:func:`agents.losses.trpo_step`). The KL is the sampled-token estimate
``mean((r - 1) - log r)``, ``r = pi_new / pi_old``: unbiased for KL(old || new) under the rollout's
tokens, and its Hessian at the old parameters is the Fisher information on those tokens.

The trust region covers the trainable actor parameters: with ``lora_rank > 0`` only the adapter, which is
how TRPO scales to large models. The value head is then fitted by Adam for ``vf_iters`` steps.

Example:
    >>> agent = TRPO(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, kl_coef=0.0,
    ...              tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from agents.config import TrainConfig, option
from agents.losses import gae, masked_mean, masked_whiten, trpo_step, value_loss
from agents.rollout import Rollout
from agents.trainer import Scored, Trainer


@dataclass
class TRPOConfig(TrainConfig):
    max_kl: float = option(0.01, "trust region: largest mean KL(old || new) per token of a step")
    cg_iters: int = option(10, "conjugate-gradient iterations")
    cg_damping: float = option(0.1, "damping added to the Fisher-vector products")
    line_search_steps: int = option(10, "backtracking steps of the line search")
    backtrack_ratio: float = option(0.8, "step shrink factor per backtracking step")
    gae_lambda: float = option(0.95, "GAE lambda")
    vf_iters: int = option(5, "Adam steps on the value head per batch")
    vf_learning_rate: float = option(1e-3, "value head learning rate")


class TRPO(Trainer):
    """Trust region policy optimisation with a value head fitted separately."""

    config_class: ClassVar[type[TrainConfig]] = TRPOConfig
    algo: ClassVar[str] = "trpo"

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.policy.value_head.parameters(), lr=self.config.vf_learning_rate)

    def update(self, batch: Rollout, scored: Scored) -> dict[str, float]:
        c = self.config
        advantages, returns = gae(scored.rewards, scored.values, batch.mask, c.gamma, c.gae_lambda)
        advantages = masked_whiten(advantages, batch.mask)
        args = (batch.input_ids, batch.attention_mask, batch.num_generated, c.temperature)
        entropy_coef = self.entropy_coef_at(self.iteration)

        def surrogate() -> torch.Tensor:
            ev = self.policy.evaluate(*args)
            ratio = torch.exp(ev.logprobs - scored.logprobs)
            return masked_mean(ratio * advantages, batch.mask) + entropy_coef * masked_mean(ev.entropy, batch.mask)

        def kl() -> torch.Tensor:
            log_ratio = scored.logprobs - self.policy.evaluate(*args).logprobs  # log(pi_old / pi_new)
            return masked_mean(torch.expm1(-log_ratio) + log_ratio, batch.mask)  # (r - 1) - log r

        with sdpa_kernel(SDPBackend.MATH):  # the Fisher-vector products need double backward through attention
            step = trpo_step(
                self.policy.policy_parameters(),
                surrogate,
                kl,
                c.max_kl,
                cg_iters=c.cg_iters,
                damping=c.cg_damping,
                backtrack_ratio=c.backtrack_ratio,
                max_backtracks=c.line_search_steps,
            )
        if step["accepted"] == 0.0 and not all(torch.isfinite(p).all() for p in self.policy.policy_parameters()):
            raise FloatingPointError(f"trpo: non-finite parameters at iteration {self.iteration}")
        v_losses = [self._value_step(batch, returns) for _ in range(c.vf_iters)]
        return {
            "losses/value": sum(v_losses) / len(v_losses),
            "losses/step_kl": step["kl"],
            "losses/improvement": step["improvement"],
            "losses/step_fraction": step["step_fraction"],
            "losses/accepted": step["accepted"],
        }

    def _value_step(self, batch: Rollout, returns: torch.Tensor) -> float:
        with torch.no_grad():
            hidden = self.policy._trunk(batch.input_ids, batch.attention_mask)[:, -batch.num_generated - 1 : -1]
        values = self.policy.value_head(hidden.float()).squeeze(-1)
        loss = value_loss(values, returns, batch.mask)
        self.optimizer_step(loss, "value loss")
        return loss.item()
