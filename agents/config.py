"""Flat training configs: dataclass fields whose ``help`` metadata doubles as the CLI help.

Each algorithm's config subclasses :class:`TrainConfig` and adds its own fields. Configs load from YAML
files and ``--key value`` flags; unknown keys are errors that name them. Every field declares the values it
allows once, in its :func:`option` (``low``/``high`` bounds or ``choices``); :func:`validate_config` checks
them whenever a config is built, so a bad value is an error naming the key, the value and the range.

Example:
    >>> from agents.ppo import PPOConfig
    >>> config = merge_config(PPOConfig(), {"learning_rate": 1e-5, "clip_range": 0.1})
    >>> config.clip_range
    0.1
    >>> merge_config(PPOConfig(), {"gamma": 5})
    Traceback (most recent call last):
    ...
    ValueError: config key 'gamma' must be in [0, 1], got 5.0
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import re
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from agents.losses import SCORE_NORMALIZATIONS

C = TypeVar("C", bound="TrainConfig")


@dataclass(frozen=True)
class Allowed:
    """The values a config field allows: an interval (``low``/``high``) and/or named ``choices``.

    ``pattern`` is ``(regex, label)``: strings that fully match the regex are allowed too, shown as ``label``.

    Example:
        >>> Allowed(low=0, high=1, high_inclusive=False).describe()
        'in [0, 1)'
        >>> Allowed(choices=("cpu", "cuda"), pattern=(r"cuda:\\d+", "cuda:N")).allows("cuda:1")
        True
    """

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()
    pattern: tuple[str, str] | None = None

    def allows(self, value: Any) -> bool:
        """Whether ``value`` (already of the field's type) is in range or one of the choices."""
        if self.choices or self.pattern:
            return value in self.choices or bool(self.pattern and re.fullmatch(self.pattern[0], value))
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.low is None or (value >= self.low if self.low_inclusive else value > self.low)
        below = self.high is None or (value <= self.high if self.high_inclusive else value < self.high)
        return above and below

    def describe(self) -> str:
        """The rule as text: ``'> 0'``, ``'in [0, 1]'``, ``'one of k1, k2, k3'`` (``''`` when anything goes)."""
        if self.choices or self.pattern:
            return "one of " + ", ".join([*self.choices, *([self.pattern[1]] if self.pattern else [])])
        if self.low is not None and self.high is not None:
            left, right = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            return f"in {left}{self.low}, {self.high}{right}"
        if self.low is not None:
            return f"{'>=' if self.low_inclusive else '>'} {self.low}"
        if self.high is not None:
            return f"{'<=' if self.high_inclusive else '<'} {self.high}"
        return ""


def option(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    choices: tuple[str, ...] = (),
    pattern: tuple[str, str] | None = None,
) -> Any:
    """A dataclass field with a CLI help text and the values it allows (see :class:`Allowed`).

    Example:
        >>> option(0.95, "GAE lambda", low=0, high=1).metadata["allowed"].describe()
        'in [0, 1]'
    """
    allowed = Allowed(low, high, low_inclusive, high_inclusive, tuple(choices), pattern)
    metadata = {"help": help, "allowed": allowed}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def importance_correction_option() -> bool:
    """The ``importance_correction`` field of the ratio-based algorithms (PPO, TRPO)."""
    return option(
        False,
        "ratios against the distribution the tokens were sampled from (top-k/top-p, noise and masking applied) "
        "instead of the learning policy at rollout time: corrects for exploration that makes the data off-policy",
    )


def score_normalization_option(default: str) -> Any:
    """The ``score_normalization`` field, whose default differs per algorithm."""
    return option(
        default,
        "how episode scores are normalised before the KL shaping: none, batch (whiten over the batch), group "
        "(whiten over each prompt's samples, as GRPO) or leave_one_out (minus the other samples' mean, as RLOO)",
        choices=SCORE_NORMALIZATIONS,
    )


@dataclass
class TrainConfig:
    """Fields every algorithm shares: env, model, budget, exploration, KL, logging, checkpoints.

    Building one validates every field (:func:`validate_config`), so a bad value never reaches training.
    """

    env_id: str = option("TextGen-Sentiment-v0", "registered env id to train on")
    env_kwargs: dict = option({}, "extra keyword arguments for gym.make_vec (e.g. max_new_tokens)")
    model: str = option("default", "'default' (SmolLM2-135M), 'tiny' (random 2-layer test model), a HF id or a path")
    device: str = option(
        "auto",
        "where to train (auto = cuda when available)",
        choices=("auto", "cpu", "cuda"),
        pattern=(r"cuda:\d+", "cuda:N"),
    )
    seed: int = option(0, "seed for prompts, sampling and initialisation", low=0, high=2**32 - 1)
    total_timesteps: int = option(4096, "generated tokens to train on (SB3's env steps; 0 = evaluate only)", low=0)
    batch_size: int = option(16, "episodes per rollout (the number of parallel envs)", low=1)
    learning_rate: float = option(
        3e-4,
        "Adam learning rate (3e-4 suits the default LoRA adapter; ~1e-5 for full fine-tuning)",
        low=0,
        low_inclusive=False,
    )
    max_grad_norm: float = option(1.0, "gradient clipping norm", low=0, low_inclusive=False)
    gamma: float = option(1.0, "discount over generated tokens", low=0, high=1)
    lora_rank: int = option(
        8, "train a LoRA adapter of this rank (0 = all weights); the reference is the adapter-off base", low=0
    )
    fast_decode: bool = option(
        True, "sample through packed weights and a pre-allocated cache (float32 Llama-family models on CPU)"
    )
    temperature: float = option(
        1.0, "sampling temperature (also used for the learning log-probs)", low=0, low_inclusive=False
    )
    top_k: int = option(0, "sample from the top k tokens only (0 = off)", low=0)
    top_p: float = option(1.0, "nucleus sampling mass (1 = off)", low=0, high=1, low_inclusive=False)
    logit_noise: float = option(0.0, "std of Gaussian noise added to the logits while sampling", low=0)
    mask_prob: float = option(
        0.0,
        "probability of masking out each of the mask_top likeliest tokens (argmax included) while sampling",
        low=0,
        high=1,
        high_inclusive=False,
    )
    mask_top: int = option(8, "how many of the likeliest tokens random masking may remove", low=1)
    epsilon: float = option(
        0.0,
        "epsilon-greedy exploration: probability of drawing a row's token uniformly from the candidates that "
        "survive top_k/top_p (the whole vocabulary when both are off)",
        low=0,
        high=1,
    )
    schedules: dict = option(
        {}, "field -> schedule, e.g. {temperature: 'linear:1.5:0.7:100', entropy_coef: 'cosine:0.01:0:50'}"
    )
    entropy_coef: float = option(0.0, "entropy bonus weight", low=0)
    kl_coef: float = option(0.05, "weight of the per-token KL-to-reference penalty (0 = no reference)", low=0)
    kl_estimator: str = option("k1", "per-token KL estimator for the penalty", choices=("k1", "k2", "k3"))
    kl_target: float | None = option(
        None, "adaptive KL controller target (None = fixed coefficient)", low=0, low_inclusive=False
    )
    kl_horizon: int = option(10000, "adaptive KL controller horizon in generated tokens", low=1)
    samples_per_prompt: int = option(
        1, "samples of each train prompt per batch, in consecutive envs (group normalizations need >= 2)", low=1
    )
    diversity_coef: float = option(
        0.0,
        "bonus added to each episode's score for how much it differs from the other samples of its prompt "
        "(1 - mean Jaccard similarity of token bigrams; needs samples_per_prompt >= 2)",
        low=0,
    )
    score_normalization: str = score_normalization_option("none")
    value_init: str = option(
        "zero",
        "how an actor-critic's value head starts: 'zero', or 'reward': fitted to the env's reward of the text so far "
        "(the reward model as critic; agents.critic)",
        choices=("zero", "reward"),
    )
    value_init_episodes: int = option(64, "episodes of train prompts that value_init='reward' fits on", low=2)
    init_checkpoint: str | None = option(
        None, "start from the policy weights of this checkpoint (e.g. an SFT run's); same model and lora_rank"
    )
    eval_every: int = option(10, "evaluate on the held-out split every N iterations (0 = never)", low=0)
    eval_episodes: int = option(32, "held-out prompts per evaluation", low=1)
    save_every: int = option(10, "write a checkpoint every N iterations (0 = only at the end)", low=0)
    run_dir: str = option("runs/textgym", "folder for metrics.jsonl, TensorBoard events and checkpoints")
    tensorboard: bool = option(True, "also write TensorBoard events (needs the tensorboard package)")
    progress: bool = option(True, "show a progress bar")
    overwrite: bool = option(False, "start over: delete the metrics, checkpoints and TensorBoard events in run_dir")

    def __post_init__(self) -> None:
        validate_config(self)


def config_keys(cls: type[TrainConfig]) -> list[str]:
    return [f.name for f in fields(cls)]


def validate_config(config: TrainConfig) -> None:
    """Check every field's type and allowed values, the schedules, and the fields that depend on each other.

    Runs whenever a config is built (``TrainConfig.__post_init__``), so also in :func:`merge_config` and
    ``Trainer.__init__``.

    Raises:
        ValueError: naming the first bad key, its value and what it allows.

    Example:
        >>> from agents.trpo import TRPOConfig
        >>> TRPOConfig(max_kl=0.0)
        Traceback (most recent call last):
        ...
        ValueError: config key 'max_kl' must be > 0, got 0.0
    """
    for f in fields(config):
        check_value(
            f"config key {f.name!r}", str(f.type), f.metadata.get("allowed", Allowed()), getattr(config, f.name)
        )
    _check_schedules(config)
    if config.kl_target is not None and config.kl_coef == 0:
        raise ValueError(
            f"config key 'kl_target' ({config.kl_target}) needs kl_coef > 0: the adaptive controller scales "
            "kl_coef, which would stay 0"
        )


def check_value(label: str, kind: str, allowed: Allowed, value: Any) -> None:
    """Raise a ``ValueError`` unless ``value`` has the type ``kind`` (``"int"``, ``"float | None"``...) and is allowed.

    Example:
        >>> check_value("config key 'top_p'", "float", Allowed(low=0, high=1, low_inclusive=False), float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: config key 'top_p' must be a finite number in (0, 1], got nan
    """
    base = kind.replace(" | None", "")
    if value is None:
        if base == kind:
            raise ValueError(f"{label} may not be None (expected {kind})")
        return
    if not _has_type(base, value):
        raise ValueError(f"{label} expects {kind}, got {value!r}")
    if allowed.allows(value):
        return
    rule = allowed.describe() + (" or None" if base != kind else "")
    finite = isinstance(value, float) and not math.isfinite(value)
    raise ValueError(f"{label} must be {'a finite number ' if finite else ''}{rule}, got {value!r}")


def _has_type(base: str, value: Any) -> bool:
    """Whether ``value`` is a ``base`` (bools are not numbers here, and ints are floats)."""
    if base == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, {"bool": bool, "str": str, "dict": dict}.get(base, object))


