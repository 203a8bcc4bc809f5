"""A training run's folder: one writer at a time, the last two checkpoints, no half-written leftovers.

Layout of ``RUN_DIR``::

    metrics.jsonl                 one JSON record per iteration (see agents.logger)
    checkpoint.safetensors        the newest checkpoint (see agents.checkpoint)
    checkpoint.prev.safetensors   the one before it, used when the newest is damaged
    events.out.tfevents.*         TensorBoard (optional)
    .lock                         held (``flock``) by the process training into the folder; holds its pid

The lock is an advisory ``fcntl.flock`` on ``.lock``: the kernel drops it when its process exits, even on
``kill -9``, so a stale lock file never blocks the next run.

Example:
    >>> import tempfile
    >>> run = RunDir(tempfile.mkdtemp())
    >>> run.acquire()
    >>> run.existing_run()
    []
    >>> run.release()
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO, Any

from agents.checkpoint import read_latest
from agents.logger import METRICS, SAMPLES_DIR

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"
LEGACY = "checkpoint.pt"  # pickled checkpoints of earlier versions: never loaded (unpickling can run code)
LOCK = ".lock"
TEMPORARY = (".checkpoint*.tmp", f".{METRICS}.*.tmp")  # left by atomic writes cut short
RUN_FILES = (
    METRICS,
    CHECKPOINT,
    PREVIOUS,
    LEGACY,
    f"{CHECKPOINT}.damaged",
    "events.out.tfevents.*",
    f"{SAMPLES_DIR}/iteration_*.md",  # the held-out samples report of each evaluation
)


class RunDirError(OSError):
    """A run folder that cannot be used: a file, not writable, in use, or holding another run."""


class RunDir:
    """The files of one run folder and the lock that makes this process its only writer.

    Args:
        path: the run folder (created when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / CHECKPOINT
        self.previous = self.path / PREVIOUS
        self.metrics = self.path / METRICS
        self._lock: IO[bytes] | None = None  # a file object, so that a forgotten RunDir unlocks when collected

    @property
    def locked(self) -> bool:
        return self._lock is not None

    def acquire(self) -> None:
        """Create the folder, take its lock and delete temporary files left by a crash; no-op when held.

        Raises:
            RunDirError: the path is a file, the folder is not writable, or another process holds the lock
                (the message names its pid).
        """
        if self.locked:
            return
        self._make_folder()
        lock = os.fdopen(self._open_lock(), "r+b", buffering=0)
        try:
            _flock(lock.fileno(), self.path)
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n".encode())
        except BaseException:
            lock.close()
            raise
        self._lock = lock
        self.remove_temporary_files()

    def release(self) -> None:
        """Let another process train into the folder (the lock file stays; only the lock matters)."""
        if self._lock is not None:
            self._lock.close()  # closing the descriptor drops the flock
            self._lock = None

    def _make_folder(self) -> None:
        if self.path.is_file():
            raise RunDirError(f"run dir {str(self.path)!r} is a file, expected a folder (or a path to create)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunDirError(f"cannot create the run dir {str(self.path)!r}: {err.strerror or err}") from err

    def _open_lock(self) -> int:
        try:
            return _create_lock_file(self.path / LOCK)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise RunDirError(f"run dir {str(self.path)!r} is not writable: {err.strerror}") from err
            raise RunDirError(f"cannot open the lock file of run dir {str(self.path)!r}: {err.strerror}") from err

    def remove_temporary_files(self) -> list[Path]:
        """Delete the temporary files of atomic writes that a crash cut short; returns them."""
        leftovers = [p for pattern in TEMPORARY for p in self.path.glob(pattern)]
        for path in leftovers:
            path.unlink(missing_ok=True)
        return leftovers

    def existing_run(self) -> list[str]:
        """Names of the files that show a run was already trained here (an empty metrics file does not)."""
        found = [p for pattern in RUN_FILES for p in sorted(self.path.glob(pattern))]
        return [p.name for p in found if p.name != METRICS or p.stat().st_size > 0]

    def clear(self) -> list[str]:
        """Delete the files of the run trained here before (metrics, checkpoints, TensorBoard events)."""
        found = [p for pattern in RUN_FILES for p in self.path.glob(pattern)]
        for path in found:
            path.unlink(missing_ok=True)
        return [str(p.relative_to(self.path)) for p in found]

    def latest_checkpoint(self) -> tuple[dict[str, Any], Path] | None:
        """The newest intact checkpoint's state and file (see :func:`agents.checkpoint.read_latest`).

        Raises:
            RunDirError: the folder holds only a pickled checkpoint of an earlier textgym version.
            CheckpointError: every checkpoint here is damaged.
        """
        found = read_latest(self.checkpoint, self.previous, quarantine=self.locked)
        if found is None and (self.path / LEGACY).exists():
            raise RunDirError(
                f"run dir {str(self.path)!r} holds a pickled {LEGACY} of an earlier textgym version, which is no "
                "longer loaded (unpickling can run code): start over with --overwrite (overwrite=True)"
            )
        return found


def _create_lock_file(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _flock(fd: int, folder: Path) -> None:
    """Take an exclusive, non-blocking lock on ``fd``; a held lock is an error naming its holder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        raise RunDirError(
            f"run dir {str(folder)!r} is in use by another training (pid {holder}); wait for it to end, stop it, "
            "or choose another run_dir"
        ) from err
