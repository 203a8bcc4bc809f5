"""Checkpoints and run folders: no code runs on load, damage is detected, one writer per run, crash safety."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents import make_trainer, trainer_class
from agents.checkpoint import CheckpointError, CheckpointWriteError, read_checkpoint
from agents.logger import read_metrics
from agents.run_dir import CHECKPOINT, PREVIOUS, RunDirError
from agents.trainer import load_trainer
from textgym.cli import main

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "model": "tiny",
    "lora_rank": 0,
    "env_id": "TextGen-Arithmetic-v0",
    "env_kwargs": {"max_new_tokens": 4},
    "batch_size": 4,
    "baseline": "moving_average",
    "kl_coef": 0.0,
    "learning_rate": 1e-2,
    "tensorboard": False,
    "progress": False,
    "eval_every": 0,
    "eval_episodes": 4,
    "save_every": 1,
}


def make(run_dir: Path, **overrides):
    return make_trainer("reinforce", **{**SETTINGS, "run_dir": str(run_dir), **overrides})


def train(trainer, iterations: int):
    """Learn until ``trainer.iteration == iterations`` (whatever the episodes' lengths)."""
    return trainer.learn(total_timesteps=10**9, callback=lambda t, metrics: t.iteration < iterations)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def write_lines(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_pickle_bomb_never_runs_on_load_resume_or_eval(tmp_path, capsys):
    marker = tmp_path / "bomb-went-off"

    class Bomb:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').write('ran')",)

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in (CHECKPOINT, "checkpoint.pt"):  # the new name and the old pickle name
        torch.save({"algo": "reinforce", "config": {}, "policy": Bomb()}, run_dir / name)
    with pytest.raises(CheckpointError, match=f"{CHECKPOINT}.*not a readable textgym checkpoint"):
        trainer_class("reinforce").load(run_dir / CHECKPOINT)
    with pytest.raises(CheckpointError, match=CHECKPOINT):
        load_trainer(run_dir)
    with pytest.raises(CheckpointError, match=CHECKPOINT):
        make(run_dir).resume()
    for name in (CHECKPOINT, "checkpoint.pt"):
        assert main(["eval", "--checkpoint", str(run_dir / name), "--episodes", "4"]) == 2
        assert name in capsys.readouterr().err
    assert not marker.exists()


def test_a_changed_or_missing_byte_is_an_error_naming_the_file(tmp_path):
    agent = train(make(tmp_path / "run"), 1)
    path = agent.save(tmp_path / "agent.ckpt")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:  # a standard safetensors file: weights + JSON metadata
        assert f.metadata()["format"] == "textgym-checkpoint/1"
        names = list(f.keys())
        assert any(k.startswith("policy/") for k in names) and any(k.startswith("optimizer/") for k in names)
    assert read_checkpoint(path)["iteration"] == 1
    intact = path.read_bytes()
    for offset in (len(intact) // 2, len(intact) - 1, 200):  # weights, the last byte, the JSON header
        flip_byte(path, offset)
        with pytest.raises(CheckpointError, match=r"agent\.ckpt"):
            trainer_class("reinforce").load(path)
        path.write_bytes(intact)
    path.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(CheckpointError, match=r"agent\.ckpt.*truncated"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_checkpoint(tmp_path / "nowhere")


def test_resume_falls_back_to_the_previous_checkpoint_when_the_newest_is_damaged(tmp_path):
    run_dir = tmp_path / "run"
    train(make(run_dir), 2)
    assert read_checkpoint(run_dir / CHECKPOINT)["iteration"] == 2
    assert read_checkpoint(run_dir / PREVIOUS)["iteration"] == 1  # the last two are kept
    flip_byte(run_dir / CHECKPOINT, (run_dir / CHECKPOINT).stat().st_size // 2)
    with pytest.raises(CheckpointError, match=CHECKPOINT):
        trainer_class("reinforce").load(run_dir / CHECKPOINT)
    resumed = make(run_dir)
    with pytest.warns(UserWarning, match=f"{CHECKPOINT}.* is damaged.*using the previous checkpoint"):
        assert resumed.resume()
    assert resumed.iteration == 1 and [r["iteration"] for r in read_metrics(run_dir)] == [1]
    assert (run_dir / f"{CHECKPOINT}.damaged").exists()  # set aside: the next save keeps the intact one
    train(resumed, 2)
    assert read_checkpoint(run_dir / CHECKPOINT)["iteration"] == 2
    assert read_checkpoint(run_dir / PREVIOUS)["iteration"] == 1
    flip_byte(run_dir / CHECKPOINT, 100)
    flip_byte(run_dir / PREVIOUS, 100)
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        make(run_dir).resume()


def test_a_config_that_names_code_is_not_rebuilt_from_a_checkpoint(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "imported"
    module = tmp_path / "modules" / "my_reward_module.py"
    write_lines(module, f"open({str(marker)!r}, 'w').close()\n\ndef score(prompts, completions, **info):\n")
    module.write_text(module.read_text() + "    return [0.0 for _ in completions]\n")
    monkeypatch.syspath_prepend(str(module.parent))
    env_kwargs = {"prompts": ["Hello", "Once upon"], "reward": "my_reward_module:score", "max_new_tokens": 4}
    agent = make(tmp_path / "run", env_id="TextGen-v0", env_kwargs=env_kwargs)
    path = agent.save(tmp_path / "agent.ckpt")
    marker.unlink()
    monkeypatch.delitem(sys.modules, "my_reward_module")
    with pytest.raises(CheckpointError, match=r"env_kwargs\['reward'\] = 'my_reward_module:score'"):
        trainer_class("reinforce").load(path)
    assert main(["eval", "--checkpoint", str(path), "--episodes", "4"]) == 2
    assert "does not import code named by a checkpoint" in capsys.readouterr().err
    assert not marker.exists()
    plain = {**env_kwargs, "reward": "length"}
    assert trainer_class("reinforce").load(path, env_kwargs=plain).envs.setup.reward_key.endswith("length")
    assert trainer_class("reinforce").load(path, env=agent.envs).iteration == 0
    with_a_function = make(tmp_path / "run", env_id="TextGen-v0", env_kwargs={**env_kwargs, "reward": len})
    with pytest.raises(CheckpointError, match=r"env_kwargs\['reward'\] = builtins:len \(a Python object\)"):
        trainer_class("reinforce").load(with_a_function.save(tmp_path / "function.ckpt"))


def test_a_second_training_into_the_same_run_dir_is_refused_naming_the_holder(tmp_path):
    first, second = make(tmp_path / "run"), make(tmp_path / "run")
    refused = []

    def start_the_second(trainer, metrics):
        with pytest.raises(RunDirError, match=rf"in use by another training \(pid {os.getpid()}\)"):
            train(second, 1)
        refused.append(True)
        return False

    first.learn(total_timesteps=10**9, callback=start_the_second)
    assert refused and [r["iteration"] for r in read_metrics(tmp_path / "run")] == [1]
    assert second.resume() and second.iteration == 1  # the lock went with the first run's end


def test_a_run_dir_holding_a_run_needs_resume_or_overwrite(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(make(run_dir), 1)
    with pytest.raises(RunDirError, match=r"already holds a run \(metrics.jsonl, checkpoint.safetensors\).*--resume"):
        train(make(run_dir), 1)
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        make(run_dir, overwrite=True).resume()
    (run_dir / "notes.txt").write_text("mine")
    again = train(make(run_dir, overwrite=True), 2)
    assert [r["iteration"] for r in read_metrics(run_dir)] == [1, 2] and again.iteration == 2
    assert read_checkpoint(run_dir / PREVIOUS)["iteration"] == 1 and (run_dir / "notes.txt").exists()
    argv = ["train", "--algo", "reinforce", "--env", "TextGen-Arithmetic-v0", "--model", "tiny", "--lora-rank", "0"]
    argv += ["--batch-size", "4"]
    assert main([*argv, "--baseline", "moving_average", "--no-tensorboard", "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "Traceback" not in err


def test_resume_before_the_first_checkpoint_drops_stale_metrics(tmp_path):
    run_dir = tmp_path / "run"
    rows = [{"iteration": i, "timesteps": 16 * i, "charts/score_mean": 0.0} for i in (1, 2)]
    write_lines(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 3, "tim')
    trainer = make(run_dir)
    with pytest.warns(UserWarning, match=r"torn last line 3 of .*metrics.jsonl"):
        assert not trainer.resume()
    assert read_metrics(run_dir) == []
    train(trainer, 1)
    assert [r["iteration"] for r in read_metrics(run_dir)] == [1]


def test_a_torn_last_metrics_line_is_dropped_and_a_bad_line_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    good = '{"iteration": 1, "timesteps": 8}\n{"iteration": 2, "timesteps": 16}\n'
    write_lines(path, good + '{"iteration": 3, "times')
    with pytest.warns(UserWarning, match="torn last line 3"):
        assert [r["iteration"] for r in read_metrics(tmp_path)] == [1, 2]
    write_lines(path, good.replace("}\n", "}\n\x00garbage\n", 1))
    with pytest.raises(ValueError, match=r"metrics.jsonl' line 2 is not a JSON object"):
        read_metrics(tmp_path)


def test_temporary_files_left_by_a_crash_are_deleted_when_a_run_starts(tmp_path):
    run_dir = tmp_path / "run"
    orphans = [run_dir / f".{CHECKPOINT}.a1b2.tmp", run_dir / ".metrics.jsonl.c3d4.tmp"]
    for orphan in orphans:
        write_lines(orphan, "half a file")
    train(make(run_dir), 1)
    assert not any(p.exists() for p in orphans)
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))


def test_unusable_run_dirs_and_a_full_disk_are_one_line_errors(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    argv = ["train", "--algo", "reinforce", "--env", "TextGen-Arithmetic-v0", "--model", "tiny", "--lora-rank", "0"]
    argv += ["--batch-size", "4"]
    argv += ["--baseline", "moving_average", "--total-timesteps", "1", "--no-tensorboard", "--no-progress"]
    assert main([*argv, "--run-dir", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textgym train: error: run dir") and "a_file' is a file" in err and err.count("\n") == 1

    def read_only(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("agents.run_dir._create_lock_file", read_only)
    with pytest.raises(RunDirError, match=r"run dir '.*read_only' is not writable: Permission denied"):
        train(make(tmp_path / "read_only"), 1)
    monkeypatch.undo()

    run_dir = tmp_path / "run"
    agent = train(make(run_dir), 1)
    saved = (run_dir / CHECKPOINT).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("agents.checkpoint._write_tensors", disk_full)
    with pytest.raises(CheckpointWriteError, match=f"{CHECKPOINT}': no space left.*previous checkpoint.*unchanged"):
        train(agent, 2)
    assert (run_dir / CHECKPOINT).read_bytes() == saved and not list(run_dir.glob(".*.tmp"))
    assert main([*argv, "--run-dir", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textgym train: error: could not write the checkpoint") and "Traceback" not in err
    assert "no space left on the device" in err


def test_a_failure_after_the_previous_checkpoint_is_kept_leaves_the_current_one_in_place(tmp_path, monkeypatch):
    """The rename of the new file fails (e.g. an I/O error): the current checkpoint must still be there."""
    import agents.checkpoint as checkpoint

    path, previous = tmp_path / CHECKPOINT, tmp_path / "checkpoint.prev.safetensors"
    checkpoint.write_checkpoint({"w": torch.ones(2)}, path, previous=previous)
    checkpoint.write_checkpoint({"w": torch.full((2,), 2.0)}, path, previous=previous)
    current = path.read_bytes()
    real_replace = os.replace

    def rename_fails_for_the_new_checkpoint(src, dst):
        if Path(dst) == path:
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", rename_fails_for_the_new_checkpoint)
    with pytest.raises(CheckpointWriteError, match="previous checkpoint there is unchanged"):
        checkpoint.write_checkpoint({"w": torch.full((2,), 3.0)}, path, previous=previous)
    monkeypatch.undo()
    assert path.read_bytes() == current and checkpoint.read_checkpoint(path)["w"].tolist() == [2.0, 2.0]
    assert not list(tmp_path.glob(".*.tmp"))


CHILD = """
from agents import make_trainer
make_trainer("reinforce", **{settings!r}).learn()
"""


@pytest.mark.slow  # about 15-30 s: a second Python process imports torch and transformers
def test_a_run_killed_mid_training_resumes_from_its_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    settings = {**SETTINGS, "run_dir": str(run_dir), "total_timesteps": 10**9}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(settings=settings)], cwd=ROOT)
    try:
        second = make(run_dir)  # built while the child starts
        deadline = time.monotonic() + 180
        while not (run_dir / CHECKPOINT).exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert child.poll() is None, "the training process ended early"
        with pytest.raises(RunDirError, match=rf"in use by another training \(pid {child.pid}\)"):
            train(second, 1)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert second.resume() and second.iteration >= 1  # the dead process's lock is gone with it
    assert [r["iteration"] for r in read_metrics(run_dir)] == list(range(1, second.iteration + 1))
    assert read_checkpoint(run_dir / CHECKPOINT)["iteration"] == second.iteration
    resumed_at = second.iteration
    train(second, resumed_at + 1)
    assert read_checkpoint(run_dir / CHECKPOINT)["iteration"] == resumed_at + 1


def test_cli_resume_keeps_the_runs_own_settings_not_todays_defaults(tmp_path):
    """`textgym train --resume` without the original flags continues with the settings saved in the checkpoint;
    flags given now still win."""
    from agents.cli import parse

    run_dir = tmp_path / "run"
    train(make(run_dir, learning_rate=0.02, score_normalization="batch", baseline="leave_one_out"), 1)
    config, _ = parse(["--algo", "reinforce", "--resume", "--run-dir", str(run_dir), "--total-timesteps", "99"])
    assert (config.learning_rate, config.lora_rank, config.model) == (0.02, 0, "tiny")
    assert config.score_normalization == "batch" and config.total_timesteps == 99
    again, _ = parse(["--algo", "reinforce", "--resume", "--run-dir", str(run_dir), "--learning-rate", "0.5"])
    assert again.learning_rate == 0.5 and again.lora_rank == 0
    fresh, _ = parse(["--algo", "reinforce", "--run-dir", str(run_dir)])  # no --resume: today's defaults
    assert fresh.lora_rank == 8


def test_overwrite_and_resume_drop_the_samples_reports_of_the_runs_they_replace(tmp_path):
    run_dir = tmp_path / "run"

    def crash_at_3(trainer, metrics):
        if trainer.iteration == 3:  # after iteration 3's evaluation and report, before any checkpoint of it
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make(run_dir, eval_every=1, save_every=2).learn(total_timesteps=10**9, callback=crash_at_3)
    reports = run_dir / "samples"
    assert sorted(p.name for p in reports.iterdir()) == [f"iteration_00000{i}.md" for i in (1, 2, 3)]
    resumed = make(run_dir, eval_every=1)
    assert resumed.resume() and resumed.iteration == 2  # the checkpoint of iteration 2: iteration 3 is redone
    assert sorted(p.name for p in reports.iterdir()) == ["iteration_000001.md", "iteration_000002.md"]
    resumed.close()
    train(make(run_dir, overwrite=True, eval_every=0), 1)
    assert not list(reports.iterdir())


def test_atomic_folder_puts_the_previous_folder_back_when_the_rename_fails(tmp_path, monkeypatch):
    import os

    from textgym.io import atomic_folder

    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    real_replace = os.replace

    def failing(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space left"), atomic_folder(target, replace=True) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
