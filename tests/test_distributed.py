"""Data-parallel training (agents.distributed): two CPU processes (gloo) take the steps one process takes on the
same global batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents import make_trainer
from agents.distributed import DataParallel

# top_k=1: greedy rollouts, so one process and two play the very same episodes (each process samples with its own
# generator); the learning log-probs are the full softmax's, so every gradient is still non-zero.
SETTINGS = {
    "env_id": "TextGen-v0",
    "model": "tiny",
    "batch_size": 4,
    "top_k": 1,
    "kl_coef": 0.05,
    "eval_every": 0,
    "save_every": 0,
    "progress": False,
    "tensorboard": False,
    "seed": 3,
}
ALGOS = {
    "reinforce": {"baseline": "none", "samples_per_prompt": 2, "score_normalization": "batch"},
    "a2c": {"score_normalization": "batch"},
    "ppo": {"n_epochs": 1, "minibatch_size": 4, "score_normalization": "batch"},
    # unnormalised scores: with whitened ones the value head's bias gradient is ~0 and Adam's first steps,
    # ~ lr * g / |g|, turn its rounding into visible differences (the trust-region step itself matches either way)
    "trpo": {"score_normalization": "none", "cg_iters": 3},
}
ITERATIONS = 2


def vowels(prompts: list[str], completions: list[str], **info) -> list[float]:
    """Fraction of vowels: a reward that differs between the tiny model's completions of different prompts."""
    return [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]


SYNTHETIC = {"prompts": ["Hello", "The cat", "Once upon", "A"], "reward": vowels, "max_new_tokens": 6}

WORKER = """
import json, sys, torch
from agents import make_trainer
from test_distributed import SYNTHETIC
settings, out = json.loads(sys.argv[1]), sys.argv[2]
trainer = make_trainer(settings.pop("algo"), env_kwargs=SYNTHETIC, **settings)
for _ in range({iterations}):
    trainer.learn(total_timesteps=trainer.timesteps + 1)
if trainer.parallel.is_main:
    torch.save({{name: p.detach() for name, p in trainer.policy.named_parameters() if p.requires_grad}}, out)
    json.dump({{"timesteps": trainer.timesteps, "iteration": trainer.iteration}}, open(out + ".json", "w"))
trainer.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(tmp_path: Path, algo: str, world_size: int) -> tuple[dict[str, torch.Tensor], dict]:
    out = tmp_path / f"{algo}-{world_size}.pt"
    settings = {**SETTINGS, **ALGOS[algo], "algo": algo, "run_dir": str(tmp_path / f"{algo}-{world_size}")}
    port, script = _free_port(), WORKER.format(iterations=ITERATIONS)
    processes = []
    for rank in range(world_size):
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(world_size),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-c", script, json.dumps(settings), str(out)]
        processes.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    return torch.load(out), json.loads(Path(f"{out}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(ALGOS))
def test_two_processes_take_the_steps_of_one_on_the_same_global_batch(tmp_path, algo) -> None:
    alone, alone_counts = _train(tmp_path, algo, 1)
    together, together_counts = _train(tmp_path, algo, 2)
    assert together_counts == alone_counts  # the global token count drives both runs' budgets
    start = make_trainer(algo, **{**SETTINGS, **ALGOS[algo]}, env_kwargs=SYNTHETIC, run_dir=str(tmp_path / "start"))
    initial = {n: p.detach() for n, p in start.policy.named_parameters() if p.requires_grad}
    moved = max(float((alone[n] - initial[n]).abs().max()) for n in alone)
    assert moved > 1e-4  # the runs learned something: equal parameters are not both the initial ones
    for name, value in alone.items():
        torch.testing.assert_close(together[name], value, atol=2e-5, rtol=1e-4, msg=name)


def test_a_single_process_is_a_world_of_one(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    parallel = DataParallel.from_environment("cpu")
    assert (parallel.rank, parallel.world_size, parallel.enabled, parallel.is_main) == (0, 1, False, True)
    scores = torch.tensor([1.0, 2.0])
    assert torch.equal(parallel.gather(scores), scores) and torch.equal(parallel.local_slice(scores), scores)
    assert parallel.share(torch.tensor(7.0)) == 1.0


def test_a_batch_that_does_not_split_over_the_processes_is_an_error(tmp_path) -> None:
    trainer = make_trainer("a2c", **SETTINGS, env_kwargs=SYNTHETIC, run_dir=str(tmp_path / "a2c"))
    trainer.parallel = DataParallel(rank=0, world_size=3)  # as if launched with torchrun --nproc_per_node 3
    with pytest.raises(ValueError, match="batch_size 4 must split into 3 processes"):
        trainer._check_parallel()


def test_algorithms_without_a_data_parallel_update_say_so(tmp_path) -> None:
    trainer = make_trainer("dqn", **SETTINGS, env_kwargs=SYNTHETIC, run_dir=str(tmp_path / "dqn"))
    trainer.parallel = DataParallel(rank=0, world_size=2)
    with pytest.raises(ValueError, match="dqn does not train data-parallel yet \\(2 processes\\): use one of"):
        trainer._check_parallel()
