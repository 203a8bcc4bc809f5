"""Tests for agents.sampling: logit processing, sampling, learner log-probs and schedules."""

from __future__ import annotations

import math

import pytest
import torch

from agents.sampling import (
    SamplingConfig,
    Schedule,
    config_at,
    learning_logprobs,
    process_logits,
    sample,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _counts(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.bincount(tokens.reshape(-1), minlength=vocab).double()


# ------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 0.0),
        ("temperature", -1.0),
        ("top_k", -1),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("logit_noise", -0.1),
        ("mask_prob", 1.0),
        ("mask_prob", -0.2),
    ],
)
def test_config_validation(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"{field}.*{value!r}"):
        SamplingConfig(**{field: value})


# ------------------------------------------------------------ process_logits


def test_everything_off_is_identity_and_matches_softmax() -> None:
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0]])
    cfg = SamplingConfig()
    assert torch.equal(process_logits(logits, cfg), logits)
    n = 40_000
    tokens, _ = sample(logits.expand(n, -1), cfg, _gen(1))
    freq = _counts(tokens, 5)
    expected = torch.softmax(logits[0].double(), -1) * n
    chi2 = float(((freq - expected) ** 2 / expected).sum())
    assert chi2 < 25.0  # 4 dof: p(chi2 > 25) ~ 5e-5


def test_top_k_never_samples_outside_top_k() -> None:
    g = _gen(2)
    logits = torch.randn(8, 30, generator=g)
    cfg = SamplingConfig(top_k=4)
    processed = process_logits(logits, cfg)
    assert torch.all(torch.isfinite(processed).sum(-1) == 4)
    allowed = logits.topk(4, dim=-1).indices  # (B, 4)
    for _ in range(50):
        tokens, _ = sample(logits, cfg, g)
        assert torch.all((allowed == tokens[:, None]).any(-1))


def test_top_p_keeps_exact_nucleus() -> None:
    probs = torch.tensor([[0.05, 0.5, 0.25, 0.15, 0.05]])
    logits = probs.log()
    # sorted: .5, .25, .15, .05, .05 -> cumulative .5, .75, .9, .95, 1.0
    for top_p, kept in {0.3: {1}, 0.45: {1}, 0.6: {1, 2}, 0.8: {1, 2, 3}}.items():
        out = process_logits(logits, SamplingConfig(top_p=top_p))
        finite = set(torch.isfinite(out[0]).nonzero().flatten().tolist())
        assert finite == kept, top_p
        assert torch.equal(out[0, sorted(kept)], logits[0, sorted(kept)])
    tie = process_logits(logits, SamplingConfig(top_p=0.92))  # needs one of the two tied 0.05 tokens
    finite = set(torch.isfinite(tie[0]).nonzero().flatten().tolist())
    assert len(finite) == 4 and {1, 2, 3} <= finite
    tiny = process_logits(logits, SamplingConfig(top_p=1e-6))
    assert torch.isfinite(tiny).sum().item() == 1 and torch.isfinite(tiny[0, 1])


def test_top_p_sampling_stays_in_nucleus() -> None:
    g = _gen(3)
    logits = torch.randn(4, 50, generator=g) * 3
    cfg = SamplingConfig(top_p=0.7)
    processed = process_logits(logits, cfg)
    for _ in range(20):
        tokens, _ = sample(logits, cfg, g)
        assert torch.isfinite(processed.gather(1, tokens[:, None])).all()


def test_low_temperature_concentrates_on_argmax() -> None:
    logits = torch.tensor([[1.0, 1.5, 0.5, 1.2]]).expand(2000, -1)
    tokens, _ = sample(logits, SamplingConfig(temperature=0.02), _gen(4))
    assert (tokens == 1).double().mean().item() > 0.99
    hot, _ = sample(logits, SamplingConfig(temperature=10.0), _gen(4))
    assert (hot == 1).double().mean().item() < 0.4
    assert torch.allclose(process_logits(logits[:1], SamplingConfig(temperature=0.5)), logits[:1] / 0.5)


