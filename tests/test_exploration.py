"""Exploration controls beyond temperature and truncation: epsilon-greedy sampling, and a diversity bonus across
the samples of one prompt."""

from __future__ import annotations

import itertools

import pytest
import torch
from test_agents import make

from agents.losses import group_diversity
from agents.sampling import SamplingConfig, sample


def test_epsilon_greedy_draws_uniformly_among_the_top_k_and_reports_the_mixture():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]]).repeat(6000, 1)
    config = SamplingConfig(greedy=True, epsilon=0.4, top_k=4)
    tokens, logprobs = sample(logits, config, torch.Generator().manual_seed(0))
    counts = torch.bincount(tokens, minlength=6).float() / len(tokens)
    expected = torch.tensor([0.6 + 0.1, 0.1, 0.1, 0.1, 0.0, 0.0])
    assert torch.allclose(counts, expected, atol=0.02)
    assert torch.allclose(logprobs.exp(), expected[tokens], atol=1e-6)
    with pytest.raises(ValueError, match="epsilon must be in"):
        SamplingConfig(epsilon=1.5)


def reference_diversity(rows: list[list[int]], group_size: int) -> list[float]:
    """1 - mean Jaccard similarity of bigram sets to the other samples of the group, pair by pair."""
    out = []
    for start in range(0, len(rows), group_size):
        group = rows[start : start + group_size]
        for i, row in enumerate(group):
            mine = {tuple(row[k : k + 2]) for k in range(len(row) - 1)}
            sims = []
            for j, other in enumerate(group):
                if j != i:
                    theirs = {tuple(other[k : k + 2]) for k in range(len(other) - 1)}
                    union = mine | theirs
                    sims.append(len(mine & theirs) / len(union) if union else 1.0)
            out.append(1 - sum(sims) / len(sims))
    return out


def test_group_diversity_matches_pairwise_jaccard():
    generator = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 4, (12, 6), generator=generator)  # a small vocabulary: many shared bigrams
    lengths = [6, 5, 1, 0, 6, 6, 3, 6, 2, 6, 6, 4]
    mask = torch.tensor([[1.0] * n + [0.0] * (6 - n) for n in lengths])
    rows = [actions[i, :n].tolist() for i, n in enumerate(lengths)]
    for group_size in (2, 3, 4):
        expected = torch.tensor(reference_diversity(rows, group_size))
        assert torch.allclose(group_diversity(actions, mask, group_size), expected, atol=1e-6)
    with pytest.raises(ValueError, match="divide N"):
        group_diversity(actions, mask, 5)


def test_the_diversity_bonus_is_added_to_each_episodes_score(tmp_path):
    agent = make("reinforce", tmp_path, samples_per_prompt=4, diversity_coef=0.5, baseline="none")
    batch = agent.collect_rollout(0)
    rewards = agent.score(batch).rewards
    bonus = 0.5 * group_diversity(batch.actions, batch.mask, 4)
    assert torch.allclose(rewards.sum(1), batch.scores + bonus, atol=1e-5) and bonus.max() > 0
    prompts = [batch.prompts[i : i + 4] for i in range(0, 16, 4)]
    assert all(len(set(group)) == 1 for group in prompts)  # each group is one prompt's samples
    assert not all(a == b for a, b in itertools.pairwise(batch.completions))
    with pytest.raises(ValueError, match=r"diversity_coef=0.5 .* needs samples_per_prompt >= 2"):
        make("reinforce", tmp_path / "b", diversity_coef=0.5, baseline="moving_average", samples_per_prompt=1)
