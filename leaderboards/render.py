"""Render results: the ``leaderboards/README.md`` page (ranked tables with confidence intervals) and PNG plots.

Per env the page has one table (rows sorted by mean held-out reward, with a 95% confidence interval over
seeds, the gain over the zero-shot row, ties marked, reward hacking flagged), the plots, and a few held-out
samples of the zero-shot row and of the best trained row.

The statistics (all over seeds, one result file per seed):

- **Reward CI**: ``mean ± t(0.975, n-1) · s / sqrt(n)``, Student t with ``n - 1`` degrees of freedom
  (:func:`t_quantile`; no SciPy needed); undefined (``n/a``) for a single seed.
- **Gain over zero-shot**: the difference of mean rewards with its 95% CI and its size in standard errors;
  paired by seed when both rows ran exactly the same seeds (each seed evaluates the same prompts), else Welch's
  unequal-variance interval (:func:`gain`).
- **Ties** (:func:`rank_labels`): rank groups are built greedily from the top; a row joins the current group
  when its CI upper bound is at least the group leader's CI lower bound, else it starts a new group. A
  single-seed row's interval is its point value ``[m, m]``. Every row of a group of two or more shows ``=k``.
- **Reward hacking?** (:func:`fallen_scorers`): a trained row whose mean reward is above zero-shot's while an
  independent scorer's mean is below zero-shot's on that scorer by more than the noise (the larger seed std of
  the two rows on that scorer; any drop when neither std is defined).

Plots (one PNG per env): learning curves (training batch reward against timesteps, averaged over seeds on a
common grid with a min–max band, zero-shot's held-out mean as a dashed line) and held-out reward against
KL (k3), a dot per run and a large marker per agent mean.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.logger import md_cell
from leaderboards.schema import load_result
from leaderboards.suites import ZERO_SHOT
from textgym.io import atomic_write, atomic_write_text

ROOT = Path(__file__).resolve().parent
Result = dict[str, Any]

# t_{0.975, df} for df = 1..30; beyond, a Cornish-Fisher expansion around z = 1.96 (error < 1e-3).
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
Z_975 = 1.959964
# a standard error this small relative to the numbers is rounding noise (identical differences): treat it as 0
RELATIVE_EPS = 1e-9

# (header, (section, key), digits): columns shown as mean ± std over seeds, after the scorers
SPREAD_COLUMNS = [
    ("KL (k3)", ("quality", "kl_k3"), 2),
    ("ref ppl", ("quality", "ref_perplexity"), 1),
    ("distinct-2", ("quality", "distinct_2"), 2),
    ("wall s", ("cost", "wall_clock_s"), 0),
    ("train tok/s", ("cost", "train_tokens_per_s"), 1),
    ("peak MB", ("cost", "peak_memory_mb"), 0),
]
HACKING = "⚠ reward hacking?"
SAMPLES_SHOWN = 3


# ---------------------------------------------------------------- statistics


def t_quantile(df: float) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (two-sided 95%).

    A fractional ``df`` (Welch) is rounded down, which widens the interval slightly (conservative).

    Example:
        >>> t_quantile(2), t_quantile(2.9), t_quantile(30)
        (4.303, 4.303, 2.042)
        >>> round(t_quantile(1000), 3)
        1.962
    """
    if df < 1:
        raise ValueError(f"t quantile needs at least 1 degree of freedom, got {df}")
    whole = math.floor(df)
    if whole <= len(T_975):
        return T_975[whole - 1]
    z = Z_975
    return z + (z**3 + z) / (4 * whole) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * whole**2)


@dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its 95% CI (``None`` where undefined, as for a single seed)."""

    mean: float
    half: float | None

    @property
    def low(self) -> float:
        """The CI's lower bound; the mean itself when the CI is undefined."""
        return self.mean - (self.half or 0.0)

    @property
    def high(self) -> float:
        """The CI's upper bound; the mean itself when the CI is undefined."""
        return self.mean + (self.half or 0.0)


