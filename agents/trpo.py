"""TRPO: natural-gradient policy steps inside a KL trust region, plus a separately fitted value head.

The policy step maximises the importance-weighted surrogate ``mean(ratio * A)`` subject to
``KL(old || new) <= max_kl``: conjugate gradient on Fisher-vector products gives the direction, a
backtracking line search accepts the first step that keeps the KL within ``max_kl`` and improves the
surrogate (:func:`agents.losses.trpo_step`). The KL is the sampled-token estimate
``mean((r - 1) - log r)``, ``r = pi_new / pi_old``: unbiased for KL(old || new) under the rollout's
tokens, and its Hessian at the old parameters is the Fisher information on those tokens, ``J^T J / N``,
whose products are computed with one forward-mode and one reverse pass (:func:`sampled_fisher_product`).

The trust region covers the trainable actor parameters: with ``lora_rank > 0`` only the adapter, which is
how TRPO scales to large models. The value head is then fitted by Adam for ``vf_iters`` steps.

Example:
    >>> agent = TRPO(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, kl_coef=0.0,
    ...              tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.func import functional_call, jvp, vjp
from torch.nn.attention import SDPBackend, sdpa_kernel

from agents.config import TrainConfig, importance_correction_option, option, score_normalization_option
from agents.losses import gae, masked_mean, trpo_step, value_loss
from agents.policy import LMPolicy, TokenScores, position_ids
from agents.rollout import Rollout
from agents.sampling import learning_logprobs
from agents.trainer import Scored, Trainer


@dataclass
class TRPOConfig(TrainConfig):
    # batch: every learning test learns on every seed with it (tests/test_agents.py); the sweep suite compares it
    score_normalization: str = score_normalization_option("batch")
    max_kl: float = option(
        0.01, "trust region: largest mean KL(old || new) per token of a step", low=0, low_inclusive=False
    )
    cg_iters: int = option(10, "conjugate-gradient iterations", low=1)
    cg_damping: float = option(0.1, "damping added to the Fisher-vector products", low=0)
    line_search_steps: int = option(10, "backtracking steps of the line search", low=1)
    backtrack_ratio: float = option(
        0.8, "step shrink factor per backtracking step", low=0, high=1, low_inclusive=False, high_inclusive=False
    )
    gae_lambda: float = option(0.95, "GAE lambda", low=0, high=1)
    vf_iters: int = option(5, "Adam steps on the value head per batch", low=1)
    vf_learning_rate: float = option(1e-3, "value head learning rate", low=0, low_inclusive=False)
    importance_correction: bool = importance_correction_option()


class TRPO(Trainer):
    """Trust region policy optimisation with a value head fitted separately."""

    config_class: ClassVar[type[TrainConfig]] = TRPOConfig
    config: TRPOConfig
    algo: ClassVar[str] = "trpo"
    actor_critic: ClassVar[bool] = True

    @property
    def critic(self) -> torch.nn.Module:
        """The value head (TRPO fits it apart from the policy's trust-region step)."""
        assert self.policy.value_head is not None  # needs_values: the policy is built with one
        return self.policy.value_head

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.critic.parameters(), lr=self.config.vf_learning_rate)

    def update(self, batch: Rollout, scored: Scored, forward: TokenScores | None = None) -> dict[str, float]:
        c = self.config
        advantages, returns = gae(scored.rewards, scored.values, batch.step_mask, c.gamma, c.gae_lambda)
        advantages = self.whiten_advantages(advantages, batch.mask)
        args = (batch.input_ids, batch.attention_mask, batch.num_generated, c.temperature)
        entropy_coef = self.entropy_coef_at(self.iteration)

        line_search: dict[str, Any] = {}  # the line search asks kl() then surrogate() at the same parameters

        def scores_now() -> TokenScores:
            if torch.is_grad_enabled() or "ev" not in line_search:
                ev = self.policy.score_tokens(*args, with_entropy=entropy_coef != 0)
                if not torch.is_grad_enabled():
                    line_search["ev"] = ev  # reused by the next call: one forward per line-search step
                return ev
            return line_search.pop("ev")

        old = batch.ratio_logprobs(scored.logprobs, c.importance_correction)
        share = self.parallel.share(batch.mask.sum())  # this process's part of the global token means (1 alone)

        def surrogate() -> torch.Tensor:
            ev = scores_now()
            ratio = torch.exp(ev.logprobs - old)
            objective = masked_mean(ratio * advantages, batch.mask) + entropy_coef * masked_mean(ev.entropy, batch.mask)
            return share * objective

        def kl() -> torch.Tensor:
            log_ratio = scored.logprobs - scores_now().logprobs  # log(pi_old / pi_new)
            return share * masked_mean(torch.expm1(-log_ratio) + log_ratio, batch.mask)  # (r - 1) - log r

        fisher = sampled_fisher_product(self.policy, batch, c.temperature)

        with sdpa_kernel(SDPBackend.MATH):  # forward-mode AD through attention needs the math kernel
            step = trpo_step(
                self.policy.policy_parameters(),
                surrogate,
                kl,
                c.max_kl,
                cg_iters=c.cg_iters,
                damping=c.cg_damping,
                backtrack_ratio=c.backtrack_ratio,
                max_backtracks=c.line_search_steps,
                fisher_product=lambda v: share * fisher(v),
                total=self.parallel.sum if self.parallel.enabled else None,
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
        values = self.critic(hidden.float()).squeeze(-1)
        loss = value_loss(values, returns, batch.step_mask)
        self.optimizer_step(loss, "value loss", tokens=batch.step_mask.sum())
        return loss.item()


def sampled_fisher_product(policy: LMPolicy, batch: Rollout, temperature: float) -> Callable[[Tensor], Tensor]:
    """``v -> F v`` with ``F = J^T J / N``, ``J = d log pi(a_i | s_i) / d theta`` over the ``N`` sampled tokens.

    ``F`` is the Hessian of the sampled KL estimate ``mean((r - 1) - log r)`` at the old parameters. ``J v``
    comes from one forward-mode pass (``torch.func.jvp``) and ``J^T u`` from a reverse pass whose graph is
    built once per update: about half the cost of double backpropagation through a 49k-token softmax.
    """
    named = [(name, p) for name, p in policy.model.named_parameters() if p.requires_grad]
    if len(named) != len(policy.policy_parameters()):
        raise RuntimeError("the actor's trainable parameters do not match the LM's: cannot build Fisher products")
    names = [name for name, _ in named]
    primals = tuple(p.detach() for _, p in named)
    mask = batch.mask
    steps = batch.num_generated
    kwargs = {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "position_ids": position_ids(batch.attention_mask),
        "logits_to_keep": steps + 1,
    }

    def token_logprobs(*values: Tensor) -> Tensor:
        out = functional_call(policy.model, dict(zip(names, values, strict=True)), args=(), kwargs=kwargs)
        return learning_logprobs(out.logits[:, :-1].float(), batch.actions, temperature) * mask  # (B, T)

    _, pullback = vjp(token_logprobs, *primals)
    scale = 1.0 / mask.sum().clamp(min=1.0)

    def product(v: Tensor) -> Tensor:
        tangents = _unflatten(v, primals)
        _, jv = jvp(token_logprobs, primals, tangents)  # (B, T)
        return torch.cat([g.reshape(-1) for g in pullback(jv * scale)])

    return product


def _unflatten(flat: Tensor, like: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    parts, start = [], 0
    for tensor in like:
        parts.append(flat[start : start + tensor.numel()].view_as(tensor))
        start += tensor.numel()
    return tuple(parts)
