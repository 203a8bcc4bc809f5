"""DPO: the loss against a plain loop, sequence log-probs against one unpadded forward per row, learning over
seeds, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from agents.dpo import DPO, dpo_loss
from textgym.rewards.preference import is_held_out


def write_pairs(path, pairs):
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return str(path)


def pattern_pairs(n: int = 60) -> list[dict[str, str]]:
    """Chosen completions say one thing, rejected ones another, for many prompts (some held out)."""
    return [{"prompt": f"Item {i}:", "chosen": " good good good", "rejected": " bad bad bad"} for i in range(n)]


def make_dpo(tmp_path, data, seed=0, **overrides):
    settings = dict(model="tiny", env_id="TextGen-v0", batch_size=4, learning_rate=1e-2, tensorboard=False)
    settings |= dict(progress=False, eval_every=0, run_dir=str(tmp_path / f"run{seed}"), seed=seed)
    settings |= dict(env_kwargs={"prompts": ["x"], "reward": "length", "max_new_tokens": 6})
    return DPO(data=data, **{**settings, **overrides})


def test_dpo_loss_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    pc, pr, rc, rr = (rng.normal(size=5) * 3 for _ in range(4))
    beta, eps = 0.3, 0.1
    expected = []
    for i in range(5):
        margin = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i]))
        expected.append(-(1 - eps) * math.log(1 / (1 + math.exp(-margin))) - eps * math.log(1 / (1 + math.exp(margin))))
    loss, r_chosen, r_rejected = dpo_loss(*(torch.tensor(x) for x in (pc, pr, rc, rr)), beta, eps)
    assert loss.item() == pytest.approx(sum(expected) / 5, rel=1e-9)
    assert r_chosen.numpy() == pytest.approx(beta * (pc - rc))
    assert r_rejected.numpy() == pytest.approx(beta * (pr - rr))


def test_sequence_logprobs_match_one_unpadded_forward_per_row(tmp_path):
    pairs = [
        {"prompt": "A short one:", "chosen": " yes", "rejected": " no thanks, not at all"},
        {"prompt": "A much longer prompt that needs far less left padding:", "chosen": " ok", "rejected": ""},
    ]
    agent = make_dpo(tmp_path, write_pairs(tmp_path / "p.jsonl", pairs))
    batch = agent.pair_batch(pairs)
    with torch.no_grad():
        batched = agent.sequence_logprobs(batch)
        reference = agent.reference_logprobs(batch)
    model = agent.policy.model
    prompt_width = batch.input_ids.shape[1] - batch.num_generated
    for row in range(len(batch.input_ids)):
        keep = batch.attention_mask[row].bool()
        ids = batch.input_ids[row][keep]
        n_prompt = int(batch.attention_mask[row, :prompt_width].sum())
        with torch.no_grad():
            logits = model(input_ids=ids[None]).logits[0].float()
        logprobs = torch.log_softmax(logits[:-1], -1).gather(-1, ids[1:, None]).squeeze(-1)
        expected = logprobs[n_prompt - 1 :].sum()  # every completion token, EOS included
        assert batched[row].item() == pytest.approx(expected.item(), abs=1e-4)
        with torch.no_grad(), model.disable_adapter():  # the reference: the adapter-off base
            ref_logits = model(input_ids=ids[None]).logits[0].float()
        ref = torch.log_softmax(ref_logits[:-1], -1).gather(-1, ids[1:, None]).squeeze(-1)[n_prompt - 1 :].sum()
        assert reference[row].item() == pytest.approx(ref.item(), abs=1e-4)
    # an empty completion is its EOS alone
    assert int(batch.mask[3].sum()) == 1


def test_dpo_learns_the_labelled_preference_on_held_out_prompts_over_seeds(tmp_path):
    """Over three seeds, the implicit reward's held-out margin (chosen minus rejected) goes from 0 to clearly
    positive: its mean exceeds three seed-to-seed standard deviations, and every seed orders every held-out pair."""
    pairs = pattern_pairs()
    assert sum(is_held_out(p["prompt"]) for p in pairs) >= 3
    data = write_pairs(tmp_path / "p.jsonl", pairs)
    margins, accuracies = [], []
    for seed in range(3):
        agent = make_dpo(tmp_path, data, seed=seed)
        assert agent.preference_accuracy() == 0.0  # untrained: policy = reference, every margin 0 (a tie)
        agent.learn(total_timesteps=4 * 8 * 12)
        batch = agent.pair_batch(agent.held_out_pairs)
        with torch.no_grad():
            implicit = agent.sequence_logprobs(batch) - agent.reference_logprobs(batch)
        n = len(agent.held_out_pairs)
        margins.append(float((implicit[:n] - implicit[n:]).mean()))
        accuracies.append(agent.preference_accuracy())
        agent.close()
    assert np.mean(margins) > 3 * np.std(margins) and min(margins) > 0
    assert accuracies == [1.0, 1.0, 1.0]


def test_dpo_bad_input(tmp_path):
    with pytest.raises(ValueError, match="DPO learns from preference pairs: pass data=FILE"):
        make_dpo(tmp_path, "")
    ratings = tmp_path / "r.jsonl"
    ratings.write_text(json.dumps({"prompt": "p", "completion": "c", "rating": 3}) + "\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:1: missing or not a string: chosen, rejected"):
        make_dpo(tmp_path, str(ratings))
    held = next(f"Item {i}:" for i in range(1000) if is_held_out(f"Item {i}:"))
    only_held = write_pairs(tmp_path / "h.jsonl", [{"prompt": held, "chosen": "a", "rejected": "b"}])
    with pytest.raises(ValueError, match="every pair's prompt is in the held-out split"):
        make_dpo(tmp_path, only_held)