def mean_ci(values: Sequence[float]) -> Estimate:
    """The mean of ``values`` and its 95% t interval (half-width ``None`` for one value).

    Example:
        >>> est = mean_ci([0.1, 0.2, 0.3])
        >>> round(est.mean, 6), round(est.half, 6)  # 4.303 * 0.1 / sqrt(3)
        (0.2, 0.248434)
        >>> mean_ci([0.5])
        Estimate(mean=0.5, half=None)
    """
    n = len(values)
    if n < 2:
        return Estimate(statistics.fmean(values), None)
    return Estimate(statistics.fmean(values), t_quantile(n - 1) * statistics.stdev(values) / math.sqrt(n))


def std_or_none(values: Sequence[float]) -> float | None:
    """Sample std over seeds, ``None`` for fewer than two values.

    Example:
        >>> std_or_none([1.0, 3.0]), std_or_none([1.0])
        (1.4142135623730951, None)
    """
    return statistics.stdev(values) if len(values) >= 2 else None


@dataclass(frozen=True)
class Gain:
    """A row's reward minus zero-shot's: the difference with its 95% CI, its standard error, how it was paired."""

    diff: Estimate
    se: float | None
    paired: bool

    @property
    def standard_errors(self) -> float | None:
        """The difference in standard errors (``None`` when the standard error is undefined or zero)."""
        return self.diff.mean / self.se if self.se else None


def gain(row: Sequence[tuple[int, float]], zero: Sequence[tuple[int, float]]) -> Gain:
    """Mean reward of ``row`` minus that of ``zero``, both given as ``(seed, reward)`` pairs.

    Paired (the CI of the per-seed differences, ``n - 1`` degrees of freedom) when both ran exactly the same
    seeds, each once, at least two of them; otherwise Welch (unequal variances, Welch–Satterthwaite degrees of
    freedom), undefined CI when a side has a single seed.

    Example:
        >>> g = gain([(0, 0.3), (1, 0.5), (2, 0.4)], [(0, 0.2), (1, 0.3), (2, 0.3)])
        >>> g.paired, round(g.diff.mean, 3), round(g.se, 4), round(g.standard_errors, 1)
        (True, 0.133, 0.0333, 4.0)
        >>> gain([(0, 0.3), (1, 0.5)], [(0, 0.2), (2, 0.3)]).paired
        False
    """
    seeds, zero_seeds = [s for s, _ in row], [s for s, _ in zero]
    if len(seeds) >= 2 and sorted(seeds) == sorted(zero_seeds) and len(set(seeds)) == len(seeds):
        zero_by_seed = dict(zero)
        diffs = [value - zero_by_seed[seed] for seed, value in row]
        se = denoise(statistics.stdev(diffs) / math.sqrt(len(diffs)), [v for _, v in [*row, *zero]])
        return Gain(mean_ci(diffs) if se else Estimate(statistics.fmean(diffs), 0.0), se, paired=True)
    return welch([v for _, v in row], [v for _, v in zero])


def welch(a: Sequence[float], b: Sequence[float]) -> Gain:
    """``mean(a) - mean(b)`` with Welch's 95% interval (undefined when either side has one value).

    Example:
        >>> g = welch([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
        >>> round(g.diff.mean, 3), round(g.diff.half, 3), round(g.se, 3)  # df = 2: 4.303 * 1 / sqrt(3)
        (2.0, 2.484, 0.577)
    """
    diff = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return Gain(Estimate(diff, None), None, paired=False)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = denoise(math.sqrt(va + vb), [*a, *b])
    if se == 0:
        return Gain(Estimate(diff, 0.0), 0.0, paired=False)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return Gain(Estimate(diff, t_quantile(df) * se), se, paired=False)


def denoise(se: float, values: Sequence[float]) -> float:
    """``se``, or 0 when it is float rounding noise (below ``RELATIVE_EPS`` times the largest ``|value|``, or 1).

    Example:
        >>> denoise(1e-17, [0.3, 0.2]), denoise(0.01, [0.3, 0.2])
        (0.0, 0.01)
    """
    return 0.0 if se < RELATIVE_EPS * max(1.0, *(abs(v) for v in values)) else se


