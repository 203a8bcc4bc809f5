"""Leaderboard runs as Ray tasks: a local Ray cluster by default, or a running cluster by address.

Each run is the same child process the serial runner starts (``python -m leaderboards.runner ...``), so its
result file is the same; Ray only decides where and when it runs, with ``cpus_per_run``/``gpus_per_run``
resources, and retries a run whose process failed or was killed (``retries`` times). A retried run resumes from
its last checkpoint, and finished runs are skipped before anything is submitted, so an interrupted suite resumes.
On a multi-machine cluster every node needs textgym installed and the results folder on a shared filesystem.

Example::

    textgym leaderboard run --suite quick --ray              # a local cluster with this machine's CPUs
    textgym leaderboard run --suite full --ray ray://HEAD:10001 --device cuda
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOCAL = "local"


def run_on_ray(
    arguments: Mapping[str, Sequence[str]],
    address: str = LOCAL,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    retries: int = 2,
    num_cpus: int | None = None,
    cwd: str | Path | None = None,
) -> None:
    """Run ``python ARGS...`` for each run id's arguments as a Ray task, ``retries`` retries each; wait for all.

    Args:
        arguments: run id -> the arguments after ``python`` (the worker's own interpreter runs them).
        address: ``"local"`` starts a local cluster (``num_cpus`` CPUs; all by default); anything else is
            passed to ``ray.init(address=...)``.
        cwd: the folder each run starts in (default: this one).

    Raises:
        ModuleNotFoundError: Ray is not installed.
        RuntimeError: some runs still failed after their retries (named, with the first error).
    """
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        local = address == LOCAL
        ray.init(address=None if local else address, num_cpus=num_cpus if local else None, include_dashboard=False)
    try:
        task = ray.remote(_run).options(
            num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries, retry_exceptions=True
        )
        folder = str(Path(cwd or Path.cwd()).resolve())
        refs = {task.remote(list(args), folder): run_id for run_id, args in arguments.items()}
        failed = _wait(ray, refs)
    finally:
        if started:
            ray.shutdown()
    if failed:
        first = next(iter(failed.values()))
        raise RuntimeError(f"{len(failed)} runs failed after {retries} retries: {', '.join(failed)}; first: {first}")


def _import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ModuleNotFoundError("--ray needs Ray: pip install 'textgym[ray]' (or pip install ray)") from None
    return ray


def _run(args: list[str], cwd: str) -> None:
    """One run, in a Ray worker: its own Python interpreter, the leaderboard's child process."""
    subprocess.run([sys.executable, *args], check=True, cwd=cwd)


def _wait(ray: Any, refs: dict[Any, str]) -> dict[str, str]:
    """Wait for every task with a progress bar; returns the failed run ids with their errors."""
    from tqdm.auto import tqdm

    failed: dict[str, str] = {}
    pending = list(refs)
    with tqdm(total=len(refs), desc="leaderboard (ray)", unit="run") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    ray.get(ref)
                except Exception as error:  # the run's process failed on every attempt
                    failed[refs[ref]] = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
                bar.update(1)
    return failed
