"""Tests for agents.losses against independent hand-written references."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agents.losses import (
    AdaptiveKLController,
    FixedKLController,
    conjugate_gradient,
    discounted_returns,
    entropy_from_logits,
    flat_grad,
    flat_params,
    gae,
    kl_penalty,
    leave_one_out_baseline,
    masked_mean,
    masked_whiten,
    ppo_policy_loss,
    reinforce_loss,
    set_flat_params,
    trpo_step,
    value_loss,
)


def _ragged_batch(seed: int = 0, b: int = 5, t: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random rewards, values and a ragged mask (row lengths 1..t, one full row)."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(b, t, generator=g, dtype=torch.float64)
    values = torch.randn(b, t, generator=g, dtype=torch.float64)
    lengths = [t, 1, 3, t - 1, 4][:b]
    mask = torch.zeros(b, t, dtype=torch.float64)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1.0
    return rewards, values, mask


def _ref_gae(rewards, values, mask, gamma, lam):
    """Plain Python double loop: per row, per step, explicit sum over future deltas."""
    b, t = rewards.shape
    adv = [[0.0] * t for _ in range(b)]
    for i in range(b):
        n = int(mask[i].sum())
        deltas = []
        for s in range(n):
            v_next = float(values[i, s + 1]) if s + 1 < n else 0.0
            deltas.append(float(rewards[i, s]) + gamma * v_next - float(values[i, s]))
        for s in range(n):
            adv[i][s] = sum((gamma * lam) ** (k - s) * deltas[k] for k in range(s, n))
    return torch.tensor(adv, dtype=torch.float64)


def _ref_returns(rewards, mask, gamma):
    b, t = rewards.shape
    out = [[0.0] * t for _ in range(b)]
    for i in range(b):
        n = int(mask[i].sum())
        for s in range(n):
            out[i][s] = sum(gamma ** (k - s) * float(rewards[i, k]) for k in range(s, n))
    return torch.tensor(out, dtype=torch.float64)


# ------------------------------------------------------------ masks


def test_masked_mean_and_whiten() -> None:
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.5)
    assert torch.allclose(masked_mean(x, mask, dim=1), torch.tensor([1.5, 3.5]))
    w = masked_whiten(x, mask)
    valid = w[mask.bool()]
    assert valid.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert valid.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert torch.all(w[~mask.bool()] == 0)
    w2 = masked_whiten(x, mask, shift_mean=False)
    assert w2[mask.bool()].mean().item() == pytest.approx(2.5, abs=1e-5)


# ------------------------------------------------------------ returns / GAE


@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.5, 0.0), (1.0, 1.0)])
def test_gae_matches_double_loop(gamma: float, lam: float) -> None:
    rewards, values, mask = _ragged_batch()
    adv, ret = gae(rewards, values, mask, gamma, lam)
    expected = _ref_gae(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, expected, atol=1e-10)
    assert torch.allclose(ret, (expected + values) * mask, atol=1e-10)
    assert torch.all(adv[mask == 0] == 0) and torch.all(ret[mask == 0] == 0)


def test_gae_lambda_one_equals_discounted_returns() -> None:
    rewards, values, mask = _ragged_batch(seed=3)
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=1.0)
    expected = _ref_returns(rewards, mask, 0.9)
    assert torch.allclose((adv + values) * mask, expected, atol=1e-10)
    assert torch.allclose(ret, expected, atol=1e-10)


def test_discounted_returns_matches_hand_loop() -> None:
    rewards, _, mask = _ragged_batch(seed=1)
    assert torch.allclose(discounted_returns(rewards, mask, 0.8), _ref_returns(rewards, mask, 0.8), atol=1e-12)
    hand = discounted_returns(torch.tensor([[1.0, 2.0, 3.0, 7.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]), 0.5)
    assert torch.allclose(hand, torch.tensor([[1.0 + 1.0 + 0.75, 2.0 + 1.5, 3.0, 0.0]]))


# ------------------------------------------------------------ policy losses


def test_reinforce_loss_hand_example_and_detach() -> None:
    logp = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    adv = torch.tensor([[2.0, -1.0, 10.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss = reinforce_loss(logp, adv, mask)
    assert loss.item() == pytest.approx(-((-1.0 * 2.0) + (-2.0 * -1.0)) / 2)
    loss.backward()
    assert adv.grad is None
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, 0.5, 0.0]]))


def test_ppo_policy_loss_clipping() -> None:
    clip = 0.2
    # ratios: 1.5 (A>0, clipped at 1.2), 0.5 (A>0, unclipped: lower), 1.5 (A<0, unclipped: worse)
    ratios = torch.tensor([[1.5, 0.5, 1.5, 1.0]])
    adv = torch.tensor([[1.0, 2.0, -1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    old = torch.zeros(1, 4)
    logp = ratios.log().requires_grad_()
    loss, stats = ppo_policy_loss(logp, old, adv, mask, clip)
    per_token = [-1.0 * 1.2, -2.0 * 0.5, 1.0 * 1.5]
    assert loss.item() == pytest.approx(sum(per_token) / 3, rel=1e-6)
    assert stats["clipfrac"] == pytest.approx(1 / 3)
    expected_kl = sum((r - 1) - math.log(r) for r in [1.5, 0.5, 1.5]) / 3
    assert stats["approx_kl"] == pytest.approx(expected_kl, rel=1e-5)
    loss.backward()
    assert logp.grad[0, 0].item() == 0.0  # clipped token carries no gradient
    assert logp.grad[0, 1].item() != 0.0


def test_ppo_no_clip_at_ratio_one() -> None:
    logp = torch.full((2, 3), -1.0)
    adv = torch.tensor([[1.0, -1.0, 2.0], [0.5, 0.5, 0.5]])
    loss, stats = ppo_policy_loss(logp, logp.clone(), adv, torch.ones(2, 3), 0.2)
    assert loss.item() == pytest.approx(-adv.mean().item())
    assert stats == {"clipfrac": 0.0, "approx_kl": 0.0}


def test_value_loss_plain_and_clipped() -> None:
    values = torch.tensor([[2.0, 0.0, 9.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert value_loss(values, returns, mask).item() == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    old = torch.tensor([[0.0, 0.5, 0.0]])
    # token 0: clipped value = 0 + clip(2, -.5, .5) = .5 -> err .25; unclipped 1 -> max 1
    # token 1: clipped value = .5 + clip(-.5) = 0 -> err 1; unclipped 1 -> 1
    assert value_loss(values, returns, mask, old, 0.5).item() == pytest.approx(0.5)
    old2 = torch.tensor([[1.8, -1.0, 0.0]])
    # token 0: clipped = 1.8 + .2 = 2 -> 1; token 1: clipped = -1 + .5 = -.5 -> err 2.25 (> 1)
    assert value_loss(values, returns, mask, old2, 0.5).item() == pytest.approx(0.5 * (1.0 + 2.25) / 2)
    assert value_loss(values, returns, mask, old2, None).item() == pytest.approx(0.5)


def test_entropy_from_logits() -> None:
    assert torch.allclose(entropy_from_logits(torch.zeros(3, 5)), torch.full((3,), math.log(5)))
    logits = torch.tensor([[0.0, float("-inf"), 0.0], [1000.0, 0.0, -1000.0]])
    ent = entropy_from_logits(logits)
    assert torch.isfinite(ent).all()
    assert ent[0].item() == pytest.approx(math.log(2))
    assert ent[1].item() == pytest.approx(0.0, abs=1e-6)
    p = torch.softmax(torch.tensor([0.3, -1.2, 2.0]), -1)
    assert entropy_from_logits(torch.tensor([0.3, -1.2, 2.0])).item() == pytest.approx(-(p * p.log()).sum().item())


# ------------------------------------------------------------ KL estimators


def test_kl_estimators_are_unbiased() -> None:
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    exact = float((p * (p / q).log()).sum())
    g = torch.Generator().manual_seed(0)
    idx = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logp, logq = p.log()[idx], q.log()[idx]
    k1 = kl_penalty(logp, logq, "k1").mean().item()
    k2 = kl_penalty(logp, logq, "k2").mean().item()
    k3_vals = kl_penalty(logp, logq, "k3")
    assert k1 == pytest.approx(exact, rel=0.03)
    assert k3_vals.mean().item() == pytest.approx(exact, rel=0.03)
    assert k2 == pytest.approx(exact, rel=0.25)  # biased, but close for nearby distributions
    assert torch.all(k3_vals >= 0)


def test_kl_k3_nonnegative_and_values() -> None:
    g = torch.Generator().manual_seed(1)
    lp, lq = torch.randn(2, 1000, generator=g, dtype=torch.float64)
    assert torch.all(kl_penalty(lp, lq, "k3") >= 0)
    assert torch.allclose(kl_penalty(lp, lq, "k1"), lp - lq)
    assert torch.allclose(kl_penalty(lp, lq, "k2"), 0.5 * (lp - lq) ** 2)
    r = torch.exp(lq - lp)
    assert torch.allclose(kl_penalty(lp, lq, "k3"), (r - 1) - r.log(), atol=1e-5)


def test_kl_unknown_estimator() -> None:
    with pytest.raises(ValueError, match=r"'k9'.*k1, k2, k3"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k9")


# ------------------------------------------------------------ leave-one-out


def test_leave_one_out_baseline() -> None:
    scores = torch.tensor([1.0, 2.0, 6.0, 10.0, 20.0, 30.0])
    expected = torch.tensor([4.0, 3.5, 1.5, 25.0, 20.0, 15.0])
    assert torch.allclose(leave_one_out_baseline(scores, 3), expected)
    assert torch.allclose(leave_one_out_baseline(scores, 2), torch.tensor([2.0, 1.0, 10.0, 6.0, 30.0, 20.0]))


@pytest.mark.parametrize("group_size", [1, 0, 4])
def test_leave_one_out_errors(group_size: int) -> None:
    with pytest.raises(ValueError, match=f"group_size={group_size}.*N=6"):
        leave_one_out_baseline(torch.zeros(6), group_size)


# ------------------------------------------------------------ controllers


def test_adaptive_kl_controller() -> None:
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=1000)
    ctl.update(12.0, n_steps=10)
    assert ctl.value > 0.2
    assert ctl.value == pytest.approx(0.2 * (1 + 0.2 * 10 / 1000))  # error clipped at +0.2
    before = ctl.value
    ctl.update(3.0, n_steps=10)
    assert ctl.value < before
    assert ctl.value == pytest.approx(before * (1 - 0.2 * 10 / 1000))
    before = ctl.value
    ctl.update(6.6, n_steps=100)
    assert ctl.value == pytest.approx(before * (1 + 0.1 * 100 / 1000))
    before = ctl.value
    ctl.update(1e9, n_steps=1000)  # bounded change even for huge KL
    assert ctl.value == pytest.approx(before * 1.2)
    restored = AdaptiveKLController(1.0, 1.0, 1)
    restored.load_state_dict(ctl.state_dict())
    assert (restored.value, restored.target, restored.horizon) == (ctl.value, 6.0, 1000)


def test_fixed_kl_controller() -> None:
    ctl = FixedKLController(0.1)
    ctl.update(50.0, 100)
    assert ctl.value == 0.1
    other = FixedKLController(0.0)
    other.load_state_dict(ctl.state_dict())
    assert other.value == 0.1


# ------------------------------------------------------------ TRPO


def test_conjugate_gradient_solves_spd_system() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20, 20, generator=g, dtype=torch.float64)
    spd = a @ a.T + 20 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=g, dtype=torch.float64)
    expected = torch.linalg.solve(spd, b)
    x = conjugate_gradient(lambda v: spd @ v, b, iters=50, residual_tol=1e-24)
    assert torch.allclose(x, expected, atol=1e-10)
    x_default = conjugate_gradient(lambda v: spd @ v, b, iters=50)
    assert torch.allclose(x_default, expected, atol=1e-5)


def test_flat_helpers_roundtrip() -> None:
    lin = nn.Linear(3, 2)
    unused = nn.Parameter(torch.ones(4))
    params = [*lin.parameters(), unused]
    flat = flat_params(params)
    assert flat.shape == (3 * 2 + 2 + 4,)
    set_flat_params(params, torch.arange(12, dtype=torch.float32))
    assert torch.equal(lin.weight.data.reshape(-1), torch.arange(6, dtype=torch.float32))
    assert torch.equal(unused.data, torch.arange(8, 12, dtype=torch.float32))
    grad = flat_grad(lin(torch.ones(1, 3)).sum(), params)
    assert torch.equal(grad, torch.tensor([1.0] * 6 + [1.0, 1.0] + [0.0] * 4))


def _policy_problem(zero_adv: bool = False):
    torch.manual_seed(0)
    policy = nn.Linear(4, 3)
    states = torch.randn(16, 4)
    actions = torch.randint(0, 3, (16,))
    adv = torch.zeros(16) if zero_adv else torch.randn(16)
    params = list(policy.parameters())
    with torch.no_grad():
        old_logp_all = torch.log_softmax(policy(states), -1)  # (N, A)
    old_logp = old_logp_all.gather(1, actions[:, None]).squeeze(1)

    def surrogate() -> torch.Tensor:
        logp = torch.log_softmax(policy(states), -1).gather(1, actions[:, None]).squeeze(1)
        return (torch.exp(logp - old_logp) * adv).mean()

    def kl() -> torch.Tensor:
        logp_all = torch.log_softmax(policy(states), -1)
        return (old_logp_all.exp() * (old_logp_all - logp_all)).sum(-1).mean()

    return params, surrogate, kl


def test_trpo_step_accepts_within_trust_region() -> None:
    params, surrogate, kl = _policy_problem()
    before = flat_params(params).clone()
    with torch.no_grad():
        surr0 = surrogate().item()
    out = trpo_step(params, surrogate, kl, max_kl=0.01)
    assert out["accepted"] == 1.0
    assert 0.0 < out["step_fraction"] <= 1.0
    assert out["kl"] <= 0.01 + 1e-6
    assert out["improvement"] > 0
    assert not torch.equal(flat_params(params), before)
    with torch.no_grad():
        assert kl().item() == pytest.approx(out["kl"], abs=1e-7)
        assert surrogate().item() - surr0 == pytest.approx(out["improvement"], abs=1e-6)


def test_trpo_step_large_trust_region_takes_bigger_step() -> None:
    params, surrogate, kl = _policy_problem()
    before = flat_params(params).clone()
    small = trpo_step(params, surrogate, kl, max_kl=0.001)
    small_dist = (flat_params(params) - before).norm()
    params, surrogate, kl = _policy_problem()
    big = trpo_step(params, surrogate, kl, max_kl=10.0)
    assert small["accepted"] == big["accepted"] == 1.0
    assert big["kl"] <= 10.0 + 1e-6
    assert (flat_params(params) - before).norm() > small_dist
    assert big["improvement"] > small["improvement"]


def test_trpo_step_restores_params_when_no_improvement() -> None:
    params, surrogate, kl = _policy_problem(zero_adv=True)
    before = flat_params(params).clone()
    out = trpo_step(params, surrogate, kl, max_kl=0.01)
    assert out == {"kl": 0.0, "improvement": 0.0, "step_fraction": 0.0, "accepted": 0.0}
    assert torch.equal(flat_params(params), before)


def test_trpo_step_restores_params_when_line_search_fails() -> None:
    w = nn.Parameter(torch.zeros(3))

    def surrogate() -> torch.Tensor:  # gradient points along +1, but any real step loses
        return w.sum() - 1000.0 * (w**2).sum()

    def kl() -> torch.Tensor:
        return 0.5 * (w**2).sum()

    out = trpo_step([w], surrogate, kl, max_kl=0.01, max_backtracks=3)
    assert out["accepted"] == 0.0 and out["step_fraction"] == 0.0
    assert torch.equal(w.data, torch.zeros(3))


def _normalize_by_loop(scores: list[float], method: str, group_size: int) -> list[float]:
    """Plain-Python reference for normalize_scores (statistics module, one group at a time)."""
    import statistics

    if method == "batch":
        mean, std = statistics.mean(scores), max(statistics.stdev(scores), 1e-4)
        return [(s - mean) / std for s in scores]
    out = []
    for start in range(0, len(scores), group_size):
        group = scores[start : start + group_size]
        for i, s in enumerate(group):
            if method == "group":
                out.append((s - statistics.mean(group)) / max(statistics.stdev(group), 1e-4))
            else:  # leave_one_out
                others = group[:i] + group[i + 1 :]
                out.append(s - sum(others) / len(others))
    return out


@pytest.mark.parametrize("method", ["batch", "group", "leave_one_out"])
@pytest.mark.parametrize("group_size", [2, 4])
def test_normalize_scores_matches_a_plain_loop(method: str, group_size: int) -> None:
    from agents.losses import normalize_scores

    scores = torch.randn(12, generator=torch.Generator().manual_seed(group_size), dtype=torch.float64)
    scores[:group_size] = 0.5  # a group whose samples all agree: no signal, not a division by zero
    got = normalize_scores(scores, method, group_size)
    expected = torch.tensor(_normalize_by_loop(scores.tolist(), method, group_size), dtype=torch.float64)
    torch.testing.assert_close(got, expected)
    if method != "batch":
        assert torch.all(got[:group_size] == 0)


def test_normalize_scores_rejects_bad_methods_and_groups() -> None:
    from agents.losses import normalize_scores

    assert torch.equal(normalize_scores(torch.ones(3), "none"), torch.ones(3))
    with pytest.raises(ValueError, match="unknown score normalization 'whiten'"):
        normalize_scores(torch.ones(4), "whiten")
    with pytest.raises(ValueError, match="group_size >= 2 dividing N; got 3 and N=4"):
        normalize_scores(torch.ones(4), "group", 3)


@pytest.mark.parametrize("method", ["none", "batch", "group", "leave_one_out"])
def test_normalization_affine_reproduces_normalize_scores(method: str) -> None:
    """The affine form maps the scores themselves to exactly what normalize_scores gives (a constant group: 0)."""
    from agents.losses import normalization_affine, normalize_scores

    scores = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scores[:4] = 0.5
    shift, scale = normalization_affine(scores, method, 4)
    torch.testing.assert_close((scores - shift) * scale, normalize_scores(scores, method, 4))
    if method == "group":
        assert torch.all(scale[:4] == 0)  # other values of that group (its prefixes) map to 0 too, not to 1e4 x them


def test_normalization_affine_checks_like_normalize_scores() -> None:
    from agents.losses import normalization_affine

    with pytest.raises(ValueError, match="unknown score normalization 'whiten'"):
        normalization_affine(torch.ones(4), "whiten")
    with pytest.raises(ValueError, match="group_size >= 2 dividing N; got 3 and N=4"):
        normalization_affine(torch.ones(4), "group", 3)
