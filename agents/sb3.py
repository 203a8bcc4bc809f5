"""Stable-Baselines3 adapter: the same :class:`~agents.policy.LMPolicy`, trained by stock SB3 / sb3-contrib.

:class:`LMActorCriticPolicy` is an SB3 ``ActorCriticPolicy`` whose actor is a causal LM and whose critic is the
value head on the LM trunk, so unmodified ``stable_baselines3.PPO``, ``stable_baselines3.A2C`` and
``sb3_contrib.TRPO`` train it on any env with TextGen spaces (``Dict(input_ids, attention_mask)`` observations,
``Discrete(V)`` token actions), with SB3's own vector envs, callbacks, ``predict``, ``save``/``load`` and logger.

How it meets SB3's contract:

- **Token ids stay ids.** The features extractor (:class:`TokenIdsExtractor`) bypasses SB3's ``preprocess_obs``
  (which would cast Box observations to float, and one-hot a ``Discrete`` one) and hands ``(B, 2, L)`` int64
  ``[input_ids, attention_mask]`` to the LM.
- **One state, one forward.** Each observation is left-aligned (its last token moved to the last column) and the
  all-padding columns of the batch are trimmed; one trunk forward gives the next-token logits and the value.
  SB3 has no KV cache: a rollout costs one full forward per token (see ``benchmarks/sb3_vs_native.py``).
- **Exploration.** Actions are sampled from the *behaviour* distribution ``process_logits(logits, sampling)``
  (temperature, top-k, top-p, logit noise, random masking; ``agents.sampling``). The log-prob that ``forward``
  returns, and that SB3 stores in its rollout buffer, is the *learning* log-prob ``log_softmax(logits / T)`` of
  the sampled token, the same one ``evaluate_actions`` / ``get_distribution`` recompute while training. So PPO's
  ratio starts at exactly 1 and TRPO's KL is between full-support distributions, as in the native agents
  (top-k etc. perturb the behaviour policy; they are not part of the policy being learned).
- **KL to the reference.** :class:`KLPenaltyCallback` subtracts ``coef * KL_t`` (k1/k2/k3 estimate from the
  stored log-prob and the frozen reference) from every token's reward after each rollout and recomputes SB3's
  returns and advantages: TRL-style dense KL shaping for any on-policy SB3 algorithm.
- **Schedules.** :class:`ExplorationScheduleCallback` varies sampling fields over rollouts
  (``agents.sampling.Schedule``).

Example:
    >>> import gymnasium as gym, textgym
    >>> from stable_baselines3 import PPO
    >>> env = gym.make("TextGen-Reverse-v0", max_prompt_tokens=8, max_new_tokens=4)
    >>> agent = PPO(LMActorCriticPolicy, env, n_steps=8, batch_size=8, n_epochs=1,
    ...             policy_kwargs={"model": "tiny", "sampling": {"top_k": 10}})
    >>> _ = agent.learn(total_timesteps=8)
    >>> action, _ = agent.predict(env.reset(seed=0)[0], deterministic=True)
    >>> int(action) in range(env.action_space.n)
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from agents.losses import KL_ESTIMATORS, kl_penalty
from agents.policy import LMPolicy
from agents.rollout import check_textgen_spaces
from agents.sampling import SamplingConfig, config_at, learning_logprobs, sample
from agents.sampling import Schedule as SamplingSchedule

__all__ = ["ExplorationScheduleCallback", "KLPenaltyCallback", "LMActorCriticPolicy", "TokenIdsExtractor"]


class TokenIdsExtractor(BaseFeaturesExtractor):
    """SB3 features extractor that keeps token ids as int64 ids: ``obs -> (B, 2, L) [input_ids, attention_mask]``.

    It has no parameters. It accepts int64 tensors (from the env) or float ones (from a buffer that stored them
    as float) and rounds the latter, so ids up to 2**24 survive exactly.

    Example:
        >>> space = spaces.Dict({k: spaces.Box(0, 9, (3,), np.int64) for k in ("input_ids", "attention_mask")})
        >>> TokenIdsExtractor(space)({"input_ids": torch.tensor([[7.0, 8, 9]]), "attention_mask": torch.ones(1, 3)})
        tensor([[[7, 8, 9],
                 [1, 1, 1]]])
    """

    def __init__(self, observation_space: spaces.Dict) -> None:
        super().__init__(observation_space, features_dim=int(observation_space["input_ids"].shape[0]))

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        ids, mask = (_as_ids(observations[key]) for key in ("input_ids", "attention_mask"))
        return torch.stack([ids, mask], dim=1)  # (B, 2, L)


def _as_ids(x: Tensor) -> Tensor:
    return (x.round() if x.is_floating_point() else x).long()


def left_align(input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Roll each row so its last attended token sits in the last column; drop columns padded in every row.

    Works for TextGen's layout (left-padded prompt, generated tokens, right padding) and any layout whose
    attended tokens are contiguous. ``(B, L) -> (B, S)``, ``S <= L``.

    Example:
        >>> left_align(torch.tensor([[0, 5, 6, 0], [4, 5, 6, 7]]), torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]]))
        (tensor([[0, 0, 5, 6],
                [4, 5, 6, 7]]), tensor([[0, 0, 1, 1],
                [1, 1, 1, 1]]))
    """
    length = input_ids.shape[1]
    cols = torch.arange(length, device=input_ids.device)
    last = torch.where(attention_mask.bool(), cols, -1).max(dim=1).values.clamp(min=0)  # (B,)
    index = (cols[None] - (length - 1 - last)[:, None]) % length  # (B, L) source column of each target column
    ids, mask = input_ids.gather(1, index), attention_mask.gather(1, index)
    start = int(mask.any(dim=0).long().argmax())  # first column attended in some row
    return ids[:, start:], mask[:, start:]


class LMActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic policy whose actor is a causal LM (an :class:`LMPolicy`) and critic its value head.

    Pass it to SB3 by class with the LM settings in ``policy_kwargs``; SB3 supplies the spaces and the
    learning-rate schedule. The LM, its value head and (optionally) the frozen reference are registered
    submodules: SB3's optimizer updates the LM, and ``save``/``load`` store and restore it (the constructor
    arguments are recorded, so ``load`` rebuilds the same model, e.g. the seeded ``"tiny"`` one, then loads
    the weights).

    :meth:`named_parameters` (and so ``parameters()``) yields the *trainable* parameters only: those SB3's
    optimizer steps and sb3-contrib TRPO's trust region walks over (TRPO differentiates the KL with respect to
    each of them, which fails on frozen weights). ``state_dict()`` still holds everything.

    Args:
        observation_space: TextGen's ``Dict(input_ids, attention_mask)`` space (given by SB3).
        action_space: ``Discrete(V)`` (given by SB3); ``V`` may be smaller than the model's vocabulary.
        lr_schedule: SB3's learning-rate schedule (given by SB3).
        model: ``"default"`` (SmolLM2-135M-Instruct), ``"tiny"`` (seeded random 2-layer Llama for tests), a HF
            id or a local path.
        sampling: :class:`SamplingConfig` fields for the behaviour policy (e.g. ``{"top_k": 10}``); its
            ``temperature`` also scales the learning log-probs, as in the native agents.
        value_head: add the value head (A2C, PPO and TRPO need it; without it values are 0).
        reference: keep a frozen reference for :class:`KLPenaltyCallback` (a copy of the initial weights, saved
            with the policy; free under LoRA: the adapter-off base).
        lora_rank: train a LoRA adapter of this rank instead of all weights (0 = full fine-tuning).
        lora_alpha: LoRA scaling numerator.
        seed: seed of the ``"tiny"`` model's initialisation.
        dtype: ``"float32"`` (default) or ``"bfloat16"``, the LM's weights.
        use_sde: given by SB3; must be False (token actions are discrete).
        optimizer_class: SB3's optimizer (A2C passes RMSprop).
        optimizer_kwargs: its keyword arguments, learning rate excluded.

    Example:
        >>> import gymnasium as gym, textgym
        >>> from stable_baselines3 import A2C
        >>> env = gym.make("TextGen-Sentiment-v0")
        >>> agent = A2C(LMActorCriticPolicy, env, policy_kwargs={"model": "default", "lora_rank": 8})  # doctest: +SKIP
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        model: str = "default",
        sampling: dict[str, Any] | SamplingConfig | None = None,
        value_head: bool = True,
        reference: bool = False,
        lora_rank: int = 0,
        lora_alpha: float = 16.0,
        seed: int = 0,
        dtype: str = "float32",
        use_sde: bool = False,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        check_textgen_spaces(observation_space, action_space, user="LMActorCriticPolicy")
        if use_sde:
            raise ValueError("use_sde=True (gSDE) is for continuous actions; token actions are Discrete")
        if isinstance(model, nn.Module):
            raise ValueError("pass the model by name or path ('default', 'tiny', a HF id) so load() can rebuild it")
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],
            ortho_init=False,
            features_extractor_class=TokenIdsExtractor,
            normalize_images=False,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        self.model_name, self.seed, self.dtype = model, seed, dtype
        self.lora_rank, self.lora_alpha = lora_rank, lora_alpha
        self.use_value_head, self.use_reference = value_head, reference
        self.sampling = sampling if isinstance(sampling, SamplingConfig) else SamplingConfig(**(sampling or {}))
        self.base_sampling = self.sampling  # ExplorationScheduleCallback derives scheduled configs from it
        self.temperature = self.sampling.temperature  # the learning log-probs' temperature (fixed)
        self.lm = self._build_lm()
        if self.lm.vocab_size < int(action_space.n):
            raise ValueError(
                f"the env has {int(action_space.n)} token actions but the model's vocabulary only "
                f"{self.lm.vocab_size}: use the model's own tokenizer for the env"
            )
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """SB3 calls this from its constructor; the LM and the optimizer are built once its settings are known."""

    def _build_lm(self) -> LMPolicy:
        from textgym.models import load_causal_lm

        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[self.dtype]
        lm = load_causal_lm(self.model_name, dtype=dtype, device="cpu", seed=self.seed)
        return LMPolicy(
            lm,
            value_head=self.use_value_head,
            reference=self.use_reference,
            lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("net_arch", "activation_fn", "log_std_init", "squash_output", "full_std", "use_expln"):
            data.pop(key, None)
        for key in ("ortho_init", "features_extractor_class", "features_extractor_kwargs", "normalize_images"):
            data.pop(key, None)
        data.update(
            model=self.model_name,
            sampling=dataclasses.asdict(self.base_sampling),
            value_head=self.use_value_head,
            reference=self.use_reference,
            lora_rank=self.lora_rank,
            lora_alpha=self.lora_alpha,
            seed=self.seed,
            dtype=self.dtype,
        )
        return data

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, nn.Parameter]]:
        """The trainable parameters only (see the class docstring); ``state_dict()`` keeps the frozen ones."""
        for name, param in super().named_parameters(prefix, recurse, remove_duplicate):
            if param.requires_grad:
                yield name, param

    # -- the LM on SB3 observations ------------------------------------------------------------------------

    def extract_features(self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor | None = None) -> Tensor:
        """``(B, 2, L)`` int64 token ids and mask, with no float cast or one-hot (SB3's ``preprocess_obs`` skipped)."""
        return (features_extractor or self.features_extractor)(obs)

    def _heads(self, obs: PyTorchObs, values: bool = True) -> tuple[Tensor, Tensor | None]:
        """Raw next-token logits ``(B, n)`` (``n`` = the action space's size) and values ``(B, 1)``, one forward."""
        features = self.extract_features(obs)  # (B, 2, L)
        ids, mask = left_align(features[:, 0], features[:, 1])  # (B, S)
        # with gradients, the math attention kernel: TRPO differentiates twice (Hessian-vector products), which
        # the fused CPU kernels do not support; rollouts (no grad) keep the fast kernel
        kernel = sdpa_kernel(SDPBackend.MATH) if torch.is_grad_enabled() else nullcontext()
        with kernel:
            logits, value = self.lm.last_token_outputs(ids, mask)
        logits = logits[:, : int(self.action_space.n)]  # (B, n)
        if not values:
            return logits, None
        if value is None:
            return logits, torch.zeros(len(logits), 1, device=logits.device)
        return logits, value[:, None]  # (B, 1)

    def _learning_distribution(self, logits: Tensor) -> CategoricalDistribution:
        return self.action_dist.proba_distribution(action_logits=logits / self.temperature)

    def _sample(self, logits: Tensor, deterministic: bool) -> Tensor:
        tokens, _ = sample(logits.detach(), dataclasses.replace(self.sampling, greedy=deterministic))
        return tokens

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Sample from the behaviour policy; return ``(actions, values, learning log-probs)`` as SB3 stores them."""
        logits, values = self._heads(obs)
        actions = self._sample(logits, deterministic)  # (B,)
        return actions, values, learning_logprobs(logits, actions, self.temperature)

    def evaluate_actions(self, obs: PyTorchObs, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Values ``(B, 1)``, learning log-probs ``(B,)`` and entropy ``(B,)``, differentiable."""
        logits, values = self._heads(obs)
        distribution = self._learning_distribution(logits)
        return values, distribution.log_prob(actions.long().flatten()), distribution.entropy()

    def get_distribution(self, obs: PyTorchObs) -> CategoricalDistribution:
        """The learning distribution ``softmax(logits / T)`` (what TRPO constrains), differentiable."""
        return self._learning_distribution(self._heads(obs, values=False)[0])

    def predict_values(self, obs: PyTorchObs) -> Tensor:
        return self._heads(obs)[1]

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> Tensor:
        """Next tokens: greedy when ``deterministic``, else sampled with the exploration settings."""
        return self._sample(self._heads(observation, values=False)[0], deterministic)

    @torch.no_grad()
    def reference_logprobs(self, obs: PyTorchObs, actions: Tensor) -> Tensor:
        """Log-probs ``(B,)`` of ``actions`` under the frozen reference at the learning temperature."""
        features = self.extract_features(obs)
        ids, mask = left_align(features[:, 0], features[:, 1])
        tokens = actions.long().reshape(-1, 1)
        ids, mask = torch.cat([ids, tokens], dim=1), torch.cat([mask, torch.ones_like(tokens)], dim=1)
        return self.lm.reference_logprobs(ids, mask, num_generated=1, temperature=self.temperature)[:, 0]


