"""Run a suite: each pending run in its own process (clean peak-memory figures, crash isolation).

Finished runs (a valid result file) are skipped; an interrupted run resumes from its last checkpoint;
each result is written atomically. Results go to ``leaderboards/results/<suite>/<run_id>.json``.
"""

from __future__ import annotations

import datetime as dt
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from agents import trainer_class
from agents.evaluation import SCORE_PREFIX
from agents.logger import METRICS, read_metrics
from leaderboards.schema import SCHEMA_VERSION, SchemaError, load_result, result_file, write_result
from leaderboards.suites import COMMON_KEYS, ILQL, SB3_PPO, SFT, SFT_PPO, ZERO_SHOT, RunSpec, suite

ROOT = Path(__file__).resolve().parent
ALGO_NAMES = {ZERO_SHOT: ZERO_SHOT, SB3_PPO: "stable_baselines3.PPO"}
RESULTS = ROOT / "results"


def default_folder() -> Path:
    """Where results and the page go by default: this package's folder in a source checkout (the project's own
    leaderboard), else ``./leaderboard`` in the working folder (an installed package is not written into)."""
    return ROOT if (ROOT.parent / "pyproject.toml").exists() else Path.cwd() / "leaderboard"


SAMPLES = 3  # held-out samples kept in each result


def result_path(spec: RunSpec, results_dir: Path = RESULTS) -> Path:
    """``results_dir/<suite>/<run_id>.json``; raises :class:`SchemaError` for a name that would escape the folder."""
    return result_file(results_dir, spec.suite, spec.run_id)


def env_version(env_id: str) -> int:
    """The version number of a Gymnasium id: ``"TextGen-Reverse-v1"`` -> 1."""
    found = re.search(r"-v(\d+)$", env_id)
    if found is None:
        raise ValueError(f"env id {env_id!r} has no version suffix (-vN)")
    return int(found.group(1))


def is_done(spec: RunSpec, results_dir: Path = RESULTS) -> bool:
    try:
        load_result(result_path(spec, results_dir))
    except (FileNotFoundError, SchemaError):
        return False
    return True


def run_suite(
    name: str,
    results_dir: Path = RESULTS,
    device: str = "auto",
    only: str | None = None,
    threads: int = 0,
    force: bool = False,
    ray: str | None = None,
    retries: int = 2,
) -> list[Path]:
    """Run every pending run of suite ``name`` (or just ``only``), one subprocess each; returns the result files.

    ``force``: run them again from scratch (their results and run folders are deleted first). ``ray``: schedule
    the runs as Ray tasks instead of one after another (``"local"`` or a cluster address; see
    :mod:`leaderboards.ray_runner`), each retried ``retries`` times.
    """
    from tqdm.auto import tqdm

    runs = [r for r in suite(name) if only is None or r.run_id == only]
    if only is not None and not runs:
        raise ValueError(f"suite {name!r} has no run {only!r}")
    pending = runs if force else [r for r in runs if not is_done(r, results_dir)]
    pending.sort(key=lambda r: r.agent == SB3_PPO)  # the slowest rows (SB3 calls the LM once per token) go last
    print(f"suite {name}: {len(runs)} runs, {len(runs) - len(pending)} done, {len(pending)} to run", file=sys.stderr)
    if ray is not None:
        from leaderboards.ray_runner import run_on_ray

        if force:  # from scratch: every pending run's old result and checkpoints go before any starts
            for spec in pending:
                _clear(spec, results_dir)
        arguments = {spec.run_id: run_arguments(spec, results_dir, device, threads) for spec in pending}
        gpus = 1 if device.startswith("cuda") else 0
        run_on_ray(arguments, ray, cpus_per_run=max(threads, 1), gpus_per_run=gpus, retries=retries, cwd=ROOT.parent)
        return [result_path(r, results_dir) for r in runs]
    for spec in tqdm(pending, desc=f"leaderboard {name}", unit="run"):
        if force:  # from scratch: this run's old result and checkpoints go just before it runs again
            _clear(spec, results_dir)
        run_child([sys.executable, *run_arguments(spec, results_dir, device, threads)])
    return [result_path(r, results_dir) for r in runs]


