"""Namespaced metrics (``charts/``, ``losses/``, ``eval/``) to JSONL, TensorBoard and a progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textgym.io import atomic_write_text


class MetricLogger:
    """Writes one JSON line per logging call to ``run_dir/metrics.jsonl`` and, optionally, TensorBoard.

    Example:
        >>> import tempfile
        >>> log = MetricLogger(tempfile.mkdtemp(), tensorboard=False)
        >>> log.log({"charts/reward": 0.5}, step=16, iteration=1)
        >>> log.close()
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:  # optional dependency
                raise ModuleNotFoundError(
                    "TensorBoard logging needs tensorboard: pip install tensorboard (or set tensorboard: false)"
                ) from err
            self._writer = SummaryWriter(str(self.path.parent))

    def log(self, metrics: dict[str, Any], step: int, iteration: int) -> None:
        """Record ``metrics`` at ``step`` (generated tokens so far); strings go to JSONL and TB text."""
        record = {"iteration": iteration, "timesteps": step, **metrics}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._writer.add_scalar(key, value, step)
                elif isinstance(value, str):
                    self._writer.add_text(key, value, step)
            self._writer.flush()

    def truncate_after(self, iteration: int) -> None:
        """Drop records past ``iteration`` (after resuming from an earlier checkpoint)."""
        self._file.close()
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        kept = [line for line in lines if line.strip() and json.loads(line)["iteration"] <= iteration]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
