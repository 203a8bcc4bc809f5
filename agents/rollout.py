"""Rollouts: a batch of whole episodes as device tensors, collected from Gymnasium vector envs.

Two paths give the same :class:`Rollout`:

- :func:`collect` on a :class:`textgym.vector.TextGenVectorEnv` (the fast path): the batch stays on the
  device, the policy samples with its KV cache, the env scores all finished episodes in batched calls.
- :func:`collect_generic` on any Gymnasium vector env whose spaces are TextGen's
  (``Dict(input_ids, attention_mask)`` observations, ``Discrete`` actions), e.g. ``SyncVectorEnv`` of a
  user's own registered env: only the public Gymnasium API is used, and the policy runs one full forward
  per step (no cache, since it cannot know how the env lays out its tokens).

Example:
    >>> import torch
    >>> from textgym.models import tiny_causal_lm, load_tokenizer
    >>> from textgym.vector import TextGenVectorEnv
    >>> from agents.policy import LMPolicy
    >>> from agents.sampling import SamplingConfig
    >>> tok = load_tokenizer()
    >>> envs = TextGenVectorEnv(4, task="arithmetic", max_new_tokens=5)
    >>> policy = LMPolicy(tiny_causal_lm(len(tok)), value_head=False, reference=False)
    >>> batch = collect(envs, policy, SamplingConfig(), seed=0)
    >>> tuple(batch.actions.shape)[0], batch.scores.shape
    (4, torch.Size([4]))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import Tensor

from agents.policy import LMPolicy
from agents.sampling import SamplingConfig, sample


@dataclass
class Rollout:
    """``B`` finished episodes, left-padded prompts then ``T`` generated tokens (right-padded).

    Attributes:
        input_ids, attention_mask: ``(B, P + T)`` the whole sequences.
        mask: ``(B, T)`` float, 1 at the policy's actions (EOS included), 0 after the episode ended and at tokens
            a multi-turn env wrote itself: the mask of every policy term (log-probs, ratios, KL, entropy).
        scores: ``(B,)`` terminal task rewards.
        prompts, completions: the texts, for logging.
        episode_mask: ``(B, T)`` float, 1 at every token of the episode, the env's own included; None when every
            token is an action (then it equals ``mask``). See :attr:`step_mask`.
        token_rewards: ``(B, T)`` the step rewards of an env that pays a dense reward (``dense_reward=True``; they
            sum to ``scores``), else None (the whole score comes at the end).
        behaviour_logprobs: ``(B, T)`` the log-prob of each action under the distribution it was sampled from
            (temperature, top-k/top-p, noise and masking applied; 0 where ``mask`` is 0), for importance
            correction; None on the generic path.
    """

    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor
    scores: Tensor
    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    episode_mask: Tensor | None = None
    behaviour_logprobs: Tensor | None = None
    token_rewards: Tensor | None = None

    @property
    def step_mask(self) -> Tensor:
        """``(B, T)`` the episode's steps, the env's turns included: the mask of returns, values and the terminal
        reward's position (a reward earned after the env's turn still reaches the policy's tokens before it)."""
        return self.mask if self.episode_mask is None else self.episode_mask

    def ratio_logprobs(self, learning: Tensor, behaviour: bool) -> Tensor:
        """The log-probs a policy ratio is taken against: ``learning`` (the learning policy's at rollout time), or
        with ``behaviour`` the sampling distribution's (importance correction for off-policy exploration)."""
        if not behaviour:
            return learning
        if self.behaviour_logprobs is None:
            raise ValueError("importance_correction needs the behaviour log-probs of the fast path: use a textgym env")
        return self.behaviour_logprobs

    @property
    def num_generated(self) -> int:
        """``T``: the generated columns."""
        return int(self.mask.shape[1])

    @property
    def actions(self) -> Tensor:
        """``(B, T)`` the generated token ids."""
        return self.input_ids[:, -self.num_generated :]

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum().item())

    def trimmed(self) -> Rollout:
        """The batch without the columns that are padding in every row: leading prompt padding, and generated
        columns past the longest episode (batches laid out at full width, e.g. replayed or offline data)."""
        steps = max(int(self.step_mask.sum(1).max()), 1)
        prompt = self.input_ids.shape[1] - self.num_generated
        first = int(self.attention_mask[:, :prompt].any(0).long().argmax())
        columns = slice(first, prompt + steps)

        def cut(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[:, :steps]

        return Rollout(
            self.input_ids[:, columns],
            self.attention_mask[:, columns],
            self.mask[:, :steps],
            self.scores,
            self.prompts,
            self.completions,
            cut(self.episode_mask),
            cut(self.behaviour_logprobs),
            cut(self.token_rewards),
        )

    def select(self, index: Tensor) -> Rollout:
        """A sub-batch (rows ``index``) for minibatch updates."""
        picked = index.tolist()
        return Rollout(
            self.input_ids[index],
            self.attention_mask[index],
            self.mask[index],
            self.scores[index],
            [self.prompts[i] for i in picked] if self.prompts else [],
            [self.completions[i] for i in picked] if self.completions else [],
            None if self.episode_mask is None else self.episode_mask[index],
            None if self.behaviour_logprobs is None else self.behaviour_logprobs[index],
            None if self.token_rewards is None else self.token_rewards[index],
        )


def check_textgen_spaces(observation_space: gym.Space, action_space: gym.Space, user: str = "the agents") -> None:
    """Raise a clear ``ValueError`` unless the spaces are TextGen's (token-id Dict obs, Discrete actions)."""
    ok = (
        isinstance(observation_space, gym.spaces.Dict)
        and {"input_ids", "attention_mask"} <= set(observation_space.spaces)
        and isinstance(action_space, gym.spaces.Discrete)
    )
    if not ok:
        raise ValueError(
            f"{user} need TextGen spaces: observations Dict(input_ids=Box, attention_mask=Box) and Discrete "
            f"token actions; got observation space {observation_space} and action space {action_space}"
        )


@torch.no_grad()
def collect(
    envs: Any,
    policy: LMPolicy,
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
) -> Rollout:
    """One batch of ``envs.num_envs`` whole episodes from a ``TextGenVectorEnv``, KV-cached, on its device.

    The env runs with ``"Disabled"`` autoreset during the collection, so every sub-env plays exactly one
    episode, and gets its own mode back after; ``options`` are passed to ``reset`` (e.g. ``{"split": "eval"}``).
    """
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    envs.metadata = {**envs.metadata, "autoreset_mode": AutoresetMode.DISABLED}
    try:
        return _collect_episodes(envs, policy, sampling, generator, seed, options)
    finally:
        envs.metadata = {**envs.metadata, "autoreset_mode": mode}


def _collect_episodes(
    envs: Any,
    policy: LMPolicy,
    sampling: SamplingConfig,
    generator: torch.Generator | None,
    seed: int | None,
    options: dict[str, Any] | None,
) -> Rollout:
    obs, _ = envs.reset(seed=seed, options=options)
    prompt_length, pad = envs.prompt_length, envs.setup.pad_token_id
    # skip the leading columns that are padding in every row: the batch is only as wide as its longest prompt
    start = int(obs["attention_mask"][:, :prompt_length].any(0).long().argmax())
    state = policy.prefill(obs["input_ids"][:, start:prompt_length], obs["attention_mask"][:, start:prompt_length])
    steps, scores = 0, torch.zeros(envs.num_envs, device=envs.device)
    done = torch.zeros(envs.num_envs, dtype=torch.bool, device=envs.device)
    completions: list[Any] = [None] * envs.num_envs
    vocab = int(envs.single_action_space.n)  # a model's vocabulary may be padded past the tokenizer's
    forced: list[Tensor] = []  # multi-turn envs: per step, the sub-envs whose token was the env's own
    behaviour: list[Tensor] = []  # per step, the log-prob of the sampled token under the sampling distribution
    paid: list[Tensor] = []  # per step, the rewards (a dense-reward env pays some before the end)
    for _ in range(envs.max_new_tokens):
        tokens, logprobs = sample(state.logits[:, :vocab], sampling, generator)  # (B,)
        behaviour.append(logprobs)
        tokens = torch.where(done, torch.full_like(tokens, pad), tokens.to(envs.device))
        steps += 1
        obs, rewards, terminated, _, infos = envs.step(tokens)
        rewards = torch.where(done, torch.zeros_like(rewards), rewards)
        scores += rewards
        paid.append(rewards)
        _store_completions(completions, infos)
        if "forced" in infos:  # the env wrote its own token in some rows: the policy reads what was written
            forced.append(torch.as_tensor(infos["forced"], device=envs.device))
            tokens = envs.input_ids[:, prompt_length + steps - 1]
        done = terminated.clone()
        if bool(done.all()):
            break
        state = policy.advance(state, tokens.to(policy.device))
    episode_mask = envs.attention_mask[:, prompt_length : prompt_length + steps].float()
    actions = episode_mask * ~torch.stack(forced, 1) if forced else episode_mask
    behaviour_logprobs = torch.stack(behaviour, 1).to(actions.device) * actions
    return Rollout(
        input_ids=envs.input_ids[:, start : prompt_length + steps].clone(),
        attention_mask=envs.attention_mask[:, start : prompt_length + steps].clone(),
        mask=actions,
        scores=scores,
        prompts=envs.prompts,
        completions=[c or "" for c in completions],
        episode_mask=episode_mask if forced else None,
        behaviour_logprobs=behaviour_logprobs,
        token_rewards=torch.stack(paid, 1) if envs.setup.dense_reward else None,
    )


def _store_completions(completions: list[Any], infos: dict[str, Any]) -> None:
    if "completion" in infos:
        for i in np.flatnonzero(infos["_completion"]):
            completions[i] = infos["completion"][i]


@torch.no_grad()
def collect_generic(
    envs: gym.vector.VectorEnv,
    policy: LMPolicy,
    sampling: SamplingConfig,
    num_episodes: int,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Rollout:
    """``num_episodes`` finished episodes from any vector env with TextGen spaces (numpy, NextStep autoreset).

    Only ``reset``/``step`` are used. Each episode is rebuilt from its first observation (the attended
    tokens are the prompt) and the actions taken, so the env's own token layout does not matter.
    """
    check_textgen_spaces(envs.single_observation_space, envs.single_action_space)
    if envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP) != AutoresetMode.NEXT_STEP:
        raise ValueError("collect_generic needs a vector env with autoreset_mode NextStep")
    device = policy.device
    obs, _ = envs.reset(seed=seed)
    running = [_Episode(_prompt_of(obs, i)) for i in range(envs.num_envs)]
    finished: list[_Episode] = []
    needs_reset = np.zeros(envs.num_envs, dtype=bool)
    while len(finished) < num_episodes:
        ids = torch.as_tensor(np.asarray(obs["input_ids"]), device=device)
        mask = torch.as_tensor(np.asarray(obs["attention_mask"]), device=device)
        logits = policy.next_token_logits(ids, mask)[:, : envs.single_action_space.n]
        tokens, _ = sample(logits, sampling, generator)
        obs, rewards, terminated, truncated, infos = envs.step(tokens.cpu().numpy())
        if "forced" in infos:  # the env wrote tokens of its own: the actions alone do not rebuild the episode
            raise ValueError("multi-turn envs need the agents' fast path: gym.make_vec(..., 'vector_entry_point')")
        for i in range(envs.num_envs):
            if needs_reset[i]:  # this step was the autoreset: a new episode starts here
                running[i] = _Episode(_prompt_of(obs, i))
                continue
            running[i].actions.append(int(tokens[i]))
            if terminated[i] or truncated[i]:
                running[i].score = float(rewards[i])
                finished.append(running[i])
        needs_reset = np.logical_or(terminated, truncated)
    return _stack(finished[:num_episodes], policy, pad=0)


@dataclass
class _Episode:
    prompt_ids: list[int]
    actions: list[int] = field(default_factory=list)
    score: float = 0.0


def _prompt_of(obs: dict[str, Any], i: int) -> list[int]:
    ids, mask = np.asarray(obs["input_ids"][i]), np.asarray(obs["attention_mask"][i])
    return ids[mask.astype(bool)].tolist()


def _stack(episodes: list[_Episode], policy: LMPolicy, pad: int) -> Rollout:
    prompt_len = max(len(e.prompt_ids) for e in episodes)
    steps = max(len(e.actions) for e in episodes)
    batch = len(episodes)
    input_ids = torch.full((batch, prompt_len + steps), pad, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, e in enumerate(episodes):
        start = prompt_len - len(e.prompt_ids)
        input_ids[row, start:prompt_len] = torch.tensor(e.prompt_ids)
        input_ids[row, prompt_len : prompt_len + len(e.actions)] = torch.tensor(e.actions)
        attention[row, start : prompt_len + len(e.actions)] = 1
    device = policy.device
    return Rollout(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        mask=attention[:, prompt_len:].float().to(device),
        scores=torch.tensor([e.score for e in episodes], device=device),
    )