def rank_labels(estimates: Sequence[Estimate]) -> list[str]:
    """Rank labels for rows sorted by mean (best first); tied rows share a rank shown as ``=k``.

    Groups are built greedily from the top: a row joins the current group when its CI upper bound is at least
    the group leader's CI lower bound (their intervals overlap, as the row's mean is not above the leader's);
    otherwise it leads a new group. A group's rank is one more than the number of rows above it. A row with an
    undefined CI (one seed) counts as the point ``[m, m]``.

    Example:
        >>> rank_labels([Estimate(0.50, 0.05), Estimate(0.46, 0.02), Estimate(0.30, 0.01), Estimate(0.1, None)])
        ['=1', '=1', '3', '4']
    """
    groups: list[list[int]] = []
    for i, est in enumerate(estimates):
        if groups and est.high >= estimates[groups[-1][0]].low:
            groups[-1].append(i)
        else:
            groups.append([i])
    labels = [""] * len(estimates)
    for members in groups:
        for i in members:
            labels[i] = f"={members[0] + 1}" if len(members) > 1 else str(members[0] + 1)
    return labels


@dataclass(frozen=True)
class Fall:
    """An independent scorer that rated a row below zero-shot by more than the noise."""

    scorer: str
    mean: float
    zero_mean: float
    noise: float


def fallen_scorers(runs: list[Result], zero_runs: list[Result]) -> list[Fall]:
    """The independent scorers that fell while the row's own reward rose above zero-shot's (empty otherwise).

    A scorer falls when the row's mean on it is below zero-shot's mean by more than the noise: the larger of the
    two rows' seed stds on that scorer, or any drop when neither std is defined.

    Example:
        >>> from leaderboards.schema import example_result
        >>> zero, row = example_result(), example_result()
        >>> row["quality"].update(reward_mean=0.9, independent={"minilm_sentiment": 0.1})
        >>> [f.scorer for f in fallen_scorers([row], [zero])]
        ['minilm_sentiment']
        >>> fallen_scorers([zero], [row])  # the reward fell too: not hacking
        []
    """
    if mean_of(rewards(runs)) <= mean_of(rewards(zero_runs)):
        return []
    falls = []
    for name in sorted(scorer_names(runs) & scorer_names(zero_runs)):
        mine, base = scores(runs, name), scores(zero_runs, name)
        noise = max((s for s in (std_or_none(mine), std_or_none(base)) if s is not None), default=0.0)
        if mean_of(base) - mean_of(mine) > noise:
            falls.append(Fall(name, mean_of(mine), mean_of(base), noise))
    return falls


def average_curves(curves: Sequence[Sequence[Sequence[float]]]) -> tuple[np.ndarray, ...]:
    """Mean, min and max of several ``[[timesteps, reward], ...]`` curves on a common grid of timesteps.

    The grid is the union of the curves' timesteps inside the range all of them cover (no extrapolation);
    each curve is linearly interpolated onto it. Should the ranges not overlap, the grid is the union of all
    timesteps and each curve stays flat beyond its ends. Empty curves are skipped.

    Returns:
        ``(grid, mean, low, high)``, four arrays of the grid's length (empty when every curve is).

    Example:
        >>> grid, mean, low, high = average_curves([[[0, 0.0], [10, 1.0]], [[0, 1.0], [5, 1.0], [10, 1.0], [20, 2]]])
        >>> grid.tolist(), mean.tolist(), low.tolist(), high.tolist()
        ([0.0, 5.0, 10.0], [0.5, 0.75, 1.0], [0.0, 0.5, 1.0], [1.0, 1.0, 1.0])
    """
    points = [np.asarray(sorted(map(tuple, c)), dtype=float) for c in curves if len(c)]  # each (P, 2)
    if not points:
        return tuple(np.empty(0) for _ in range(4))
    xs = np.unique(np.concatenate([p[:, 0] for p in points]))
    start, end = max(p[0, 0] for p in points), min(p[-1, 0] for p in points)
    grid = xs[(xs >= start) & (xs <= end)] if start <= end else xs
    ys = np.stack([np.interp(grid, p[:, 0], p[:, 1]) for p in points])  # (seeds, G)
    return grid, ys.mean(axis=0), ys.min(axis=0), ys.max(axis=0)


# ---------------------------------------------------------------- result access


