"""Does a reward model scoring prefixes (a dense, potential-based reward) speed learning? Sparse vs dense on
Sentiment-v0, several seeds, the same budget and settings.

- ``sparse``: the env's VADER score, paid at the last token.
- ``dense``: ``PrefixShaped("vader")`` with ``dense_reward=True``: token ``t`` pays ``R(prefix_t) - R(prefix_{t-1})``,
  the reward model as a critic of the text so far. The pieces sum to the same terminal score, so the optimal
  policy is unchanged (Ng et al. 1999); only the credit each token gets differs.

Each (variant, seed) run trains ``--algo`` (the quick suite's settings for it) for ``--budget`` generated tokens,
then every policy is evaluated the same way: 200 held-out prompts of the plain (sparse) Sentiment-v0, scored by
VADER (the training reward) and by the MiniLM sentiment classifier (independent), with KL to the reference.
Also reported: the mean training score over the second half of the run (how soon it learned). Each run's
figures go to ``benchmarks/results/dense_shaping/VARIANT_seedN.json`` as it finishes (rerunning skips finished
runs; an interrupted one resumes from its checkpoint in ``--runs``), then the table is printed: mean +- standard
error over seeds and the paired dense - sparse difference with its size in standard errors.

    python -m benchmarks.dense_shaping --threads 1             # reinforce, seeds 0-2, 6144 tokens
    python -m benchmarks.dense_shaping --algo ppo --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ENV_ID = "TextGen-Sentiment-v0"
DENSE_ENV = {"reward": "textgym.rewards.compose:PrefixShaped", "reward_kwargs": {"reward": "vader"}}
DENSE_ENV |= {"dense_reward": True}
VARIANTS = {"sparse": {}, "dense": DENSE_ENV}


def run(algo: str, variant: str, seed: int, budget: int, runs: Path, episodes: int) -> dict[str, Any]:
    """Train one (variant, seed) run (resuming it if interrupted) and evaluate it on the plain env."""
    import gymnasium as gym

    from agents import trainer_class
    from agents.evaluation import evaluate_policy
    from agents.logger import read_metrics
    from agents.sampling import SamplingConfig
    from leaderboards.suites import QUICK_AGENTS, QUICK_COMMON

    config = {**QUICK_COMMON, **QUICK_AGENTS[algo]}
    trainer = trainer_class(algo)(
        **config,
        env_id=ENV_ID,
        env_kwargs=VARIANTS[variant],
        seed=seed,
        device="cpu",
        total_timesteps=budget,
        run_dir=str(runs / f"{algo}_{variant}_seed{seed}"),
        eval_every=0,
        save_every=5,
        tensorboard=False,
    )
    trainer.resume()
    trainer.learn(total_timesteps=budget)
    envs = gym.make_vec(ENV_ID, 16, vectorization_mode="vector_entry_point")
    figures = evaluate_policy(trainer.policy, envs, SamplingConfig(), episodes, scorers=("minilm_sentiment",))
    envs.close()
    curve = read_metrics(trainer.config.run_dir)
    train_scores = {row["iteration"]: row["charts/score_mean"] for row in curve if "charts/score_mean" in row}
    later = [v for i, v in sorted(train_scores.items()) if i > len(train_scores) // 2]
    trainer.close()
    return {
        "algo": algo,
        "variant": variant,
        "seed": seed,
        "budget": budget,
        "vader": figures["eval/score_mean"],
        "minilm_sentiment": figures["eval/score/minilm_sentiment"],
        "kl_k3": figures["eval/kl_k3"],
        "ref_perplexity": figures["eval/ref_perplexity"],
        "train_score_second_half": statistics.fmean(later) if later else float("nan"),
    }


def summary(results: list[dict[str, Any]], seeds: list[int]) -> str:
    """The table: mean +- SE over seeds per variant, and the paired dense - sparse difference."""
    keys = ["vader", "minilm_sentiment", "train_score_second_half", "kl_k3", "ref_perplexity"]
    by = {(r["variant"], r["seed"]): r for r in results}
    lines = ["| variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for variant in VARIANTS:
        rows = [by[variant, s] for s in seeds if (variant, s) in by]
        cells = [_mean_se([r[k] for r in rows]) for k in keys]
        lines.append(f"| {variant} ({len(rows)} seeds) | " + " | ".join(cells) + " |")
    paired = [s for s in seeds if ("dense", s) in by and ("sparse", s) in by]
    if len(paired) >= 2:
        cells = []
        for k in keys:
            diffs = [by["dense", s][k] - by["sparse", s][k] for s in paired]
            se = statistics.stdev(diffs) / len(diffs) ** 0.5
            cells.append(f"{statistics.fmean(diffs):+.3f} ({statistics.fmean(diffs) / se:+.1f} SE)" if se else "n/a")
        lines.append(f"| dense - sparse (paired, {len(paired)} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_se(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) / len(values) ** 0.5:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="reinforce", choices=["reinforce", "a2c", "ppo", "trpo"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=6144, help="generated tokens per run (the quick suite's)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--runs", default="runs/dense_shaping", help="run folders (checkpoints)")
    parser.add_argument("--results", default="benchmarks/results/dense_shaping")
    args = parser.parse_args(argv)
    import torch

    from textgym.io import atomic_write_text

    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for seed in args.seeds:
        for variant in VARIANTS:
            path = Path(args.results) / f"{args.algo}_{variant}_seed{seed}.json"
            if not path.exists():
                print(f"[dense_shaping] {args.algo} {variant} seed {seed}", file=sys.stderr, flush=True)
                result = run(args.algo, variant, seed, args.budget, Path(args.runs), args.episodes)
                atomic_write_text(path, json.dumps(result, indent=2) + "\n")
            results.append(json.loads(path.read_text()))
    print(f"{args.algo} on {ENV_ID}, {args.budget} tokens, held-out {args.episodes} prompts:")
    print(summary(results, args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
