"""Run one leaderboard row of your own and submit it: `python examples/leaderboard_submission.py`.

`run_one` trains under the row's token budget, evaluates on the env's 200 held-out prompts (here fewer, to be
quick) and writes a schema-v2 result; `textgym leaderboard submit` validates it and adds it to a results folder,
and `textgym leaderboard render` ranks it. The default model takes CPU minutes; `--model tiny` runs in seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from leaderboards.render import render
from leaderboards.runner import run_one
from leaderboards.suites import RunSpec
from textgym.cli import main as textgym


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--budget", type=int, default=512, help="generated tokens of training")
    parser.add_argument("--out", default="my-leaderboard")
    args = parser.parse_args()
    out = Path(args.out)
    settings = {"model": args.model, "batch_size": 8, "eval_episodes": 32}
    rows = [
        RunSpec("mine", "zero-shot", "TextGen-Arithmetic-v1", 0, 0, dict(settings)),
        RunSpec("mine", "ppo", "TextGen-Arithmetic-v1", 0, args.budget, {**settings, "minibatch_size": 4}),
    ]
    for spec in rows:
        run_one(spec, out / "scratch", device="cpu")  # writes out/scratch/mine/<run_id>.json
        result = out / "scratch" / "mine" / f"{spec.run_id}.json"
        if textgym(["leaderboard", "submit", str(result), "--results", str(out / "results"), "--force"]) != 0:
            raise SystemExit(f"the result {result} did not validate")
    render(out / "results", out / "README.md")
    print(f"ranked in {out / 'README.md'}")


if __name__ == "__main__":
    main()
