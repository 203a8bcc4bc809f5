"""Env steps/s: TextGenVectorEnv (B episodes in tensors) vs SyncVectorEnv of B TextGenEnvs.

The reward is excluded (a free constant reward), so this measures the env machinery alone.

    python -m benchmarks.env_steps --num-envs 256 --steps 200
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

import textgym  # noqa: F401
from benchmarks.common import median_time, report


def free_reward(prompts: list[str], completions: list[str], **info) -> list[float]:
    """A reward that costs nothing, to keep reward models out of the measurement."""
    return [0.0] * len(completions)


def run(num_envs: int, steps: int, env_id: str, device: str) -> None:
    kwargs = {"reward": free_reward}
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device, **kwargs)
    sync = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **kwargs)
    rng = np.random.default_rng(0)
    actions = rng.integers(3, 40_000, size=(steps, num_envs))  # no EOS: episodes end at the budget
    torch_actions = torch.as_tensor(actions, device=device)

    def step_vector() -> None:
        vector.reset(seed=0)
        for a in torch_actions:
            vector.step(a)

    def step_sync() -> None:
        sync.reset(seed=0)
        for a in actions:
            sync.step(a)

    t_vector, t_sync = median_time(step_vector), median_time(step_sync, repeats=1)
    total = steps * num_envs
    rows = [
        {"env": "TextGenVectorEnv", "seconds": t_vector, "env_steps_per_s": total / t_vector},
        {"env": "SyncVectorEnv[TextGenEnv]", "seconds": t_sync, "env_steps_per_s": total / t_sync},
    ]
    report(
        f"env stepping, {env_id}, B={num_envs}, {steps} steps, reward excluded",
        rows,
        {"speedup_vector_over_sync": round(t_sync / t_vector, 1), "target": ">= 50x"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--env", default="TextGen-Sentiment-v0")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run(args.num_envs, args.steps, args.env, args.device)


if __name__ == "__main__":
    main()
