"""Train PPO on TextGen-Sentiment-v0 with the default SmolLM2 under a wall-clock budget; reward and KL before/after.

Held-out mean reward and KL to the reference are measured on the same eval prompts and seeds before and after
training. On CPU the default budget is 15 minutes; on a GPU use bigger batches (``--batch-size 64``).

    python -m benchmarks.train_ppo_sentiment --minutes 15
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from agents.ppo import PPO
from benchmarks.common import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--run-dir", default="runs/bench_ppo_sentiment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    agent = PPO(
        env_id="TextGen-Sentiment-v0",
        model=args.model,
        device=args.device,
        batch_size=args.batch_size,
        minibatch_size=max(1, args.batch_size // 2),
        lora_rank=args.lora_rank,
        learning_rate=args.learning_rate,
        kl_coef=args.kl_coef,
        eval_episodes=args.eval_episodes,
        eval_every=0,
        save_every=10,
        run_dir=args.run_dir,
        overwrite=True,  # a benchmark starts afresh each time
        seed=args.seed,
        total_timesteps=10**9,
    )
    before = agent.evaluate()
    start = time.perf_counter()
    budget = args.minutes * 60

    def out_of_time(trainer: PPO, metrics: dict) -> bool:
        return time.perf_counter() - start < budget

    agent.learn(callback=out_of_time)
    seconds = time.perf_counter() - start
    after = agent.evaluate()
    rows = [
        {"when": "before", "eval_reward": before["eval/score_mean"], "eval_kl": before["eval/kl"]},
        {"when": "after", "eval_reward": after["eval/score_mean"], "eval_kl": after["eval/kl"]},
    ]
    report(
        f"PPO on TextGen-Sentiment-v0 ({args.model}, LoRA r={args.lora_rank}, B={args.batch_size})",
        rows,
        {
            "iterations": agent.iteration,
            "generated_tokens": agent.timesteps,
            "train_seconds": round(seconds, 1),
            "train_tokens_per_s": round(agent.timesteps / seconds, 1),
            "reward_gain": round(after["eval/score_mean"] - before["eval/score_mean"], 4),
            "samples_after": after["eval/samples"].splitlines()[:3],
            "config": {k: v for k, v in vars(args).items()},
        },
    )
    print(json.dumps({"before": before, "after": after}, indent=None)[:2000])


if __name__ == "__main__":
    main()
