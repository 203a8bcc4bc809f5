"""The results schema (versioned JSON): one file per run, validated on write and on submit.

Example:
    >>> result = example_result()
    >>> validate(result)["quality"]["reward_mean"]
    0.25
    >>> validate({**result, "seed": "zero"})
    Traceback (most recent call last):
    ...
    leaderboards.schema.SchemaError: result.seed: expected int, got str ('zero')
    >>> validate({**result, "run_id": "../../tmp/x"})
    Traceback (most recent call last):
    ...
    leaderboards.schema.SchemaError: result.run_id must be a plain name ...
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from textgym.io import atomic_write_text

SCHEMA_VERSION = 2
# v2 (from v1): quality.kl_k3 (a KL estimate that cannot go negative), quality.independent (second scorers of
# the same completions, name -> mean), quality.samples (held-out prompts and completions), budget.init (what a
# warm-started row trained before its RL budget, e.g. "sft:2048").

# ``suite`` and ``run_id`` become a folder and a file name under the results folder: no separators, no "..".
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
NAME_RULE = "[A-Za-z0-9][A-Za-z0-9._-]* (at most 200 characters, no '..')"

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
        "kl_k3": float,
        "independent": dict,
        "samples": list,
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
        ok = _is_number(value)
    if not ok:
        raise SchemaError(f"{path}: expected {expected.__name__}, got {type(value).__name__} ({value!r})")
    if expected is float:
        _check_finite(value, path)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_finite(value: Any, path: str) -> None:
    """Raise unless ``value`` is an int or a finite float (NaN and infinities scramble the rankings)."""
    if not (_is_number(value) and math.isfinite(value)):
        raise SchemaError(f"{path} must be a finite number, got {value!r}")


def _check_no_nonfinite(value: Any, path: str) -> None:
    """Walk the whole document (free-form parts like ``agent.config`` too): no NaN or infinity anywhere."""
    if isinstance(value, float):
        _check_finite(value, path)
    elif isinstance(value, dict):
        for key, sub in value.items():
            _check_no_nonfinite(sub, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            _check_no_nonfinite(sub, f"{path}[{i}]")


def _check_curve(curve: list[Any]) -> None:
    """Each point is ``[timesteps, reward]``, both finite numbers."""
    for i, point in enumerate(curve):
        if not (isinstance(point, list | tuple) and len(point) == 2):
            raise SchemaError(f"result.curve[{i}]: expected [timesteps, reward], got {point!r}")
        for j, value in enumerate(point):
            _check_finite(value, f"result.curve[{i}][{j}]")


def _check_independent(scores: dict[str, Any]) -> None:
    """Second scorers: reward name -> the mean score it gave the same held-out completions."""
    for name, value in scores.items():
        check_name(name, f"quality.independent key {name!r}")
        _check_finite(value, f"result.quality.independent.{name}")


def _check_samples(samples: list[Any]) -> None:
    """Held-out samples: ``{"prompt": str, "completion": str}`` each."""
    for i, sample in enumerate(samples):
        ok = isinstance(sample, dict) and set(sample) == {"prompt", "completion"}
        if not ok or not all(isinstance(v, str) for v in sample.values()):
            raise SchemaError(
                f"result.quality.samples[{i}]: expected {{'prompt': str, 'completion': str}}, got {sample!r}"
            )


def check_name(value: Any, field: str) -> str:
    """Return ``value`` if it is safe as one path component (a suite folder, a run file name), else raise.

    Example:
        >>> check_name("TextGen-Sentiment-v0__ppo__seed0", "run_id")
        'TextGen-Sentiment-v0__ppo__seed0'
        >>> check_name("/etc", "suite")
        Traceback (most recent call last):
        ...
        leaderboards.schema.SchemaError: result.suite must be a plain name ...
    """
    if not (isinstance(value, str) and NAME_PATTERN.fullmatch(value) and ".." not in value):
        raise SchemaError(f"result.{field} must be a plain name matching {NAME_RULE}, got {value!r}")
    return value


def result_file(results_dir: str | Path, suite: str, run_id: str) -> Path:
    """``results_dir/<suite>/<run_id>.json``, after checking both names and that the file stays inside the folder.

    Example:
        >>> result_file("results", "quick", "x").as_posix()
        'results/quick/x.json'
    """
    results_dir = Path(results_dir)
    path = results_dir / check_name(suite, "suite") / f"{check_name(run_id, 'run_id')}.json"
    if not path.resolve().is_relative_to(results_dir.resolve()):
        raise SchemaError(f"result file {str(path)!r} would lie outside the results folder {str(results_dir)!r}")
    return path


def validate(result: Any) -> dict[str, Any]:
    """Check a result against the schema; returns it, or raises :class:`SchemaError` naming the bad field.

    Beyond the types: ``run_id`` and ``suite`` are plain names (they become file and folder names), every
    number is finite (NaN or infinity would scramble the ranking), and each curve point is two finite numbers.
    """
    _check(result, SCHEMA, "result")
    if result["schema_version"] != SCHEMA_VERSION:
        raise SchemaError(f"result.schema_version: expected {SCHEMA_VERSION}, got {result['schema_version']}")
    check_name(result["run_id"], "run_id")
    check_name(result["suite"], "suite")
    _check_curve(result["curve"])
    _check_independent(result["quality"]["independent"])
    _check_samples(result["quality"]["samples"])
    _check_no_nonfinite(result, "result")
    return result


def load_result(path: str | Path) -> dict[str, Any]:
    """Read and validate one result file (clear errors for missing files, bad JSON, bad fields)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"result file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())  # NaN/Infinity literals parse to floats: validate() rejects them
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    try:
        return validate(data)
    except SchemaError as err:
        raise SchemaError(f"{path}: {err}") from err


def write_result(result: dict[str, Any], path: str | Path) -> Path:
    """Validate, then write atomically (temporary file, then rename)."""
    validate(result)
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n")
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
            "kl_k3": 0.45,
            "independent": {"minilm_sentiment": 0.2},
            "samples": [{"prompt": "The film is", "completion": " a delight."}],
        },
        "cost": {"wall_clock_s": 60.0, "generated_tokens": 1024, "train_tokens_per_s": 20.0, "peak_memory_mb": 2000.0},
        "curve": [[0, 0.2], [1024, 0.25]],
        "command": "textgym leaderboard run --suite quick --only TextGen-Sentiment-v0__ppo__seed0",
        "created": "2026-11-24T00:00:00Z",
    }
