"""Helpers shared by the benchmark scripts: timing, versions, one report format."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_times(
    fns: list[Callable[[], Any]],
    repeats: int = 3,
    setups: list[Callable[[], Any]] | None = None,
    label: str = "",
) -> list[float]:
    """Median seconds of each of ``fns``, run in turn ``repeats`` times.

    Alternating the contenders makes a drift in machine load hit them alike, so their ratio holds; each timed
    run follows an untimed run of the same function, so none is timed on caches the other one left cold.
    ``setups[i]()`` runs untimed before every run of ``fns[i]``. With a ``label``, each round is reported on
    stderr as it starts.
    """
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeats):
        if label:
            print(f"  {label}: round {round_ + 1}/{repeats}", file=sys.stderr, flush=True)
        for i, fn in enumerate(fns):
            for timed in (False, True):
                if setups is not None:
                    setups[i]()
                start = time.perf_counter()
                fn()
                if timed:
                    times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def environment() -> dict[str, str]:
    """Device and versions to record with every figure."""
    import gymnasium
    import torch
    import transformers

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gymnasium": gymnasium.__version__,
        "threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }


def report(title: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> None:
    """Print a table of rows and one JSON line (for scripts that collect results)."""
    print(f"\n== {title} ==")
    for key, value in environment().items():
        print(f"  {key}: {value}")
    if rows:
        keys = list(rows[0])
        print("  " + " | ".join(keys))
        for row in rows:
            print("  " + " | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys))
    for key, value in (extra or {}).items():
        print(f"  {key}: {value}")
    print("JSON " + json.dumps({"title": title, "rows": rows, **(extra or {}), "environment": environment()}))


def add_speed_arguments(parser: Any) -> None:
    """The flags every speed benchmark shares: random weights, the device peak for MFU, CPU threads."""
    parser.add_argument("--random-weights", action="store_true", help="SmolLM2-135M architecture, random weights")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: known GPUs)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def parse_and_set_threads(parser: Any) -> Any:
    """Parse the arguments and apply ``--threads`` to torch."""
    import torch

    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args
