"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A crash mid-write leaves the previous file intact, never a truncated one; what it can leave behind is a
temporary file named ``.<name>.<random>.tmp`` beside the target, which the next writer may delete.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "result.json"
    >>> atomic_write_text(path, '{"ok": true}')
    >>> path.read_text()
    '{"ok": true}'
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on a clean exit fsync it and rename it to ``path``.

    On an exception the temporary file is deleted and ``path`` is left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "weights.bin"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_bytes(b"\\x00\\x01")
        >>> target.read_bytes()
        b'\\x00\\x01'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def atomic_folder(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on a clean exit rename it to ``path``.

    An existing ``path`` is kept and the new folder dropped (another process wrote it first), unless
    ``replace``: then the old folder is moved aside, the new one renamed into place, and the old one deleted.
    On an exception the temporary folder is deleted and ``path`` is left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "model"
        >>> with atomic_folder(target) as tmp:
        ...     _ = (tmp / "config.json").write_text("{}")
        >>> sorted(p.name for p in target.iterdir())
        ['config.json']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        if path.exists() and not replace:
            return
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old.exists() and not path.exists():
                os.replace(old, path)  # the previous folder goes back: path is left as it was
            raise
        fsync_dir(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """Make renames in ``folder`` durable; a no-op where the platform cannot fsync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file in the target's folder, fsync it, and rename it to ``path``."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        write(f)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def json_object_line(line: str, where: str, expected: str = "a JSON object") -> dict[str, Any]:
    """One JSONL line as a dict; otherwise a ``ValueError`` naming ``where`` (e.g. ``file:line``) and ``expected``.

    Example:
        >>> json_object_line('{"a": 1}', "data.jsonl:1")
        {'a': 1}
        >>> json_object_line("[1]", "data.jsonl:2")
        Traceback (most recent call last):
        ...
        ValueError: data.jsonl:2: expected a JSON object, got a JSON list: [1]
    """
    import json

    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); expected {expected}") from err
    if not isinstance(item, dict):
        text = line.strip()
        text = text if len(text) <= 200 else text[:200] + "..."
        raise ValueError(f"{where}: expected {expected}, got a JSON {type(item).__name__}: {text}")
    return item