class KLPenaltyCallback(BaseCallback):
    """Per-token KL-to-reference penalty in the rewards, for any on-policy SB3 algorithm (PPO, A2C, TRPO).

    After each rollout (SB3 has already computed returns and advantages), every stored token reward gets
    ``-coef * KL_t`` with ``KL_t = kl_penalty(log pi(a_t|s_t), log ref(a_t|s_t), estimator)``: ``log pi`` is the
    learning log-prob SB3 stored at collection time (the policy before this update, as in the native agents),
    ``log ref`` is computed here with the policy's frozen reference. Then SB3's returns and advantages are
    recomputed from the shaped rewards, with the rollout's own last values and dones. The episode reward SB3
    logs (``rollout/ep_rew_mean``) stays the task reward; the mean per-token KL is logged as ``rollout/kl_ref``.

    Why not a reward wrapper: an env wrapper sees the action but not ``log pi``; adding ``coef * log ref`` there
    maximises ``R - coef * (KL + entropy)``, i.e. a cross-entropy penalty, which SB3's entropy bonus cannot cancel
    (it acts on the loss after advantage normalisation, not on the rewards).

    Args:
        coef: KL weight (``beta``).
        estimator: ``"k1"`` (unbiased, what TRL uses), ``"k2"`` or ``"k3"`` (unbiased and non-negative).
        batch_size: states per reference forward.
        verbose: SB3 verbosity.

    Example:
        >>> import gymnasium as gym, textgym
        >>> from stable_baselines3 import PPO
        >>> env = gym.make("TextGen-Reverse-v0", max_prompt_tokens=8, max_new_tokens=4)
        >>> agent = PPO(LMActorCriticPolicy, env, n_steps=8, batch_size=8, n_epochs=1,
        ...             policy_kwargs={"model": "tiny", "reference": True})
        >>> _ = agent.learn(total_timesteps=8, callback=KLPenaltyCallback(coef=0.05))
    """

    def __init__(self, coef: float, estimator: str = "k1", batch_size: int = 64, verbose: int = 0) -> None:
        super().__init__(verbose)
        if estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown KL estimator {estimator!r}; valid: {', '.join(KL_ESTIMATORS)}")
        if coef < 0:
            raise ValueError(f"coef must be >= 0, got {coef}")
        self.coef, self.estimator, self.batch_size = coef, estimator, batch_size

    def _on_training_start(self) -> None:
        policy = self.model.policy
        if not isinstance(policy, LMActorCriticPolicy) or not policy.lm.has_reference:
            raise ValueError(
                "KLPenaltyCallback needs an LMActorCriticPolicy built with a reference: "
                'policy_kwargs={"reference": True}'
            )

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer, policy = self.model.rollout_buffer, self.model.policy
        kl = self.penalties(buffer, policy)  # (n_steps, n_envs)
        buffer.rewards -= self.coef * kl
        buffer.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
        self.logger.record("rollout/kl_ref", float(kl.mean()))
        self.logger.record("rollout/kl_coef", self.coef)

    def penalties(self, buffer: Any, policy: LMActorCriticPolicy) -> np.ndarray:
        """Per-token KL estimates ``(n_steps, n_envs)`` of a filled SB3 rollout buffer."""
        steps, envs = buffer.rewards.shape
        flat = {key: torch.as_tensor(value.reshape(steps * envs, -1)) for key, value in buffer.observations.items()}
        actions = torch.as_tensor(buffer.actions.reshape(-1))
        ref = []
        for start in range(0, steps * envs, self.batch_size):
            chunk = {key: value[start : start + self.batch_size].to(policy.device) for key, value in flat.items()}
            ref.append(policy.reference_logprobs(chunk, actions[start : start + self.batch_size].to(policy.device)))
        ref_logprobs = torch.cat(ref).cpu().reshape(steps, envs)
        kl = kl_penalty(torch.as_tensor(buffer.log_probs), ref_logprobs, self.estimator)
        return kl.numpy().astype(np.float32)


