"""Train PPO on TextGen-Sentiment-v0 with the default SmolLM2 under a wall-clock budget; reward and KL before/after.

Held-out VADER reward, the independent MiniLM sentiment score of the same completions, KL to the reference (k3),
perplexity under the reference and distinct-2 are measured on the same 200 eval prompts and seeds before and after
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

SCORERS = ("minilm_sentiment",)  # an independent scorer: trained on VADER, checked by the MiniLM classifier


def quality_row(when: str, quality: dict) -> dict:
    """The figures that tell a real gain from reward hacking: own reward, independent score, KL, perplexity."""
    return {
        "when": when,
        "vader_reward": quality["eval/score_mean"],
        "minilm_sentiment": quality["eval/score/minilm_sentiment"],
        "kl_k3": quality["eval/kl_k3"],
        "ref_perplexity": quality["eval/ref_perplexity"],
        "distinct_2": quality["eval/distinct_2"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--score-normalization", default="batch", help="none, batch, group or leave_one_out")
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
        score_normalization=args.score_normalization,
        eval_episodes=args.eval_episodes,
        eval_every=0,
        save_every=10,
        run_dir=args.run_dir,
        overwrite=True,  # a benchmark starts afresh each time
        seed=args.seed,
        total_timesteps=10**9,
    )
    before = agent.evaluate(scorers=SCORERS)
    start = time.perf_counter()
    budget = args.minutes * 60

    def out_of_time(trainer: PPO, metrics: dict) -> bool:
        return time.perf_counter() - start < budget

    agent.learn(callback=out_of_time)
    seconds = time.perf_counter() - start
    after = agent.evaluate(scorers=SCORERS)
    rows = [quality_row("before", before), quality_row("after", after)]
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
