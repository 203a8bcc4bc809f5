"""The training loop every algorithm shares (SB3's template method): ``learn`` = collect + ``update``.

An algorithm subclasses :class:`Trainer`, sets ``config_class`` and implements :meth:`Trainer.update`;
everything else lives here once: building the policy and envs, rollouts, the per-token KL penalty,
exploration schedules, evaluation on the held-out split, metrics, checkpoints and resuming.

Determinism: iteration ``i`` seeds its prompts and its sampling from ``(seed, i)``, so a run resumed from a
checkpoint continues exactly as the uninterrupted run would (same weights, seeded, on CPU).

Run folders and checkpoints: see :mod:`agents.run_dir` (one writer at a time, the last two checkpoints) and
:mod:`agents.checkpoint` (safetensors + JSON with a checksum; loading never unpickles). A checkpoint's config
is data: when rebuilding from it would import code (a ``"module:attr"`` reward, an env id with a module, a
function recorded by name), :meth:`Trainer.load` refuses unless the caller passes the env or its kwargs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from agents.checkpoint import CheckpointError, code_in, plain_data, read_checkpoint, write_checkpoint
from agents.config import TrainConfig, merge_config
from agents.critic import warm_start_value_head
from agents.distributed import DATA_PARALLEL_ALGOS, DataParallel
from agents.evaluation import evaluate_policy
from agents.logger import MetricLogger, truncate_metrics
from agents.losses import (
    AdaptiveKLController,
    FixedKLController,
    group_diversity,
    kl_penalty,
    masked_whiten,
    normalize_scores,
)
from agents.policy import LMPolicy, TokenScores
from agents.rollout import Rollout, check_textgen_spaces, collect, collect_generic
from agents.run_dir import CHECKPOINT, RunDir, RunDirError
from agents.sampling import SamplingConfig, Schedule, config_at, sample

Callback = Callable[["Trainer", dict[str, Any]], bool | None]


@dataclass
class Scored:
    """A rollout scored by the current policy before the update (no gradients), all ``(B, T)``."""

    logprobs: Tensor
    values: Tensor | None
    kl: Tensor
    rewards: Tensor


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no CUDA device")
    return device


PROGRESS_FIGURES = {"charts/score_mean": "reward", "charts/kl": "kl", "losses/nll": "nll"}


def progress_figures(metrics: dict[str, Any]) -> dict[str, str]:
    """The progress bar's figures of an iteration: those of :data:`PROGRESS_FIGURES` the algorithm logs.

    Example:
        >>> progress_figures({"charts/score_mean": 0.25, "charts/kl": 0.1, "losses/policy": 1.0})
        {'reward': '0.250', 'kl': '0.100'}
    """
    return {label: f"{metrics[key]:.3f}" for key, label in PROGRESS_FIGURES.items() if key in metrics}


class Trainer:
    """Base class of the algorithms. See :mod:`agents.ppo` for a complete one.

    Args:
        config: the algorithm's config (its ``config_class``); defaults when ``None``.
        env: a Gymnasium vector env with TextGen spaces; built from ``config.env_id`` when ``None``.
        policy: an :class:`LMPolicy`; loaded from ``config.model`` when ``None``.
        overrides: config fields to change, e.g. ``learning_rate=1e-5`` (unknown names are errors).
    """

    config_class: ClassVar[type[TrainConfig]] = TrainConfig
    algo: ClassVar[str] = "base"
    needs_values: ClassVar[bool] = True
    actor_critic: ClassVar[bool] = False  # the value head is a GAE critic (value_init='reward' may start it)

    def __init__(
        self,
        config: TrainConfig | None = None,
        env: gym.vector.VectorEnv | None = None,
        policy: LMPolicy | None = None,
        **overrides: Any,
    ) -> None:
        config = config or self.config_class()
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = merge_config(config, overrides)
        device = resolve_device(self.config.device)
        self.parallel = DataParallel.from_environment(device)
        self.device = self._process_device(device)
        self._check_parallel()
        self.schedules = {name: Schedule.parse(value) for name, value in self.config.schedules.items()}
        self.base_sampling = SamplingConfig(
            self.config.temperature,
            self.config.top_k,
            self.config.top_p,
            self.config.logit_noise,
            self.config.mask_prob,
            self.config.mask_top,
            epsilon=self.config.epsilon,
        )
        config_at(self.base_sampling, self._sampling_schedules(), 0)  # validates schedule names early
        torch.manual_seed(self.config.seed)
        self.policy = policy or self._build_policy()
        if self.config.init_checkpoint is not None:
            self.load_initial_weights(self.config.init_checkpoint)
        self.envs = env or self._build_envs()
        check_textgen_spaces(self.envs.single_observation_space, self.envs.single_action_space)
        self._check_vocab()
        self._check_groups()
        self._check_value_init()
        self.optimizer = self._build_optimizer()
        self.kl_controller = self._build_kl_controller()
        self.iteration, self.timesteps = 0, 0
        self._logger: MetricLogger | None = None
        self.run = RunDir(self.config.run_dir)
        self._owns_run = False  # whether this trainer started or resumed the run in run_dir
        self._saved_iteration: int | None = None
        self._progress: Any = None  # learn()'s progress bar while it runs
        self.last_evaluation: tuple[int, dict[str, Any]] | None = None  # (iteration, metrics) of learn()'s last eval
        self.loaded_from: Path | None = None  # the checkpoint file this trainer was loaded from (Trainer.load)
        self.value_initialized = False  # whether learn() fitted the value head (value_init='reward')

    # -- construction -------------------------------------------------------------------------------------

    def _process_device(self, device: str) -> str:
        """The device of this process: under data-parallel CUDA training, the GPU of its ``LOCAL_RANK``."""
        if self.parallel.enabled and device == "cuda":
            return f"cuda:{self.parallel.local_rank}"
        return device

    def _check_parallel(self) -> None:
        """Data-parallel runs need an algorithm written for them and a batch that splits evenly over the ranks."""
        if not self.parallel.enabled:
            return
        world, c = self.parallel.world_size, self.config
        if self.algo not in DATA_PARALLEL_ALGOS:
            raise ValueError(
                f"{self.algo} does not train data-parallel yet ({world} processes): use one of {DATA_PARALLEL_ALGOS} "
                "or a single process"
            )
        if c.batch_size % world or (c.batch_size // world) % c.samples_per_prompt:
            raise ValueError(
                f"batch_size {c.batch_size} must split into {world} processes of whole prompt groups "
                f"(samples_per_prompt {c.samples_per_prompt})"
            )

    @property
    def uses_reference(self) -> bool:
        return self.config.kl_coef > 0 or self.config.kl_target is not None

    def _build_policy(self) -> LMPolicy:
        # under LoRA the reference (the adapter-off base) costs nothing: keep it, so evaluations report the KL
        reference = self.uses_reference or self.config.lora_rank > 0
        kwargs = {
            "value_head": self.needs_values,
            "reference": reference,
            "lora_rank": self.config.lora_rank,
            "fast_decode": self.config.fast_decode,
        }
        return LMPolicy.from_pretrained(self.config.model, device=self.device, seed=self.config.seed, **kwargs)

    @property
    def tokenizer(self) -> Any:
        """The env's tokenizer: ``env_kwargs['tokenizer']`` if given, else the model's own."""
        setup = getattr(self.envs, "setup", None)
        if setup is not None:
            return setup.tokenizer
        from textgym.models import load_tokenizer

        chosen = self.config.env_kwargs.get("tokenizer", self.config.model)
        return load_tokenizer(chosen) if isinstance(chosen, str) else chosen

    def _build_envs(self) -> gym.vector.VectorEnv:
        """textgym ids get the model's tokenizer and the fast vector env; other ids a ``SyncVectorEnv``."""
        spec = gym.spec(self.config.env_id)
        kwargs = dict(self.config.env_kwargs)
        if str(spec.entry_point).startswith("textgym."):
            kwargs.setdefault("tokenizer", self.config.model)  # the model's own ("tiny" has the default one)
        fast = {"textgym.vector:TextGenVectorEnv", "textgym.multiturn:MultiTurnVectorEnv"}
        mode = "vector_entry_point" if spec.vector_entry_point in fast else "sync"
        if mode == "vector_entry_point":
            kwargs["device"] = self.device
        if self.parallel.enabled and mode != "vector_entry_point":
            raise ValueError("data-parallel training needs a textgym env id (the fast vector env)")
        num_envs = self.config.batch_size // self.parallel.world_size  # this process's share of the batch
        return gym.make_vec(self.config.env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)

    def _check_vocab(self) -> None:
        actions = int(self.envs.single_action_space.n)
        if actions > self.policy.vocab_size:
            raise ValueError(
                f"the env's tokenizer has {actions} tokens but the model's vocabulary only {self.policy.vocab_size}: "
                "use the model's own tokenizer for the env"
            )

    def optimized_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer updates and the gradient clipping spans: the policy's trainable weights (ILQL adds
        its Q heads)."""
        return self.policy.trainable_parameters()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.optimized_parameters(), lr=self.config.learning_rate)

    def _build_kl_controller(self) -> AdaptiveKLController | FixedKLController:
        if self.config.kl_target is not None:
            return AdaptiveKLController(self.config.kl_coef, self.config.kl_target, self.config.kl_horizon)
        return FixedKLController(self.config.kl_coef)

    @property
    def fast_path(self) -> bool:
        """Whether rollouts use the batched ``TextGenVectorEnv`` interface (else the generic Gymnasium one)."""
        from textgym.vector import TextGenVectorEnv

        return isinstance(self.envs, TextGenVectorEnv)

    @property
    def single_turn_fast_path(self) -> bool:
        """Whether the env is a single-turn ``TextGenVectorEnv``: the episode layout offline data and replay use."""
        return self.fast_path and not self.envs.setup.task.multi_turn

    # -- one iteration --------------------------------------------------------------------------------------

    def _sampling_schedules(self) -> dict[str, Schedule]:
        return {k: v for k, v in self.schedules.items() if k != "entropy_coef"}

    def sampling_at(self, iteration: int) -> SamplingConfig:
        """The exploration settings of ``iteration`` (base config with the schedules applied)."""
        return config_at(self.base_sampling, self._sampling_schedules(), iteration)

    def entropy_coef_at(self, iteration: int) -> float:
        schedule = self.schedules.get("entropy_coef")
        return schedule(iteration) if schedule is not None else self.config.entropy_coef

    def _generator(self, salt: int) -> torch.Generator:
        rank_salt = self.parallel.rank * 7_777_777  # each process samples with its own stream
        return torch.Generator(self.device).manual_seed(self.config.seed * 1_000_003 + salt + rank_salt)

    def prompt_options(self, iteration: int) -> dict[str, Any]:
        """``reset`` options for the rollout of ``iteration``: with ``samples_per_prompt = k > 1``, groups of
        ``k`` consecutive envs share one train prompt, drawn from ``(seed, iteration)``."""
        k = self.config.samples_per_prompt
        if k == 1:
            return {}
        rng = np.random.default_rng([self.config.seed, iteration])
        drawn = rng.integers(len(self.envs.setup.task.examples("train")), size=self.config.batch_size // k)
        mine: np.ndarray = np.repeat(drawn, k)[self.parallel.rank * self.envs.num_envs :][: self.envs.num_envs]
        return {"prompt_index": mine.tolist()}

    def _check_groups(self) -> None:
        """Prompt groups must tile the batch, and the group normalizations need groups of 2 or more."""
        c = self.config
        if c.diversity_coef > 0 and c.samples_per_prompt < 2:
            raise ValueError(
                f"diversity_coef={c.diversity_coef} rewards differing from the other samples of a prompt: it needs "
                f"samples_per_prompt >= 2, got {c.samples_per_prompt}"
            )
        if c.score_normalization in ("group", "leave_one_out") and c.samples_per_prompt < 2:
            raise ValueError(
                f"score_normalization={c.score_normalization!r} compares samples of one prompt: it needs "
                f"samples_per_prompt >= 2, got {c.samples_per_prompt}"
            )
        if c.samples_per_prompt > 1 and c.batch_size % c.samples_per_prompt:
            raise ValueError(
                f"samples_per_prompt ({c.samples_per_prompt}) must divide batch_size ({c.batch_size}): each "
                "prompt's samples fill consecutive envs"
            )
        if c.samples_per_prompt > 1 and not self.fast_path:
            raise ValueError("samples_per_prompt > 1 groups prompts through TextGenVectorEnv: use a textgym env id")

    def _check_value_init(self) -> None:
        if self.config.value_init != "reward":
            return
        if not self.actor_critic:
            raise ValueError(
                f"value_init='reward' starts an actor-critic's value head: {self.algo} has no critic (use a2c, ppo "
                "or trpo)"
            )
        if self.parallel.enabled:
            raise ValueError("value_init='reward' runs in a single process only")

    def collect_rollout(self, iteration: int, salt: int = 0) -> Rollout:
        """One batch of episodes with the exploration settings of ``iteration``, seeded by it and ``salt`` (a
        batch drawn outside the training iterations, such as the critic's warm start, uses its own salt)."""
        sampling, generator = self.sampling_at(iteration), self._generator(iteration + salt)
        # sub-env i of the global batch plays seed + i: this process's envs are rows rank * n .. rank * n + n - 1
        seed = self.config.seed * 7919 + iteration + salt + self.parallel.rank * self.envs.num_envs
        if self.fast_path:
            return collect(
                self.envs, self.policy, sampling, generator, seed=seed, options=self.prompt_options(iteration + salt)
            )
        return collect_generic(self.envs, self.policy, sampling, self.envs.num_envs, generator, seed=seed)

    def score_tokens(self, batch: Rollout) -> TokenScores:
        """The policy's log-probs, entropy and values of a whole batch at the current parameters (one forward)."""
        return self.policy.score_tokens(
            batch.input_ids, batch.attention_mask, batch.num_generated, self.config.temperature
        )

    @property
    def one_pass_update(self) -> bool:
        """Whether :meth:`update` takes one gradient step over the whole batch at the parameters it was scored
        with. Then :meth:`train_iteration` runs a single forward for both, which :meth:`score` reads detached
        (as TRL does with one iteration per batch), instead of a scoring forward and then an update forward."""
        return False

    @torch.no_grad()
    def score(self, batch: Rollout, forward: TokenScores | None = None) -> Scored:
        """Log-probs and values before the update, per-token KL to the reference, and per-token rewards.

        Rewards: ``-kl_coef * KL_t`` on every generated token plus the task score on the last one (TRL's
        dense KL shaping with a terminal score); an env with ``dense_reward=True`` pays part of the score on
        earlier tokens, which stay where they were paid (the last token then carries the normalised total less
        the raw total). ``forward``: the batch's forward at the current parameters
        when there is one already (see :attr:`one_pass_update`).
        """
        ev = forward if forward is not None else self.score_tokens(batch)
        logprobs = ev.logprobs.detach()
        kl = torch.zeros_like(logprobs)
        if self.uses_reference:
            ref = self.policy.reference_logprobs(
                batch.input_ids, batch.attention_mask, batch.num_generated, self.config.temperature
            )
            kl = kl_penalty(logprobs, ref, self.config.kl_estimator) * batch.mask
        rewards = -self.kl_controller.value * kl
        steps = batch.step_mask
        last = (steps.sum(1).long() - 1).clamp(min=0)  # (B,) index of each episode's last token
        task_scores = self.normalized_scores(self.shaped_scores(batch))
        if batch.token_rewards is not None:  # a dense reward: paid where the env paid it, the total normalised
            rewards = rewards + batch.token_rewards.to(rewards.dtype)
            task_scores = task_scores - batch.scores
        rewards[torch.arange(len(last), device=rewards.device), last] += task_scores
        values = None if ev.values is None else ev.values.detach() * steps
        return Scored(logprobs * batch.mask, values, kl, rewards * steps)

    def normalized_scores(self, scores: Tensor) -> Tensor:
        """``score_normalization`` of this process's episode scores, with the statistics of the global batch."""
        c = self.config
        everyone = self.parallel.gather(scores)
        return self.parallel.local_slice(normalize_scores(everyone, c.score_normalization, c.samples_per_prompt))

    def whiten_advantages(self, advantages: Tensor, mask: Tensor) -> Tensor:
        """Advantages whitened over the global batch's tokens (:func:`agents.losses.masked_whiten`)."""
        return masked_whiten(advantages, mask, total=self.parallel.sum if self.parallel.enabled else None)

    def global_mean(self, values: Tensor) -> float:
        """The mean over every process's ``values`` (each process holds as many)."""
        return float(self.parallel.sum(values.float().mean().reshape(1))) / self.parallel.world_size

    def shaped_scores(self, batch: Rollout) -> Tensor:
        """The episodes' task scores plus the diversity bonus (``diversity_coef`` times
        :func:`agents.losses.group_diversity` over each prompt's samples) when one is asked for."""
        if self.config.diversity_coef == 0:
            return batch.scores
        diversity = group_diversity(batch.actions, batch.mask, self.config.samples_per_prompt)
        return batch.scores + self.config.diversity_coef * diversity.to(batch.scores.dtype)

    def update(self, batch: Rollout, scored: Scored, forward: TokenScores | None = None) -> dict[str, float]:
        """Improve the policy from one scored batch; returns namespaced metrics (``losses/...``).

        ``forward``: the batch's forward (with gradients) at the current parameters, given when
        :attr:`one_pass_update` is True; an update that needs that forward runs it itself when it is None.
        """
        raise NotImplementedError

    def optimizer_step(self, loss: Tensor, what: str = "loss", tokens: Tensor | None = None) -> float:
        """Backward, clip, step. A non-finite loss stops training with a clear error (no step taken).

        ``tokens``: what the loss averages over in this process (its masked tokens). Data-parallel, each process's
        gradient counts in proportion to it, so the step is that of the global batch's mean; without it the
        processes count equally."""
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{self.algo}: {what} is {loss.item()} at iteration {self.iteration}; training stopped before "
                f"the step. The last good checkpoint is kept in {self.config.run_dir!r}."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        share = self.parallel.share(tokens) if tokens is not None else 1.0 / self.parallel.world_size
        self.parallel.combine_gradients(self.optimized_parameters(), share)
        norm = torch.nn.utils.clip_grad_norm_(self.optimized_parameters(), self.config.max_grad_norm)
        if not torch.isfinite(norm):
            raise FloatingPointError(
                f"{self.algo}: the gradient of the {what} is {norm.item()} at iteration {self.iteration}; training "
                f"stopped before the step. The last good checkpoint is kept in {self.config.run_dir!r}."
            )
        self.optimizer.step()
        return float(norm)

    def check_finite_parameters(self) -> None:
        """Raise before a checkpoint would save non-finite weights."""
        norms = torch._foreach_norm([p.detach() for p in self.policy.trainable_parameters()])
        if not torch.isfinite(torch.stack(norms)).all():
            raise FloatingPointError(
                f"{self.algo}: the weights became non-finite at iteration {self.iteration}; not saving them. "
                f"The last good checkpoint is kept in {self.config.run_dir!r}."
            )

    # -- the loop -------------------------------------------------------------------------------------------

    def learn(self, total_timesteps: int | None = None, callback: Callback | None = None) -> Trainer:
        """Train until ``total_timesteps`` generated tokens (default: the config's); SB3-style.

        ``callback(trainer, metrics)`` runs after every iteration; returning ``False`` stops training.

        The run folder (``run_dir``) is locked while this runs: a second training into it fails naming this
        process. A folder that already holds a run (metrics or a checkpoint) is an error unless this trainer
        resumed it (:meth:`resume`) or ``overwrite`` is set, which deletes the old run's files first.
        Temporary files left by a crash are deleted. Checkpoints go to ``run_dir/checkpoint.safetensors``
        every ``save_every`` iterations and at the end; the one before is kept as ``checkpoint.prev.safetensors``.

        Raises:
            RunDirError: the run folder is a file, not writable, in use, or holds another run.
            CheckpointWriteError: a checkpoint could not be written (the previous one is intact).
            FloatingPointError: a non-finite loss, gradient or weight (the last good checkpoint is kept).
        """
        from tqdm.auto import tqdm

        total = total_timesteps if total_timesteps is not None else self.config.total_timesteps
        main = self.parallel.is_main  # data-parallel: only rank 0 writes (run folder, metrics, evaluations)
        if main:
            self._start_run()
        bar = tqdm(
            total=total,
            initial=min(self.timesteps, total),
            desc=f"{self.algo} {self.config.env_id}",
            unit="tok",
            disable=not self.config.progress or not main,
        )
        self._progress = bar
        try:
            logger = self._open_logger() if main else None
            if logger is not None:
                logger.log_config(self.state_dict_config())
            if self.iteration == 0 and self.config.value_init == "reward" and not self.value_initialized:
                self.show_phase("critic init")
                fit = warm_start_value_head(self, self.config.value_init_episodes)
                self.timesteps += int(fit["critic_init/tokens"])  # the fit's episodes are samples of the budget too
                if logger is not None:
                    logger.log(fit, self.timesteps, 0)
                self.value_initialized = True
            while self.timesteps < total:
                metrics = self.train_iteration()
                bar.update(min(metrics["charts/tokens"], total - bar.n))
                bar.set_postfix(progress_figures(metrics))
                if main and self.config.eval_every and self.iteration % self.config.eval_every == 0:
                    self.show_phase("eval")
                    metrics.update(self.evaluate())
                    self.last_evaluation = (self.iteration, metrics)
                if logger is not None:
                    logger.log(metrics, self.timesteps, self.iteration)
                if main and self.config.save_every and self.iteration % self.config.save_every == 0:
                    self._save_run_checkpoint()
                stop = callback is not None and callback(self, metrics) is False
                if self.parallel.enabled:  # every process stops together when any callback asks
                    stop = bool(self.parallel.sum(torch.tensor([float(stop)], device=self.device)) > 0)
                if stop:
                    break
            if main and self._saved_iteration != self.iteration:
                self._save_run_checkpoint()
        finally:
            self._progress = None
            bar.close()
            if main:
                self._end_run()
        return self

    def show_phase(self, phase: str) -> None:
        """Name the part of the iteration running now (rollout, update, eval) on the progress bar."""
        if self._progress is not None:
            self._progress.set_description_str(f"{self.algo} {self.config.env_id} [{phase}]")

    def final_evaluation(self) -> dict[str, Any]:
        """The held-out evaluation of the policy as it is now: the periodic one of this iteration when
        :meth:`learn` just ran it, else a fresh :meth:`evaluate`."""
        if self.last_evaluation is not None and self.last_evaluation[0] == self.iteration:
            return {k: v for k, v in self.last_evaluation[1].items() if k.startswith("eval/")}
        return self.evaluate()

    def _start_run(self) -> None:
        """Lock ``run_dir`` and make sure this trainer may write there (see :meth:`learn`)."""
        self.run.acquire()
        if self._owns_run:
            return
        try:
            found = self.run.existing_run()
            if found and not self.config.overwrite:
                raise RunDirError(
                    f"run dir {self.config.run_dir!r} already holds a run ({', '.join(found)}): continue it with "
                    "--resume (Trainer.resume()), replace it with --overwrite (overwrite=True), or choose another "
                    "run_dir"
                )
            if found:
                self.run.clear()
        except BaseException:
            self.run.release()
            raise
        self._owns_run = True

    def _end_run(self) -> None:
        """Close the metrics file and unlock ``run_dir`` (another process may then resume the run)."""
        if self._logger is not None:
            self._logger.close()
            self._logger = None
        self.run.release()

    def _save_run_checkpoint(self) -> None:
        """Write ``run_dir``'s checkpoint; the one it replaces is kept as the previous checkpoint."""
        self.check_finite_parameters()
        write_checkpoint(self.state_dict(), self.run.checkpoint, previous=self.run.previous)
        self._saved_iteration = self.iteration

    def train_iteration(self) -> dict[str, Any]:
        """Collect one batch, score it, update; returns the iteration's metrics."""
        start = time.perf_counter()
        self.show_phase("rollout")
        batch = self.collect_rollout(self.iteration)
        rollout_seconds = time.perf_counter() - start
        self.show_phase("update")
        forward = self.score_tokens(batch) if self.one_pass_update else None  # shared by score and update
        scored = self.score(batch, forward)
        stats = self.update(batch, scored, forward)
        del forward  # frees the forward's activations before the metrics
        episode_kl = self.global_mean(scored.kl.sum(1))  # KL to the reference per episode, before the update
        tokens = int(self.parallel.sum(batch.mask.sum().reshape(1)))  # generated by every process
        self.kl_controller.update(episode_kl, tokens)
        self.iteration += 1
        self.timesteps += tokens
        seconds = time.perf_counter() - start
        scores = self.parallel.gather(batch.scores)
        return {
            "charts/score_mean": float(scores.mean()),
            "charts/score_std": float(scores.std()) if len(scores) > 1 else 0.0,
            "charts/kl": episode_kl,
            "charts/kl_coef": float(self.kl_controller.value),
            "charts/episode_length": self.global_mean(batch.mask.sum(1)),
            "charts/tokens": tokens,
            "charts/tokens_per_s": tokens / seconds,
            "charts/rollout_fraction": rollout_seconds / seconds,
            "charts/temperature": self.sampling_at(self.iteration - 1).temperature,
            **stats,
        }

    def evaluate(self, num_episodes: int | None = None, scorers: Sequence[str] = ()) -> dict[str, Any]:
        """Held-out quality of the policy (:func:`agents.evaluation.evaluate_policy`): task reward, KL and perplexity
        under the reference, independent ``scorers``, distinct-n, samples.

        Samples with the configured temperature, top-k and top-p, without the exploration noise and masking, on
        the first ``num_episodes`` (default ``eval_episodes``) prompts of the eval split, seeded from the run's
        seed: evaluations along a run are comparable. Needs the fast path (a ``TextGenVectorEnv``).
        """
        if not self.fast_path:
            raise ValueError("evaluate() needs a TextGenVectorEnv (the generic path has no held-out split option)")
        sampling = self.evaluation_sampling()
        n = num_episodes or self.config.eval_episodes
        return evaluate_policy(self.acting_policy, self.envs, sampling, n, seed=self.config.seed, scorers=scorers)

    @property
    def acting_policy(self) -> Any:
        """What :meth:`evaluate` and :meth:`predict` sample from: the LM policy (ILQL tilts it by its Q heads)."""
        return self.policy

    def evaluation_sampling(self) -> SamplingConfig:
        """How :meth:`evaluate` samples: the configured temperature, top-k and top-p, without exploration noise,
        masking or epsilon."""
        return SamplingConfig(self.config.temperature, self.config.top_k, self.config.top_p)

    # -- SB3-style API ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self,
        observation: dict[str, Any],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Next token(s) for TextGen observations (one ``(L,)`` or a batch ``(N, L)``), with SB3's signature, so
        ``stable_baselines3.common.evaluation.evaluate_policy`` runs on a native agent. The policy reads the whole
        prefix, so it keeps no recurrent ``state`` (returned as ``None``) and ignores ``episode_start``."""
        ids, mask = (_as_tensor(observation[key], self.acting_policy.device) for key in ("input_ids", "attention_mask"))
        single = ids.dim() == 1
        ids, mask = (ids[None], mask[None]) if single else (ids, mask)
        logits = self.acting_policy.next_token_logits(ids, mask)[:, : self.envs.single_action_space.n]
        sampling = dataclasses.replace(self.sampling_at(self.iteration), greedy=deterministic)
        tokens, _ = sample(logits, sampling)
        actions = tokens.cpu().numpy()
        return (actions[0] if single else actions), None

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as tensors and plain data. Only trainable weights are saved (the adapter
        under LoRA): the frozen base and reference are rebuilt from the model name. Config values that are not
        plain data (a reward function) are recorded by name only (see :func:`agents.checkpoint.plain_data`)."""
        policy_state = {k: p.detach().clone() for k, p in self.policy.named_parameters() if p.requires_grad}
        return {
            "algo": self.algo,
            "config": self.state_dict_config(),
            "iteration": self.iteration,
            "timesteps": self.timesteps,
            "policy": policy_state,
            "optimizer": self.optimizer.state_dict(),
            "kl_controller": self.kl_controller.state_dict(),
            "extra": self.extra_state(),
        }

    def state_dict_config(self) -> dict[str, Any]:
        """The config as plain data (a reward function by name only; see :func:`agents.checkpoint.plain_data`)."""
        return plain_data({f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)})

    def extra_state(self) -> dict[str, Any]:
        """Algorithm state beyond weights and optimizer (e.g. a moving-average baseline)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint file atomically (temporary file, then rename); refuses non-finite weights.

        The file is safetensors with the rest of the state as JSON (see :mod:`agents.checkpoint`), whatever
        its name.

        Raises:
            FloatingPointError: non-finite weights (nothing is written).
            CheckpointWriteError: the file could not be written; a file already at ``path`` is unchanged.
        """
        self.check_finite_parameters()
        path = Path(path)
        write_checkpoint(self.state_dict(), path)
        return path

    def save_pretrained(
        self,
        out_dir: str | Path,
        evaluation: dict[str, Any] | None = None,
        overwrite: bool = False,
        push_to_hub: str | None = None,
    ) -> Path:
        """Export the policy as a Hugging Face model folder (LoRA merged, tokenizer, model card), optionally
        uploaded to the hub; see :func:`agents.export.export_pretrained`."""
        from agents.export import export_pretrained

        return export_pretrained(self, out_dir, evaluation, overwrite, push_to_hub)

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore weights, optimizer, counters and controllers from :meth:`state_dict`."""
        if state.get("algo") != self.algo:
            raise ValueError(f"checkpoint is for algo {state.get('algo')!r}, not {self.algo!r}")
        problem = self._weights_mismatch(state["policy"], fresh_value_head=False)
        if problem:
            raise ValueError(
                f"checkpoint does not match the policy (same model and lora_rank needed; the checkpoint's "
                f"lora_rank is {state['config'].get('lora_rank')}, this trainer's {self.config.lora_rank}): {problem}"
            )
        self._copy_weights(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl_controller.load_state_dict(state["kl_controller"])
        self.iteration, self.timesteps = state["iteration"], state["timesteps"]
        self._saved_iteration = self.iteration  # that checkpoint is on disk: finishing now need not rewrite it
        self.load_extra_state(state["extra"])

    def _weights_mismatch(self, weights: dict[str, Tensor], fresh_value_head: bool) -> str:
        """What keeps ``weights`` from loading into the policy (names and shapes), or ``""``; checked before
        anything is copied, so a mismatch leaves the trainer as it was."""
        own = dict(self.policy.named_parameters())
        unknown = sorted(set(weights) - set(own))
        missing = sorted(
            k
            for k, p in own.items()
            if p.requires_grad and k not in weights and not (fresh_value_head and k.startswith("value_head."))
        )
        shapes = sorted(k for k in set(weights) & set(own) if tuple(weights[k].shape) != tuple(own[k].shape))
        if unknown or missing or shapes:
            return f"unexpected weights {unknown[:3]}, missing {missing[:3]}, other shapes {shapes[:3]}"
        return ""

    @torch.no_grad()
    def _copy_weights(self, weights: dict[str, Tensor]) -> None:
        own = dict(self.policy.named_parameters())
        for name, value in weights.items():
            own[name].copy_(value)

    def load_initial_weights(self, path: str | Path) -> None:
        """Start from the policy weights of another run's checkpoint (e.g. SFT's), whatever its algorithm.

        Every weight the checkpoint holds must exist in this policy (same model and ``lora_rank``); a value
        head the checkpoint lacks keeps its fresh initialisation. Under full fine-tuning the reference copy
        takes the same weights, so the KL penalty keeps the policy near the warm start; under LoRA the
        reference stays the adapter-off base model.
        """
        state, source = _read_state(path)
        problem = self._weights_mismatch(state["policy"], fresh_value_head=True)
        if problem:
            raise CheckpointError(
                f"init checkpoint {str(source)!r} does not fit this policy (same model and lora_rank needed): {problem}"
            )
        self._copy_weights(state["policy"])
        with torch.no_grad():
            reference = getattr(self.policy, "reference", None)
            if reference is not None and not self.policy.uses_lora:
                reference.load_state_dict(self.policy.model.state_dict())

    @classmethod
    def load(cls, path: str | Path, env: gym.vector.VectorEnv | None = None, **overrides: Any) -> Trainer:
        """Rebuild a trainer from a checkpoint (its saved config, with ``overrides``) and restore its state.

        Args:
            path: a checkpoint file, or a run folder (its newest intact checkpoint).
            env: the vector env to use instead of building one from the saved config.
            overrides: config fields to change, e.g. ``env_kwargs={...}`` or ``run_dir="runs/next"``.

        Raises:
            CheckpointError: a damaged file, another algo's checkpoint, or a saved config that would import
                code to build the env (a ``"module:attr"`` reward, a function): pass ``env`` or
                ``env_kwargs`` yourself if you trust it.
        """
        state, source = _read_state(path)
        return cls._from_state(state, source, env, overrides)

    @classmethod
    def _from_state(
        cls, state: dict[str, Any], source: Path, env: gym.vector.VectorEnv | None, overrides: dict[str, Any]
    ) -> Trainer:
        if state.get("algo") != cls.algo:
            raise CheckpointError(
                f"checkpoint {str(source)!r} is for algo {state.get('algo')!r}, not {cls.algo!r}: load it with "
                "agents.trainer.load_trainer"
            )
        saved = {k: v for k, v in state["config"].items() if k != "overwrite"}  # an action, not a setting
        if env is None:
            _refuse_code(saved, overrides, source)
        trainer = cls(merge_config(cls.config_class(), {**saved, **overrides}), env=env)
        trainer.load_state(state)
        trainer.loaded_from = source
        return trainer

    def resume(self) -> bool:
        """Continue the run in ``run_dir`` from its newest intact checkpoint; returns whether there was one.

        Takes the run folder's lock (held until :meth:`learn` ends or :meth:`close`), drops the metrics
        recorded after the checkpoint (all of them when there is none yet) and keeps this trainer's config.
        A damaged newest checkpoint is set aside (``.damaged``) and the previous one used, with a warning.

        Raises:
            ValueError: ``overwrite`` is set too (resuming and starting over exclude each other).
            RunDirError: the folder is unusable or in use by another process.
            CheckpointError: every checkpoint in the folder is damaged.
        """
        if self.config.overwrite:
            raise ValueError("resume and overwrite exclude each other: drop one of them")
        if not self.parallel.is_main:  # data-parallel: load what rank 0 resumed from, once it has chosen
            self.parallel.barrier()
            found = self.run.latest_checkpoint()
            if found is not None:
                self.load_state(_check_state(*found))
            return found is not None
        try:
            return self._resume_run()
        finally:
            self.parallel.barrier()

    def _resume_run(self) -> bool:
        self.run.acquire()
        try:
            found = self.run.latest_checkpoint()
            if found is not None:
                self.load_state(_check_state(*found))
            if self.run.metrics.exists():
                truncate_metrics(self.run.path, self.iteration)
        except BaseException:
            self.run.release()
            raise
        self._owns_run = True
        return found is not None

    def _open_logger(self) -> MetricLogger:
        if self._logger is None:
            self._logger = MetricLogger(self.config.run_dir, self.config.tensorboard)
        return self._logger

    def close(self) -> None:
        self._end_run()
        self.envs.close()


def _as_tensor(value: Any, device: torch.device) -> Tensor:
    """An observation field (a tensor on any device, a NumPy array or a list) as a tensor on ``device``."""
    return value.to(device) if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value), device=device)


def _read_state(path: str | Path) -> tuple[dict[str, Any], Path]:
    """A checkpoint file's state, or a run folder's newest intact one; with the file it came from."""
    path = Path(path)
    if not path.is_dir():
        return _check_state(read_checkpoint(path), path), path
    found = RunDir(path).latest_checkpoint()
    if found is None:
        raise FileNotFoundError(f"run dir {str(path)!r} holds no checkpoint ({CHECKPOINT})")
    return _check_state(*found), found[1]


def _check_state(state: Any, source: Path) -> dict[str, Any]:
    """``state`` when it has the fields of :meth:`Trainer.state_dict`, else a :class:`CheckpointError`."""
    fields = {"algo", "config", "iteration", "timesteps", "policy", "optimizer", "kl_controller", "extra"}
    missing = sorted(fields - set(state)) if isinstance(state, dict) else sorted(fields)
    if missing:
        raise CheckpointError(f"{str(source)!r} is not a trainer checkpoint: it lacks {missing}")
    if not isinstance(state["config"], dict) or not isinstance(state["policy"], dict):
        raise CheckpointError(f"{str(source)!r} is not a trainer checkpoint: its config and policy must be mappings")
    return state


def _refuse_code(saved: dict[str, Any], overrides: dict[str, Any], source: Path) -> None:
    """Raise when building the env from a checkpoint's saved config would import code it names."""
    found = []
    if "env_id" not in overrides and ":" in str(saved.get("env_id", "")):
        found.append(f"env_id = {saved['env_id']!r}")
    if "env_kwargs" not in overrides:
        found += code_in(saved.get("env_kwargs", {}), "env_kwargs")
    if found:
        raise CheckpointError(
            f"checkpoint {str(source)!r} was trained with an env built from code: {'; '.join(found)}. textgym "
            "does not import code named by a checkpoint; if you trust it, pass the env yourself "
            "(Trainer.load(path, env=...)) or its kwargs (env_kwargs={...})"
        )


def load_trainer(path: str | Path, env: gym.vector.VectorEnv | None = None, **overrides: Any) -> Trainer:
    """:meth:`Trainer.load` for whichever algorithm wrote the checkpoint (a file or a run folder)."""
    from agents import trainer_class

    state, source = _read_state(path)
    return trainer_class(str(state.get("algo")))._from_state(state, source, env, overrides)
