"""Supervised warm start: behaviour cloning of the task's demonstrations (its references).

Each iteration draws ``batch_size`` train examples, lays each out as the env would (prompt left-padded
into the first ``max_prompt_tokens`` columns, then the demonstration's tokens and EOS) and takes one
gradient step on the mean negative log-likelihood of the demonstration tokens, scored with the same
one-forward :meth:`agents.policy.LMPolicy.evaluate` the RL algorithms use. A checkpoint of this run is a
starting point for them: ``--init-checkpoint RUN_DIR`` (its newest intact checkpoint).

Tasks with demonstrations: Arithmetic, Reverse, Headline, Concepts, Dialogue, NER, Translate and any ``TextGen-v0``
whose prompts carry references (see :meth:`textgym.tasks.Task.demonstration`).

Example:
    >>> agent = SFT(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, tensorboard=False,
    ...             progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agents.config import TrainConfig, option
from agents.offline import completion_ids, layout_batch
from agents.rollout import Rollout
from agents.trainer import Scored, Trainer


@dataclass
class SFTConfig(TrainConfig):
    kl_coef: float = option(0.0, "must be 0: SFT has no KL penalty", low=0, high=0)
    learning_rate: float = option(
        1e-3,
        "Adam learning rate (1e-3 suits the default LoRA adapter; ~1e-5 for full fine-tuning)",
        low=0,
        low_inclusive=False,
    )


class SFT(Trainer):
    """Behaviour cloning on the task's demonstrations; shares the RL trainers' loop, checkpoints and eval."""

    config_class: ClassVar[type[TrainConfig]] = SFTConfig
    config: SFTConfig
    algo: ClassVar[str] = "sft"
    needs_values: ClassVar[bool] = False

    def __init__(self, config: SFTConfig | None = None, env: Any = None, policy: Any = None, **overrides: Any):
        super().__init__(config, env, policy, **overrides)
        if not self.fast_path:
            raise ValueError("SFT reads the task's demonstrations through TextGenVectorEnv: use a textgym env id")
        task = self.envs.setup.task
        if any(task.demonstration(e) is None for e in task.examples("train")):
            raise ValueError(
                f"SFT needs a demonstration for every train example, and task {task.name!r} "
                f"({self.config.env_id}) lacks some: "
                "use an env whose examples carry references "
                "(Arithmetic, Reverse, Headline, Concepts, Dialogue, NER, Translate)"
            )

    def demonstration_batch(self, iteration: int) -> Rollout:
        """``batch_size`` train examples with their demonstrations, laid out as env observations."""
        setup, batch_size = self.envs.setup, self.config.batch_size
        examples = setup.task.examples("train")
        indices = np.random.default_rng([self.config.seed, iteration]).integers(len(examples), size=batch_size)
        chosen = [examples[i] for i in indices]
        demonstrations = [setup.task.demonstration(e) or "" for e in chosen]
        prompt_ids = setup.encode_many("train", indices.tolist(), chosen)
        targets = [completion_ids(setup, text) for text in demonstrations]
        return layout_batch(setup, prompt_ids, targets, self.policy.device, [e.prompt for e in chosen], demonstrations)

    def train_iteration(self) -> dict[str, Any]:
        """One gradient step on the demonstrations' mean token negative log-likelihood."""
        start = time.perf_counter()
        batch = self.demonstration_batch(self.iteration)
        forward = self.score_tokens(batch)
        nll = -(forward.logprobs * batch.mask).sum() / batch.mask.sum()
        grad_norm = self.optimizer_step(nll, "negative log-likelihood")
        self.iteration += 1
        self.timesteps += batch.num_tokens
        seconds = time.perf_counter() - start
        return {
            "losses/nll": nll.item(),
            "losses/grad_norm": grad_norm,
            "charts/tokens": batch.num_tokens,
            "charts/tokens_per_s": batch.num_tokens / seconds,
            "charts/episode_length": float(batch.mask.sum(1).mean()),
        }

    def update(self, batch: Rollout, scored: Scored, forward: Any = None) -> dict[str, float]:
        raise NotImplementedError("SFT learns from demonstrations in train_iteration, not from scored rollouts")
