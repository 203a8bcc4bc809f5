"""Checkpoint files: tensors in safetensors, everything else as JSON, guarded by a sha256 checksum.

A checkpoint is one standard ``.safetensors`` file. Its tensors are the trainable policy weights
(``policy/<name>``), the optimizer's tensors (``optimizer/state/<i>/<key>``) and any tensor of an
algorithm's extra state. Its ``__metadata__`` holds three strings: ``format`` (``textgym-checkpoint/1``),
``state`` (JSON: algo, config, counters, KL controller, extra state, the optimizer's plain values, with
``{"__tensor__": name}`` where a tensor was) and ``sha256`` (of the format, the JSON and every tensor's name,
dtype, shape and bytes). Reading one runs ``json.loads`` and safetensors' parser, nothing that could unpickle
an object, and a flipped or missing byte anywhere is a :class:`CheckpointError` that names the file.

Files are written atomically (temporary file, fsync, rename). :func:`write_checkpoint` can keep the file it
replaces as the previous checkpoint, and :func:`read_latest` falls back to that one when the newest is damaged.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.safetensors"
    >>> write_checkpoint({"algo": "demo", "weights": {"w": torch.ones(2)}, "steps": (1, 2)}, path)
    >>> state = read_checkpoint(path)
    >>> state["weights"]["w"].tolist(), state["steps"]
    ([1.0, 1.0], (1, 2))
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from textgym.io import atomic_path

FORMAT = "textgym-checkpoint/1"
TENSOR, ITEMS, TUPLE, CODE = "__tensor__", "__items__", "__tuple__", "__code__"
MARKERS = (TENSOR, ITEMS, TUPLE, CODE)
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")  # "package.module:attr"


class CheckpointError(ValueError):
    """A file that is not an intact textgym checkpoint, or one whose config would need code to rebuild."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, read-only folder, ...); the old file is unchanged."""


# -- encoding: nested plain data + tensors <-> JSON-able data + a flat tensor dict -----------------------