def run_arguments(spec: RunSpec, results_dir: Path, device: str, threads: int) -> list[str]:
    """The arguments after ``python`` of the process that runs ``spec`` (:func:`run_one`) and writes its result."""
    return [
        "-m",
        "leaderboards.runner",
        spec.suite,
        spec.run_id,
        str(Path(results_dir).resolve()),
        device,
        str(threads),
    ]


def _clear(spec: RunSpec, results_dir: Path) -> None:
    """Delete a run's result and run folder (``force``)."""
    result_path(spec, results_dir).unlink(missing_ok=True)
    shutil.rmtree(results_dir / spec.suite / "runs" / spec.run_id, ignore_errors=True)


def run_child(command: list[str]) -> None:
    """Run one run's process and wait for it. A SIGTERM to this process (``kill``, a job scheduler) ends the child
    too, as Ctrl-C does: no run is left training behind a stopped suite; it resumes from its checkpoint next time.

    Raises:
        subprocess.CalledProcessError: the run failed.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        subprocess.run(command, check=True)
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        subprocess.run(command, check=True)  # kills the child when the wait is interrupted by the exit
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_one(spec: RunSpec, results_dir: Path = RESULTS, device: str = "auto") -> dict[str, Any]:
    """Train (unless zero-shot) under the budget, evaluate on the held-out split, and write the result."""
    commit = _git_commit()  # the code this process runs (HEAD may move while it trains)
    torch.manual_seed(spec.seed)
    zero_shot = spec.agent == ZERO_SHOT
    config = spec.trainer_config
    if zero_shot:  # the untrained policy: no reference copy needed (it is its own reference)
        config.update(kl_coef=0.0, baseline="none", samples_per_prompt=1)
    if spec.agent == SB3_PPO:
        config = {k: v for k, v in config.items() if k in COMMON_KEYS} | {"baseline": "none", "samples_per_prompt": 1}
    run_dir = results_dir / spec.suite / "runs" / spec.run_id
    start = time.perf_counter()
    rl_budget, warm_start = spec.budget_tokens, 0
    earlier = 0.0  # training seconds of iterations that earlier, interrupted sittings ran (see _seconds_before)
    if spec.agent == SFT_PPO:
        warm_start, earlier = _sft_warm_start(spec, spec.config["sft_learning_rate"], run_dir / "sft", device)
        rl_budget -= warm_start
        config["init_checkpoint"] = str(run_dir / "sft")
    if spec.agent == ILQL:
        config["data"] = str(_offline_dataset(spec, spec.config["offline_episodes"], run_dir, device))
    sb3_agent = _sb3_ppo(spec, config, device) if spec.agent == SB3_PPO else None
    trainer = trainer_class(spec.algo)(
        policy=None if sb3_agent is None else sb3_agent.policy.lm,  # evaluate the very policy SB3 trains
        env_id=spec.env_id,
        seed=spec.seed,
        device=device,
        total_timesteps=rl_budget,
        run_dir=str(run_dir / "rl" if spec.agent == SFT_PPO else run_dir),
        eval_every=0,
        save_every=5,
        tensorboard=False,
        **config,
    )
    if sb3_agent is not None:
        curve = _learn_sb3(sb3_agent, spec, trainer)
    elif not zero_shot:
        trainer.resume()
        earlier += _seconds_before(Path(trainer.config.run_dir), trainer.iteration)
        trainer.learn(total_timesteps=rl_budget)
    train_seconds = time.perf_counter() - start + earlier
    quality = trainer.evaluate(scorers=spec.scorers)
    if zero_shot or spec.agent in (SFT, ILQL):  # no sampled training batches: the held-out score is the one point
        curve = [[trainer.timesteps, quality["eval/score_mean"]]]
    elif spec.agent != SB3_PPO:
        curve = _curve(Path(trainer.config.run_dir), offset=warm_start)
    trainer.timesteps += warm_start
    wall_seconds = time.perf_counter() - start + earlier
    result = _result(spec, trainer, quality, curve, train_seconds, wall_seconds, device, commit)
    if spec.agent == SFT_PPO:
        result["budget"]["init"] = f"sft:{warm_start}"
    write_result(result, result_path(spec, results_dir))
    trainer.close()
    return result


def _sft_warm_start(spec: RunSpec, learning_rate: float, run_dir: Path, device: str) -> tuple[int, float]:
    """Half of ``spec``'s budget of supervised training on the task's demonstrations (resumed if interrupted);
    returns the tokens it trained on and the training seconds of earlier sittings (:func:`_seconds_before`). Its
    trainer is closed (model freed, run folder unlocked) before PPO starts."""
    common = {k: v for k, v in spec.config.items() if k in COMMON_KEYS}
    sft = trainer_class(SFT)(
        **{**common, "learning_rate": learning_rate, "kl_coef": 0.0},
        env_id=spec.env_id,
        seed=spec.seed,
        device=device,
        total_timesteps=spec.budget_tokens // 2,
        run_dir=str(run_dir),
        eval_every=0,
        save_every=5,
        tensorboard=False,
    )
    try:
        sft.resume()
        earlier = _seconds_before(run_dir, sft.iteration)
        if sft.timesteps < spec.budget_tokens // 2:
            sft.learn(total_timesteps=spec.budget_tokens // 2)
        return sft.timesteps, earlier
    finally:
        sft.close()


def _seconds_before(run_dir: Path, iteration: int) -> float:
    """Training seconds of the iterations up to ``iteration`` in a run folder's ``metrics.jsonl`` (each row's
    ``charts/tokens / charts/tokens_per_s``; the last row of an iteration logged twice). A run resumed from its
    checkpoint at ``iteration`` adds them to its own sitting's time, so its cost is that of the whole run."""
    if iteration <= 0 or not (run_dir / METRICS).exists():
        return 0.0
    seconds: dict[int, float] = {}
    for row in read_metrics(run_dir):  # a line torn by the interruption is dropped
        rate = row.get("charts/tokens_per_s")
        if row["iteration"] <= iteration and rate:
            seconds[row["iteration"]] = row.get("charts/tokens", 0) / rate
    return sum(seconds.values())


