"""Results schema hardening: safe file names, finite numbers, numeric curves, no silent overwrite on submit."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from leaderboards.render import render
from leaderboards.runner import RESULTS, result_path
from leaderboards.schema import SchemaError, example_result, load_result, result_file, validate, write_result
from leaderboards.suites import RunSpec
from textgym.cli import main


def _submit(tmp_path: Path, result: dict, *flags: str, text: str | None = None) -> int:
    source = tmp_path / "submission.json"
    source.write_text(text if text is not None else json.dumps(result))
    return main(["leaderboard", "submit", str(source), "--results", str(tmp_path / "results"), *flags])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("run_id", "../../../../tmp/x"),
        ("run_id", "a/b"),
        ("run_id", ".hidden"),
        ("run_id", "a..b"),
        ("run_id", ""),
        ("run_id", "x" * 201),
        ("suite", "/tmp"),
        ("suite", ".."),
        ("suite", "quick\\..\\x"),
    ],
)
def test_run_id_and_suite_must_be_plain_names(field, value):
    result = {**example_result(), field: value}
    with pytest.raises(SchemaError, match=rf"result\.{field} must be a plain name"):
        validate(result)


@pytest.mark.parametrize(
    ("run_id", "suite"), [("../../../../{name}", "quick"), ("{name}", "/tmp"), ("{name}", "../..")]
)
def test_submit_cannot_write_outside_the_results_folder(tmp_path, capsys, run_id, suite):
    name = f"escaped-{tmp_path.name}"  # unique to this test run, so no earlier file can hide a new one
    result = {**example_result(), "run_id": run_id.format(name=name), "suite": suite}
    assert _submit(tmp_path, result) == 2
    assert "must be a plain name" in capsys.readouterr().err
    assert not (tmp_path.parent / f"{name}.json").exists()
    assert not Path(f"/tmp/{name}.json").exists()
    assert not (tmp_path / "results").exists()  # nothing written anywhere


def test_result_file_stays_inside_the_results_folder(tmp_path):
    assert result_file(tmp_path, "quick", "a.b-c_d") == tmp_path / "quick" / "a.b-c_d.json"
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "linked").symlink_to(outside)  # a plain name can still lead out through a link
    with pytest.raises(SchemaError, match="outside the results folder"):
        result_file(tmp_path / "results", "linked", "x")


def test_runner_result_path_checks_the_names(tmp_path):
    spec = RunSpec("../x", "ppo", "TextGen-Sentiment-v0", 0, 64, {})
    with pytest.raises(SchemaError, match=r"result\.suite must be a plain name"):
        result_path(spec, tmp_path)


def test_submit_never_overwrites_without_force(tmp_path, capsys):
    first = example_result()
    assert _submit(tmp_path, first) == 0
    target = tmp_path / "results" / "quick" / f"{first['run_id']}.json"
    second = copy.deepcopy(first)
    second["quality"]["reward_mean"] = 0.99
    assert _submit(tmp_path, second) == 2
    assert "already exists: pass --force" in capsys.readouterr().err
    assert load_result(target)["quality"]["reward_mean"] == 0.25
    assert _submit(tmp_path, second, "--force") == 0
    assert load_result(target)["quality"]["reward_mean"] == 0.99


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("field", [("quality", "reward_mean"), ("quality", "kl"), ("cost", "wall_clock_s")])
def test_non_finite_figures_are_rejected(field, bad):
    result = copy.deepcopy(example_result())
    result[field[0]][field[1]] = bad
    with pytest.raises(SchemaError, match=rf"result\.{field[0]}\.{field[1]} must be a finite number, got {bad!r}"):
        validate(result)


def test_nan_anywhere_is_rejected():
    result = copy.deepcopy(example_result())
    result["agent"]["config"]["clip"] = float("nan")
    with pytest.raises(SchemaError, match=r"result\.agent\.config\.clip must be a finite number, got nan"):
        validate(result)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_literals_in_the_json_file_are_rejected(tmp_path, capsys, literal):
    text = json.dumps(example_result()).replace('"reward_mean": 0.25', f'"reward_mean": {literal}')
    assert literal in text  # json.loads accepts these non-standard literals: the schema must not
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(SchemaError, match=r"result\.quality\.reward_mean must be a finite number"):
        load_result(path)
    assert _submit(tmp_path, {}, text=text) == 2
    assert "reward_mean must be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ([[0, 0.1], [1, 0.2], [2, 0.3], [3, "x"]], r"result\.curve\[3\]\[1\] must be a finite number, got 'x'"),
        ([[0, None]], r"result\.curve\[0\]\[1\] must be a finite number, got None"),
        ([[None, 0.1]], r"result\.curve\[0\]\[0\] must be a finite number, got None"),
        ([[0, float("nan")]], r"result\.curve\[0\]\[1\] must be a finite number, got nan"),
        ([[0, True]], r"result\.curve\[0\]\[1\] must be a finite number, got True"),
        ([5], r"result\.curve\[0\]: expected \[timesteps, reward\]"),
    ],
)
def test_curve_points_must_be_finite_numbers(curve, message):
    with pytest.raises(SchemaError, match=message):
        validate({**example_result(), "curve": curve})


def test_write_result_refuses_invalid_figures(tmp_path):
    result = copy.deepcopy(example_result())
    result["quality"]["kl"] = float("nan")
    with pytest.raises(SchemaError, match="kl must be a finite number"):
        write_result(result, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_committed_results_still_validate_and_render(tmp_path):
    paths = sorted(p for p in RESULTS.rglob("*.json") if "runs" not in p.parts)
    assert paths
    for path in paths:
        result = load_result(path)
        assert result_file(RESULTS, result["suite"], result["run_id"]) == path
    assert "| zero-shot |" in render(RESULTS, tmp_path / "README.md")
