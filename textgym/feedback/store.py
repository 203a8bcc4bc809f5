"""Judgements on disk: the JSONL the reward-model trainer reads, rewritten atomically on every change.

A pair judgement is ``{"prompt", "chosen", "rejected", "annotator", "time"}`` and a rating ``{"prompt",
"completion", "rating", "annotator", "time"}``: :func:`textgym.rewards.preference.load_pairs` and
:func:`~textgym.rewards.preference.load_ratings` read them as they are. Each change writes the whole file to a
temporary file beside it and renames it into place, under a lock held across processes (``fcntl.flock`` on
``FILE.lock``) and threads; the file is re-read under the lock first, so two processes labelling into one file
lose nothing. A crash loses at most the judgement being written; the file is always whole JSONL.

Example:
    >>> import tempfile, pathlib
    >>> store = JudgementStore(pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl", "pairs")
    >>> store.add_pair("Hi", chosen="Hello!", rejected="Go away.", annotator="me")
    >>> sorted(store.labelled_ids()) == [item_id("Hi", ["Hello!", "Go away."])]
    True
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textgym.feedback.items import check_mode, item_id

# what a judgement file holds when it is of the other mode than the session's
WRONG_MODE_FILE = {"pairs": "ratings, not pair judgements", "ratings": "pair judgements, not ratings"}


class DuplicateJudgement(ValueError):
    """The item was already judged (by this session, another tab or another process)."""


class JudgementStore:
    """The judgement file of one labelling mode; validates what is already in it.

    Raises:
        ValueError: an existing file with a bad line (naming the file and the line), or rows of the other mode.
    """

    def __init__(self, path: str | Path, mode: str) -> None:
        self.path = Path(path)
        self.mode = check_mode(mode)
        self._thread_lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        with self._locked():
            pass  # reads and validates the file

    def labelled_ids(self) -> set[str]:
        """Ids of the items judged in the file (as of the last read or write)."""
        return {row_item_id(row) for row in self._rows}

    def rows(self) -> list[dict[str, Any]]:
        """The judgements (as of the last read or write)."""
        return list(self._rows)

    def refresh(self) -> None:
        """Re-read the file (another process may have written to it)."""
        with self._locked():
            pass

    def add_pair(self, prompt: str, chosen: str, rejected: str, annotator: str) -> None:
        """Append a pair judgement.

        Raises:
            DuplicateJudgement: the pair is already judged.
        """
        self._add({"prompt": prompt, "chosen": chosen, "rejected": rejected, "annotator": annotator})

    def add_rating(self, prompt: str, completion: str, rating: float, annotator: str) -> None:
        """Append a rating.

        Raises:
            DuplicateJudgement: the completion is already rated.
        """
        self._add({"prompt": prompt, "completion": completion, "rating": rating, "annotator": annotator})

    def remove(self, item: str) -> bool:
        """Delete the judgement of item id ``item``; ``False`` when there is none."""
        with self._locked():
            kept = [row for row in self._rows if row_item_id(row) != item]
            if len(kept) == len(self._rows):
                return False
            self._write(kept)
        return True

    def _add(self, row: dict[str, Any]) -> None:
        mode_keys = ("chosen", "rejected") if self.mode == "pairs" else ("completion", "rating")
        assert all(k in row for k in mode_keys)
        row["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._locked():
            if row_item_id(row) in self.labelled_ids():
                raise DuplicateJudgement(f"item {row_item_id(row)} is already judged in {self.path}")
            self._write([*self._rows, row])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the thread lock and the file lock, with the rows freshly read."""
        import fcntl

        with self._thread_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    self._rows = self._read()
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[dict[str, Any]]:
        """The file's rows, each checked as the reward trainer's reader checks it (the extra fields, annotator and
        time, are kept)."""
        from textgym.rewards.preference import line_kind, parse_judgement

        if not self.path.exists():
            return []
        rows: list[dict[str, Any]] = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").split("\n"), 1):
            if not line.strip():
                continue
            if not rows and line_kind(line) not in (None, self.mode):
                raise ValueError(
                    f"{self.path} holds {WRONG_MODE_FILE[self.mode]}: label it with --mode {line_kind(line)}"
                )
            parse_judgement(line, f"{self.path}:{number}", self.mode)
            rows.append(json.loads(line))
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        from textgym.io import atomic_write_text

        atomic_write_text(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self._rows = rows


def row_item_id(row: dict[str, Any]) -> str:
    """The item id a judgement row belongs to (see :func:`textgym.feedback.items.item_id`)."""
    if "rating" in row:
        return item_id(row["prompt"], [row["completion"]])
    return item_id(row["prompt"], [row["chosen"], row["rejected"]])
