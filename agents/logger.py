"""Namespaced metrics (``charts/``, ``losses/``, ``eval/``) to JSONL, TensorBoard and a progress bar.

Each evaluation's held-out samples (``eval/sample_pairs``) also become a Markdown report,
``run_dir/samples/iteration_000010.md``, and a TensorBoard text table; the run's config is a TensorBoard text
table too (``config``).

``metrics.jsonl`` holds one JSON object per line, each written in one call and flushed. A crash mid-write can
leave only the last line torn: readers drop it with a warning. A bad line anywhere else is an error that names
the file and the line.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from textgym.io import atomic_write_text

METRICS = "metrics.jsonl"
SAMPLES_DIR = "samples"
MARKDOWN_SPECIAL = "\\`*_[]<>&~|"  # inline markdown (table cells hold inline content only); backslash first


class MetricLogger:
    """Writes one JSON line per logging call to ``run_dir/metrics.jsonl`` and, optionally, TensorBoard.

    Example:
        >>> import tempfile
        >>> log = MetricLogger(tempfile.mkdtemp(), tensorboard=False)
        >>> log.log({"charts/reward": 0.5}, step=16, iteration=1)
        >>> log.close()
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / METRICS
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
        """Record ``metrics`` at ``step`` (generated tokens so far); strings go to JSONL and TB text.

        Raises:
            OSError: the line could not be written (disk full, ...); the message names the file.
        """
        record = {"iteration": iteration, "timesteps": step, **metrics}
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as err:
            raise OSError(err.errno, f"could not append to {str(self.path)!r}: {err.strerror or err}") from err
        pairs = metrics.get("eval/sample_pairs")
        table = samples_table(pairs) if pairs else ""
        if table:
            name = f"iteration_{iteration:06d}.md"
            atomic_write_text(
                self.path.parent / SAMPLES_DIR / name, f"# Held-out samples, iteration {iteration}\n\n{table}"
            )
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._writer.add_scalar(key, value, step)
                elif isinstance(value, str):
                    self._writer.add_text(key, value, step)
            if table:
                self._writer.add_text("eval/sample_table", table, step)
            self._writer.flush()

    def log_config(self, config: dict[str, Any]) -> None:
        """The run's settings as a TensorBoard text table (its hyper-parameters beside the curves)."""
        if self._writer is not None:
            rows = [f"| {key} | {md_cell(json.dumps(value))} |" for key, value in config.items()]
            self._writer.add_text("config", "\n".join(["| setting | value |", "|---|---|", *rows]), 0)
            self._writer.flush()

    def truncate_after(self, iteration: int) -> None:
        """Drop records past ``iteration`` (after resuming from an earlier checkpoint)."""
        self._file.close()
        truncate_metrics(self.path.parent, iteration)
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics file; a torn last line is dropped with a warning.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a line other than the last is not a JSON object (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {str(path)!r} does not exist")
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse(line)
        if record is not None:
            records.append(record)
        elif any(rest.strip() for rest in lines[number:]):
            raise ValueError(
                f"{str(path)!r} line {number} is not a JSON object with an 'iteration': {_preview(line)}; "
                "fix or delete that line"
            )
        else:
            warnings.warn(
                f"dropped the torn last line {number} of {str(path)!r} (a crash mid-write?): {_preview(line)}",
                stacklevel=2,
            )
    return records


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("iteration"), int) else None


def _preview(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace")
    return repr(text if len(text) <= 80 else text[:77] + "...")


def truncate_metrics(run_dir: str | Path, iteration: int) -> None:
    """Keep the records of iterations up to ``iteration`` (0: none), rewriting the file atomically."""
    for report in (Path(run_dir) / SAMPLES_DIR).glob("iteration_*.md"):  # the samples of dropped evaluations
        if int(report.stem.removeprefix("iteration_")) > iteration:
            report.unlink()
    path = Path(run_dir) / METRICS
    if not path.exists():
        return
    kept = [r for r in read_records(path) if r["iteration"] <= iteration]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl`` (see :func:`read_records`)."""
    return read_records(Path(run_dir) / METRICS)


def samples_table(pairs: list[dict[str, Any]]) -> str:
    """Held-out samples as a Markdown table: prompt, completion and reward, one row each.

    Example:
        >>> print(samples_table([{"prompt": "2+2=", "completion": "4", "reward": 1.0}]))
        | prompt | completion | reward |
        |---|---|---|
        | 2+2= | 4 | 1.000 |
        <BLANKLINE>
    """
    rows = [
        f"| {md_cell(p['prompt'])} | {md_cell(p['completion'])} | {p.get('reward', float('nan')):.3f} |" for p in pairs
    ]
    return "\n".join(["| prompt | completion | reward |", "|---|---|---|", *rows]) + "\n"


def md_cell(text: str) -> str:
    """``text`` as literal inline markdown for one table cell: specials escaped, line breaks as ``<br>``.

    Example:
        >>> md_cell("a|b\\n*c*")
        'a\\\\|b<br>\\\\*c\\\\*'
    """
    for char in MARKDOWN_SPECIAL:
        text = text.replace(char, "\\" + char)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")
