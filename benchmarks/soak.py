"""Soak: step a big TextGenVectorEnv for a long time and check that its memory stays flat.

Random token actions (some of them EOS, so episodes end early and autoreset), a free reward, and a fresh
custom prompt through ``reset(options={"prompt": ...})`` every ``--prompt-every`` steps, so the prompt cache
is exercised past its bound. Resident memory is sampled along the run; the script prints the samples and
exits non-zero when the last quarter's peak exceeds the first quarter's by more than ``--tolerance-mb``.

    python -m benchmarks.soak --num-envs 1024 --steps 1000000     # the full soak (about an hour on 2 cores)
    python -m benchmarks.soak --num-envs 256 --steps 20000        # a few minutes
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import gymnasium as gym
import numpy as np
import torch

import textgym  # noqa: F401
from benchmarks.common import parse_and_set_threads, report
from benchmarks.env_steps import free_reward


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def soak(num_envs: int, steps: int, env_id: str, prompt_every: int, samples: int) -> list[tuple[int, float]]:
    """Step ``steps`` times; returns ``(step, RSS MB)`` at ``samples`` evenly spaced points."""
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", reward=free_reward)
    envs.reset(seed=0)
    eos = envs.unwrapped.setup.eos_token_id
    rng = np.random.default_rng(0)
    every = max(1, steps // samples)
    trace = []
    for step in range(steps):
        actions = rng.integers(3, 40_000, size=num_envs)
        actions[rng.random(num_envs) < 0.02] = eos
        envs.step(torch.as_tensor(actions))
        if prompt_every and step % prompt_every == 0:
            envs.reset(options={"prompt": f"A prompt never seen before, number {step}:"})
        if step % every == 0 or step == steps - 1:
            trace.append((step, round(rss_mb(), 1)))
    envs.close()
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--env-id", default="TextGen-Sentiment-v0")
    parser.add_argument("--prompt-every", type=int, default=50, help="a new custom prompt every N steps (0 = never)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--tolerance-mb", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parse_and_set_threads(parser)
    start = time.perf_counter()
    trace = soak(args.num_envs, args.steps, args.env_id, args.prompt_every, args.samples)
    quarter = max(1, len(trace) // 4)
    first, last = max(m for _, m in trace[:quarter]), max(m for _, m in trace[-quarter:])
    report(
        f"soak: {args.steps} steps of {args.num_envs} envs ({args.env_id})",
        [{"step": s, "rss_mb": m} for s, m in trace],
        {"first_quarter_peak_mb": first, "last_quarter_peak_mb": last, "seconds": round(time.perf_counter() - start)},
    )
    if last - first > args.tolerance_mb:
        print(f"memory grew by {last - first:.1f} MB (> {args.tolerance_mb} MB)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