def rewards(runs: list[Result]) -> list[float]:
    """Held-out mean reward of each run."""
    return [r["quality"]["reward_mean"] for r in runs]


def seeded_rewards(runs: list[Result]) -> list[tuple[int, float]]:
    """``(seed, held-out mean reward)`` of each run."""
    return [(r["seed"], r["quality"]["reward_mean"]) for r in runs]


def mean_of(values: Sequence[float]) -> float:
    """The mean (``statistics.fmean``), named for reading."""
    return statistics.fmean(values)


def scorer_names(runs: list[Result]) -> set[str]:
    """Every independent scorer any of ``runs`` reports."""
    return {name for r in runs for name in r["quality"]["independent"]}


def scores(runs: list[Result], scorer: str) -> list[float]:
    """The scorer's mean score of each run that reports it."""
    return [r["quality"]["independent"][scorer] for r in runs if scorer in r["quality"]["independent"]]


def by_seed(runs: list[Result]) -> list[Result]:
    """Runs ordered by seed (the first is seed 0's, or the lowest seed's)."""
    return sorted(runs, key=lambda r: r["seed"])


def load_all(results_dir: Path) -> list[Result]:
    """Every valid result under ``results_dir`` (recursively, skipping the runs' working folders)."""
    paths = sorted(results_dir.rglob("*.json"))
    return [load_result(p) for p in paths if "runs" not in p.relative_to(results_dir).parts]


