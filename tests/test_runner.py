"""Leaderboard runs end to end on the tiny model: every kind of row, warm starts, independent scorers."""

from __future__ import annotations

import json

import pytest

from leaderboards.runner import is_done, result_path, run_one
from leaderboards.schema import load_result
from leaderboards.suites import INDEPENDENT_SCORERS, WITH_DEMONSTRATIONS, RunSpec, suite

TINY = {"model": "tiny", "batch_size": 4, "eval_episodes": 6, "lora_rank": 0, "learning_rate": 1e-3}
AGENTS = {
    "ppo": {"score_normalization": "batch", "minibatch_size": 2},
    "sft": {"learning_rate": 1e-3, "kl_coef": 0.0},
    "sft+ppo": {"sft_learning_rate": 1e-3, "minibatch_size": 2},
    "zero-shot": {},
    "sb3-ppo": {},
}


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_each_kind_of_row_runs_end_to_end(agent, tmp_path):
    spec = RunSpec(
        "test", agent, "TextGen-Arithmetic-v1", 0, 0 if agent == "zero-shot" else 64, {**TINY, **AGENTS[agent]}
    )
    result = run_one(spec, tmp_path, "cpu")
    assert is_done(spec, tmp_path) and load_result(result_path(spec, tmp_path)) == result
    assert result["agent"]["name"] == agent and result["budget"]["eval_episodes"] == 6
    quality = result["quality"]
    assert quality["ref_perplexity"] > 1 and quality["kl_k3"] >= 0
    assert len(quality["samples"]) == 3 and quality["samples"][0]["prompt"].endswith("=")
    if agent == "zero-shot":
        assert result["curve"] == [[0, quality["reward_mean"]]] and quality["kl_k3"] == 0
        return
    assert result["cost"]["generated_tokens"] >= 64
    if agent == "sft":  # no sampled training batches: the held-out score at the end is the curve's one point
        assert result["curve"] == [[result["cost"]["generated_tokens"], quality["reward_mean"]]]
    else:
        assert len(result["curve"]) >= 2
    if agent == "sft+ppo":  # half the budget on demonstrations, then PPO from those weights
        sft_tokens = int(result["budget"]["init"].removeprefix("sft:"))
        assert 32 <= sft_tokens < 64 and result["curve"][0][0] > sft_tokens  # the RL curve starts after SFT


def test_independent_scorers_score_the_same_completions(tmp_path):
    spec = RunSpec("test", "zero-shot", "TextGen-Sentiment-v0", 0, 0, dict(TINY))
    result = run_one(spec, tmp_path, "cpu")
    assert set(result["quality"]["independent"]) == {"minilm_sentiment"}
    assert -1 <= result["quality"]["independent"]["minilm_sentiment"] <= 1


def test_suites_rank_on_200_held_out_prompts_and_skip_sft_without_demonstrations():
    for name in ("quick", "full"):
        runs = suite(name)
        assert all(r.config["eval_episodes"] >= 200 for r in runs)
        assert not [r for r in runs if r.agent.startswith("sft") and r.env_id not in WITH_DEMONSTRATIONS]
        for env_id in {r.env_id for r in runs}:
            seeds = {r.seed for r in runs if r.env_id == env_id and r.agent == "zero-shot"}
            assert seeds == {0, 1, 2}
    import textgym

    assert {r.env_id for r in suite("full")} == set(textgym.ENV_IDS) - {"TextGen-v0"}
    assert set(INDEPENDENT_SCORERS) <= set(textgym.ENV_IDS)
    assert len({r.run_id for r in suite("full")}) == len(suite("full"))


def test_the_sweep_gives_each_setting_its_own_row_and_a_safe_run_id():
    from leaderboards.schema import check_name

    runs = suite("sweep")
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(check_name(r.run_id, "run_id") for r in runs)
    trained = [r for r in runs if r.agent != "zero-shot"]
    assert {r.variant for r in trained} == {
        f"score_normalization={n},learning_rate={lr}" for n in ("none", "batch") for lr in (3e-4, 1e-3)
    }
    assert all(r.config["learning_rate"] == float(r.variant.rsplit("=", 1)[1]) for r in trained)
    assert trained[0].name == f"{trained[0].agent} [{trained[0].variant}]"


