"""The packed-weight sampling path (agents.fast_decode) against the model's own forward."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from agents.fast_decode import CACHE_BLOCK, FastDecoder, unsupported_reason
from agents.policy import LMPolicy
from agents.rollout import collect
from agents.sampling import SamplingConfig
from textgym.models import tiny_causal_lm


def _left_padded(vocab: int, rows: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, length), generator=generator)
    mask = torch.ones_like(ids)
    for row in range(rows):
        mask[row, : row * 2] = 0  # row r has 2r tokens of left padding
    return ids * mask, mask


def _both(lora_rank: int = 0, vocab: int = 60) -> tuple[LMPolicy, LMPolicy]:
    eager = LMPolicy(tiny_causal_lm(vocab, seed=1), value_head=False, reference=False, lora_rank=lora_rank)
    if lora_rank:
        with torch.no_grad():  # a trained-looking adapter, so that merging it matters
            for name, param in eager.model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.05)
    eager.fast_decode = False
    fast = copy.deepcopy(eager)
    fast.fast_decode = True
    return eager, fast


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_fast_logits_equal_the_models_own_through_prefill_and_steps(lora_rank):
    """Left-padded prompts, then 70 steps (the cache grows past its first block), with and without LoRA."""
    eager, fast = _both(lora_rank)
    assert fast.fast_decoder() is not None and eager.fast_decoder() is None
    ids, mask = _left_padded(60, rows=4, length=9)
    slow_state, fast_state = eager.prefill(ids, mask), fast.prefill(ids, mask)
    torch.testing.assert_close(fast_state.logits, slow_state.logits, atol=1e-4, rtol=1e-4)
    for _ in range(CACHE_BLOCK + 6):
        tokens = slow_state.logits.argmax(-1)
        slow_state, fast_state = eager.advance(slow_state, tokens), fast.advance(fast_state, tokens)
        torch.testing.assert_close(fast_state.logits, slow_state.logits, atol=1e-4, rtol=1e-4)
    assert fast_state.cache.length == 9 + CACHE_BLOCK + 6 and fast_state.cache.keys.shape[3] > CACHE_BLOCK


def test_fast_rollouts_sample_the_same_tokens_for_the_same_seed(tokenizer):
    """collect() through either path: same tokens, scores and behaviour log-probs."""
    from textgym.vector import TextGenVectorEnv

    eager, fast = _both(lora_rank=4, vocab=len(tokenizer))
    sampling = SamplingConfig(temperature=1.0, top_k=20)
    runs = []
    for policy in (eager, fast):
        vector = TextGenVectorEnv(6, task="arithmetic", max_new_tokens=6)
        runs.append(collect(vector, policy, sampling, torch.Generator().manual_seed(3), seed=0))
    slow, quick = runs
    assert torch.equal(slow.input_ids, quick.input_ids) and torch.equal(slow.mask, quick.mask)
    torch.testing.assert_close(quick.behaviour_logprobs, slow.behaviour_logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(quick.scores, slow.scores)


def test_the_packed_weights_follow_an_optimiser_step():
    """After a step the next prefill repacks; a cache filled before the step refuses to go on."""
    eager, fast = _both(lora_rank=4)
    ids, mask = _left_padded(60, rows=2, length=5)
    stale = fast.prefill(ids, mask)
    for policy in (eager, fast):
        optimizer = torch.optim.SGD(policy.trainable_parameters(), lr=0.5)
        policy.score_tokens(ids, mask, num_generated=2).logprobs.sum().backward()
        optimizer.step()
    fresh = fast.prefill(ids, mask)
    torch.testing.assert_close(fresh.logits, eager.prefill(ids, mask).logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(fresh.logits, stale.logits, atol=1e-3)
    with pytest.raises(RuntimeError, match="weights changed since this cache was filled"):
        fast.advance(stale, torch.tensor([1, 2]))


def test_models_the_fast_path_does_not_cover_use_their_own_forward():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2, n_positions=64))
    assert unsupported_reason(gpt2) == "model_type 'gpt2' is not 'llama'"
    half = tiny_causal_lm(50).to(torch.bfloat16)
    assert "float32 on CPU" in unsupported_reason(half)
    with pytest.raises(ValueError, match="FastDecoder cannot run this model: model_type 'gpt2'"):
        FastDecoder(gpt2)
    policy = LMPolicy(gpt2, value_head=False, reference=False)
    assert policy.fast_decoder() is None
    ids, mask = _left_padded(50, rows=2, length=4)
    state = policy.advance(policy.prefill(ids, mask), torch.tensor([1, 2]))  # the model's own cache
    assert state.cache.get_seq_length() == 5


def test_a_policy_that_has_sampled_still_copies_and_pickles():
    """The packed copy lives outside the module: deepcopy, pickle and state_dict see only the model."""
    _, fast = _both(lora_rank=4)
    ids, mask = _left_padded(60, rows=2, length=4)
    fast.prefill(ids, mask)
    clone = pickle.loads(pickle.dumps(copy.deepcopy(fast)))
    torch.testing.assert_close(clone.prefill(ids, mask).logits, fast.prefill(ids, mask).logits)
    assert not any("packed" in key for key in fast.state_dict())
