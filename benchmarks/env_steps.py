"""Env steps/s: TextGenVectorEnv (B episodes in tensors) vs SyncVectorEnv of B TextGenEnvs.

The reward is excluded (a free constant reward), so this measures the env machinery alone: writing tokens,
observations, episode ends, decoding the finished completions, autoresets and their prompt draws. Each
timed run steps from a seeded reset that is not timed; the seeded reset (one NumPy generator per
sub-env in both envs) is timed on its own. Three cases (:data:`CASES`): every episode running to its budget,
episodes ending at random steps (EOS on 5% of steps), and random ends from freshly built envs (cold caches).
Progress goes to stderr as it runs.

    python -m benchmarks.env_steps --num-envs 256 --steps 1000
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import textgym  # noqa: F401
from benchmarks.common import interleaved_times, parse_and_set_threads, report


def free_reward(prompts: list[str], completions: list[str], **info) -> list[float]:
    """A reward that costs nothing, to keep reward models out of the measurement."""
    return [0.0] * len(completions)


CASES = {
    "budget": "every episode runs to its token budget (all end at the same step), prompt cache warm",
    "random_ends": "EOS on 5% of steps, so episodes end at random steps and rows reset a few at a time; cache warm",
    "cold_start": "random ends from freshly built envs: the first resets tokenise their prompts",
}


def step_actions(num_envs: int, steps: int, eos: int, eos_rate: float) -> np.ndarray:
    """``(steps, num_envs)`` random token ids, each EOS with probability ``eos_rate``."""
    rng = np.random.default_rng(0)
    actions = rng.integers(3, 40_000, size=(steps, num_envs))
    actions[rng.random(actions.shape) < eos_rate] = eos
    return actions


def time_case(case: str, num_envs: int, steps: int, env_id: str, device: str, repeats: int) -> dict[str, float]:
    """Seconds per run of ``steps`` steps of each env, and the vector env's speed-up, for one of :data:`CASES`."""
    kwargs = {"reward": free_reward}

    def build(kind: str) -> Any:
        if kind == "vector":
            return gym.make_vec(
                env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device, **kwargs
            )
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", **kwargs)

    envs = {kind: build(kind) for kind in ("vector", "sync")}
    eos = envs["vector"].unwrapped.setup.eos_token_id
    actions = step_actions(num_envs, steps, eos, 0.0 if case == "budget" else 0.05)
    torch_actions = torch.as_tensor(actions, device=device)

    def step_vector() -> None:
        for a in torch_actions:
            envs["vector"].step(a)

    def step_sync() -> None:
        for a in actions:
            envs["sync"].step(a)

    def setup(kind: str) -> Callable[[], None]:
        def reset() -> None:
            if case == "cold_start":  # a new env: its prompt cache starts empty
                envs[kind] = build(kind)
            envs[kind].reset(seed=0)

        return reset

    # alternate the two so that a change in machine load hits both alike
    t_vector, t_sync = interleaved_times([step_vector, step_sync], repeats, [setup("vector"), setup("sync")], case)
    total = steps * num_envs
    return {
        "vector_seconds": t_vector,
        "sync_seconds": t_sync,
        "vector_steps_per_s": total / t_vector,
        "sync_steps_per_s": total / t_sync,
        "speedup": t_sync / t_vector,
    }


def run(num_envs: int, steps: int, env_id: str, device: str, repeats: int, cases: list[str]) -> None:
    rows = []
    for case in cases:
        print(f"{case}: {CASES[case]}", file=sys.stderr, flush=True)
        rows.append({"case": case, **time_case(case, num_envs, steps, env_id, device, repeats)})
    vector = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device)
    sync = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    reset_times = interleaved_times([lambda: vector.reset(seed=0), lambda: sync.reset(seed=0)], repeats, None, "reset")
    report(
        f"env stepping, {env_id}, B={num_envs}, {steps} steps per run, reward excluded",
        rows,
        {
            "target": ">= 50x with random ends, >= 20x from a cold start",
            "seeded_reset_speedup": round(reset_times[1] / reset_times[0], 1),
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
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parse_and_set_threads(parser)
    run(args.num_envs, args.steps, args.env, args.device, args.repeats, args.cases)


if __name__ == "__main__":
    main()
