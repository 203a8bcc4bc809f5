"""Render results: ``leaderboards/README.md`` tables (mean ± std over seeds) and PNG plots.

Plots: reward curves (training score against generated tokens, mean over seeds) and the reward-vs-KL
frontier (held-out reward against KL to the reference, one point per run), one figure per env.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from leaderboards.schema import load_result
from textgym.io import atomic_write_text

ROOT = Path(__file__).resolve().parent
COLUMNS = [
    ("reward", ("quality", "reward_mean"), 3),
    ("KL", ("quality", "kl"), 2),
    ("ref ppl", ("quality", "ref_perplexity"), 1),
    ("distinct-2", ("quality", "distinct_2"), 2),
    ("wall s", ("cost", "wall_clock_s"), 0),
    ("train tok/s", ("cost", "train_tokens_per_s"), 1),
    ("peak MB", ("cost", "peak_memory_mb"), 0),
]


def load_all(results_dir: Path) -> list[dict[str, Any]]:
    """Every valid result under ``results_dir`` (recursively, skipping the runs' working folders)."""
    return [load_result(p) for p in sorted(results_dir.rglob("*.json")) if "runs" not in p.parts]


def mean_std(values: list[float], digits: int) -> str:
    """``"m ± s"`` over seeds (``"m"`` for a single value).

    Example:
        >>> mean_std([1.0, 2.0, 3.0], 2)
        '2.00 ± 1.00'
    """
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def group(results: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """env id -> agent name -> results (one per seed)."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grouped[r["env"]["id"]][r["agent"]["name"]].append(r)
    return grouped


def table(env_id: str, agents: dict[str, list[dict[str, Any]]]) -> str:
    """A markdown table for one env, rows sorted by mean reward."""
    header = "| agent | seeds | budget (tokens) | " + " | ".join(c[0] for c in COLUMNS) + " | command |"
    lines = [f"### {env_id}", "", header, "|" + "---|" * (len(COLUMNS) + 4)]
    ranked = sorted(agents.items(), key=lambda kv: -statistics.mean(r["quality"]["reward_mean"] for r in kv[1]))
    for name, runs in ranked:
        cells = [mean_std([r[a][b] for r in runs], digits) for _, (a, b), digits in COLUMNS]
        seeds = " ".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        command = f"for s in {seeds}; do {runs[0]['command'].rsplit('__seed', 1)[0]}__seed$s; done"
        lines.append(
            f"| {name} | {len(runs)} | {runs[0]['budget']['generated_tokens']} | "
            + " | ".join(cells)
            + f" | `{command}` |"
        )
    return "\n".join(lines)


def plot(env_id: str, agents: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Reward curves and the reward-vs-KL frontier for one env, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    slug = env_id.replace("/", "_")
    fig, (curves, frontier) = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in sorted(agents.items()):
        for i, r in enumerate(runs):
            xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
            curves.plot(xs, ys, color=f"C{sorted(agents).index(name)}", alpha=0.8, label=name if i == 0 else None)
        frontier.scatter(
            [r["quality"]["kl"] for r in runs], [r["quality"]["reward_mean"] for r in runs], label=name, s=30
        )
    curves.set(title=f"{env_id}: training reward", xlabel="generated tokens", ylabel="mean batch reward")
    frontier.set(title=f"{env_id}: held-out reward vs KL", xlabel="KL to reference (nats/episode)", ylabel="reward")
    curves.legend(fontsize=8)
    frontier.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / f"{slug}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def render(results_dir: Path = ROOT / "results", out: Path = ROOT / "README.md") -> str:
    """Write the leaderboard page and plots from every result; returns the markdown."""
    results = load_all(results_dir)
    if not results:
        raise ValueError(f"no results under {str(results_dir)!r}: run `textgym leaderboard run --suite quick` first")
    grouped = group(results)
    sections = []
    for env_id in sorted(grouped):
        plots = plot(env_id, grouped[env_id], out.parent / "plots")
        rel = [p.relative_to(out.parent).as_posix() for p in plots]
        sections.append(table(env_id, grouped[env_id]) + "\n\n" + "\n".join(f"![{env_id}]({p})" for p in rel))
    first = results[0]
    commits = sorted({r["git_commit"] for r in results})
    commits_text = ("commit " if len(commits) == 1 else "commits ") + ", ".join(f"`{c}`" for c in commits)
    text = "\n".join(
        [
            "# textgym leaderboard",
            "",
            "Held-out quality and training cost of each agent under a fixed budget of generated tokens, mean ± std",
            "over seeds. `reward`: task reward on the eval split; `KL`: KL(policy ‖ reference) per episode;",
            "`ref ppl`: perplexity of the generations under the reference model; `distinct-2`: unique bigrams /",
            "all bigrams of the generations; `wall s`: training + evaluation wall-clock; `train tok/s`: generated",
            "tokens per second of training; `peak MB`: peak resident memory (CPU) or allocated GPU memory.",
            "`zero-shot` is the untrained policy. Regenerate this page with `textgym leaderboard render`.",
            "",
            f"Hardware of these runs: {first['hardware']['device']}, {first['hardware']['threads']} threads, "
            f"torch {first['hardware']['torch']}, transformers {first['hardware']['transformers']}; "
            f"model `{first['model']}`; code at {commits_text} (each result file names its own).",
            "",
            *[s + "\n" for s in sections],
        ]
    )
    atomic_write_text(out, text)
    return text