def test_noise_reproducible_and_zero_noise_is_passthrough() -> None:
    logits = torch.randn(3, 10, generator=_gen(5))
    cfg = SamplingConfig(logit_noise=0.5)
    a = process_logits(logits, cfg, _gen(7))
    b = process_logits(logits, cfg, _gen(7))
    c = process_logits(logits, cfg, _gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - logits).std().item() == pytest.approx(0.5, rel=0.4)
    g = _gen(9)
    state = g.get_state()
    assert torch.equal(process_logits(logits, SamplingConfig(logit_noise=0.0), g), logits)
    assert torch.equal(g.get_state(), state)  # no randomness consumed


def test_mask_prob_masks_the_likeliest_tokens_argmax_included_and_never_everything() -> None:
    logits = torch.randn(2000, 20, generator=_gen(10))
    out = process_logits(logits, SamplingConfig(mask_prob=0.3, mask_top=8), _gen(11))
    ranks = logits.argsort(-1, descending=True).argsort(-1)  # 0 = the argmax
    masked = torch.isinf(out)
    assert masked[ranks < 8].float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert masked[ranks == 0].float().mean().item() == pytest.approx(0.3, abs=0.04)  # the argmax too
    assert not masked[ranks >= 8].any()
    whole = process_logits(
        torch.randn(500, 3, generator=_gen(12)), SamplingConfig(mask_prob=0.99, mask_top=3), _gen(13)
    )
    assert torch.all(torch.isfinite(whole).sum(-1) >= 1)  # all drawn for masking: the least likely is kept
    _, logprobs = sample(logits, SamplingConfig(mask_prob=0.5), _gen(14))
    assert torch.isfinite(logprobs).all()
    with pytest.raises(ValueError, match="mask_top must be an int >= 1, got 0"):
        SamplingConfig(mask_top=0)


def test_masking_raises_the_entropy_of_what_is_sampled() -> None:
    """The point of random masking is exploration: a peaked (Zipf-like) distribution gets flatter, not sharper."""
    logits = (-1.5 * torch.log(torch.arange(1, 1001, dtype=torch.float))).expand(400, -1)
    entropies = []
    for mask_prob in (0.0, 0.3, 0.6, 0.9):
        logp = torch.log_softmax(process_logits(logits, SamplingConfig(mask_prob=mask_prob), _gen(3)), -1)
        entropies.append(-(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1).mean().item())
    assert entropies == sorted(entropies) and entropies[-1] > entropies[0] + 1.0, entropies


def test_mask_is_reproducible_with_generator() -> None:
    logits = torch.randn(5, 12, generator=_gen(15))
    cfg = SamplingConfig(mask_prob=0.4, logit_noise=0.1, temperature=0.8, top_k=6, top_p=0.9)
    assert torch.equal(process_logits(logits, cfg, _gen(16)), process_logits(logits, cfg, _gen(16)))
    t1, lp1 = sample(logits, cfg, _gen(17))
    t2, lp2 = sample(logits, cfg, _gen(17))
    assert torch.equal(t1, t2) and torch.equal(lp1, lp2)


# ------------------------------------------------------------ sample / logprobs


@pytest.mark.parametrize(
    "cfg",
    [SamplingConfig(), SamplingConfig(temperature=0.7, top_k=5), SamplingConfig(top_p=0.8, mask_prob=0.2)],
)
def test_returned_logprobs_match_processed_distribution(cfg: SamplingConfig) -> None:
    logits = torch.randn(6, 16, generator=_gen(20))
    tokens, logprobs = sample(logits, cfg, _gen(21))
    assert tokens.dtype == torch.int64 and tokens.shape == (6,)
    assert logprobs.dtype.is_floating_point and logprobs.shape == (6,)
    processed = process_logits(logits, cfg, _gen(21))  # same generator stream as inside sample
    expected = torch.log_softmax(processed, -1)[torch.arange(6), tokens]
    assert torch.allclose(logprobs, expected, atol=1e-6)


def test_greedy_takes_argmax() -> None:
    logits = torch.randn(10, 7, generator=_gen(22))
    tokens, logprobs = sample(logits, SamplingConfig(greedy=True, temperature=0.5))
    assert torch.equal(tokens, logits.argmax(-1))
    assert torch.allclose(logprobs, torch.log_softmax(logits / 0.5, -1).max(-1).values)


