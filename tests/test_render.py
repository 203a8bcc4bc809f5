"""Leaderboard page: confidence intervals, ties, gain over zero-shot, reward-hacking flag, curves, samples."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest

from agents.logger import md_cell
from leaderboards.render import (
    HACKING,
    Estimate,
    average_curves,
    fallen_scorers,
    gain,
    mean_ci,
    rank_labels,
    render,
    t_quantile,
    welch,
)
from leaderboards.schema import example_result, write_result
from leaderboards.suites import ZERO_SHOT

ENV = "TextGen-Sentiment-v0"


def make_run(agent: str, seed: int, reward: float, *, env: str = ENV, **quality: object) -> dict:
    """An example result for ``agent`` / ``seed`` with its reward and any other quality fields replaced."""
    r = copy.deepcopy(example_result())
    r["env"]["id"] = env
    r["agent"]["name"] = agent
    r["seed"] = seed
    r["run_id"] = f"{env}__{agent}__seed{seed}"
    r["command"] = f"textgym leaderboard run --suite quick --only {r['run_id']}"
    r["quality"].update(reward_mean=reward, **quality)
    if agent == ZERO_SHOT:
        r["budget"]["generated_tokens"] = 0
        r["curve"] = [[0, reward]]
    return r


def write_runs(results: Path, runs: list[dict]) -> Path:
    for r in runs:
        write_result(r, results / "quick" / f"{r['run_id']}.json")
    return results


def rows(text: str, env: str = ENV) -> dict[str, list[str]]:
    """agent name (first word of the agent cell) -> the row's cells, from the env's table."""
    block = text.split(f"### {env}", 1)[1].split("\n\n", 2)[1]
    out = {}
    for line in block.splitlines()[2:]:
        cells = split_row(line)
        out[cells[1].split(" ")[0]] = cells
    return out


def split_row(line: str) -> list[str]:
    """Cells of a markdown table row, splitting on unescaped pipes only (as GFM does)."""
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[2:-2])]


def header(text: str, env: str = ENV) -> list[str]:
    return split_row(text.split(f"### {env}", 1)[1].split("\n\n", 2)[1].splitlines()[0])


# ---------------------------------------------------------------- statistics


def test_t_quantile_table_and_tail():
    assert t_quantile(1) == 12.706 and t_quantile(2) == 4.303 and t_quantile(30) == 2.042
    assert t_quantile(2.7) == 4.303  # fractional Welch df rounds down (wider, conservative)
    tail = [t_quantile(df) for df in (31, 40, 60, 120, 10_000)]
    assert tail == sorted(tail, reverse=True) and all(1.96 < t < 2.042 for t in tail)
    assert abs(t_quantile(60) - 2.000) < 1e-3 and abs(t_quantile(120) - 1.980) < 1e-3
    with pytest.raises(ValueError, match="at least 1 degree"):
        t_quantile(0.5)


def test_t_quantile_matches_scipy_where_available():
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 31), 35, 50, 100, 1000]:
        assert abs(t_quantile(df) - stats.t.ppf(0.975, df)) < 1.5e-3, df


def test_mean_ci_by_hand():
    est = mean_ci([0.1, 0.2, 0.3])
    half = 4.303 * 0.1 / math.sqrt(3)
    assert est.mean == pytest.approx(0.2) and est.half == pytest.approx(half)
    assert (est.low, est.high) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert mean_ci([0.4]) == Estimate(0.4, None) and (mean_ci([0.4]).low, mean_ci([0.4]).high) == (0.4, 0.4)


def test_gain_paired_when_the_seeds_match_else_welch():
    row, zero = [(0, 0.3), (1, 0.5), (2, 0.4)], [(2, 0.3), (0, 0.2), (1, 0.3)]  # zero's order does not matter
    paired = gain(row, zero)
    diffs = [0.1, 0.2, 0.1]
    sd = 0.1 / math.sqrt(3)  # stdev of [0.1, 0.2, 0.1]
    assert paired.paired and paired.diff.mean == pytest.approx(sum(diffs) / 3)
    assert paired.se == pytest.approx(sd / math.sqrt(3))
    assert paired.diff.half == pytest.approx(4.303 * sd / math.sqrt(3))
    assert paired.standard_errors == pytest.approx((0.4 / 3) / (sd / math.sqrt(3)))

    unpaired = gain([(0, 0.3), (1, 0.5), (2, 0.4)], [(0, 0.2), (1, 0.3), (5, 0.3)])
    va, vb = 0.01 / 3, (0.1**2 / 3) / 3  # variances / n: [0.3, 0.5, 0.4] and [0.2, 0.3, 0.3]
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert not unpaired.paired and unpaired.se == pytest.approx(math.sqrt(va + vb))
    assert unpaired.diff.half == pytest.approx(t_quantile(df) * math.sqrt(va + vb))
    assert welch([0.5], [0.1, 0.2]).diff == Estimate(pytest.approx(0.35), None)


def test_rank_labels_tie_only_overlapping_intervals():
    assert rank_labels([Estimate(0.5, 0.05), Estimate(0.3, 0.05)]) == ["1", "2"]  # 0.35 < 0.45: apart
    assert rank_labels([Estimate(0.5, 0.1), Estimate(0.3, 0.1)]) == ["=1", "=1"]  # 0.4 >= 0.4: touch
    # greedy from the leader: the third overlaps the second but not the leader, so it leads its own group
    assert rank_labels([Estimate(0.5, 0.05), Estimate(0.44, 0.05), Estimate(0.36, 0.05)]) == ["=1", "=1", "3"]
    # single seeds are points: tied only when inside the other's interval
    assert rank_labels([Estimate(0.5, None), Estimate(0.45, 0.1), Estimate(0.2, None)]) == ["=1", "=1", "3"]
    assert rank_labels([Estimate(0.5, None), Estimate(0.4, None)]) == ["1", "2"]


def test_average_curves_on_different_grids():
    a = [[0, 0.0], [100, 1.0], [200, 2.0]]
    b = [[0, 1.0], [50, 1.0], [150, 3.0], [250, 9.0]]  # longer: no extrapolation beyond 200
    grid, mean, low, high = average_curves([a, b])
    assert grid.tolist() == [0, 50, 100, 150, 200]
    a_on = [0.0, 0.5, 1.0, 1.5, 2.0]
    b_on = [1.0, 1.0, 2.0, 3.0, 6.0]  # 200 lies halfway between (150, 3) and (250, 9)
    assert mean.tolist() == pytest.approx([(x + y) / 2 for x, y in zip(a_on, b_on, strict=True)])
    assert low.tolist() == pytest.approx([min(p) for p in zip(a_on, b_on, strict=True)])
    assert high.tolist() == pytest.approx([max(p) for p in zip(a_on, b_on, strict=True)])
    assert average_curves([[[200, 1.0], [0, 0.0]]])[1].tolist() == [0.0, 1.0]  # unsorted points are sorted
    assert [len(x) for x in average_curves([[], []])] == [0, 0, 0, 0]


def test_md_cell_keeps_one_row():
    text = "a | b\nc\r\nd \\| *e* <b>"
    cell = md_cell(text)
    assert "\n" not in cell and "\r" not in cell and cell.count("<br>") == 2
    assert len(split_row(f"| x | {cell} |")) == 2
    assert "<b>" not in cell and "\\*e\\*" in cell


# ---------------------------------------------------------------- the page


def board(tmp_path: Path, runs: list[dict]) -> str:
    return render(write_runs(tmp_path / "results", runs), tmp_path / "board" / "README.md")


def three_seeds(agent: str, rewards: list[float], **quality: object) -> list[dict]:
    return [make_run(agent, seed, reward, **quality) for seed, reward in enumerate(rewards)]


def test_reward_ci_and_gain_cells(tmp_path):
    text = board(tmp_path, three_seeds("ppo", [0.1, 0.2, 0.3]) + three_seeds(ZERO_SHOT, [0.0, 0.1, 0.2]))
    table = rows(text)
    half = 4.303 * 0.1 / math.sqrt(3)
    assert table["ppo"][4] == f"{0.2:.3f} [{0.2 - half:.3f}, {0.2 + half:.3f}]" == "0.200 [-0.048, 0.448]"
    # paired by seed: every difference is 0.1, so the CI collapses and the SE is zero
    assert table["ppo"][5] == "+0.100 [+0.100, +0.100], SE 0, paired"
    assert table[ZERO_SHOT][5] == "—"
    assert header(text)[:6] == ["rank", "agent", "seeds", "budget (tokens)", "reward (95% CI)", header(text)[5]]
    assert header(text)[6] == "minilm_sentiment" and header(text)[7] == "KL (k3)"


def test_gain_column_welch_and_single_seed(tmp_path):
    runs = three_seeds("ppo", [0.3, 0.5, 0.4]) + [make_run(ZERO_SHOT, s, r) for s, r in [(0, 0.2), (1, 0.3), (7, 0.3)]]
    runs.append(make_run("a2c", 0, 0.25))
    table = rows(board(tmp_path, runs))
    g = welch([0.3, 0.5, 0.4], [0.2, 0.3, 0.3])
    assert table["ppo"][5] == (
        f"{g.diff.mean:+.3f} [{g.diff.low:+.3f}, {g.diff.high:+.3f}], {g.standard_errors:.1f} SE, Welch"
    )
    assert table["a2c"][4] == "0.250 [n/a]" and table["a2c"][5] == "-0.017 [n/a]"
    assert table["a2c"][2] == "1" and table["a2c"][-1].startswith("`textgym leaderboard run")


def test_ties_marked_when_intervals_overlap_and_not_otherwise(tmp_path):
    apart = three_seeds("ppo", [0.80, 0.81, 0.82]) + three_seeds(ZERO_SHOT, [0.10, 0.11, 0.12])
    table = rows(board(tmp_path / "apart", apart))
    assert (table["ppo"][0], table[ZERO_SHOT][0]) == ("1", "2")
    close = three_seeds("ppo", [0.1, 0.3, 0.5]) + three_seeds(ZERO_SHOT, [0.1, 0.2, 0.3])
    close += three_seeds("a2c", [0.9, 0.91, 0.92])
    text = board(tmp_path / "close", close)
    table = rows(text)
    assert (table["a2c"][0], table["ppo"][0], table[ZERO_SHOT][0]) == ("1", "=2", "=2")
    assert text.index("| 1 | a2c |") < text.index("| =2 | ppo |") < text.index("| =2 | zero-shot |")


@pytest.mark.parametrize(
    ("own", "scorer", "flagged"),
    [
        ([0.5, 0.6, 0.7], [0.10, 0.11, 0.12], True),  # reward up, scorer down beyond its std: flag
        ([0.5, 0.6, 0.7], [0.19, 0.20, 0.21], False),  # scorer down by less than its seed std
        ([0.5, 0.6, 0.7], [0.30, 0.31, 0.32], False),  # scorer up
        ([0.0, 0.0, 0.1], [0.10, 0.11, 0.12], False),  # both down: a worse agent, not reward hacking
    ],
)
def test_reward_hacking_flag(tmp_path, own, scorer, flagged):
    zero = [make_run(ZERO_SHOT, s, 0.2, independent={"minilm_sentiment": v}) for s, v in enumerate([0.2, 0.2, 0.23])]
    row = [
        make_run("ppo", s, r, independent={"minilm_sentiment": v})
        for s, (r, v) in enumerate(zip(own, scorer, strict=True))
    ]
    text = board(tmp_path, row + zero)
    agent_cell = rows(text)["ppo"][1]
    assert (HACKING in agent_cell) is flagged
    assert (HACKING in rows(text)[ZERO_SHOT][1]) is False
    assert ("`minilm_sentiment` fell to" in text) is flagged
    if flagged:
        assert agent_cell == f"ppo {HACKING} [1]" and f"- [1] {HACKING} ppo: reward rose to 0.600" in text


def test_reward_hacking_any_drop_counts_with_single_seeds():
    zero = [make_run(ZERO_SHOT, 0, 0.2, independent={"a": 0.5, "b": 0.5})]
    row = [make_run("ppo", 0, 0.3, independent={"a": 0.49, "b": 0.6, "c": 0.0})]
    falls = fallen_scorers(row, zero)
    assert [(f.scorer, f.noise) for f in falls] == [("a", 0.0)]  # c: zero-shot has no such scorer


def test_page_plots_and_samples(tmp_path):
    runs = []
    for seed in range(3):
        curve = [[t * (seed + 1) * 64, 0.1 * t] for t in range(4)]  # a different x grid per seed
        samples = [{"prompt": f"p{i} | s{seed}", "completion": f" line\nnext {i}"} for i in range(5)]
        runs.append(make_run("ppo", seed, 0.4 + 0.01 * seed, samples=samples))
        runs[-1]["curve"] = curve
        runs.append(make_run("a2c", seed, 0.3, kl_k3=0.1))
        runs.append(make_run(ZERO_SHOT, seed, 0.2, samples=[{"prompt": "z", "completion": " zz"}]))
    runs.append(make_run("ppo", 0, 0.3, env="TextGen-Arithmetic-v0"))
    out = tmp_path / "board" / "README.md"
    text = render(write_runs(tmp_path / "results", runs), out)
    assert out.read_text() == text and not list(out.parent.glob(".*.tmp"))
    for env in (ENV, "TextGen-Arithmetic-v0"):
        png = out.parent / "plots" / f"{env}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert f"![{env}](plots/{env}.png)" in text
    assert "95% confidence interval" in text and "reward hacking?" in text and "Hardware of these runs" in text
    samples = text.split(f"### {ENV}", 1)[1].split("#### Samples", 1)[1].split("###", 1)[0]
    sample_rows = [line for line in samples.splitlines() if line.startswith("| ")][1:]
    assert sample_rows[0] == "| zero-shot, seed 0 | z│ zz |"
    assert len(sample_rows) == 1 + 3  # zero-shot's one sample, the best trained row's first three
    for line in sample_rows[1:]:
        assert line.startswith("| ppo, seed 0 | p") and len(split_row(line)) == 2 and "<br>" in line
    assert "p0 \\| s0│ line<br>next 0" in sample_rows[1]


def test_results_of_two_suites_are_never_pooled(tmp_path):
    from leaderboards.render import group
    from leaderboards.schema import example_result

    quick, full = example_result(), example_result()
    full["suite"] = "full"
    assert set(group([quick, full])) == {"quick/TextGen-Sentiment-v0", "full/TextGen-Sentiment-v0"}
    assert set(group([quick])) == {"TextGen-Sentiment-v0"}


def test_the_cli_renders_another_results_folder_into_that_folder_not_the_projects_board(tmp_path) -> None:
    """A sweep's results (--results elsewhere) must never overwrite leaderboards/README.md."""
    from leaderboards import runner
    from leaderboards.schema import result_file
    from textgym.cli import main

    board = runner.default_folder() / "README.md"
    before = board.read_bytes() if board.exists() else None
    write_result(copy.deepcopy(example_result()), result_file(tmp_path, "quick", example_result()["run_id"]))
    assert main(["leaderboard", "render", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").exists()
    assert (board.read_bytes() if board.exists() else None) == before
