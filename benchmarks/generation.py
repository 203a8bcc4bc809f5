"""Rollout generation speed: the agents' KV-cached sampling vs ``model.generate`` on the same batch.

Same model, same left-padded prompts (TextGen-Sentiment-v0 eval split), sampling at temperature 1 with no
top-k / top-p, exactly ``--new-tokens`` generated tokens per row on both sides (EOS does not stop either:
``min_new_tokens = max_new_tokens`` for ``generate``; ``N`` sampling steps for ours). Four contenders:

- ``ours``: :meth:`agents.policy.LMPolicy.prefill`, then :func:`agents.sampling.sample` and
  :meth:`LMPolicy.advance` (what :func:`agents.rollout.collect` runs), which on CPU go through
  :class:`agents.fast_decode.FastDecoder` (packed weights, a pre-allocated cache);
- ``ours, model's own forward``: the same loop with ``fast_decode=False`` (the model's forward and a transformers
  ``DynamicCache``: what the packed path replaces);
- ``hf_generate``: ``model.generate(do_sample=True, ...)``;
- ``no_kv_cache``: a full forward over the whole sequence for every new token
  (:meth:`LMPolicy.next_token_logits`, what the generic Gymnasium rollout path runs), at small batches only.

Each is timed as the median of ``--repeats`` runs after one warm-up, side by side in one process; the
figures to compare are the ratios. On CUDA the model-FLOPs utilisation (MFU) is printed too.

    python -m benchmarks.generation                       # batch 8, 32 new tokens, CPU
    python -m benchmarks.generation --batch-size 8 32
    python -m benchmarks.generation --batch-size 16 --lora-rank 8  # as training samples: through an adapter
    python -m benchmarks.generation --device cuda --random-weights --batch-size 8 64 256
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common import add_speed_arguments, parse_and_set_threads, report

OURS = "ours (prefill + advance: packed weights, pre-allocated KV cache)"
EAGER = "ours through the model's own forward (fast_decode=False, transformers KV cache)"
HF, NO_CACHE = "HF model.generate", "no KV cache (full forward per token)"

# SmolLM2-135M(-Instruct): the architecture of textgym's default policy, for --random-weights.
SMOLLM2_135M = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}

# Dense peak FLOP/s per dtype of the accelerators we may be lent (vendor data sheets, no sparsity).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756e12, "fp32": 51e12},
    "H100": {"bf16": 989e12, "fp32": 67e12},  # SXM; H100 NVL is close enough
    "H200": {"bf16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp32": 19.5e12},
}


@dataclass
class Prompts:
    """A left-padded batch of prompts."""

    input_ids: Tensor  # (B, P)
    attention_mask: Tensor  # (B, P)
    source: str


def pick_dtype(device: str, name: str) -> torch.dtype:
    """``auto``: bf16 on CUDA, float32 on CPU (as :meth:`LMPolicy.from_pretrained`)."""
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_model(device: str, dtype: torch.dtype, random_weights: bool) -> nn.Module:
    """The default policy LM, or the same architecture with random weights (identical cost)."""
    if random_weights:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).to(dtype)
    else:
        from textgym.models import load_causal_lm

        model = load_causal_lm("default", dtype=dtype)
    return model.to(device).eval()


def sentiment_prompts(batch_size: int, device: str, vocab_size: int) -> Prompts:
    """The first ``batch_size`` TextGen-Sentiment eval prompts, tokenized as the env does, left-padded.

    Where the default tokenizer or the task data is unavailable (e.g. a bare GPU machine), random ids with
    the same length profile (8 to 16 tokens) stand in: speed does not depend on the token values.
    """
    try:
        from textgym.models import load_tokenizer
        from textgym.tasks import make_task

        tokenizer = load_tokenizer("default")
        examples = make_task("sentiment").examples("eval")
        texts = [examples[i % len(examples)].prompt for i in range(batch_size)]
        rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        source = "TextGen-Sentiment-v0 eval prompts"
    except Exception as err:  # any missing piece: fall back to random ids
        generator = torch.Generator().manual_seed(0)
        lengths = torch.randint(8, 17, (batch_size,), generator=generator).tolist()
        rows = [torch.randint(3, vocab_size, (n,), generator=generator).tolist() for n in lengths]
        source = f"random ids (tokenizer/task unavailable: {type(err).__name__})"
    width = max(len(r) for r in rows)
    ids = torch.full((batch_size, width), SMOLLM2_135M["pad_token_id"], dtype=torch.long)
    mask = torch.zeros((batch_size, width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
    return Prompts(ids.to(device), mask.to(device), source)


def synchronize(device: str) -> None:
    """Wait for queued CUDA kernels (no-op on CPU), so wall-clock timings include them."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def synchronized(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """``fn`` followed by :func:`synchronize`."""

    def run() -> Any:
        out = fn()
        synchronize(device)
        return out

    return run


def interleaved_medians(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each ``fn`` over ``repeats`` rounds that run every fn once, in turn.

    Interleaving spreads the load drift of a shared machine over all contenders alike (the warm-up is
    the caller's). ``benchmarks.common.median_time`` times one function's runs back to back instead.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def generate_ours(policy: Any, prompts: Prompts, new_tokens: int, generator: torch.Generator) -> Tensor:
    """Prefill, then exactly ``new_tokens`` sampling steps through the KV cache. -> (B, N) token ids."""
    from agents.sampling import SamplingConfig, sample

    config = SamplingConfig(temperature=1.0)
    state = policy.prefill(prompts.input_ids, prompts.attention_mask)
    tokens = []
    for step in range(new_tokens):
        token, _ = sample(state.logits, config, generator)
        tokens.append(token)
        if step + 1 < new_tokens:  # the last token needs no forward
            state = policy.advance(state, token)
    return torch.stack(tokens, dim=1)


@torch.no_grad()
def generate_hf(model: nn.Module, prompts: Prompts, new_tokens: int) -> Tensor:
    """``model.generate`` sampling at temperature 1, no top-k/top-p, exactly ``new_tokens``. -> (B, N)."""
    out = model.generate(
        input_ids=prompts.input_ids,
        attention_mask=prompts.attention_mask,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        pad_token_id=SMOLLM2_135M["pad_token_id"],
    )
    return out[:, prompts.input_ids.shape[1] :]


@torch.no_grad()
def generate_no_cache(policy: Any, prompts: Prompts, new_tokens: int, generator: torch.Generator) -> Tensor:
    """A full forward over the growing sequence for every new token (no KV cache). -> (B, N)."""
    from agents.sampling import SamplingConfig, sample

    config = SamplingConfig(temperature=1.0)
    ids, mask = prompts.input_ids, prompts.attention_mask
    for _ in range(new_tokens):
        token, _ = sample(policy.next_token_logits(ids, mask), config, generator)
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids[:, prompts.input_ids.shape[1] :]


def forward_flops(config: Any, tokens: int, context: int, with_head: bool) -> float:
    """Model FLOPs of one forward over ``tokens`` query tokens attending ``context`` keys each (mean).

    ``2 x`` the multiply-accumulates of the layer matmuls (attention projections, MLP), plus ``QK^T`` and
    ``AV`` (``4 x heads x head_dim x context`` per token and layer), plus the LM head when ``with_head``.
    Embedding lookups, norms and activations are left out (the usual convention for MFU).
    """
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q_dim, kv_dim = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    layer_params = hidden * (2 * q_dim + 2 * kv_dim) + 3 * hidden * inter
    attention = 4 * q_dim * context
    per_token = layers * (2 * layer_params + attention) + (2 * hidden * config.vocab_size if with_head else 0)
    return float(per_token * tokens)


def generation_flops(config: Any, batch: int, prompt_len: int, new_tokens: int) -> float:
    """Useful model FLOPs of KV-cached generation: prefill, then ``new_tokens - 1`` one-token steps.

    The LM head counts once per generated token (logits at the last prompt position and at each step).
    The same figure is used for every contender, so a slower method shows a lower MFU.
    """
    prefill = forward_flops(config, batch * prompt_len, (prompt_len + 1) / 2, with_head=False)
    steps = sum(forward_flops(config, batch, prompt_len + t + 1, with_head=False) for t in range(new_tokens - 1))
    head = 2 * config.hidden_size * config.vocab_size * batch * new_tokens
    return prefill + steps + head


def peak_flops(device: str, dtype: torch.dtype, override_tflops: float | None) -> float | None:
    """Dense peak FLOP/s of the CUDA device for ``dtype`` (``None`` on CPU or an unknown GPU)."""
    if override_tflops:
        return override_tflops * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    kind = "fp32" if dtype == torch.float32 else "bf16"
    for key, peaks in PEAK_FLOPS.items():  # ordered: "H100 PCIe" before "H100"
        if key.lower() in name.lower():
            return peaks[kind]
    return None


def run(args: argparse.Namespace) -> None:
    from agents.policy import LMPolicy

    dtype = pick_dtype(args.device, args.dtype)
    model = load_model(args.device, dtype, args.random_weights)
    policy = LMPolicy(model, value_head=False, reference=False, lora_rank=args.lora_rank)
    model = policy.model  # under --lora-rank, the adapter-wrapped model: what every contender runs
    eager = LMPolicy(model, value_head=False, reference=False, fast_decode=False)
    peak = peak_flops(args.device, dtype, args.peak_tflops)
    for batch_size in args.batch_size:
        prompts = sentiment_prompts(batch_size, args.device, model.config.vocab_size)
        n, generated = args.new_tokens, batch_size * args.new_tokens
        generator = torch.Generator(args.device).manual_seed(0)
        contenders: dict[str, Callable[[], Any]] = {
            OURS: partial(generate_ours, policy, prompts, n, generator),
            EAGER: partial(generate_ours, eager, prompts, n, generator),
            HF: partial(generate_hf, model, prompts, n),
        }
        if batch_size <= args.no_cache_max_batch:
            contenders[NO_CACHE] = partial(generate_no_cache, policy, prompts, n, generator)
        for fn in contenders.values():  # both sides really produce (B, N) tokens
            shape = tuple(fn().shape)
            assert shape == (batch_size, n), f"expected {(batch_size, n)} generated ids, got {shape}"
        seconds = interleaved_medians({k: synchronized(fn, args.device) for k, fn in contenders.items()}, args.repeats)
        flops = generation_flops(model.config, batch_size, prompts.input_ids.shape[1], n)
        rows = []
        for name, t in seconds.items():
            row: dict[str, Any] = {"method": name, "seconds": t, "generated_tok_per_s": generated / t}
            if peak is not None:
                row["mfu_percent"] = 100 * flops / t / peak
            rows.append(row)
        ours, hf = seconds[OURS], seconds[HF]
        extra: dict[str, Any] = {
            "model": "SmolLM2-135M architecture, random weights" if args.random_weights else "SmolLM2-135M-Instruct",
            "dtype": str(dtype).removeprefix("torch."),
            "lora_rank": args.lora_rank,
            "prompts": f"{prompts.source}, padded prompt length {prompts.input_ids.shape[1]}",
            "ratio_time_ours_over_hf": round(ours / hf, 3),
            "ratio_throughput_ours_over_hf": round(hf / ours, 3),
            "ratio_throughput_ours_over_own_forward": round(seconds[EAGER] / ours, 3),
            "fast_path": "packed weights" if policy.fast_decoder() is not None else "not taken (model's forward)",
            "model_gflops_per_batch": round(flops / 1e9, 2),
            "timing": f"median of {args.repeats} interleaved runs after 1 warm-up each",
        }
        no_cache = seconds.get(NO_CACHE)
        if no_cache is not None:
            extra["ratio_time_no_cache_over_ours"] = round(no_cache / ours, 2)
        report(f"generation, B={batch_size}, exactly {n} new tokens, sampling T=1, {args.device}", rows, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8], help="one or more batch sizes")
    parser.add_argument("--new-tokens", type=int, default=32, help="generated tokens per row (EOS does not stop)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (median reported)")
    parser.add_argument("--lora-rank", type=int, default=0, help="wrap the model in a LoRA adapter (training's 8)")
    parser.add_argument("--no-cache-max-batch", type=int, default=8, help="run the no-cache baseline up to this B")
    add_speed_arguments(parser)
    run(parse_and_set_threads(parser))


if __name__ == "__main__":
    main()
