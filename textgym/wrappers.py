"""Wrappers: score what a ``TimeLimit`` cuts; give Gymnasium's NumPy vector wrappers the arrays they expect."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import VectorWrapper


class ScoreTruncated(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Score an episode that a ``TimeLimit`` cuts (``gym.make(..., max_episode_steps=n)`` below the token budget).

    The reward comes when an episode ends, and a ``TimeLimit`` cuts it from outside, where the env cannot see it:
    without this wrapper (on top of the ``TimeLimit``) the cut step pays 0 and the completion is lost. The
    simpler way to a shorter episode is ``max_new_tokens=n``, which ends (``terminated``) and scores it at ``n``.
    (Gymnasium does not allow a registered wrapper on ids that also have a vector entry point, so it is not
    applied by ``gym.make``.)

    Example:
        >>> import textgym
        >>> env = ScoreTruncated(gym.make("TextGen-Reverse-v0", max_episode_steps=2))
        >>> _ = env.reset(seed=0)
        >>> _ = env.step(5)
        >>> obs, reward, terminated, truncated, info = env.step(5)
        >>> truncated, "completion" in info
        (True, True)
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated and not terminated:
            reward, final = self.env.unwrapped.truncate()
            info = {**info, **final}
        return obs, reward, terminated, truncated, info


class NumpyVectorEnv(VectorWrapper):
    """A :class:`textgym.vector.TextGenVectorEnv` whose observations, rewards and flags are NumPy arrays.

    The vector env returns torch tensors (the agents' fast path); Gymnasium's vector wrappers
    (``RecordEpisodeStatistics``, ``NormalizeReward``, ...) do arithmetic on NumPy arrays. Put this one
    underneath them. Actions may be NumPy arrays or tensors.

    Example:
        >>> import gymnasium as gym, textgym
        >>> from gymnasium.wrappers.vector import RecordEpisodeStatistics
        >>> envs = gym.make_vec("TextGen-Reverse-v0", num_envs=2, vectorization_mode="vector_entry_point")
        >>> envs = RecordEpisodeStatistics(NumpyVectorEnv(envs))
        >>> obs, infos = envs.reset(seed=0)
        >>> type(obs["input_ids"]).__name__
        'ndarray'
    """

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return to_numpy(obs), infos

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        return to_numpy(obs), to_numpy(rewards), to_numpy(terminated), to_numpy(truncated), infos


def to_numpy(value: Any) -> Any:
    """Tensors (also inside a dict) as NumPy arrays on the host; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    return value