def _offline_dataset(spec: RunSpec, episodes: int, run_dir: Path, device: str) -> Path:
    """An ilql row's data: ``episodes`` samples of train prompts by the untrained policy (the zero-shot row's
    sampling), scored by the env, as a JSONL of scored completions. Made once per run folder; a run resumed after
    it was written reuses it."""
    from agents.offline import save_rollouts

    path = run_dir / "offline.jsonl"
    if path.exists():
        return path
    common = {k: v for k, v in spec.config.items() if k in COMMON_KEYS}
    shell = trainer_class("reinforce")(
        **{**common, "kl_coef": 0.0, "baseline": "none", "samples_per_prompt": 1},
        env_id=spec.env_id,
        seed=spec.seed,
        device=device,
        run_dir=str(run_dir / "offline"),
        eval_every=0,
        tensorboard=False,
        progress=False,
    )
    try:
        batches = [shell.collect_rollout(i) for i in range(-(-episodes // shell.config.batch_size))]
    finally:
        shell.close()
    save_rollouts(batches, path, spec.env_id)  # written once, atomically
    return path


def _sb3_ppo(spec: RunSpec, config: dict[str, Any], device: str) -> Any:
    """Stock SB3 PPO on ``LMActorCriticPolicy`` with the suite's model, LoRA rank, batch and learning rate."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from agents.sb3 import LMActorCriticPolicy
    from agents.trainer import resolve_device

    env = gym.make(spec.env_id, tokenizer=config["model"])
    steps = config["batch_size"] * env.unwrapped.setup.max_new_tokens  # about batch_size whole episodes a rollout
    policy_kwargs = {"model": config["model"], "lora_rank": config["lora_rank"], "reference": True, "seed": spec.seed}
    return PPO(
        LMActorCriticPolicy,
        env,
        n_steps=steps,
        batch_size=max(1, steps // 2),
        n_epochs=2,
        gamma=1.0,
        learning_rate=config["learning_rate"],
        seed=spec.seed,
        device=resolve_device(device),
        policy_kwargs=policy_kwargs,
    )


def _learn_sb3(agent: Any, spec: RunSpec, trainer: Any) -> list[list[float]]:
    """Train under the token budget with the per-token KL penalty; returns the mean episode reward per rollout."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from agents.sb3 import KLPenaltyCallback

    curve: list[list[float]] = []

    class Curve(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            rewards = [e["r"] for e in self.model.ep_info_buffer]
            if rewards:
                curve.append([self.num_timesteps, sum(rewards) / len(rewards)])

    agent.learn(spec.budget_tokens, callback=CallbackList([KLPenaltyCallback(coef=trainer.config.kl_coef), Curve()]))
    trainer.timesteps = agent.num_timesteps
    return curve


def _curve(run_dir: Path, offset: int = 0) -> list[list[float]]:
    """The training batches' mean reward against generated tokens (``offset``: tokens trained before)."""
    return [
        [r["timesteps"] + offset, r["charts/score_mean"]] for r in read_metrics(run_dir) if "charts/score_mean" in r
    ]


def _result(spec, trainer, quality, curve, train_seconds, wall_seconds, device, commit: str) -> dict[str, Any]:
    import transformers

    tokens = trainer.timesteps
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": spec.run_id,
        "suite": spec.suite,
        "env": {"id": spec.env_id, "version": env_version(spec.env_id)},
        "agent": {
            "name": spec.name,
            "algo": ALGO_NAMES.get(spec.agent, trainer.algo),
            "config": spec.config,
        },
        "model": str(spec.config.get("model", "default")),
        "seed": spec.seed,
        "budget": {"generated_tokens": spec.budget_tokens, "eval_episodes": int(trainer.config.eval_episodes)},
        "git_commit": commit,
        "hardware": {
            "device": torch.cuda.get_device_name(0) if trainer.device.startswith("cuda") else "cpu",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "quality": {
            "reward_mean": quality["eval/score_mean"],
            "reward_std": quality["eval/score_std"],
            "kl": quality["eval/kl"],
            "ref_perplexity": quality["eval/ref_perplexity"],
            "distinct_1": quality["eval/distinct_1"],
            "distinct_2": quality["eval/distinct_2"],
            "kl_k3": quality["eval/kl_k3"],
            "independent": {k.removeprefix(SCORE_PREFIX): v for k, v in quality.items() if k.startswith(SCORE_PREFIX)},
            "samples": [
                {"prompt": s["prompt"], "completion": s["completion"]} for s in quality["eval/sample_pairs"][:SAMPLES]
            ],
        },
        "cost": {
            "wall_clock_s": round(wall_seconds, 2),
            "generated_tokens": tokens,
            "train_tokens_per_s": round(tokens / train_seconds, 2) if tokens else 0.0,
            "peak_memory_mb": _peak_memory_mb(trainer.device),
        },
        "curve": curve,
        "command": spec.command,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":  # one run in its own process: python -m leaderboards.runner SUITE RUN_ID DIR DEVICE THREADS
    suite_name, run_id, directory, device_name, num_threads = sys.argv[1:6]
    if int(num_threads) > 0:
        torch.set_num_threads(int(num_threads))
    (spec,) = [r for r in suite(suite_name) if r.run_id == run_id]
    run_one(spec, Path(directory), device_name)
