"""Data-parallel speed: generated tokens per second of PPO with 1 process vs N processes (torchrun, gloo on CPU).

Both runs train on the same global batch with the same total threads (``--threads`` per process in the
N-process run, ``N x --threads`` in the single one), so the ratio shows what splitting the batch over processes
buys over giving one process all the threads. The rate is the median of each run's per-iteration rate after the
first iteration (model loading and warm-up excluded); the runs alternate ``--repeats`` times.

    python -m benchmarks.data_parallel                       # SmolLM2-135M, Sentiment-v0, 2 processes
    python -m benchmarks.data_parallel --model tiny --iterations 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import report


def train_rate(processes: int, threads: int, args: argparse.Namespace, run_dir: Path) -> float:
    """Median generated tokens/s over the iterations after the first, of one training run."""
    shutil.rmtree(run_dir, ignore_errors=True)
    budget = args.batch_size * args.max_new_tokens * args.iterations  # at least --iterations iterations
    train = ["-m", "textgym.cli", "train", "--algo", "ppo", "--env", args.env, "--model", args.model]
    train += ["--batch-size", str(args.batch_size), "--total-timesteps", str(budget), "--minibatch-size", "4"]
    train += ["--env-kwargs", json.dumps({"max_new_tokens": args.max_new_tokens}), "--eval-every", "0"]
    train += ["--no-progress", "--no-tensorboard", "--run-dir", str(run_dir)]
    launcher = [sys.executable]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    print(f"  {processes} process(es) x {threads} thread(s) ...", file=sys.stderr, flush=True)
    subprocess.run([*launcher, *train], check=True, env=env, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [row["charts/tokens_per_s"] for row in rows if "charts/tokens_per_s" in row]
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--env", default="TextGen-Sentiment-v0")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process of the N-process run")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"one": [], "parallel": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1}/{args.repeats}", file=sys.stderr, flush=True)
            rates["one"].append(train_rate(1, args.threads * args.processes, args, Path(folder) / "one"))
            rates["parallel"].append(train_rate(args.processes, args.threads, args, Path(folder) / "parallel"))
    one, parallel = statistics.median(rates["one"]), statistics.median(rates["parallel"])
    report(
        f"data-parallel PPO on {args.env}, model {args.model}, global batch {args.batch_size}",
        [
            {"processes": 1, "tokens_per_s": round(one, 2)},
            {"processes": args.processes, "tokens_per_s": round(parallel, 2)},
        ],
        {"speedup": round(parallel / one, 3), "threads_in_all": args.threads * args.processes},
    )


if __name__ == "__main__":
    main()
