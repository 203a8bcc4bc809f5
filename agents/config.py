"""Flat training configs: dataclass fields whose ``help`` metadata doubles as the CLI help.

Each algorithm's config subclasses :class:`TrainConfig` and adds its own fields. Configs load from YAML
files and ``--key value`` flags; unknown keys are errors that name them.

Example:
    >>> from agents.ppo import PPOConfig
    >>> config = merge_config(PPOConfig(), {"learning_rate": 1e-5, "clip_range": 0.1})
    >>> config.clip_range
    0.1
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C", bound="TrainConfig")


def option(default: Any, help: str) -> Any:
    """A dataclass field with a CLI help text."""
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Fields every algorithm shares: env, model, budget, exploration, KL, logging, checkpoints."""

    env_id: str = option("TextGen-Sentiment-v0", "registered env id to train on")
    env_kwargs: dict = option({}, "extra keyword arguments for gym.make_vec (e.g. max_new_tokens)")
    model: str = option("default", "'default' (SmolLM2-135M), 'tiny' (random 2-layer test model), a HF id or a path")
    device: str = option("auto", "cpu, cuda or auto (cuda when available)")
    seed: int = option(0, "seed for prompts, sampling and initialisation")
    total_timesteps: int = option(4096, "generated tokens to train on (SB3's env steps)")
    batch_size: int = option(16, "episodes per rollout (the number of parallel envs)")
    learning_rate: float = option(1e-5, "Adam learning rate")
    max_grad_norm: float = option(1.0, "gradient clipping norm")
    gamma: float = option(1.0, "discount over generated tokens")
    lora_rank: int = option(
        0, "train a LoRA adapter of this rank (0 = all weights); the reference is the adapter-off base"
    )
    temperature: float = option(1.0, "sampling temperature (also used for the learning log-probs)")
    top_k: int = option(0, "sample from the top k tokens only (0 = off)")
    top_p: float = option(1.0, "nucleus sampling mass (1 = off)")
    logit_noise: float = option(0.0, "std of Gaussian noise added to the logits while sampling")
    mask_prob: float = option(0.0, "probability of masking each candidate token out while sampling")
    schedules: dict = option(
        {}, "field -> schedule, e.g. {temperature: 'linear:1.5:0.7:100', entropy_coef: 'cosine:0.01:0:50'}"
    )
    entropy_coef: float = option(0.0, "entropy bonus weight")
    kl_coef: float = option(0.05, "weight of the per-token KL-to-reference penalty (0 = no reference)")
    kl_estimator: str = option("k1", "per-token KL estimator for the penalty: k1, k2 or k3")
    kl_target: float | None = option(None, "adaptive KL controller target (None = fixed coefficient)")
    kl_horizon: int = option(10000, "adaptive KL controller horizon in generated tokens")
    eval_every: int = option(10, "evaluate on the held-out split every N iterations (0 = never)")
    eval_episodes: int = option(32, "held-out prompts per evaluation")
    save_every: int = option(10, "write a checkpoint every N iterations (0 = only at the end)")
    run_dir: str = option("runs/textgym", "folder for metrics.jsonl, TensorBoard events and checkpoints")
    tensorboard: bool = option(True, "also write TensorBoard events (needs the tensorboard package)")
    progress: bool = option(True, "show a progress bar")


def config_keys(cls: type[TrainConfig]) -> list[str]:
    return [f.name for f in fields(cls)]


def merge_config(config: C, updates: dict[str, Any]) -> C:
    """A copy of ``config`` with ``updates`` applied and converted to the fields' types.

    Raises:
        ValueError: unknown keys (all named, with the valid ones) or a value of the wrong type.
    """
    known = {f.name: f for f in fields(type(config))}
    unknown = sorted(set(updates) - set(known))
    if unknown:
        raise ValueError(f"unknown config keys {unknown} for {type(config).__name__}; valid keys: {sorted(known)}")
    converted = {key: _convert(key, str(known[key].type), value) for key, value in updates.items()}
    return dataclasses.replace(config, **converted)


def _convert(key: str, kind: str, value: Any) -> Any:
    """Convert ``value`` to a field's declared type (``"int"``, ``"float"``, ``"float | None"``, ...)."""
    nullable = "None" in kind
    if value is None or (nullable and isinstance(value, str) and value.lower() in ("none", "null")):
        if nullable:
            return None
        raise ValueError(f"config key {key!r} may not be None (expected {kind})")
    base = kind.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, str):
                return {"true": True, "false": False}[value.lower()]
            return bool(value)
        if base == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base == "float":
            return float(value)
        if base == "str":
            return str(value)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"config key {key!r} expects {kind}, got {value!r}") from err
    if base == "dict" and isinstance(value, str):
        import yaml

        value = yaml.safe_load(value)
    if base == "dict" and not isinstance(value, dict):
        raise ValueError(f"config key {key!r} expects a mapping, got {value!r}")
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML mapping; a broken file is a ``ValueError`` naming the file and the problem."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def add_config_arguments(parser: argparse.ArgumentParser, cls: type[TrainConfig]) -> None:
    """One ``--flag`` per field (``--learning-rate``); values stay strings until :func:`merge_config`."""
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        if str(f.type) == "bool":
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=f.metadata.get("help"),
            )
        else:
            parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=f.metadata.get("help"))
