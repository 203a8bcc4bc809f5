"""The reward model as critic (agents.critic): prefix scores, value targets, the ridge fit, the warm start."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents import make_trainer
from agents.critic import fit_ridge, prefix_scores, r_squared, value_targets, warm_start_value_head
from agents.rollout import Rollout
from textgym.rewards.metrics import SequenceMatch

TINY = {"model": "tiny", "batch_size": 4, "progress": False, "kl_coef": 0.0, "tensorboard": False}


def test_prefix_scores_are_the_reward_of_each_decoded_prefix(tmp_path) -> None:
    trainer = make_trainer("a2c", env_id="TextGen-Reverse-v1", run_dir=str(tmp_path), **TINY)
    batch = trainer.collect_rollout(0)
    got = prefix_scores(trainer.envs, batch)
    references = [tuple(r) for r in trainer.envs.unwrapped._references.tolist()]
    tokenizer, reward = trainer.tokenizer, SequenceMatch()
    for b in range(len(batch.scores)):
        length = int(batch.mask[b].sum())
        for t in range(batch.num_generated):
            text = tokenizer.decode(batch.actions[b, : min(t, length)].tolist(), skip_special_tokens=True)
            expected = reward([batch.prompts[b]], [text], references=[references[b]])[0]
            assert float(got[b, t]) == pytest.approx(expected), (b, t, text)


def _batch(scores: list[float], lengths: list[int], width: int) -> Rollout:
    mask = torch.tensor([[1.0] * n + [0.0] * (width - n) for n in lengths])
    ids = torch.zeros(len(scores), width, dtype=torch.long)
    return Rollout(ids, torch.ones_like(ids), mask, torch.tensor(scores))


@pytest.mark.parametrize("method", ["none", "batch", "group"])
def test_value_targets_match_a_plain_loop(method: str) -> None:
    scores, lengths, gamma = [1.0, 0.0, 0.5, 0.25], [3, 1, 4, 2], 0.9
    batch = _batch(scores, lengths, 4)
    prefixes = torch.tensor([[0.0, 0.2, 0.6, 0.0], [0.0, 0.0, 0.0, 0.0], [0.1, 0.3, 0.3, 0.4], [0.0, 0.5, 0.0, 0.0]])
    got = value_targets(batch, prefixes, method, 2, gamma)
    mean, std = np.mean(scores), np.std(scores, ddof=1)
    for b, length in enumerate(lengths):
        group = scores[2 * (b // 2) : 2 * (b // 2) + 2]
        for t in range(4):
            p = float(prefixes[b, t])
            normalised = {"none": p, "batch": (p - mean) / std, "group": (p - np.mean(group)) / np.std(group, ddof=1)}
            expected = normalised[method] * gamma ** (length - 1 - t) if t < length else 0.0
            assert float(got[b, t]) == pytest.approx(expected, abs=1e-5), (method, b, t)


def test_fit_ridge_recovers_a_linear_map_and_shrinks_with_the_penalty() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator, dtype=torch.float64)
    true_w = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    y = x @ true_w + 0.7
    w, b = fit_ridge(x, y, ridge=1e-9)
    expected = np.linalg.lstsq(np.c_[x.numpy(), np.ones(200)], y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(np.r_[w.numpy(), float(b)], expected, atol=1e-6)
    assert r_squared(x @ w + b, y) == pytest.approx(1.0)
    assert float(fit_ridge(x, y, ridge=10.0)[0].norm()) < float(w.norm())


def test_warm_start_fits_the_value_head_and_leaves_the_policy_alone(tmp_path) -> None:
    trainer = make_trainer("ppo", env_id="TextGen-Reverse-v1", run_dir=str(tmp_path), **TINY)
    batch = trainer.collect_rollout(0)
    before = trainer.policy.token_outputs(batch.input_ids, batch.attention_mask, batch.num_generated)[0]
    fit = warm_start_value_head(trainer, episodes=16)
    after = trainer.policy.token_outputs(batch.input_ids, batch.attention_mask, batch.num_generated)[0]
    assert torch.equal(before, after)
    assert fit["critic_init/tokens"] > 16 and fit["critic_init/r2_train"] > 0
    assert float(trainer.policy.value_head.weight.detach().abs().sum()) > 0  # it started at exactly 0


def test_learn_runs_the_warm_start_once_logs_it_and_counts_its_tokens(tmp_path) -> None:
    trainer = make_trainer(
        "a2c", env_id="TextGen-Reverse-v1", run_dir=str(tmp_path), value_init="reward", value_init_episodes=8, **TINY
    )
    trainer.learn(total_timesteps=1)  # the warm start's own episodes spend the whole budget: no update
    assert trainer.iteration == 0 and trainer.value_initialized
    trainer.learn(total_timesteps=trainer.timesteps + 1)  # one more iteration, no second warm start
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    fits = [row for row in rows if "critic_init/tokens" in row]
    assert len(fits) == 1 and trainer.iteration == 1
    assert trainer.timesteps > fits[0]["critic_init/tokens"] >= 8


def test_value_init_reward_needs_an_actor_critic(tmp_path) -> None:
    with pytest.raises(ValueError, match="value_init='reward' starts an actor-critic's value head: reinforce"):
        make_trainer("reinforce", env_id="TextGen-Reverse-v1", run_dir=str(tmp_path), value_init="reward", **TINY)


def test_score_texts_checks_its_input() -> None:
    import gymnasium as gym

    envs = gym.make_vec("TextGen-Reverse-v1", num_envs=2, vectorization_mode="vector_entry_point").unwrapped
    with pytest.raises(RuntimeError, match="call reset"):
        envs.score_texts(["a", "b"])
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="need one text per sub-env \\(2\\), got 1"):
        envs.score_texts(["a"])
