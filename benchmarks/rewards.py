"""Reward throughput: texts/s of every registered reward at batch 64 on CPU (model loading excluded).

    python -m benchmarks.rewards [--batch 64] [--only bleu,minilm_sentiment]

Completions are held-out Rotten Tomatoes snippets (about 20 words), references the snippets' other halves,
prompts their openings. Each reward is called once to load its model, then timed (median of 3 calls).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import median_time, report
from textgym.rewards import REWARDS, make_reward


def batch_of(size: int) -> tuple[list[str], list[str], list[tuple[str, ...]]]:
    from textgym.rewards.minilm_sentiment import rt_splits
    from textgym.tasks.sentiment import opening

    texts = [t for t, _ in rt_splits()[1][:size]]
    prompts = [opening(t) for t in texts]
    completions = [t[len(p) :] for t, p in zip(texts, prompts, strict=True)]
    return prompts, completions, [(t,) for t in texts]


def run(batch: int, names: list[str]) -> None:
    prompts, completions, references = batch_of(batch)
    rows = []
    for name in names:
        reward = make_reward(name)
        refs = [("42",)] * batch if name == "numeric_match" else references  # it needs numbers
        reward(prompts, completions, references=refs)  # load the model

        def call(reward=reward, refs=refs) -> None:
            reward(prompts, completions, references=refs)

        seconds = median_time(call, repeats=3, warmup=0)
        rows.append({"reward": name, "seconds": seconds, "texts_per_s": batch / seconds})
        print(f"  {name}: {batch / seconds:,.0f} texts/s", flush=True)
    report(f"reward throughput, batch {batch}, CPU", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", default="", help="comma-separated reward names (default: all registered)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run(args.batch, args.only.split(",") if args.only else list(REWARDS))


if __name__ == "__main__":
    main()
