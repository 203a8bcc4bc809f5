"""Leaderboard: results schema, rendering, and one real run end to end on a tiny model."""

from __future__ import annotations

import copy
import json

import pytest

from leaderboards.render import render
from leaderboards.schema import SchemaError, example_result, load_result, validate, write_result
from leaderboards.suites import suite
from textgym.cli import main


def test_schema_round_trip(tmp_path):
    result = example_result()
    path = write_result(result, tmp_path / "r.json")
    assert load_result(path) == result


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("seed"), r"result\.seed: missing"),
        (lambda r: r["quality"].update(kl="high"), r"result\.quality\.kl: expected float, got str"),
        (lambda r: r.update(schema_version=99), r"schema_version: expected 2, got 99"),
        (lambda r: r.update(curve=[[1, 2, 3]]), r"result\.curve\[0\]"),
        (lambda r: r.update(env="TextGen-v0"), r"result\.env: expected an object"),
    ],
)
def test_schema_rejects_malformed_results(mutate, message):
    result = copy.deepcopy(example_result())
    mutate(result)
    with pytest.raises(SchemaError, match=message):
        validate(result)


def test_submit_validates_and_adds(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(example_result()))
    results = tmp_path / "results"
    assert main(["leaderboard", "submit", str(good), "--results", str(results)]) == 0
    assert (results / "quick" / "TextGen-Sentiment-v0__ppo__seed0.json").exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["leaderboard", "submit", str(broken), "--results", str(results)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_render_tables_and_plots(tmp_path):
    results = tmp_path / "results"
    for seed, reward in enumerate([0.2, 0.4]):
        r = example_result()
        r.update(seed=seed, run_id=f"x{seed}")
        r["quality"]["reward_mean"] = reward
        write_result(r, results / "quick" / f"x{seed}.json")
    zero = example_result()
    zero["agent"]["name"] = "zero-shot"
    write_result(zero, results / "quick" / "zero.json")
    out = tmp_path / "board" / "README.md"
    text = render(results, out)
    # 95% CI over two seeds: 0.3 ± t(0.975, 1) * 0.1414 / sqrt(2) = 0.3 ± 12.706 * 0.1; tied with zero-shot
    assert "| =1 | ppo | 2 | 1024 | 0.300 [-0.971, 1.571] | +0.050 [n/a] |" in text
    assert text.index("| ppo |") < text.index("| zero-shot |")  # ranked by reward
    assert (out.parent / "plots" / "TextGen-Sentiment-v0.png").stat().st_size > 10_000


def test_quick_suite_has_a_zero_shot_row_per_env_and_three_seeds():
    runs = suite("quick")
    for env_id in {r.env_id for r in runs}:
        assert {r.seed for r in runs if r.env_id == env_id and r.agent == "zero-shot"} == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown suite"):
        suite("huge")


# Settings where a quick-suite row may differ from its algorithm's defaults, and why: the rest of each row is
# the defaults, so the board measures what `textgym train --algo X` does out of the box.
CPU_SIZED = {
    "batch_size",  # 8 episodes per rollout instead of 16: more iterations in a CPU budget
    "eval_episodes",  # 200 held-out prompts per result
    "minibatch_size",  # PPO: half the batch, as the defaults' 8 of 16
    "cg_iters",  # TRPO: 3 conjugate-gradient iterations and 6 backtracks instead of 10 and 10 (CPU time)
    "line_search_steps",
    "max_kl",  # TRPO: a trust region of 0.02 per token instead of 0.01, for a budget of a few dozen steps
}


def test_quick_suite_rows_run_the_algorithms_defaults():
    from agents import trainer_class

    for spec in suite("quick"):
        if spec.agent == "zero-shot":
            continue
        defaults = trainer_class(spec.algo).config_class()
        differs = {k for k, v in spec.trainer_config.items() if getattr(defaults, k) != v}
        assert differs <= CPU_SIZED, f"{spec.run_id}: {sorted(differs - CPU_SIZED)} differ from the defaults"
