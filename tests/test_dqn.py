"""Token-level Q-learning: Bellman targets and Double Q against plain loops, the replay buffer, the target network,
resume, bad input. Its learning test is in test_agents.py with the other algorithms'."""

from __future__ import annotations

import math

import pytest
import torch
from test_agents import SYNTHETIC, make

from agents.qlearning import bootstrap_values, n_step_targets, q_values
from agents.replay import EpisodeReplay
from agents.rollout import Rollout


def loop_targets(rewards, bootstrap, lengths, gamma, n):
    """The textbook n-step target, one step at a time."""
    out = torch.zeros_like(rewards)
    for b, length in enumerate(lengths):
        for t in range(length):
            total, k = 0.0, 0
            while k < n and t + k < length:
                total += gamma**k * float(rewards[b, t + k])
                k += 1
            if t + n < length:
                total += gamma**n * float(bootstrap[b, t + n])
            out[b, t] = total
    return out


@pytest.mark.parametrize("n", [1, 3, 10])
def test_n_step_targets_match_a_plain_loop(n):
    generator = torch.Generator().manual_seed(n)
    rewards, bootstrap = torch.randn(4, 7, generator=generator), torch.randn(4, 7, generator=generator)
    lengths = [7, 5, 1, 3]
    mask = torch.tensor([[1.0] * length + [0.0] * (7 - length) for length in lengths])
    got = n_step_targets(rewards, bootstrap, mask, gamma=0.9, n=n)
    assert torch.allclose(got, loop_targets(rewards, bootstrap, lengths, 0.9, n), atol=1e-6)
    with pytest.raises(ValueError, match="n >= 1"):
        n_step_targets(rewards, bootstrap, mask, 0.9, 0)


def test_bootstrap_values_are_the_max_q_and_double_q_as_defined():
    generator = torch.Generator().manual_seed(0)
    online, target = torch.randn(2, 3, 5, generator=generator), torch.randn(2, 3, 5, generator=generator)
    values = torch.randn(2, 3, generator=generator)
    every_action = torch.stack([q_values(target, values, torch.full((2, 3), a), 0.3) for a in range(5)], -1)
    assert torch.allclose(bootstrap_values(target, values, 0.3), every_action.max(-1).values)
    chosen = online.argmax(-1)  # the online network's greedy action, valued by the target network
    expected = every_action.gather(-1, chosen[..., None]).squeeze(-1)
    assert torch.allclose(bootstrap_values(target, values, 0.3, online_logits=online), expected)
    assert (bootstrap_values(target, values, 0.3, online) <= bootstrap_values(target, values, 0.3) + 1e-6).all()


def episode(prompt: list[int], tokens: list[int], width: int, steps: int, score: float) -> Rollout:
    ids = [0] * (width - len(prompt)) + prompt + tokens + [0] * (steps - len(tokens))
    attention = [0] * (width - len(prompt)) + [1] * (len(prompt) + len(tokens)) + [0] * (steps - len(tokens))
    mask = [1.0] * len(tokens) + [0.0] * (steps - len(tokens))
    return Rollout(torch.tensor([ids]), torch.tensor([attention]), torch.tensor([mask]), torch.tensor([score]))


def test_replay_keeps_the_newest_episodes_and_gives_them_back_intact():
    buffer = EpisodeReplay(capacity=3, prompt_width=4, max_new_tokens=3, pad_token_id=0, device="cpu")
    for i in range(5):  # episodes 0 and 1 are overwritten by 3 and 4
        buffer.add(episode([10 + i, 20 + i], [30 + i] * (1 + i % 3), 2, 3, float(i)), torch.full((1, 3), float(i)))
    assert len(buffer) == 3
    drawn = buffer.sample(64, torch.Generator().manual_seed(0))
    seen = set()
    for row in range(64):
        attended = drawn.batch.input_ids[row][drawn.batch.attention_mask[row].bool()].tolist()
        i = attended[0] - 10
        assert attended == [10 + i, 20 + i] + [30 + i] * (1 + i % 3)
        assert drawn.rewards[row][drawn.batch.mask[row].bool()].tolist() == [float(i)] * (1 + i % 3)
        seen.add(i)
    assert seen == {2, 3, 4} and torch.equal(drawn.weights, torch.ones(64))


