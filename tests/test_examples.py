"""Every script in examples/ runs as shipped, on the tiny model and budgets of seconds (its own flags)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST_FLAGS = {
    "custom_reward.py": ["--model", "tiny", "--total-timesteps", "64"],
    "custom_dataset.py": ["--model", "tiny", "--episodes", "8"],
    "sb3_ppo.py": ["--model", "tiny", "--total-timesteps", "96"],
    "export_model.py": ["--model", "tiny", "--total-timesteps", "64"],
    "leaderboard_submission.py": ["--model", "tiny", "--budget", "64"],
}


def test_every_example_has_fast_flags():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(FAST_FLAGS)


@pytest.mark.slow  # a minute or two in all: each trains or evaluates the tiny model
@pytest.mark.parametrize("name", sorted(FAST_FLAGS))
def test_example_runs(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # examples write runs/, exported/, my-leaderboard/ in the working folder
    monkeypatch.setattr(sys, "argv", [name, *FAST_FLAGS[name]])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"{name} printed nothing"
