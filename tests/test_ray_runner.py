"""Leaderboard runs as Ray tasks (leaderboards.ray_runner) on a local two-CPU cluster."""

from __future__ import annotations

import sys

import pytest

from leaderboards import runner
from leaderboards.ray_runner import run_on_ray
from leaderboards.suites import suite

# a run: appends its attempt to a log; "flaky" kills its own process on the first attempt (as a lost worker or an
# OOM kill would), "broken" fails every time, the others write their result
RUN = """
import os, pathlib, signal, sys
run_id, folder = sys.argv[1], pathlib.Path(sys.argv[2])
attempts = folder / f"{run_id}.attempts"
attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
if run_id == "broken" or (run_id == "flaky" and len(attempts.read_text()) == 1):
    os.kill(os.getpid(), signal.SIGKILL)
(folder / f"{run_id}.json").write_text("{}")
"""


@pytest.mark.slow
def test_runs_are_scheduled_on_a_local_cluster_and_a_killed_run_is_retried(tmp_path) -> None:
    arguments = {run_id: ["-c", RUN, run_id, str(tmp_path)] for run_id in ("a", "b", "flaky")}
    run_on_ray(arguments, num_cpus=2, retries=2)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["a.json", "b.json", "flaky.json"]
    attempts = {p.stem: len(p.read_text()) for p in tmp_path.glob("*.attempts")}
    assert attempts == {"a": 1, "b": 1, "flaky": 2}

    with pytest.raises(RuntimeError, match="1 runs failed after 1 retries: broken"):
        run_on_ray({"broken": ["-c", RUN, "broken", str(tmp_path)]}, num_cpus=2, retries=1)
    assert (tmp_path / "broken.attempts").read_text() == "xx"  # the first try and one retry


def test_run_suite_hands_ray_the_serial_runners_commands(tmp_path, monkeypatch) -> None:
    import leaderboards.ray_runner as ray_runner

    seen = {}
    monkeypatch.setattr(ray_runner, "run_on_ray", lambda arguments, address, **kw: seen.update(arguments, **kw))
    spec = suite("quick")[0]
    runner.run_suite("quick", tmp_path, "cpu", only=spec.run_id, threads=2, ray="local", retries=3)
    assert seen[spec.run_id] == runner.run_arguments(spec, tmp_path, "cpu", 2)
    assert seen["cpus_per_run"] == 2 and seen["gpus_per_run"] == 0 and seen["retries"] == 3
    assert seen[spec.run_id][:2] == ["-m", "leaderboards.runner"]  # the very child process the serial runner starts


def test_without_ray_installed_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'textgym\[ray\]'"):
        run_on_ray({"a": ["-c", "pass"]})


@pytest.mark.slow
def test_a_suite_on_ray_writes_the_serial_runners_results(tmp_path) -> None:
    """The smoke suite (tiny model) run serially and as Ray tasks on a local 2-CPU cluster: the same runs, each
    result schema-valid, with the same quality figures (training and evaluation are seeded; only cost differs)."""
    from leaderboards.schema import load_result

    runner.run_suite("smoke", tmp_path / "serial", "cpu", threads=1)
    runner.run_suite("smoke", tmp_path / "ray", "cpu", threads=1, ray="local", retries=1)
    serial = {p.name: load_result(p) for p in (tmp_path / "serial" / "smoke").glob("*.json")}
    on_ray = {p.name: load_result(p) for p in (tmp_path / "ray" / "smoke").glob("*.json")}
    assert sorted(serial) == sorted(on_ray) == sorted(f"{s.run_id}.json" for s in suite("smoke"))
    for name, result in serial.items():
        quality, other = dict(result["quality"]), dict(on_ray[name]["quality"])
        assert other.pop("samples") == quality.pop("samples"), name  # the same completions
        assert other.pop("independent") == pytest.approx(quality.pop("independent"))
        assert other == pytest.approx(quality), name
        assert on_ray[name]["agent"] == result["agent"] and on_ray[name]["budget"] == result["budget"]
