"""Configs: every field's allowed values are declared once and checked wherever a config is built."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from agents import make_trainer, trainer_class
from agents.a2c import A2CConfig
from agents.config import TrainConfig, merge_config
from agents.ppo import PPOConfig
from agents.reinforce import ReinforceConfig
from agents.sft import SFTConfig
from agents.trpo import TRPOConfig
from leaderboards.suites import suite

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = [TrainConfig, ReinforceConfig, A2CConfig, PPOConfig, TRPOConfig, SFTConfig]
FREE_FIELDS = {"env_id", "env_kwargs", "model", "run_dir", "schedules", "init_checkpoint"}  # any of their type goes
TINY_RUN = ["--env", "TextGen-Arithmetic-v0", "--model", "tiny", "--total-timesteps", "8"]
TINY_RUN += ["--no-tensorboard", "--no-progress", "--eval-every", "0", "--save-every", "0", "--kl-coef", "0"]

# (config class, key, flag value, the error it must give): each of these trained something wrong or crashed
BAD_VALUES = [
    (PPOConfig, "max_grad_norm", "-1", "'max_grad_norm' must be > 0, got -1.0"),  # flipped the gradient's sign
    (PPOConfig, "gamma", "5", r"'gamma' must be in \[0, 1\], got 5.0"),
    (PPOConfig, "clip_range", "-0.2", "'clip_range' must be > 0, got -0.2"),
    (PPOConfig, "clip_range_vf", "0", "'clip_range_vf' must be > 0 or None, got 0.0"),
    (PPOConfig, "target_kl", "-1", "'target_kl' must be > 0 or None"),
    (PPOConfig, "total_timesteps", "-5", "'total_timesteps' must be >= 0, got -5"),
    (PPOConfig, "learning_rate", "0", "'learning_rate' must be > 0, got 0.0"),
    (PPOConfig, "temperature", "0", "'temperature' must be > 0"),
    (PPOConfig, "top_p", "1.5", r"'top_p' must be in \(0, 1\], got 1.5"),
    (PPOConfig, "top_p", "0", r"'top_p' must be in \(0, 1\]"),
    (PPOConfig, "top_k", "-1", "'top_k' must be >= 0, got -1"),
    (PPOConfig, "mask_prob", "1", r"'mask_prob' must be in \[0, 1\), got 1.0"),
    (PPOConfig, "logit_noise", "-0.1", "'logit_noise' must be >= 0"),
    (PPOConfig, "kl_coef", "-0.1", "'kl_coef' must be >= 0"),
    (PPOConfig, "kl_estimator", "k4", "'kl_estimator' must be one of k1, k2, k3, got 'k4'"),
    (PPOConfig, "kl_target", "0", "'kl_target' must be > 0 or None, got 0.0"),
    (PPOConfig, "kl_horizon", "0", "'kl_horizon' must be >= 1, got 0"),
    (PPOConfig, "gae_lambda", "1.5", r"'gae_lambda' must be in \[0, 1\]"),
    (PPOConfig, "vf_coef", "-1", "'vf_coef' must be >= 0"),
    (PPOConfig, "entropy_coef", "-0.01", "'entropy_coef' must be >= 0"),
    (PPOConfig, "n_epochs", "0", "'n_epochs' must be >= 1, got 0"),
    (PPOConfig, "minibatch_size", "0", "'minibatch_size' must be >= 1, got 0"),
    (PPOConfig, "batch_size", "0", "'batch_size' must be >= 1, got 0"),
    (PPOConfig, "lora_rank", "-1", "'lora_rank' must be >= 0"),
    (PPOConfig, "eval_every", "-1", "'eval_every' must be >= 0"),
    (PPOConfig, "eval_episodes", "0", "'eval_episodes' must be >= 1, got 0"),
    (PPOConfig, "save_every", "-1", "'save_every' must be >= 0"),
    (PPOConfig, "seed", "-1", r"'seed' must be in \[0, \d+\], got -1"),
    (PPOConfig, "seed", str(2**40), r"'seed' must be in \[0, \d+\]"),
    (PPOConfig, "device", "tpu", "'device' must be one of auto, cpu, cuda, cuda:N, got 'tpu'"),
    (PPOConfig, "device", "cuda:x", "'device' must be one of auto, cpu, cuda, cuda:N"),
    (A2CConfig, "gae_lambda", "-0.1", r"'gae_lambda' must be in \[0, 1\]"),
    (A2CConfig, "vf_coef", "-0.5", "'vf_coef' must be >= 0"),
    (TRPOConfig, "max_kl", "0", "'max_kl' must be > 0, got 0.0"),
    (TRPOConfig, "cg_iters", "0", "'cg_iters' must be >= 1"),
    (TRPOConfig, "cg_damping", "-0.1", "'cg_damping' must be >= 0"),
    (TRPOConfig, "line_search_steps", "0", "'line_search_steps' must be >= 1"),
    (TRPOConfig, "backtrack_ratio", "1", r"'backtrack_ratio' must be in \(0, 1\), got 1.0"),
    (TRPOConfig, "vf_iters", "0", "'vf_iters' must be >= 1"),
    (TRPOConfig, "vf_learning_rate", "0", "'vf_learning_rate' must be > 0"),
    (ReinforceConfig, "baseline", "mean", "'baseline' must be one of none, moving_average, leave_one_out"),
    (ReinforceConfig, "samples_per_prompt", "0", "'samples_per_prompt' must be >= 1"),
    (ReinforceConfig, "baseline_decay", "1", r"'baseline_decay' must be in \[0, 1\)"),
]


@pytest.mark.parametrize(("cls", "key", "value", "error"), BAD_VALUES, ids=[f"{b[1]}={b[2]}" for b in BAD_VALUES])
def test_out_of_range_values_are_errors_naming_key_value_and_range(cls, key, value, error):
    with pytest.raises(ValueError, match=f"config key {error}"):
        merge_config(cls(), {key: value})


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_number_and_choice_field_declares_its_allowed_values(cls):
    undeclared = [
        f.name
        for f in fields(cls)
        if f.name not in FREE_FIELDS and str(f.type) != "bool" and not f.metadata["allowed"].describe()
    ]
    assert undeclared == []
    cls()  # the defaults are allowed values


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("batch_size", True, "'batch_size' expects int, got True"),
        ("learning_rate", False, "'learning_rate' expects float, got False"),
        ("tensorboard", 1, "'tensorboard' expects bool, got 1"),
        ("batch_size", 2.5, "'batch_size' expects int, got 2.5"),
        ("batch_size", "2.5", "'batch_size' expects int, got '2.5'"),
        ("learning_rate", float("nan"), "'learning_rate' must be a finite number > 0, got nan"),
        ("learning_rate", "nan", "'learning_rate' must be a finite number > 0, got nan"),
        ("max_grad_norm", "inf", "'max_grad_norm' must be a finite number > 0, got inf"),
        ("total_timesteps", "inf", "'total_timesteps' expects int, got 'inf'"),
        ("kl_estimator", 1, "'kl_estimator' expects str, got 1"),
        ("env_kwargs", "[1, 2]", "'env_kwargs' expects dict"),
        ("env_kwargs", "{a: [1", "'env_kwargs' expects dict"),
        ("gamma", None, "'gamma' may not be None"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_errors(key, value, error):
    with pytest.raises(ValueError, match=f"config key {error}"):
        merge_config(PPOConfig(), {key: value})


def test_values_of_the_right_type_convert():
    config = merge_config(
        PPOConfig(),
        {"total_timesteps": "1e3", "batch_size": 8.0, "tensorboard": "false", "progress": "True", "kl_coef": 0},
    )
    assert (config.total_timesteps, config.batch_size, config.tensorboard, config.progress) == (1000, 8, False, True)
    assert config.kl_coef == 0.0 and isinstance(config.kl_coef, float)
    assert merge_config(PPOConfig(), {"target_kl": "none", "device": "cuda:1"}).device == "cuda:1"


def test_direct_construction_and_trainer_overrides_are_checked():
    with pytest.raises(ValueError, match=r"config key 'gamma' must be in \[0, 1\], got 5.0"):
        PPOConfig(gamma=5.0)
    with pytest.raises(ValueError, match="config key 'batch_size' expects int, got True"):
        A2CConfig(batch_size=True)
    with pytest.raises(ValueError, match="config key 'max_grad_norm' must be > 0"):
        make_trainer("ppo", model="tiny", max_grad_norm=-1.0)
    config = PPOConfig()
    config.n_epochs = 0  # changed after construction: caught when a trainer is built from it
    with pytest.raises(ValueError, match="config key 'n_epochs' must be >= 1"):
        trainer_class("ppo")(config, model="tiny")


def test_an_adaptive_kl_target_needs_a_coefficient_to_adapt():
    with pytest.raises(ValueError, match=r"'kl_target' .* needs kl_coef > 0"):
        merge_config(PPOConfig(), {"kl_coef": 0.0, "kl_target": 6.0})
    assert merge_config(PPOConfig(), {"kl_coef": 0.1, "kl_target": 6.0}).kl_target == 6.0


@pytest.mark.parametrize(
    ("schedules", "error"),
    [
        ({"temperature": "linear:1.0:0.0:10"}, "'schedules' entry 'temperature' must be > 0, got 0.0"),
        ({"top_p": "cosine:0.5:1.5:10"}, r"'schedules' entry 'top_p' must be in \(0, 1\], got 1.5"),
        ({"entropy_coef": -0.01}, "'schedules' entry 'entropy_coef' must be >= 0"),
        ({"mask_prob": "linear:nan:0:5"}, "'schedules' entry 'mask_prob' must be a finite number"),
        ({"temperature": {"kind": "linear", "strat": 1.0}}, "'schedules' entry 'temperature': .*strat"),
        ({"temprature": 1.0}, "cannot schedule"),
    ],
)
def test_schedules_stay_inside_their_fields_range(schedules, error):
    with pytest.raises(ValueError, match=error):
        merge_config(PPOConfig(), {"schedules": schedules})


def test_leaderboard_suites_and_test_settings_stay_allowed():
    for name in ("quick", "full", "sweep"):
        for spec in suite(name):
            cls = trainer_class(spec.algo).config_class
            merge_config(cls(), {**spec.trainer_config, "seed": spec.seed, "total_timesteps": spec.budget_tokens})
    tiny = {"batch_size": 1, "kl_coef": 0.0, "top_k": 10, "eval_every": 0, "save_every": 0, "total_timesteps": 0}
    merge_config(PPOConfig(), {**tiny, "n_epochs": 1, "minibatch_size": 1, "gamma": 0.0, "gae_lambda": 1.0})


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--algo", "ppo", "--n-epochs", "0"], "config key 'n_epochs' must be >= 1, got 0"),
        (["--algo", "ppo", "--minibatch-size", "0"], "config key 'minibatch_size' must be >= 1, got 0"),
        (["--algo", "trpo", "--vf-iters", "0"], "config key 'vf_iters' must be >= 1, got 0"),
        (["--algo", "a2c", "--eval-every", "1", "--eval-episodes", "0"], "config key 'eval_episodes' must be >= 1"),
        (["--algo", "a2c", "--kl-coef", "0.1", "--kl-target", "1", "--kl-horizon", "0"], "'kl_horizon' must be >= 1"),
        (["--algo", "a2c", "--seed", "-1"], r"config key 'seed' must be in \[0, \d+\], got -1"),
        (["--algo", "a2c", "--device", "tpu"], "config key 'device' must be one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_cli_train_reports_bad_values_in_one_line_with_exit_code_2(tmp_path, capsys, flags, error):
    from textgym.cli import main

    assert main(["train", *TINY_RUN, "--batch-size", "4", "--run-dir", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("textgym train: error: ")
    assert re.search(error, err)


def test_cli_train_rejects_a_yaml_bool_for_an_int(tmp_path, capsys):
    from textgym.cli import main

    config = tmp_path / "config.yaml"
    config.write_text("batch_size: true\n")
    assert main(["train", "--algo", "a2c", "--config", str(config), *TINY_RUN, "--run-dir", str(tmp_path)]) == 2
    assert "config key 'batch_size' expects int, got True" in capsys.readouterr().err


def test_cli_help_shows_the_defaults_and_allowed_values(capsys):
    from agents.cli import parse

    with pytest.raises(SystemExit):
        parse(["--algo", "ppo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "discount over generated tokens (default: 1.0; in [0, 1])" in text
    assert "(default: k1; one of k1, k2, k3)" in text and "(default: auto; one of auto, cpu, cuda, cuda:N)" in text
    assert "passes over each batch (default: 2; >= 1)" in text
    assert "(default: batch; one of none, batch, group, leave_one_out)" in text  # PPO's own default
    assert "--env-id ENV_ID, --env ENV_ID" in text and text.count("--env ENV_ID") == 1


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse_and_validate(path):
    """Each file in configs/ is a valid config of the algorithm it is named after, overriding something."""
    from agents.cli import parse

    config, front = parse(["--algo", path.stem, "--config", str(path)])
    assert front.algo == path.stem and config.env_id.startswith("TextGen-")
    assert config.total_timesteps != type(config)().total_timesteps


def test_every_algorithm_ships_a_config():
    from agents import ALGOS

    assert {p.stem for p in (ROOT / "configs").glob("*.yaml")} == set(ALGOS)