def test_learning_logprobs_ignore_exploration_perturbations() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    tokens = torch.tensor([1, 2])
    lp = learning_logprobs(logits, tokens, temperature=2.0)
    z0 = math.log(math.e + 1 + math.exp(-0.5))  # logits / 2 = [1, 0, -.5]
    assert lp[0].item() == pytest.approx(0.0 - z0, rel=1e-6)
    assert lp[1].item() == pytest.approx(-math.log(3), rel=1e-6)
    # the behaviour policy's top-k would give token 1 of row 0 a different log-prob; the learner's does not
    behaviour = torch.log_softmax(process_logits(logits, SamplingConfig(temperature=2.0, top_k=2)), -1)
    assert behaviour[0, 1].item() != pytest.approx(lp[0].item())


# ------------------------------------------------------------ schedules


def test_schedule_values() -> None:
    const = Schedule("constant", 0.7, end=99.0, steps=10)
    assert [const(s) for s in (0, 5, 10, 100)] == [0.7] * 4
    lin = Schedule("linear", 1.5, 0.5, steps=100)
    assert lin(0) == pytest.approx(1.5)
    assert lin(50) == pytest.approx(1.0)
    assert lin(100) == pytest.approx(0.5)
    assert lin(1000) == pytest.approx(0.5)
    cos = Schedule("cosine", 2.0, 0.0, steps=10)
    assert cos(0) == pytest.approx(2.0)
    assert cos(5) == pytest.approx(1.0)
    assert cos(10) == pytest.approx(0.0, abs=1e-12)
    assert cos(2) == pytest.approx(1.0 + math.cos(0.2 * math.pi))
    assert cos(2) > 2.0 - 2.0 * 0.2  # cosine decays slower than linear at first
    assert cos(25) == pytest.approx(0.0, abs=1e-12)


def test_schedule_parse_forms() -> None:
    assert Schedule.parse(0.3) == Schedule("constant", 0.3)
    assert Schedule.parse(2) == Schedule("constant", 2.0)
    expected = Schedule("linear", 1.5, 0.7, 100)
    assert Schedule.parse({"kind": "linear", "start": 1.5, "end": 0.7, "steps": 100}) == expected
    assert Schedule.parse("linear:1.5:0.7:100") == expected
    assert Schedule.parse("cosine:1:0:10") == Schedule("cosine", 1.0, 0.0, 10)
    assert Schedule.parse("0.25") == Schedule("constant", 0.25)
    assert Schedule.parse(expected) is expected


@pytest.mark.parametrize(
    "bad",
    ["expo:1:0:10", {"kind": "expo", "start": 1.0}, "linear:1:0", "linear:a:b:c", [1, 2]],
)
def test_schedule_parse_errors(bad: object) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(bad)


def test_schedule_unknown_kind_names_it() -> None:
    with pytest.raises(ValueError, match=r"'expo'.*constant, linear, cosine"):
        Schedule("expo", 1.0)
    with pytest.raises(ValueError, match="end"):
        Schedule("linear", 1.0)


def test_config_at() -> None:
    base = SamplingConfig(temperature=1.0, top_k=50)
    schedules = {
        "temperature": Schedule.parse("linear:1.5:0.5:10"),
        "top_k": Schedule("linear", 40.0, 10.0, 10),
        "mask_prob": Schedule.parse(0.1),
    }
    cfg = config_at(base, schedules, 5)
    assert cfg.temperature == pytest.approx(1.0)
    assert cfg.top_k == 25 and isinstance(cfg.top_k, int)
    assert cfg.mask_prob == pytest.approx(0.1)
    assert base.top_k == 50 and base.mask_prob == 0.0  # base unchanged
    assert config_at(base, schedules, 100).temperature == pytest.approx(0.5)
    assert config_at(base, {}, 3) == base
    with pytest.raises(ValueError, match=r"bogus.*temperature"):
        config_at(base, {"bogus": Schedule.parse(1.0)}, 0)
    with pytest.raises(ValueError, match="temperature"):
        config_at(base, {"temperature": Schedule("linear", 1.0, -1.0, 2)}, 2)
