"""A fast sampling path for Llama-family models on CPU: packed weights, a pre-allocated KV cache, one call per layer.

The rollouts' KV-cached sampling spends almost all of its time in the linear layers, and on CPU the BLAS
call ``torch.nn.functional.linear`` makes for a decode step's skinny matrices (a few rows times a large weight)
is far from the machine's peak: SmolLM2-135M's vocabulary projection runs about twice as fast with the weight
reordered once into oneDNN's blocked layout (``torch.ops.mkldnn._reorder_linear_weight``).
:class:`FastDecoder` keeps such a packed copy of the model's effective weights (a LoRA adapter merged in),
fuses q/k/v and gate/up into one matrix each, writes keys and values into a cache allocated in blocks instead
of concatenated every token, and runs each layer as a handful of tensor ops with no per-token Python set-up
(masks, cache objects) beyond that.

The math is the model's own (RMSNorm, rotary positions, grouped-query attention, SiLU MLP, tied or untied
head), in float32; its logits equal Hugging Face's to float rounding (the test checks 1e-4), so for a given
seed the sampled tokens are the same except where two tokens' probabilities tie to within rounding.

The packed copy is rebuilt when any parameter of the model changed (an optimiser step, a loaded
checkpoint): each parameter's version counter and storage are compared before a prefill. It costs a second
copy of the weights in memory.

Only the plain Llama architecture (``model_type == "llama"``: SmolLM2, TinyLlama, Llama 2/3 without rope
scaling) in float32 on CPU takes this path; :func:`unsupported_reason` says why any other model does not,
and :class:`agents.policy.LMPolicy` then uses the model's own forward. Pass ``fast_decode=False`` to
``LMPolicy`` to use the model's forward always.

Example:
    >>> import torch
    >>> from textgym.models import tiny_causal_lm
    >>> model = tiny_causal_lm(vocab_size=50)
    >>> decoder = FastDecoder(model)
    >>> ids, mask = torch.randint(0, 50, (2, 5)), torch.ones(2, 5, dtype=torch.long)
    >>> logits, cache = decoder.prefill(ids, mask)
    >>> logits = decoder.step(cache, logits.argmax(-1))
    >>> tuple(logits.shape), cache.length
    ((2, 50), 6)
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CACHE_BLOCK = 64  # cache columns added at a time when a sequence outgrows its cache


def unsupported_reason(model: nn.Module) -> str | None:
    """Why :class:`FastDecoder` cannot run ``model`` (``None`` when it can)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return f"model_type {getattr(config, 'model_type', None)!r} is not 'llama'"
    weight = model.get_output_embeddings().weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return f"the fast path is for float32 on CPU, not {weight.dtype} on {weight.device.type}"
    rope = getattr(config, "rope_parameters", None) or {"rope_type": "default"}
    if rope.get("rope_type", "default") != "default":
        return f"rope_type {rope.get('rope_type')!r} is not 'default'"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "attention or MLP biases"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r} is not 'silu'"
    return None


def effective_weight(linear: nn.Module) -> Tensor:
    """The weight a (possibly LoRA-wrapped) linear layer applies: the base weight plus active adapters' deltas."""
    base = getattr(linear, "base_layer", None)
    if base is None:
        return linear.weight.detach()
    weight = base.weight.detach()
    if getattr(linear, "merged", False) or getattr(linear, "disable_adapters", False):
        return weight
    for name in linear.active_adapters:
        if name in linear.lora_A:
            weight = weight + linear.get_delta_weight(name).detach()
    return weight


def _packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


class _Linear:
    """``x @ weight.T`` through a weight packed once for oneDNN (or plain ``F.linear`` without oneDNN)."""

    def __init__(self, weight: Tensor, rows_hint: int) -> None:
        self.out_features = weight.shape[0]
        self.packed = _packing_available()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows_hint) if self.packed else weight

    def __call__(self, x: Tensor) -> Tensor:
        if not self.packed:
            return F.linear(x, self.weight)
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, None, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)


@dataclass
class _Layer:
    input_norm: Tensor
    qkv: _Linear
    out: _Linear
    post_norm: Tensor
    gate_up: _Linear
    down: _Linear