def test_run_skips_finished_runs_and_force_runs_them_again_from_scratch(tmp_path, monkeypatch):
    import leaderboards.runner as runner
    from leaderboards.schema import example_result, write_result

    spec = suite("quick")[0]
    calls = []
    monkeypatch.setattr(runner.subprocess, "run", lambda command, check: calls.append(command))
    write_result(example_result() | {"run_id": spec.run_id, "suite": spec.suite}, result_path(spec, tmp_path))
    leftover = tmp_path / spec.suite / "runs" / spec.run_id / "checkpoint.safetensors"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"old run")
    runner.run_suite("quick", tmp_path, only=spec.run_id)
    assert calls == []  # finished: skipped
    runner.run_suite("quick", tmp_path, only=spec.run_id, force=True)
    assert len(calls) == 1 and spec.run_id in calls[0]
    assert not result_path(spec, tmp_path).exists() and not leftover.exists()  # the rerun cannot resume the old one


def test_force_over_a_whole_suite_replaces_each_result_only_when_its_own_run_starts(tmp_path, monkeypatch):
    import leaderboards.runner as runner
    from leaderboards.schema import example_result, write_result

    specs = suite("quick")[:3]
    for spec in specs:
        write_result(example_result() | {"run_id": spec.run_id, "suite": spec.suite}, result_path(spec, tmp_path))
    still_there = []

    def fake_run(command, check):  # at each run's start, the later runs' results must still be on disk
        still_there.append([result_path(s, tmp_path).exists() for s in specs])

    monkeypatch.setattr(runner, "suite", lambda name: specs)
    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    runner.run_suite("quick", tmp_path, force=True)
    assert still_there == [[False, True, True], [False, False, True], [False, False, False]]


def test_leaderboard_defaults_to_the_working_folder_outside_a_source_checkout(tmp_path, monkeypatch):
    import leaderboards.runner as runner

    assert runner.default_folder() == runner.ROOT  # this checkout: the project's own leaderboard
    monkeypatch.setattr(runner, "ROOT", tmp_path / "site-packages" / "leaderboards")
    monkeypatch.chdir(tmp_path)
    assert runner.default_folder() == tmp_path / "leaderboard"


def test_stopping_the_suite_with_sigterm_stops_the_running_child(tmp_path) -> None:
    """`kill` of a running suite must not leave its current run training in the background."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    parent = f"from leaderboards.runner import run_child; run_child([{sys.executable!r}, '-c', {child!r}])"
    process = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child_pid = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child_pid, signal.SIGKILL)
    raise AssertionError("the child kept running after its suite was stopped")


def test_a_resumed_run_counts_the_training_time_of_earlier_sittings(tmp_path):
    """The cost of a run resumed at iteration 2 includes iterations 1 and 2 of the killed sitting (each logged
    iteration's tokens / tokens_per_s), the re-logged iteration counted once, later ones and torn lines not."""
    from leaderboards.runner import _seconds_before

    rows = [
        {"iteration": 1, "charts/tokens": 100, "charts/tokens_per_s": 10.0},
        {"iteration": 2, "charts/tokens": 100, "charts/tokens_per_s": 20.0},
        {"iteration": 2, "charts/tokens": 100, "charts/tokens_per_s": 25.0},  # logged again after a resume
        {"iteration": 3, "charts/tokens": 100, "charts/tokens_per_s": 5.0},  # after the checkpoint: redone
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 4, "ch')
    assert _seconds_before(tmp_path, 2) == pytest.approx(10.0 + 4.0)
    assert _seconds_before(tmp_path, 0) == 0.0 and _seconds_before(tmp_path / "none", 3) == 0.0
