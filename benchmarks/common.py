"""Helpers shared by the benchmark scripts: timing, versions, one report format."""

from __future__ import annotations

import json
import platform
import statistics
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
