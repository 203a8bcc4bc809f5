"""Env steps/s: TextGenVectorEnv (B episodes in tensors) vs SyncVectorEnv of B TextGenEnvs.

The reward is excluded (a free constant reward), so this measures the env machinery alone: writing tokens,
observations, episode ends, decoding the finished completions, autoresets and their prompt draws. Each
timed run steps from a seeded reset that is not timed; the seeded reset (one NumPy generator per
sub-env in both envs) is timed on its own row.

    python -m benchmarks.env_steps --num-envs 256 --steps 1000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

import textgym  # noqa: F401
from benchmarks.common import interleaved_times, parse_and_set_threads, report


def free_reward(prompts: list[str], completions: list[str], **info) -> list[float]:
    """A reward that costs nothing, to keep reward models out of the measurement."""
    return [0.0] * len(completions)


def run(num_envs: int, steps: int, env_id: str, device: str, repeats: int) -> None:
    kwargs = {"reward": free_reward}
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device, **kwargs)
    sync = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **kwargs)
    actions = np.random.default_rng(0).integers(3, 40_000, size=(steps, num_envs))  # no EOS: ends at the budget
    torch_actions = torch.as_tensor(actions, device=device)

    def step_vector() -> None:
        for a in torch_actions:
            vector.step(a)

    def step_sync() -> None:
        for a in actions:
            sync.step(a)

    def reset_vector() -> None:
        vector.reset(seed=0)

    def reset_sync() -> None:
        sync.reset(seed=0)

    # alternate the two so that a change in machine load hits both alike
    t_vector, t_sync = interleaved_times([step_vector, step_sync], repeats, [reset_vector, reset_sync])
    r_vector, r_sync = interleaved_times([reset_vector, reset_sync], repeats)
    total = steps * num_envs
    rows = [
        {
            "env": "TextGenVectorEnv",
            "step_seconds": t_vector,
            "env_steps_per_s": total / t_vector,
            "reset_ms": 1e3 * r_vector,
        },
        {
            "env": "SyncVectorEnv[TextGenEnv]",
            "step_seconds": t_sync,
            "env_steps_per_s": total / t_sync,
            "reset_ms": 1e3 * r_sync,
        },
    ]
    episodes = steps // (vector.max_new_tokens + 1)  # NextStep autoreset: one step per episode is the reset
    report(
        f"env stepping, {env_id}, B={num_envs}, {steps} steps (~{episodes} episodes each), reward excluded",
        rows,
        {
            "speedup_vector_over_sync": round(t_sync / t_vector, 1),
            "target": ">= 50x",
            "seeded_reset_speedup": round(r_sync / r_vector, 1),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--env", default="TextGen-Sentiment-v0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parse_and_set_threads(parser)
    run(args.num_envs, args.steps, args.env, args.device, args.repeats)


if __name__ == "__main__":
    main()