def _check_schedules(config: TrainConfig) -> None:
    """Scheduled fields exist and both ends of each schedule are allowed values of the field.

    Linear and cosine schedules move between their two ends, so checking the ends checks every step.
    """
    from agents.sampling import SCHEDULABLE_FIELDS, Schedule

    schedulable = (*SCHEDULABLE_FIELDS, "entropy_coef")
    unknown = sorted(set(config.schedules) - set(schedulable))
    if unknown:
        raise ValueError(f"cannot schedule {unknown}; valid fields: {', '.join(schedulable)}")
    known = {f.name: f for f in fields(config)}
    for name, value in config.schedules.items():
        label = f"config key 'schedules' entry {name!r}"
        try:
            schedule = Schedule.parse(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{label}: {err}") from err
        ends = [schedule.start] if schedule.kind == "constant" else [schedule.start, schedule.end]
        for end in ends:
            check_value(label, "float", known[name].metadata["allowed"], end)


def merge_config(config: C, updates: dict[str, Any]) -> C:
    """A copy of ``config`` with ``updates`` applied, converted to the fields' types and validated.

    Strings (from flags) convert to the field's type; YAML values must already have it (``true`` is not an
    int, ``1`` is not a bool). Every field is then checked by :func:`validate_config`.

    Raises:
        ValueError: unknown keys (all named, with the valid ones), a value of the wrong type, or a value
            outside the field's range (naming the key, the value and the range).

    Example:
        >>> from agents.ppo import PPOConfig
        >>> merge_config(PPOConfig(), {"n_epochs": "3", "target_kl": "none"}).n_epochs
        3
        >>> merge_config(PPOConfig(), {"device": "tpu"})
        Traceback (most recent call last):
        ...
        ValueError: config key 'device' must be one of auto, cpu, cuda, cuda:N, got 'tpu'
    """
    known = {f.name: f for f in fields(type(config))}
    unknown = sorted(set(updates) - set(known))
    if unknown:
        raise ValueError(f"unknown config keys {unknown} for {type(config).__name__}; valid keys: {sorted(known)}")
    converted = {key: _convert(key, str(known[key].type), value) for key, value in updates.items()}
    return dataclasses.replace(config, **converted)


def _convert(key: str, kind: str, value: Any) -> Any:
    """Convert ``value`` to a field's declared type (``"int"``, ``"float"``, ``"float | None"``, ...).

    Only strings are parsed; other values are kept as they are for :func:`validate_config` to judge, except
    that an integral float (``2.0``) becomes an int and an int a float where the field asks for one.
    """
    nullable = "None" in kind
    if nullable and isinstance(value, str) and value.lower() in ("none", "null"):
        return None
    base = kind.replace(" | None", "")
    try:
        if isinstance(value, str):
            return _parse(base, value)
        if base == "int" and isinstance(value, float) and value.is_integer():
            return int(value)
        if base == "float" and _has_type("int", value):
            return float(value)
    except (KeyError, ValueError) as err:
        raise ValueError(f"config key {key!r} expects {kind}, got {value!r}") from err
    return value


def _parse(base: str, text: str) -> Any:
    """A flag's string as a ``base`` value: ``"true"`` for bools, ``"1e3"`` for ints, YAML for dicts."""
    if base == "bool":
        return {"true": True, "false": False}[text.strip().lower()]
    if base == "int":
        number = float(text)
        if not number.is_integer():
            raise ValueError(text)
        return int(text) if text.strip().lstrip("+-").isdigit() else int(number)
    if base == "float":
        return float(text)
    if base == "dict":
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(text) from err
    return text


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


FLAG_ALIASES = {"env_id": ("--env",)}  # short spellings of a field's flag


def field_help(f: Field) -> str:
    """A field's CLI help with its default and the values it allows.

    Example:
        >>> from agents.ppo import PPOConfig
        >>> field_help(next(f for f in fields(PPOConfig) if f.name == "gamma"))
        'discount over generated tokens (default: 1.0; in [0, 1])'
    """
    allowed = f.metadata.get("allowed", Allowed()).describe()
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc,operator]
    notes = [f"default: {default}"] + ([allowed] if allowed else [])
    return f"{f.metadata.get('help', '')} ({'; '.join(notes)})".replace("%", "%%")  # argparse formats help with %


def add_config_arguments(parser: argparse.ArgumentParser, cls: type[TrainConfig]) -> None:
    """One ``--flag`` per field (``--learning-rate``); values stay strings until :func:`merge_config`."""
    for f in fields(cls):
        flags = ["--" + f.name.replace("_", "-"), *FLAG_ALIASES.get(f.name, ())]
        if str(f.type) == "bool":
            parser.add_argument(
                *flags,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=field_help(f),
            )
        else:
            parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, help=field_help(f))
