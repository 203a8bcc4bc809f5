"""Model loading (the embedded default, tiny test models) and the command line."""

from __future__ import annotations

import json

import pytest

from textgym.cli import main
from textgym.models import default_model_path, load_tokenizer, resolve_model_path, tiny_causal_lm


def test_default_tokenizer_special_tokens():
    tok = load_tokenizer("default")
    assert len(tok) == 49152
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id) == ("<|im_end|>", 2, 2)
    assert tok.bos_token_id == 1
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [19556, 905]


def test_default_resolves_to_the_cached_folder():
    path = default_model_path()
    assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    assert resolve_model_path("default") == str(path)
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"


def test_tiny_model_is_seeded():
    a, b = tiny_causal_lm(100, seed=1), tiny_causal_lm(100, seed=1)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_cli_envs_lists_every_id(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in ("TextGen-v0", "TextGen-Sentiment-v0", "TextGen-Arithmetic-v0", "TextGen-Reverse-v0"):
        assert env_id in out
    assert "Discrete(49152)" in out


def test_cli_rollout_with_the_default_model(capsys):
    assert main(["rollout", "--env", "TextGen-Arithmetic-v0", "--n", "2", "--max-new-tokens", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("mean reward")


def test_cli_rollout_takes_your_prompts_and_a_reward_by_name(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Tell me about cats.\nWhat a lovely day\n")
    argv = ["rollout", "--model", "tiny", "--prompts", str(prompts), "--reward", "vader", "--n", "4"]
    assert main([*argv, "--max-new-tokens", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and "(TextGen-v0, eval split)" in lines[-1]
    assert {line.split("] ", 1)[1].split("\u2502")[0] for line in lines[:4]} == {
        "Tell me about cats.",
        "What a lovely day",
    }


def test_cli_rollout_with_prompts_but_no_reward_says_which_flag_is_missing(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Hello\n")
    assert main(["rollout", "--model", "tiny", "--prompts", str(prompts)]) == 2
    assert "pass --reward NAME" in capsys.readouterr().err


def test_cli_rollout_checks_the_env_before_loading_the_model(capsys, monkeypatch):
    import agents.policy

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the env was checked")

    monkeypatch.setattr(agents.policy.LMPolicy, "from_pretrained", no_model)
    assert main(["rollout", "--reward", "no_such_reward", "--n", "2"]) == 2
    assert "no_such_reward" in capsys.readouterr().err


def test_cli_eval_of_an_untrained_model_needs_no_trainer(capsys):
    assert main(["eval", "--model", "tiny", "--env", "TextGen-Reverse-v0", "--episodes", "4"]) == 0
    figures = json.loads(capsys.readouterr().out.split("\n", 4)[-1])  # after the samples
    assert figures["eval/kl_k3"] == 0.0 and 0 <= figures["eval/score_mean"] <= 1 and figures["eval/episode_length"] > 0


def test_cli_unknown_env_is_a_clear_error(capsys):
    assert main(["rollout", "--env", "TextGen-Nope-v0"]) == 2
    assert "TextGen-Nope" in capsys.readouterr().err


@pytest.mark.slow
def test_default_model_predicts_english(tokenizer):
    import torch

    from textgym.models import load_causal_lm

    model = load_causal_lm("default")
    ids = tokenizer("The capital of France is Paris. The capital of Italy is", return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss
    assert torch.exp(loss).item() < 60
