"""Helpers shared by the reward modules: optional imports with a clear install hint, pickling without models."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def require(module: str, pip_name: str) -> ModuleType:
    """Import ``module`` or raise ``ModuleNotFoundError`` saying what to pip install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"this reward needs {module!r}: pip install {pip_name} (or pip install 'textgym[rewards]')"
        ) from err


class LazyModel:
    """Base for rewards that load a model on first call: the loaded parts (``_``-prefixed) are not pickled."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: (None if k.startswith("_") else v) for k, v in self.__dict__.items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