class ExplorationScheduleCallback(BaseCallback):
    """Vary sampling fields (temperature, top_k, top_p, logit_noise, mask_prob) over SB3 rollouts.

    Rollout ``i`` (``num_timesteps // (n_steps * n_envs)``) samples with ``config_at(base, schedules, i)``; the
    learning temperature stays the constructor's (as in the native agents). The values are logged as
    ``rollout/<field>``.

    Args:
        schedules: field -> :class:`agents.sampling.Schedule`, a number, a dict or a ``"kind:start:end:steps"``
            string (steps counted in rollouts).
        verbose: SB3 verbosity.

    Example:
        >>> callback = ExplorationScheduleCallback({"temperature": "linear:1.5:1.0:20", "top_k": 50})
        >>> callback.schedules["top_k"]
        Schedule(kind='constant', start=50.0, end=None, steps=1)
    """

    def __init__(self, schedules: dict[str, Any], verbose: int = 0) -> None:
        super().__init__(verbose)
        self.schedules = {name: SamplingSchedule.parse(value) for name, value in schedules.items()}
        config_at(SamplingConfig(), self.schedules, 0)  # unknown field names are errors now, not mid-training

    def _on_rollout_start(self) -> None:
        policy = self.model.policy
        iteration = self.model.num_timesteps // (self.model.n_steps * self.model.n_envs)
        policy.sampling = config_at(policy.base_sampling, self.schedules, iteration)
        for name in self.schedules:
            self.logger.record(f"rollout/{name}", getattr(policy.sampling, name))

    def _on_step(self) -> bool:
        return True