def test_prioritized_replay_draws_by_priority_and_corrects_with_weights():
    buffer = EpisodeReplay(4, 2, 2, 0, "cpu", prioritized=True, alpha=1.0)
    for i in range(4):
        buffer.add(episode([5 + i], [7], 2, 2, 0.0), torch.zeros(1, 2))
    buffer.update_priorities(torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 1.0, 1.0, 7.0]))
    drawn = buffer.sample(4000, torch.Generator().manual_seed(0), beta=1.0)
    share = (drawn.slots == 3).float().mean().item()
    assert abs(share - 0.7) < 0.03  # 7 / (1 + 1 + 1 + 7)
    common, rare = drawn.weights[drawn.slots == 3], drawn.weights[drawn.slots != 3]
    assert torch.allclose(rare, torch.ones_like(rare)) and torch.allclose(common, torch.full_like(common, 1 / 7))
    buffer.add(episode([9], [7], 2, 2, 0.0), torch.zeros(1, 2))  # a new episode starts at the largest priority
    assert buffer.priorities[0].item() == pytest.approx(7.0)


def test_replay_refuses_what_does_not_fit():
    buffer = EpisodeReplay(2, 2, 2, 0, "cpu")
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1, torch.Generator())
    with pytest.raises(ValueError, match="do not fit"):
        buffer.add(episode([1, 2, 3], [4], 3, 2, 0.0), torch.zeros(1, 2))


def test_target_network_follows_by_polyak_averaging_and_holds_only_the_trainable_weights(tmp_path):
    agent = make("dqn", tmp_path, lora_rank=4, tau=0.25, learning_rate=1e-2)
    trainable = {n for n, p in agent.policy.named_parameters() if p.requires_grad}
    assert set(agent.target) == trainable and all("lora" in n or "value_head" in n for n in trainable)
    before = {n: w.clone() for n, w in agent.target.items()}
    agent.learn(total_timesteps=16 * 6)  # one iteration: learning starts at 16 episodes, 2 gradient steps
    assert agent.gradient_step == 2
    online = dict(agent.policy.named_parameters())
    moved = [n for n in before if not torch.equal(before[n], agent.target[n])]
    assert moved and all(not torch.equal(agent.target[n], online[n]) for n in moved)
    snapshot = {n: w.clone() for n, w in agent.target.items()}
    agent.update_target()
    for name, weight in agent.target.items():
        expected = 0.75 * snapshot[name] + 0.25 * online[name].detach()
        assert torch.allclose(weight, expected, atol=1e-6), name


def test_dqn_acts_epsilon_greedily_and_evaluates_greedily(tmp_path):
    agent = make("dqn", tmp_path, schedules={"epsilon": "linear:0.5:0.1:4"})
    assert agent.sampling_at(0).greedy and agent.sampling_at(0).epsilon == 0.5
    assert math.isclose(agent.sampling_at(2).epsilon, 0.3) and agent.sampling_at(9).epsilon == pytest.approx(0.1)
    assert agent.evaluation_sampling().greedy
    boltzmann = make("dqn", tmp_path / "b", exploration="boltzmann", temperature=0.5)
    assert not boltzmann.sampling_at(0).greedy and boltzmann.sampling_at(0).epsilon == 0


def test_dqn_resume_restores_the_replay_and_the_target_network(tmp_path):
    tokens = 16 * 6 * 4
    straight = make("dqn", tmp_path / "a", save_every=2)
    straight.learn(total_timesteps=tokens)
    make("dqn", tmp_path / "b", save_every=2).learn(total_timesteps=tokens // 2)  # "killed" after iteration 2
    resumed = make("dqn", tmp_path / "b", save_every=2)
    assert resumed.resume() and len(resumed.replay) == 32 and resumed.gradient_step == 4
    resumed.learn(total_timesteps=tokens)
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for name, weight in straight.target.items():
        assert torch.equal(weight, resumed.target[name]), name


def test_dqn_refuses_envs_it_cannot_replay(tmp_path):
    with pytest.raises(ValueError, match="multi-turn"):
        make("dqn", tmp_path, env_id="TextGen-GuessNumber-v0", env_kwargs={})
    with pytest.raises(ValueError, match="config key 'n_step' must be >= 1"):
        make("dqn", tmp_path, n_step=0)
    assert SYNTHETIC["max_new_tokens"] == 6  # the budget the learning test's n_step covers