def pack(value: Any, tensors: dict[str, Tensor], path: tuple[str, ...] = ()) -> Any:
    """JSON-able form of ``value``; its tensors move into ``tensors`` under their ``/``-joined path.

    Args:
        value: dicts, lists, tuples, tensors, numbers, strings, booleans and ``None``, nested.
        tensors: filled with CPU, contiguous copies (or views) of the tensors found.
        path: where ``value`` sits, for tensor names and error messages.

    Raises:
        CheckpointError: a value of another type (checkpoints hold data only), or two tensors with one name.
    """
    where = "/".join(path) or "<root>"
    if isinstance(value, Tensor):
        if where in tensors:
            raise CheckpointError(f"two tensors would be stored as {where!r}; use keys without '/'")
        tensors[where] = value.detach().to("cpu").contiguous()
        return {TENSOR: where}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not (len(value) == 1 and next(iter(value)) in MARKERS):
            return {k: pack(v, tensors, (*path, k)) for k, v in value.items()}
        return {ITEMS: [[_plain_key(k, where), pack(v, tensors, (*path, str(k)))] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {TUPLE: [pack(v, tensors, (*path, str(i))) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [pack(v, tensors, (*path, str(i))) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        return value.item()
    raise CheckpointError(
        f"cannot store a {type(value).__name__} at {where!r} in a checkpoint: it holds tensors and plain data "
        "(dict, list, tuple, str, int, float, bool, None) only"
    )


def _plain_key(key: Any, where: str) -> Any:
    if key is None or isinstance(key, bool | int | float | str):
        return key
    raise CheckpointError(f"cannot store a dict key of type {type(key).__name__} at {where!r} in a checkpoint")


def unpack(value: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`pack`: rebuild the nested value, putting the tensors back."""
    if isinstance(value, list):
        return [unpack(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and TENSOR in value:
        if value[TENSOR] not in tensors:
            raise CheckpointError(f"the checkpoint's state names a tensor {value[TENSOR]!r} it does not hold")
        return tensors[value[TENSOR]]
    if len(value) == 1 and ITEMS in value:
        return {k: unpack(v, tensors) for k, v in value[ITEMS]}
    if len(value) == 1 and TUPLE in value:
        return tuple(unpack(v, tensors) for v in value[TUPLE])
    return {k: unpack(v, tensors) for k, v in value.items()}


def plain_data(value: Any) -> Any:
    """``value`` with anything that is not plain data (a callable, an object) replaced by a description.

    Used for the config stored in a checkpoint: a reward given as a function is recorded as
    ``{"__code__": "module:name"}``, which is never imported back (see :func:`code_in`).

    Example:
        >>> plain_data({"reward": len, "n": (1, 2)})
        {'reward': {'__code__': 'builtins:len'}, 'n': [1, 2]}
    """
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_data(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    target = value if callable(value) and hasattr(value, "__qualname__") else type(value)
    return {CODE: f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"}


def code_in(value: Any, where: str) -> list[str]:
    """Entries of ``value`` that name code: ``"module:attr"`` strings and :func:`plain_data`'s descriptions.

    Example:
        >>> code_in({"reward": "my.rewards:score", "prompts": ["Reverse: a b ->"]}, "env_kwargs")
        ["env_kwargs['reward'] = 'my.rewards:score'"]
    """
    if isinstance(value, dict):
        if len(value) == 1 and CODE in value:
            return [f"{where} = {value[CODE]} (a Python object)"]
        return [found for k, v in value.items() for found in code_in(v, f"{where}[{k!r}]")]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in code_in(v, f"{where}[{i}]")]
    if isinstance(value, str) and _ENTRY_POINT.match(value):
        return [f"{where} = {value!r}"]
    return []


# -- the checksum -------------------------------------------------------------------------------------------


def checksum(state_json: str, tensors: dict[str, Tensor]) -> str:
    """sha256 of the format, the state JSON and each tensor's name, dtype, shape and bytes (sorted by name)."""
    digest = hashlib.sha256(f"{FORMAT}\0{state_json}".encode())
    for name in sorted(tensors):
        tensor = tensors[name]
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


# -- writing ------------------------------------------------------------------------------------------------


def write_checkpoint(state: dict[str, Any], path: str | Path, previous: str | Path | None = None) -> None:
    """Write ``state`` to ``path`` atomically; the file it replaces becomes ``previous`` when given.

    Args:
        state: nested plain data and tensors (see :func:`pack`).
        path: the checkpoint file.
        previous: where to keep the checkpoint being replaced (the last two survive).

    Raises:
        CheckpointError: ``state`` holds something other than tensors and plain data.
        CheckpointWriteError: the disk is full, the folder read-only, ...; ``path`` is then unchanged.
    """
    path = Path(path)
    tensors: dict[str, Tensor] = {}
    state_json = json.dumps(pack(state, tensors))
    metadata = {"format": FORMAT, "state": state_json, "sha256": checksum(state_json, tensors)}
    try:
        with atomic_path(path) as tmp:
            _write_tensors(tensors, tmp, metadata)
            if previous is not None and path.exists():
                _keep_as_previous(path, Path(previous))
    except (OSError, _safetensors_error()) as err:
        raise CheckpointWriteError(_write_failure(path, err)) from err


def _keep_as_previous(path: Path, previous: Path) -> None:
    """Make ``previous`` a second name of the current checkpoint (a hard link, else a copy), atomically.

    ``path`` itself stays in place until the new file is renamed over it, so a failure anywhere before
    that rename leaves the current checkpoint where it was.
    """
    staged = previous.with_name(f".{previous.name}.staged")
    staged.unlink(missing_ok=True)
    try:
        os.link(path, staged)
    except OSError:
        shutil.copy2(path, staged)
    os.replace(staged, previous)


def _write_tensors(tensors: dict[str, Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)


def _write_failure(path: Path, err: BaseException) -> str:
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        reason = "no space left on the device"
    kept = "the previous checkpoint there is unchanged" if path.exists() else "nothing was written"
    return f"could not write the checkpoint {str(path)!r}: {reason}; {kept}"


def _safetensors_error() -> type[Exception]:
    from safetensors import SafetensorError

    return SafetensorError


# -- reading ------------------------------------------------------------------------------------------------


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state saved by :func:`write_checkpoint`, after checking its checksum.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a safetensors file, not a textgym checkpoint, truncated, or damaged.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, expected a checkpoint file")
    metadata, tensors = _read_safetensors(path)
    if metadata.get("format") != FORMAT or "state" not in metadata:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a textgym checkpoint (format "
            f"{metadata.get('format')!r}, expected {FORMAT!r})"
        )
    if checksum(metadata["state"], tensors) != metadata.get("sha256"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged: its sha256 checksum does not match its contents "
            "(a changed or missing byte)"
        )
    return unpack(json.loads(metadata["state"]), tensors)


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, Tensor]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, ValueError, OverflowError, RuntimeError) as err:
        raise CheckpointError(
            f"{str(path)!r} is not a readable textgym checkpoint ({err}): it is truncated, damaged or in another "
            "format (textgym no longer loads pickled checkpoint.pt files, which can run code)"
        ) from err


def read_latest(newest: Path, previous: Path, quarantine: bool = False) -> tuple[dict[str, Any], Path] | None:
    """The state of ``newest``, or of ``previous`` (with a warning) when ``newest`` is missing or damaged.

    Args:
        newest: the checkpoint file.
        previous: the one it replaced.
        quarantine: rename a damaged ``newest`` to ``<name>.damaged``, so that the next save does not rotate
            it over the intact previous checkpoint (for a run about to continue).

    Returns:
        ``(state, the file it came from)``, or ``None`` when neither file exists.

    Raises:
        CheckpointError: every existing file is damaged (the message names each).
    """
    candidates = [p for p in (newest, previous) if p.exists()]
    errors: list[CheckpointError] = []
    for path in candidates:
        try:
            state = read_checkpoint(path)
        except CheckpointError as err:
            errors.append(err)
            continue
        if errors:
            if quarantine:
                newest.replace(newest.with_name(newest.name + ".damaged"))
            warnings.warn(f"{errors[0]}; using the previous checkpoint {str(path)!r} instead", stacklevel=2)
        elif path != newest:
            warnings.warn(
                f"checkpoint {str(newest)!r} is missing (a crash while saving?); using the previous one {str(path)!r}",
                stacklevel=2,
            )
        return state, path
    if errors:
        raise CheckpointError("; ".join(str(e) for e in errors) + "; no intact checkpoint is left")
    return None
