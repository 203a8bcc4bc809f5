"""Peak resident memory of one SB3 PPO minibatch step (``evaluate_actions`` + backward) on LMActorCriticPolicy.

Each SB3 sample is one state, a whole sequence (prompt + tokens so far), so a minibatch of ``n`` states runs the
model forward and backward on ``n`` full sequences; this prints the peak RSS after one such step.

    python -m benchmarks.sb3_memory --minibatch 32
"""

from __future__ import annotations

import argparse
import resource

import gymnasium as gym
import numpy as np
import torch

import textgym  # noqa: F401
from benchmarks.common import parse_and_set_threads


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    from stable_baselines3 import PPO

    from agents.sb3 import LMActorCriticPolicy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minibatch", type=int, default=96, help="SB3 batch_size (leaderboard Sentiment: 96)")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parse_and_set_threads(parser)
    n = args.minibatch
    env = gym.make("TextGen-Sentiment-v0", render_mode="ansi")
    policy_kwargs = {"model": "default", "lora_rank": args.lora_rank, "reference": True, "seed": 0}
    agent = PPO(LMActorCriticPolicy, env, n_steps=n, batch_size=n, policy_kwargs=policy_kwargs)
    obs, _ = env.reset(seed=0)
    ids = torch.as_tensor(np.tile(obs["input_ids"], (n, 1)))
    generated = env.unwrapped.setup.max_new_tokens
    ids[:, -generated:] = torch.randint(3, 40_000, (n, generated))  # the longest states: the whole budget written
    states = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    before = peak_rss_mb()
    values, logprobs, _ = agent.policy.evaluate_actions(states, torch.randint(3, 40_000, (n,)))
    (logprobs.mean() + values.mean()).backward()
    shape = f"{n} states x {ids.shape[1]} tokens"
    print(f"minibatch of {shape}: peak RSS {before:.0f} MB before, {peak_rss_mb():.0f} MB after one step")


if __name__ == "__main__":
    main()
