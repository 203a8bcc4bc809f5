"""Export: a trained policy becomes a plain Hugging Face folder that transformers and textgym load as is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agents import make_trainer
from agents.export import EXPORT_INFO, VALUE_HEAD
from textgym.cli import main

SETTINGS = {
    "model": "tiny",
    "lora_rank": 0,
    "env_id": "TextGen-Reverse-v0",
    "env_kwargs": {"max_new_tokens": 4},
    "batch_size": 4,
    "kl_coef": 0.0,
    "learning_rate": 3e-2,
    "tensorboard": False,
    "progress": False,
    "eval_every": 1,
    "eval_episodes": 4,
}


def trained(algo: str, run_dir: Path, **overrides):
    trainer = make_trainer(algo, **{**SETTINGS, "run_dir": str(run_dir), **overrides})
    return trainer.learn(total_timesteps=10**9, callback=lambda t, metrics: t.iteration < 2)


def greedy(model, tokenizer, text: str = "Reverse the words: red green blue") -> list[int]:
    ids = torch.tensor([tokenizer.encode(text)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8)
    return out[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_export_round_trip_gives_the_same_greedy_output(tmp_path, lora_rank):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trainer = trained("a2c", tmp_path / "run", lora_rank=lora_rank)
    if lora_rank:  # two updates on the tiny model may leave the adapter at ~0 (equal rewards): make it count
        with torch.no_grad():
            for name, param in trainer.policy.model.named_parameters():
                if "lora_B" in name:
                    param.add_(torch.randn_like(param) * 0.05)
    folder = trainer.save_pretrained(tmp_path / "model")
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template == trainer.tokenizer.chat_template and tokenizer.chat_template
    policy_model = trainer.policy.model
    ids = torch.tensor([tokenizer.encode("Reverse the words: one two three")])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, policy_model(ids).logits, atol=1e-4)
    assert greedy(loaded, tokenizer) == greedy(policy_model, tokenizer)
    if lora_rank:  # the adapter was merged: the base model answers differently
        with torch.no_grad(), policy_model.disable_adapter():
            assert not torch.allclose(loaded(ids).logits, policy_model(ids).logits, atol=1e-4)
        assert trainer.policy.uses_lora  # the trainer's own policy keeps its adapter
    assert (folder / VALUE_HEAD).exists()


def test_export_card_states_algo_env_and_the_last_evaluation(tmp_path):
    trainer = trained("reinforce", tmp_path / "run")
    folder = trainer.save_pretrained(tmp_path / "model")
    info = json.loads((folder / EXPORT_INFO).read_text())
    assert info["algo"] == "reinforce" and info["env_id"] == "TextGen-Reverse-v0"
    assert info["generated_tokens_trained"] == trainer.timesteps > 0
    assert set(info["evaluation"]) >= {"eval/score_mean", "eval/kl_k3"}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "TextGen-Reverse-v0" in card
    assert f"| eval/score_mean | {info['evaluation']['eval/score_mean']:.4g} |" in card
    assert not (folder / VALUE_HEAD).exists()  # REINFORCE has no critic


def test_cli_export_then_rollout_and_pipeline_load_the_folder(tmp_path, capsys):
    from transformers import pipeline

    trainer = trained("reinforce", tmp_path / "run")
    trainer.close()
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "run"), str(out)]) == 0
    assert "exported reinforce policy" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "run"), str(out)]) == 2  # exists: needs --force
    assert "--force" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "run"), str(out), "--force", "--eval-episodes", "4"]) == 0
    assert json.loads((out / EXPORT_INFO).read_text())["evaluation"]["eval/episode_length"] > 0
    assert not list(tmp_path.glob(".exported*"))  # no temporary folder left behind
    args = ["rollout", "--model", str(out), "--env", "TextGen-Reverse-v0", "--n", "2", "--max-new-tokens", "3"]
    assert main(args) == 0
    assert "mean reward" in capsys.readouterr().out
    text = pipeline("text-generation", str(out), device="cpu")("Reverse: a b", max_new_tokens=3, do_sample=False)
    assert text[0]["generated_text"].startswith("Reverse: a b")


def test_push_to_hub_uploads_the_folder_or_says_the_hub_is_unreachable(tmp_path, monkeypatch):
    import huggingface_hub

    import textgym.models

    trainer = trained("reinforce", tmp_path / "run")
    monkeypatch.setattr(textgym.models, "hub_reachable", lambda: False)
    with pytest.raises(ConnectionError, match="cannot push to 'me/model': the Hugging Face hub is not reachable"):
        trainer.save_pretrained(tmp_path / "model", push_to_hub="me/model")
    assert (tmp_path / "model" / "config.json").exists()  # written before the upload was tried
    calls = []
    monkeypatch.setattr(textgym.models, "hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo, **kw: calls.append(("create", repo)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    trainer.save_pretrained(tmp_path / "model", push_to_hub="me/model", overwrite=True)
    assert calls[0] == ("create", "me/model") and calls[1][1]["folder_path"] == str(tmp_path / "model")


def test_cli_export_reads_the_evaluation_beside_the_checkpoint_not_the_working_folder(tmp_path, monkeypatch, capsys):
    """A relative run_dir saved in the checkpoint must not pick up another run's metrics in the working folder."""
    monkeypatch.chdir(tmp_path)
    trainer = trained("reinforce", Path("runs/textgym"))  # the default, relative run_dir
    trainer.close()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs").rename(tmp_path / "elsewhere" / "runs")
    decoy = tmp_path / "runs" / "textgym" / "metrics.jsonl"  # another run where the first one used to be
    decoy.parent.mkdir(parents=True)
    decoy.write_text(json.dumps({"iteration": 1, "timesteps": 8, "eval/score_mean": 0.999}) + "\n")
    assert main(["export", "elsewhere/runs/textgym", "model"]) == 0
    info = json.loads((tmp_path / "model" / EXPORT_INFO).read_text())
    assert info["evaluation"]["eval/score_mean"] != 0.999 and info["evaluated_at_iteration"] == 2
    assert main(["export", "elsewhere/runs/textgym", "elsewhere/runs/textgym", "--force"]) == 2
    assert "is the run's own folder" in capsys.readouterr().err