def group(results: list[Result]) -> dict[str, dict[str, list[Result]]]:
    """env id -> agent name -> results (one per seed, ordered by seed).

    Results of several suites (different budgets) are never pooled: their sections are ``suite/env id``.
    """
    several_suites = len({r["suite"] for r in results}) > 1
    grouped: dict[str, dict[str, list[Result]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        key = f"{r['suite']}/{r['env']['id']}" if several_suites else r["env"]["id"]
        grouped[key][r["agent"]["name"]].append(r)
    return {env: {name: by_seed(runs) for name, runs in agents.items()} for env, agents in grouped.items()}


def ranked(agents: dict[str, list[Result]]) -> list[tuple[str, list[Result]]]:
    """Agents sorted by mean held-out reward, best first (ties in the mean broken by name)."""
    return sorted(agents.items(), key=lambda kv: (-mean_of(rewards(kv[1])), kv[0]))


# ---------------------------------------------------------------- markdown


def mean_std(values: Sequence[float], digits: int) -> str:
    """``"m ± s"`` over seeds (``"m"`` for a single value, ``"—"`` for none).

    Example:
        >>> mean_std([1.0, 2.0, 3.0], 2)
        '2.00 ± 1.00'
    """
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def format_ci(est: Estimate, digits: int = 3, sign: str = "") -> str:
    """``"m [low, high]"``, or ``"m [n/a]"`` when the CI is undefined; ``sign="+"`` signs every number.

    Example:
        >>> format_ci(Estimate(0.412, 0.041))
        '0.412 [0.371, 0.453]'
        >>> format_ci(Estimate(0.05, None), sign="+")
        '+0.050 [n/a]'
        >>> format_ci(Estimate(-1e-17, 0.0), sign="+")
        '+0.000 [+0.000, +0.000]'
    """

    def num(x: float) -> str:
        return f"{round(x, digits) + 0.0:{sign}.{digits}f}"  # + 0.0: no "-0.000" from rounding noise

    if est.half is None:
        return f"{num(est.mean)} [n/a]"
    return f"{num(est.mean)} [{num(est.low)}, {num(est.high)}]"


def format_gain(g: Gain) -> str:
    """The gain cell: difference, its CI, its size in standard errors and how it was computed.

    Example:
        >>> format_gain(gain([(0, 0.3), (1, 0.5), (2, 0.4)], [(0, 0.2), (1, 0.3), (2, 0.3)]))
        '+0.133 [-0.010, +0.277], 4.0 SE, paired'
    """
    parts = [format_ci(g.diff, sign="+")]
    if g.se is not None:
        z = g.standard_errors
        parts.append(f"{z:.1f} SE" if z is not None else "SE 0")
    if g.diff.half is not None:
        parts.append("paired" if g.paired else "Welch")
    return ", ".join(parts)


def budget_cell(run: Result) -> str:
    """Generated tokens of training; a warm-started row also names the part its warm start used (``budget.init``).

    Example:
        >>> budget_cell({"budget": {"generated_tokens": 1024, "init": "sft:516"}})
        '1024 (incl. sft:516)'
    """
    init = run["budget"].get("init")
    return f"{run['budget']['generated_tokens']}" + (f" (incl. {md_cell(str(init))})" if init else "")


def command_cell(runs: list[Result]) -> str:
    """One shell line that reruns every seed of the row."""
    if len(runs) == 1:
        return f"`{runs[0]['command']}`".replace("|", "\\|")
    seeds = " ".join(str(r["seed"]) for r in runs)
    command = f"for s in {seeds}; do {runs[0]['command'].rsplit('__seed', 1)[0]}__seed$s; done"
    return f"`{command}`".replace("|", "\\|")


def table(env_id: str, agents: dict[str, list[Result]]) -> str:
    """The markdown of one env: heading, ranked table, and a numbered note per reward-hacking flag."""
    zero = agents.get(ZERO_SHOT)
    scorers = sorted({name for runs in agents.values() for name in scorer_names(runs)})
    headers = ["rank", "agent", "seeds", "budget (tokens)", "reward (95% CI)", "gain vs zero-shot (95% CI)"]
    headers += scorers + [h for h, _, _ in SPREAD_COLUMNS] + ["command"]  # scorer names are plain (schema)
    lines = [f"### {env_id}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    order = ranked(agents)
    notes: list[str] = []
    for rank, (name, runs) in zip(rank_labels([mean_ci(rewards(runs)) for _, runs in order]), order, strict=True):
        agent = md_cell(name)
        falls = fallen_scorers(runs, zero) if zero and name != ZERO_SHOT else []
        if zero and falls:
            notes.append(hacking_note(len(notes) + 1, name, runs, zero, falls))
            agent += f" {HACKING} [{len(notes)}]"
        lines.append("| " + " | ".join([rank, agent, *row_cells(name, runs, zero, scorers)]) + " |")
    return "\n".join(lines + (["", *notes] if notes else []))


def row_cells(name: str, runs: list[Result], zero: list[Result] | None, scorers: list[str]) -> list[str]:
    """The cells of one row after rank and agent: seeds, budget, reward, gain, scorers, spreads, command."""
    cells = [str(len(runs)), budget_cell(runs[0]), format_ci(mean_ci(rewards(runs)))]
    has_gain = zero is not None and name != ZERO_SHOT
    cells.append(format_gain(gain(seeded_rewards(runs), seeded_rewards(zero or []))) if has_gain else "—")
    cells += [mean_std(scores(runs, s), 3) for s in scorers]
    cells += [mean_std([r[a][b] for r in runs], digits) for _, (a, b), digits in SPREAD_COLUMNS]
    return [*cells, command_cell(runs)]


def hacking_note(number: int, name: str, runs: list[Result], zero: list[Result], falls: list[Fall]) -> str:
    """The note of a flagged row: its reward rose, and which independent scorers fell by how much."""
    fell = "; ".join(
        f"`{f.scorer}` fell to {f.mean:.3f} from zero-shot's {f.zero_mean:.3f} "
        f"(drop {f.zero_mean - f.mean:.3f} > noise {f.noise:.3f})"
        for f in falls
    )
    own, base = mean_of(rewards(runs)), mean_of(rewards(zero))
    return f"- [{number}] {HACKING} {md_cell(name)}: reward rose to {own:.3f} from zero-shot's {base:.3f}, but {fell}."


def samples_section(agents: dict[str, list[Result]]) -> str:
    """Held-out samples of the zero-shot row and of the best trained row (seed 0's, or the lowest seed's)."""
    trained = [(name, runs) for name, runs in ranked(agents) if name != ZERO_SHOT]
    shown = ([(ZERO_SHOT, agents[ZERO_SHOT])] if ZERO_SHOT in agents else []) + trained[:1]
    lines = ["#### Samples", "", "| row | prompt│completion |", "|---|---|"]
    for name, runs in shown:
        first = runs[0]
        label = f"{md_cell(name)}, seed {first['seed']}"
        samples = first["quality"]["samples"][:SAMPLES_SHOWN]
        if not samples:
            lines.append(f"| {label} | (no samples recorded) |")
        for s in samples:
            lines.append(f"| {label} | {md_cell(s['prompt'])}│{md_cell(s['completion'])} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- plots


def plot(env_id: str, agents: dict[str, list[Result]], out_dir: Path) -> list[Path]:
    """Learning curves and reward vs KL (k3) for one env, as one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {name: f"C{i}" for i, name in enumerate(sorted(n for n in agents if n != ZERO_SHOT))}
    colors[ZERO_SHOT] = "black"
    fig, (curves, frontier) = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_curves(curves, env_id, agents, colors)
    plot_frontier(frontier, env_id, agents, colors)
    fig.tight_layout()
    path = out_dir / f"{env_id.replace('/', '_')}.png"
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return [path]


def plot_curves(ax: Any, env_id: str, agents: dict[str, list[Result]], colors: dict[str, str]) -> None:
    """Training reward curves, mean over seeds with a min–max band; zero-shot's held-out mean as a dashed line."""
    for name, runs in sorted(agents.items()):
        if name == ZERO_SHOT:
            continue
        grid, mean, low, high = average_curves([r["curve"] for r in runs])
        label = f"{name} (n={len(runs)})"
        ax.plot(grid, mean, color=colors[name], label=label, marker="o" if len(grid) == 1 else None)
        ax.fill_between(grid, low, high, color=colors[name], alpha=0.2, linewidth=0)
    if ZERO_SHOT in agents:
        zero = mean_of(rewards(agents[ZERO_SHOT]))
        ax.axhline(zero, color=colors[ZERO_SHOT], linestyle="--", linewidth=1)
        ax.text(0.01, zero, f"zero-shot (held-out) {zero:.3f}", transform=ax.get_yaxis_transform(), va="bottom")
    ax.set(title=f"{env_id}: training reward", xlabel="timesteps (generated tokens)", ylabel="batch mean reward")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, title="mean, min–max band", title_fontsize=8)


def plot_frontier(ax: Any, env_id: str, agents: dict[str, list[Result]], colors: dict[str, str]) -> None:
    """Held-out reward against KL (k3): a dot per run, a large marker per agent mean; zero-shot at KL 0."""
    for name, runs in sorted(agents.items()):
        kls = [0.0 if name == ZERO_SHOT else r["quality"]["kl_k3"] for r in runs]
        ax.scatter(kls, rewards(runs), color=colors[name], s=18, alpha=0.5)
        ax.scatter([mean_of(kls)], [mean_of(rewards(runs))], color=colors[name], s=140, edgecolors="white", label=name)
    ax.set(title=f"{env_id}: held-out reward vs KL", xlabel="KL to reference, k3 (nats/episode)", ylabel="reward")
    ax.legend(fontsize=8)


# ---------------------------------------------------------------- page

HEADER = """\
# textgym leaderboard

Held-out quality and training cost of each agent under a fixed budget of generated tokens; each row pools one
result file per seed. `zero-shot` is the untrained policy, evaluated the same way. `sft` learns from the task's
demonstrations and `sft+ppo` spends half its budget on that first; `dqn` is evaluated greedily (its policy is the
argmax of Q), and greedy decoding alone moves a score: the untrained model decoded greedily scores 0.320 on
Arithmetic-v1's 200 held-out problems (`zero-shot` samples at temperature 1: 0.287); `ilql` learns offline
from 256 of the zero-shot policy's own samples of train prompts, scored by the env (its budget: tokens of that
data read).

- `reward (95% CI)`: task reward on the eval split, the mean over seeds and its 95% confidence interval
  (mean ± t·s/√n, Student t with n−1 degrees of freedom: 4.30 for 3 seeds, so three seeds give wide intervals);
  `n/a` for a single seed.
- `rank`: rows sorted by mean reward. `=k` marks a tie: groups are formed from the top, and a row joins the
  current group when its CI upper bound reaches the group leader's CI lower bound (a single-seed row counts as
  its point value). Tied rows are not distinguishable with these seeds.
- `gain vs zero-shot (95% CI)`: mean reward minus zero-shot's, its 95% CI and its size in standard errors (SE);
  `paired` by seed when both rows ran the same seeds, else `Welch` (unequal variances). Pairing removes the
  prompt-to-prompt noise the seeds share, so a gain can be clear while the two rows' own intervals still overlap.
- Independent scorer columns (named after the scorer): a second scorer's mean score of the same held-out
  completions, which no agent trains on. `⚠ reward hacking?` marks a trained row whose reward beats zero-shot's
  while such a scorer falls below zero-shot's by more than the noise (the larger seed std of the two rows on
  that scorer; any drop when both have one seed); the numbered note under the table names the scorer.
- `KL (k3)`: KL(policy ‖ reference) per episode, k3 estimator (never negative); `ref ppl`: perplexity of the
  generations under the reference model; `distinct-2`: unique bigrams / all bigrams; `wall s`: training +
  evaluation wall-clock; `train tok/s`: generated tokens per second of training; `peak MB`: peak resident memory
  (CPU) or allocated GPU memory. These and the scorer columns are mean ± std over seeds.
- Plots: training reward against timesteps (mean over seeds on a common grid, min–max band; dashed: zero-shot's
  held-out mean) and held-out reward against KL (k3), a dot per run and a large marker per agent mean.

Regenerate this page with `textgym leaderboard render`.
"""


def hardware_line(results: list[Result]) -> str:
    """Hardware, library versions and model of the runs, and every commit behind them."""
    first = results[0]
    commits = sorted({r["git_commit"] for r in results})
    commits_text = ("commit " if len(commits) == 1 else "commits ") + ", ".join(f"`{c}`" for c in commits)
    hw = first["hardware"]
    return (
        f"Hardware of these runs: {hw['device']}, {hw['threads']} threads, torch {hw['torch']}, transformers "
        f"{hw['transformers']}; model `{first['model']}`; code at {commits_text} (each result file names its own)."
        f" {suite_time_line(results)}"
    )


def suite_time_line(results: list[Result]) -> str:
    """How long the results on the page took to produce: wall-clock summed over runs, per suite.

    Example:
        >>> suite_time_line([{"suite": "quick", "cost": {"wall_clock_s": 5400.0}}])
        'Wall-clock of these results, summed over runs: quick 1.5 h (1 run).'
    """
    totals: dict[str, list[float]] = defaultdict(list)
    for r in results:
        totals[r["suite"]].append(r["cost"]["wall_clock_s"])
    parts = [
        f"{suite} {sum(times) / 3600:.1f} h ({len(times)} run{'s' if len(times) > 1 else ''})"
        for suite, times in sorted(totals.items())
    ]
    return "Wall-clock of these results, summed over runs: " + ", ".join(parts) + "."


def section(env_id: str, agents: dict[str, list[Result]], plots_dir: Path, page_dir: Path) -> str:
    """One env: table and notes, plots, samples."""
    images = [f"![{env_id}]({p.relative_to(page_dir).as_posix()})" for p in plot(env_id, agents, plots_dir)]
    return table(env_id, agents) + "\n\n" + "\n".join(images) + "\n\n" + samples_section(agents) + "\n"


def render(results_dir: Path = ROOT / "results", out: Path = ROOT / "README.md") -> str:
    """Write the leaderboard page (atomically) and one PNG per env under ``plots/`` beside it; returns the page.

    Example:
        >>> import tempfile, pathlib
        >>> from leaderboards.schema import example_result, write_result
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = write_result(example_result(), tmp / "results" / "quick" / "r.json")
        >>> "| 1 | ppo | 1 | 1024 | 0.250 [n/a] | — |" in render(tmp / "results", tmp / "README.md")
        True
    """
    results = load_all(results_dir)
    if not results:
        raise ValueError(f"no results under {str(results_dir)!r}: run `textgym leaderboard run --suite quick` first")
    grouped = group(results)
    sections = [section(env_id, grouped[env_id], out.parent / "plots", out.parent) for env_id in sorted(grouped)]
    text = "\n".join([HEADER, hardware_line(results), "", *sections])
    atomic_write_text(out, text)
    return text
