"""Supervised warm start: demonstrations laid out as env observations, learning them, bad input."""

from __future__ import annotations

import pytest
import torch

from agents import make_trainer


def make_sft(tmp_path, **overrides):
    settings = {
        "model": "tiny",
        "lora_rank": 0,  # full fine-tuning: the RL runs' reference is then the SFT weights
        "env_id": "TextGen-Reverse-v0",
        "batch_size": 8,
        "learning_rate": 3e-3,
        "tensorboard": False,
        "progress": False,
        "eval_every": 0,
        "save_every": 0,
        "run_dir": str(tmp_path / "sft"),
    }
    return make_trainer("sft", **{**settings, **overrides})


def test_demonstrations_sit_where_the_env_puts_generated_tokens(tmp_path):
    agent = make_sft(tmp_path)
    batch = agent.demonstration_batch(0)
    setup = agent.envs.setup
    for row in range(len(batch.prompts)):
        written = int(batch.mask[row].sum())
        generated = batch.input_ids[row, setup.max_prompt_tokens : setup.max_prompt_tokens + written].tolist()
        assert generated[-1] == setup.eos_token_id
        assert setup.tokenizer.decode(generated[:-1]) == batch.completions[row]
        assert batch.attention_mask[row, setup.max_prompt_tokens :].sum() == written
    assert all(c.startswith(" ") for c in batch.completions)  # Reverse's answer follows the arrow after a space


def test_sft_lowers_the_demonstrations_negative_log_likelihood_on_every_seed(tmp_path):
    """Held-out demonstrations (a fixed batch no iteration trains on) get likelier, for each of 3 seeds."""
    drops = []
    for seed in range(3):
        agent = make_sft(tmp_path / str(seed), seed=seed)
        probe = agent.demonstration_batch(10_000)

        def nll(agent=agent, probe=probe) -> float:
            with torch.no_grad():
                logprobs = agent.score_tokens(probe).logprobs
            return float(-(logprobs * probe.mask).sum() / probe.mask.sum())

        before = nll()
        agent.learn(total_timesteps=8 * 12 * 8)  # about 8 iterations of 8 episodes
        drops.append(before - nll())
    mean = sum(drops) / len(drops)
    spread = max(drops) - min(drops)
    assert min(drops) > 1.0 and mean > 2 * spread, drops  # nats per token


def test_sft_needs_demonstrations(tmp_path):
    with pytest.raises(ValueError, match="SFT needs a demonstration for every train example, and task 'sentiment'"):
        make_sft(tmp_path, env_id="TextGen-Sentiment-v0")


def ppo_from_sft(tmp_path, name: str, **overrides):
    """A tiny PPO run on Reverse that starts from the SFT run in ``tmp_path / "sft"``."""
    settings = {"model": "tiny", "lora_rank": 0, "env_id": "TextGen-Reverse-v0", "batch_size": 4, "tensorboard": False}
    settings |= {"progress": False, "init_checkpoint": str(tmp_path / "sft"), "run_dir": str(tmp_path / name)}
    return make_trainer("ppo", **{**settings, **overrides})


def test_an_rl_run_starts_from_the_sft_weights_and_keeps_them_as_its_reference(tmp_path):
    sft = make_sft(tmp_path, model="tiny")
    sft.learn(total_timesteps=8 * 12 * 2)
    sft_weights = {k: p.detach().clone() for k, p in sft.policy.named_parameters()}
    sft.close()
    ppo = ppo_from_sft(tmp_path, "ppo", kl_coef=0.1)
    own = dict(ppo.policy.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in sft_weights.items())
    assert any(k.startswith("value_head.") for k in own) and not any(k.startswith("value_head.") for k in sft_weights)
    batch = ppo.collect_rollout(0)
    args = (batch.input_ids, batch.attention_mask, batch.num_generated)
    torch.testing.assert_close(ppo.policy.reference_logprobs(*args), ppo.policy.score_tokens(*args).logprobs)
    with pytest.raises(ValueError, match=r"does not fit this policy .* missing .*lora"):
        ppo_from_sft(tmp_path, "lora", lora_rank=4)
