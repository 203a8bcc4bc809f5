"""The results schema (versioned JSON): one file per run, validated on write and on submit.

Example:
    >>> result = example_result()
    >>> validate(result)["quality"]["reward_mean"]
    0.25
    >>> validate({**result, "seed": "zero"})
    Traceback (most recent call last):
    ...
    leaderboards.schema.SchemaError: result.seed: expected int, got str ('zero')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textgym.io import atomic_write_text

SCHEMA_VERSION = 1

# field path -> expected type(s); nested dicts are checked recursively
SCHEMA: dict[str, Any] = {
    "schema_version": int,
    "run_id": str,
    "suite": str,
    "env": {"id": str, "version": int},
    "agent": {"name": str, "algo": str, "config": dict},
    "model": str,
    "seed": int,
    "budget": {"generated_tokens": int, "eval_episodes": int},
    "git_commit": str,
    "hardware": {"device": str, "threads": int, "torch": str, "transformers": str},
    "quality": {
        "reward_mean": float,
        "reward_std": float,
        "kl": float,
        "ref_perplexity": float,
        "distinct_1": float,
        "distinct_2": float,
    },
    "cost": {"wall_clock_s": float, "generated_tokens": int, "train_tokens_per_s": float, "peak_memory_mb": float},
    "curve": list,
    "command": str,
    "created": str,
}


class SchemaError(ValueError):
    """A result that does not match the schema; the message names the field."""


def _check(value: Any, expected: Any, path: str) -> None:
    if isinstance(expected, dict):
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: expected an object, got {type(value).__name__}")
        for key, sub in expected.items():
            if key not in value:
                raise SchemaError(f"{path}.{key}: missing")
            _check(value[key], sub, f"{path}.{key}")
        return
    ok = isinstance(value, expected) and not isinstance(value, bool)
    if expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise SchemaError(f"{path}: expected {expected.__name__}, got {type(value).__name__} ({value!r})")


def validate(result: Any) -> dict[str, Any]:
    """Check a result against the schema; returns it, or raises :class:`SchemaError` naming the bad field."""
    _check(result, SCHEMA, "result")
    if result["schema_version"] != SCHEMA_VERSION:
        raise SchemaError(f"result.schema_version: expected {SCHEMA_VERSION}, got {result['schema_version']}")
    for i, point in enumerate(result["curve"]):
        if not (isinstance(point, list | tuple) and len(point) == 2):
            raise SchemaError(f"result.curve[{i}]: expected [timesteps, reward], got {point!r}")
    return result


def load_result(path: str | Path) -> dict[str, Any]:
    """Read and validate one result file (clear errors for missing files, bad JSON, bad fields)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"result file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    try:
        return validate(data)
    except SchemaError as err:
        raise SchemaError(f"{path}: {err}") from err


def write_result(result: dict[str, Any], path: str | Path) -> Path:
    """Validate, then write atomically (temporary file, then rename)."""
    validate(result)
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return Path(path)


def example_result() -> dict[str, Any]:
    """A valid result, for documentation and tests."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": "TextGen-Sentiment-v0__ppo__seed0",
        "suite": "quick",
        "env": {"id": "TextGen-Sentiment-v0", "version": 0},
        "agent": {"name": "ppo", "algo": "ppo", "config": {"learning_rate": 3e-4}},
        "model": "default",
        "seed": 0,
        "budget": {"generated_tokens": 1024, "eval_episodes": 32},
        "git_commit": "0000000",
        "hardware": {"device": "cpu", "threads": 2, "torch": "2.13.0", "transformers": "5.23.0"},
        "quality": {
            "reward_mean": 0.25,
            "reward_std": 0.1,
            "kl": 0.5,
            "ref_perplexity": 12.0,
            "distinct_1": 0.6,
            "distinct_2": 0.9,
        },
        "cost": {"wall_clock_s": 60.0, "generated_tokens": 1024, "train_tokens_per_s": 20.0, "peak_memory_mb": 2000.0},
        "curve": [[0, 0.2], [1024, 0.25]],
        "command": "textgym leaderboard run --suite quick --only TextGen-Sentiment-v0__ppo__seed0",
        "created": "2026-11-24T00:00:00Z",
    }