@dataclass
class DecodeCache:
    """Keys and values of every layer ``(L, B, kv_heads, capacity, head_dim)``, filled up to ``length`` columns."""

    keys: Tensor
    values: Tensor
    key_mask: Tensor  # (B, capacity) bool: which columns are real tokens (not left padding)
    positions: Tensor  # (B,) position id of each row's next token
    length: int
    weights_key: tuple[Any, ...]  # the weights' versions when the cache was filled

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more columns (grows by whole blocks)."""
        needed = self.length + extra
        if needed <= self.keys.shape[3]:
            return
        grow = -(-(needed - self.keys.shape[3]) // CACHE_BLOCK) * CACHE_BLOCK
        self.keys = _grow(self.keys, grow, dim=3)
        self.values = _grow(self.values, grow, dim=3)
        self.key_mask = _grow(self.key_mask, grow, dim=1)


def _grow(tensor: Tensor, extra: int, dim: int) -> Tensor:
    shape = list(tensor.shape)
    shape[dim] = extra
    return torch.cat([tensor, tensor.new_zeros(shape)], dim=dim)


class FastDecoder:
    """Prefill and one-token steps of a Llama-family ``model`` from a packed copy of its current weights.

    Args:
        model: a HF ``LlamaForCausalLM`` (or a peft model around one), float32 on CPU.
        rows_hint: the batch size the packed weights are laid out for (any batch works).
    """

    def __init__(self, model: nn.Module, rows_hint: int = 16) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"FastDecoder cannot run this model: {reason}")
        self._model = weakref.ref(model)  # the policy keeps the model (and this decoder, keyed by it) alive
        self.rows_hint = rows_hint
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        rope = getattr(config, "rope_parameters", None) or {}
        theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float) / self.head_dim))
        self._weights_key: tuple[Any, ...] | None = None
        self.layers: list[_Layer] = []

    # -- weights ---------------------------------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        model = self._model()
        if model is None:
            raise RuntimeError("the model of this FastDecoder no longer exists")
        return model

    def _current_key(self) -> tuple[Any, ...]:
        return tuple((p.data_ptr(), p._version) for p in self.model.parameters())

    def refresh(self) -> tuple[Any, ...]:
        """Repack the weights if any parameter of the model changed since the last packing; returns their versions."""
        key = self._current_key()
        if key == self._weights_key:
            return key
        lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self.embed = lm.get_input_embeddings().weight.detach()
        self.final_norm = lm.model.norm.weight.detach()
        self.head = _Linear(effective_weight(lm.get_output_embeddings()), self.rows_hint)
        self.layers = [self._pack_layer(layer) for layer in lm.model.layers]
        self._weights_key = key
        return key

    def _pack_layer(self, layer: nn.Module) -> _Layer:
        attn, mlp, hint = layer.self_attn, layer.mlp, self.rows_hint
        qkv = torch.cat([effective_weight(attn.q_proj), effective_weight(attn.k_proj), effective_weight(attn.v_proj)])
        gate_up = torch.cat([effective_weight(mlp.gate_proj), effective_weight(mlp.up_proj)])
        return _Layer(
            input_norm=layer.input_layernorm.weight.detach(),
            qkv=_Linear(qkv, hint),
            out=_Linear(effective_weight(attn.o_proj), hint),
            post_norm=layer.post_attention_layernorm.weight.detach(),
            gate_up=_Linear(gate_up, hint),
            down=_Linear(effective_weight(mlp.down_proj), hint),
        )

    # -- decoding --------------------------------------------------------------------------------------

    @torch.no_grad()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, DecodeCache]:
        """Run left-padded prompts ``(B, P)``; returns the next-token logits ``(B, V)`` and the filled cache."""
        from agents.policy import position_ids  # the policy module imports this one

        key = self.refresh()
        batch, length = input_ids.shape
        capacity = -(-(length + 1) // CACHE_BLOCK) * CACHE_BLOCK
        shape = (len(self.layers), batch, self.kv_heads, capacity, self.head_dim)
        key_mask = torch.zeros(batch, capacity, dtype=torch.bool)
        key_mask[:, :length] = attention_mask.bool()
        cache = DecodeCache(
            keys=torch.zeros(shape),
            values=torch.zeros(shape),
            key_mask=key_mask,
            positions=attention_mask.long().sum(-1),
            length=0,
            weights_key=key,
        )
        positions = position_ids(attention_mask)
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        # a query may see earlier real tokens; a padding query sees itself, so no row of the softmax is empty
        allowed = causal & (attention_mask.bool()[:, None, :] | torch.eye(length, dtype=torch.bool))
        hidden = self._forward(input_ids, positions, cache, allowed[:, None])
        return self.head(self._norm(hidden[:, -1], self.final_norm)), cache

    @torch.no_grad()
    def step(self, cache: DecodeCache, tokens: Tensor) -> Tensor:
        """Feed one token per row ``(B,)``; returns the following logits ``(B, V)``."""
        if cache.weights_key != self._weights_key:
            raise RuntimeError("the model's weights changed since this cache was filled: prefill again")
        cache.reserve(1)
        cache.key_mask[:, cache.length] = True
        allowed = cache.key_mask[:, None, None, : cache.length + 1]
        hidden = self._forward(tokens[:, None], cache.positions[:, None], cache, allowed)
        cache.positions = cache.positions + 1
        return self.head(self._norm(hidden[:, -1], self.final_norm))

    def _forward(self, input_ids: Tensor, positions: Tensor, cache: DecodeCache, allowed: Tensor) -> Tensor:
        """The trunk over ``(B, S)`` new tokens at ``positions``, appending their keys/values to ``cache``."""
        hidden = F.embedding(input_ids, self.embed)
        cos, sin = self._rotary(positions)
        start, end = cache.length, cache.length + input_ids.shape[1]
        for index, layer in enumerate(self.layers):
            hidden = hidden + self._attention(layer, index, hidden, cos, sin, cache, allowed, start, end)
            normed = self._norm(hidden, layer.post_norm)
            gate, up = layer.gate_up(normed).chunk(2, dim=-1)
            hidden = hidden + layer.down(F.silu(gate) * up)
        cache.length = end
        return hidden

    def _attention(
        self, layer: _Layer, index: int, hidden: Tensor, cos: Tensor, sin: Tensor, cache: DecodeCache,
        allowed: Tensor, start: int, end: int,
    ) -> Tensor:  # fmt: skip
        batch, length, _ = hidden.shape
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = layer.qkv(self._norm(hidden, layer.input_norm)).split([q_size, kv_size, kv_size], dim=-1)
        q = _rotate(q.view(batch, length, self.heads, self.head_dim).transpose(1, 2), cos, sin)
        k = _rotate(k.view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2), cos, sin)
        cache.keys[index, :, :, start:end] = k
        cache.values[index, :, :, start:end] = v.view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q, cache.keys[index, :, :, :end], cache.values[index, :, :, :end], attn_mask=allowed, enable_gqa=True
        )
        return layer.out(out.transpose(1, 2).reshape(batch, length, q_size))

    def _rotary(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        freqs = positions[..., None].float() * self.inv_freq
        angles = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, S, head_dim)
        return angles.cos(), angles.sin()

    def _norm(self, hidden: Tensor, weight: Tensor) -> Tensor:
        return weight * (hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps))


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
