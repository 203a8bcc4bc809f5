"""DPO: direct preference optimisation (Rafailov et al. 2023), learning from preference pairs without a reward model.

The policy never acts while it learns: it reads a JSONL of preference pairs (``{"prompt", "chosen",
"rejected"}``, the format ``textgym label`` writes and ``textgym reward train`` reads). Per pair, with ``log pi(y)``
the summed token log-probs of a completion (EOS included, cut to the env's budget as an episode would be) and
``pi_ref`` the frozen reference (the adapter-off base under LoRA):

- implicit reward ``r(y) = beta (log pi(y) - log pi_ref(y))``;
- loss ``-(1 - eps) log sigmoid(r(chosen) - r(rejected)) - eps log sigmoid(r(rejected) - r(chosen))``, ``eps`` the
  label smoothing of conservative DPO (0: plain DPO).

Pairs whose prompt falls in the preference trainer's held-out split (:func:`textgym.rewards.preference.is_held_out`)
are not trained on: :meth:`DPO.preference_accuracy` reports how often the implicit reward orders them as the
labels do, the figure a reward model's held-out pairwise accuracy is compared with. Prompts are laid out as the
env shows them (its chat template included), so the policy learns on the inputs it acts on.

Example:
    >>> import pathlib
    >>> data = pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl"
    >>> _ = data.write_text('{"prompt": "abc", "chosen": "cba", "rejected": "abc"}\\n')
    >>> agent = DPO(model="tiny", env_id="TextGen-Reverse-v0", data=str(data), batch_size=2,
    ...             tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from agents.config import TrainConfig, option
from agents.offline import layout_texts
from agents.rollout import Rollout
from agents.trainer import Scored, Trainer


@dataclass
class DPOConfig(TrainConfig):
    data: str = option("", "preference pairs: a JSONL of prompt, chosen, rejected (what `textgym label` writes)")
    beta: float = option(
        0.1,
        "scale of the implicit reward beta * (log pi - log pi_ref): larger stays closer to the reference",
        low=0,
        low_inclusive=False,
    )
    label_smoothing: float = option(
        0.0, "conservative DPO: the assumed probability that a label is wrong", low=0, high=0.5, high_inclusive=False
    )
    kl_coef: float = option(0.0, "must be 0: DPO's pull to the reference is beta", low=0, high=0)


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor,
    reference_rejected: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """The mean DPO loss of a batch of pairs and the implicit rewards ``(loss, r_chosen, r_rejected)``.

    Each argument is ``(B,)``: a completion's summed log-prob under the policy or the reference.

    Example:
        >>> zero = torch.zeros(2)
        >>> loss, _, _ = dpo_loss(zero, zero, zero, zero, beta=0.1)
        >>> round(loss.item(), 4)  # log 2: no preference yet
        0.6931
    """
    r_chosen = beta * (policy_chosen - reference_chosen)
    r_rejected = beta * (policy_rejected - reference_rejected)
    margin = r_chosen - r_rejected
    logsigmoid = torch.nn.functional.logsigmoid
    loss = -(1 - label_smoothing) * logsigmoid(margin) - label_smoothing * logsigmoid(-margin)
    return loss.mean(), r_chosen.detach(), r_rejected.detach()


class DPO(Trainer):
    """Direct preference optimisation on a file of pairs; shares the trainers' loop, checkpoints and eval."""

    config_class: ClassVar[type[TrainConfig]] = DPOConfig
    config: DPOConfig
    algo: ClassVar[str] = "dpo"
    needs_values: ClassVar[bool] = False

    def __init__(self, config: DPOConfig | None = None, env: Any = None, policy: Any = None, **overrides: Any):
        super().__init__(config, env, policy, **overrides)
        from textgym.rewards.preference import is_held_out, load_pairs

        if not self.config.data:
            raise ValueError(
                "DPO learns from preference pairs: pass data=FILE (--data FILE), a JSONL of prompt, chosen, rejected"
            )
        if not self.single_turn_fast_path:
            raise ValueError(
                f"DPO lays its pairs out as single-turn TextGenVectorEnv episodes; {self.config.env_id!r} is not one"
            )
        if not self.policy.has_reference:
            raise ValueError("DPO needs the reference policy (the policy was built with reference=False)")
        pairs = load_pairs(self.config.data)
        self.pairs = [p for p in pairs if not is_held_out(p["prompt"])]
        self.held_out_pairs = [p for p in pairs if is_held_out(p["prompt"])]
        if not self.pairs:
            raise ValueError(f"{self.config.data}: every pair's prompt is in the held-out split; nothing to train on")
        self._reference: dict[tuple[str, str], float] = {}  # (prompt, completion) -> log pi_ref, computed once

    @property
    def uses_reference(self) -> bool:
        return True

    # -- data -----------------------------------------------------------------------------------------------

    def pair_batch(self, pairs: Sequence[dict[str, str]]) -> Rollout:
        """The chosen completions (first half of the rows) then the rejected ones, laid out as episodes."""
        setup = self.envs.setup
        prompts = [p["prompt"] for p in pairs] * 2
        texts = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
        return layout_texts(setup, prompts, texts, self.policy.device)

    def sequence_logprobs(self, batch: Rollout) -> Tensor:
        """Each row's summed completion log-prob under the policy, with gradients. -> (rows,)."""
        forward = self.policy.score_tokens(
            batch.input_ids, batch.attention_mask, batch.num_generated, self.config.temperature, with_entropy=False
        )
        return (forward.logprobs * batch.mask).sum(1)

    def reference_logprobs(self, batch: Rollout) -> Tensor:
        """Each row's summed completion log-prob under the reference (cached per text: it never changes)."""
        keys = list(zip(batch.prompts, batch.completions, strict=True))
        missing = [i for i, key in enumerate(keys) if key not in self._reference]
        if missing:
            rows = torch.as_tensor(missing, device=batch.input_ids.device)
            logprobs = self.policy.reference_logprobs(
                batch.input_ids[rows], batch.attention_mask[rows], batch.num_generated, self.config.temperature
            )
            for i, value in zip(missing, (logprobs * batch.mask[rows]).sum(1).tolist(), strict=True):
                self._reference[keys[i]] = value
        return torch.tensor([self._reference[key] for key in keys], device=batch.input_ids.device)

    # -- learning -------------------------------------------------------------------------------------------

    def train_iteration(self) -> dict[str, Any]:
        """One gradient step on the DPO loss of ``batch_size`` pairs drawn from ``(seed, iteration)``."""
        start = time.perf_counter()
        picks = np.random.default_rng([self.config.seed, self.iteration]).integers(
            len(self.pairs), size=self.config.batch_size
        )
        batch = self.pair_batch([self.pairs[i] for i in picks])
        n = len(picks)
        policy, reference = self.sequence_logprobs(batch), self.reference_logprobs(batch)
        loss, r_chosen, r_rejected = dpo_loss(
            policy[:n], policy[n:], reference[:n], reference[n:], self.config.beta, self.config.label_smoothing
        )
        grad_norm = self.optimizer_step(loss, "DPO loss")
        self.iteration += 1
        self.timesteps += batch.num_tokens
        seconds = time.perf_counter() - start
        return {
            "losses/dpo": loss.item(),
            "losses/grad_norm": grad_norm,
            "rewards/chosen": float(r_chosen.mean()),
            "rewards/rejected": float(r_rejected.mean()),
            "rewards/margin": float((r_chosen - r_rejected).mean()),
            "rewards/accuracy": float((r_chosen > r_rejected).float().mean()),
            "charts/tokens": batch.num_tokens,
            "charts/tokens_per_s": batch.num_tokens / seconds,
            "charts/episode_length": float(batch.mask.sum(1).mean()),
        }

    @torch.no_grad()
    def preference_accuracy(self, pairs: Sequence[dict[str, str]] | None = None, batch_size: int = 16) -> float:
        """How often the implicit reward scores the chosen completion above the rejected one (default: the
        held-out pairs; NaN when there are none)."""
        pairs = self.held_out_pairs if pairs is None else list(pairs)
        if not pairs:
            return float("nan")
        right = 0
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = self.pair_batch(chunk)
            implicit = self.sequence_logprobs(batch) - self.reference_logprobs(batch)
            right += int((implicit[: len(chunk)] > implicit[len(chunk) :]).sum())
        return right / len(pairs)

    def update(self, batch: Rollout, scored: Scored, forward: Any = None) -> dict[str, float]:
        raise NotImplementedError("DPO learns from its pairs in train_iteration, not from scored rollouts")
