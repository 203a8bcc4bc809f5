"""LMPolicy: a causal LM as actor, a value head on its trunk as critic, and a frozen reference.

Rollouts sample with a KV cache (:meth:`LMPolicy.prefill` then :meth:`LMPolicy.advance`: O(T) per
episode; through :class:`agents.fast_decode.FastDecoder`'s packed weights where the model allows); training
scores a whole sequence in one forward (:meth:`LMPolicy.score_tokens`), computing the vocabulary projection only
at the generated positions.

The reference is either a frozen copy of the initial weights or, when training with LoRA
(``lora_rank > 0``, needs ``peft``), the base weights with the adapter switched off: no second copy.

The LM is kept in eval mode (dropout off) even while training, so the log-probs of a sequence are a
deterministic function of the weights, as RL on language models needs.

Example:
    >>> import torch
    >>> from textgym.models import tiny_causal_lm
    >>> policy = LMPolicy(tiny_causal_lm(vocab_size=50))
    >>> ids, mask = torch.randint(0, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    >>> out = policy.score_tokens(ids, mask, num_generated=3)
    >>> tuple(out.logprobs.shape), tuple(out.values.shape)
    ((2, 3), (2, 3))
"""

from __future__ import annotations

import copy
import importlib.util
import weakref
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from agents.fast_decode import DecodeCache, FastDecoder, unsupported_reason
from agents.losses import entropy_from_logits
from agents.sampling import learning_logprobs

# one packed-weight decoder per model, outside the module so that copying or pickling a policy never sees it
_FAST_DECODERS: weakref.WeakKeyDictionary[nn.Module, FastDecoder] = weakref.WeakKeyDictionary()


@dataclass
class GenerationState:
    """What sampling carries from one token to the next."""

    logits: Tensor  # (B, V) next-token logits
    cache: Any  # the model's KV cache (a transformers ``Cache``)
    attention_mask: Tensor  # (B, S)
    next_position: Tensor  # (B,)


@dataclass
class TokenScores:
    """Per generated token ``(B, T)``: log-prob of the action, entropy, value of the state before it."""

    logprobs: Tensor
    entropy: Tensor
    values: Tensor | None


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding: ``cumsum(mask) - 1``, clamped at 0. (B, S) -> (B, S)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class LMPolicy(nn.Module):
    """Actor, critic and reference around one HF causal LM.

    Args:
        model: a HF ``PreTrainedModel`` with a causal-LM head.
        value_head: add a scalar value head on the last hidden state (needed by A2C, PPO, TRPO).
        reference: keep a frozen reference for the KL penalty (a copy, or the adapter-off base under LoRA).
        lora_rank: train a LoRA adapter of this rank instead of all weights (0 = full fine-tuning).
        lora_alpha: LoRA scaling numerator.
        lora_target_modules: module names for LoRA (default: every linear layer of the trunk).
        fast_decode: sample through :class:`agents.fast_decode.FastDecoder` where the model allows it (a
            float32 Llama-family model on CPU); ``False`` always runs the model's own forward.
    """

    def __init__(
        self,
        model: nn.Module,
        value_head: bool = True,
        reference: bool = True,
        lora_rank: int = 0,
        lora_alpha: float = 16.0,
        lora_target_modules: list[str] | str | None = None,
        fast_decode: bool = True,
    ) -> None:
        super().__init__()
        self.fast_decode = fast_decode
        if lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {lora_rank}")
        self.uses_lora = lora_rank > 0
        base = model
        self.reference = None
        if reference and not self.uses_lora:
            self.reference = copy.deepcopy(base).requires_grad_(False).eval()
        self.model = _with_lora(base, lora_rank, lora_alpha, lora_target_modules) if self.uses_lora else base
        self.has_reference = bool(reference)
        hidden = self.model.get_output_embeddings().weight.shape[1]
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32) if value_head else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        self.model.eval()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str = "default",
        device: str | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> LMPolicy:
        """Load the LM by HF id, path, ``"default"`` or ``"tiny"`` (initialised from ``seed``); bf16 on CUDA and
        float32 on CPU unless ``dtype`` is given.

        Example:
            >>> policy = LMPolicy.from_pretrained("default", value_head=False, reference=False)  # doctest: +SKIP
        """
        from textgym.models import load_causal_lm

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        on_gpu = str(device).startswith("cuda") and name_or_path != "tiny"  # the tiny test model stays float32
        dtype = dtype or (torch.bfloat16 if on_gpu else torch.float32)
        policy = cls(load_causal_lm(name_or_path, dtype=dtype, device=device, seed=seed), **kwargs)
        return policy.to(device)

    def train(self, mode: bool = True) -> LMPolicy:
        super().train(mode)
        self.model.eval()  # dropout stays off: log-probs must not depend on train/eval mode
        if self.reference is not None:
            self.reference.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.model.get_output_embeddings().weight.device

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (the adapter and value head under LoRA; everything otherwise)."""
        return [p for p in self.parameters() if p.requires_grad]

    def policy_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the actor only (no value head): what TRPO's trust region constrains."""
        head = set() if self.value_head is None else {id(p) for p in self.value_head.parameters()}
        return [p for p in self.trainable_parameters() if id(p) not in head]

    # -- sampling with a KV cache -------------------------------------------------------------------------

    def fast_decoder(self) -> FastDecoder | None:
        """The packed-weight sampling path for this model, or ``None`` where it does not apply."""
        if not self.fast_decode or unsupported_reason(self.model) is not None:
            return None
        decoder = _FAST_DECODERS.get(self.model)
        if decoder is None:
            decoder = _FAST_DECODERS[self.model] = FastDecoder(self.model)
        return decoder

    @torch.no_grad()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> GenerationState:
        """Run left-padded prompts ``(B, P)`` once; returns the next-token logits and the cache."""
        next_position = attention_mask.long().sum(-1)  # (B,)
        decoder = self.fast_decoder()
        if decoder is not None:
            logits, cache = decoder.prefill(input_ids, attention_mask)
            return GenerationState(logits, cache, attention_mask, next_position)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            use_cache=True,
            logits_to_keep=1,
        )
        return GenerationState(out.logits[:, -1].float(), out.cache, attention_mask, next_position)

    @torch.no_grad()
    def advance(self, state: GenerationState, tokens: Tensor) -> GenerationState:
        """Feed one token per row ``(B,)`` through the cache; returns the following logits."""
        mask = torch.cat([state.attention_mask, torch.ones_like(state.attention_mask[:, :1])], dim=1)
        if isinstance(state.cache, DecodeCache):
            decoder = _FAST_DECODERS[self.model]
            return GenerationState(decoder.step(state.cache, tokens), state.cache, mask, state.next_position + 1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=state.next_position[:, None],
            cache=state.cache,
            use_cache=True,
        )
        return GenerationState(out.logits[:, -1].float(), out.cache, mask, state.next_position + 1)

    def last_token_outputs(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """Next-token logits ``(B, V)`` and values ``(B,)`` after each row's last attended token, differentiable.

        One forward, no cache; any padding layout (the last attended token is found per row).
        """
        picked = self.last_hidden(input_ids, attention_mask)
        logits = self.model.get_output_embeddings()(picked).float()
        values = None if self.value_head is None else self.value_head(picked.float()).squeeze(-1)
        return logits, values

    def last_hidden(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The trunk's last hidden state ``(B, H)`` at each row's last attended token (any padding layout)."""
        hidden = self._trunk(input_ids, attention_mask)  # (B, S, H)
        last = attention_mask.long().cumsum(-1).argmax(-1)  # index of the last 1 in each row
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    @torch.no_grad()
    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits after the last attended token of each row, no cache (any padding layout). -> (B, V)."""
        return self.last_token_outputs(input_ids, attention_mask)[0]

    # -- scoring whole sequences ----------------------------------------------------------------------

    def score_tokens(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        num_generated: int,
        temperature: float = 1.0,
        with_entropy: bool = True,
    ) -> TokenScores:
        """Log-probs, entropy and values of the last ``num_generated`` tokens of ``(B, S)`` sequences.

        One forward over the whole sequence; the LM head runs on the ``T`` positions that predict the
        generated tokens only. Log-probs are of ``softmax(logits / temperature)`` (see ``agents.sampling``).
        """
        logits, values = self.token_outputs(input_ids, attention_mask, num_generated)
        logits = logits / temperature  # (B, T, V)
        logprobs = learning_logprobs(logits, input_ids[:, -num_generated:])  # (already scaled: temperature 1)
        entropy = entropy_from_logits(logits) if with_entropy else torch.zeros_like(logprobs)
        return TokenScores(logprobs, entropy, values)

    def token_outputs(
        self, input_ids: Tensor, attention_mask: Tensor, num_generated: int
    ) -> tuple[Tensor, Tensor | None]:
        """Next-token logits ``(B, T, V)`` (float32) at the states before each of the last ``num_generated``
        tokens, and the value head's ``V(s_t)`` ``(B, T)`` there (None without a value head); one forward."""
        hidden = self.token_hidden(input_ids, attention_mask, num_generated)
        logits = self.model.get_output_embeddings()(hidden).float()
        values = None if self.value_head is None else self.value_head(hidden.float()).squeeze(-1)
        return logits, values

    def token_hidden(self, input_ids: Tensor, attention_mask: Tensor, num_generated: int) -> Tensor:
        """The trunk's last hidden states ``(B, T, H)`` at the states before each of the last ``num_generated``
        tokens (what the LM and value heads read); one forward."""
        return self._trunk(input_ids, attention_mask)[:, -num_generated - 1 : -1]

    @torch.no_grad()
    def reference_logprobs(
        self, input_ids: Tensor, attention_mask: Tensor, num_generated: int, temperature: float = 1.0
    ) -> Tensor:
        """Log-probs of the generated tokens under the frozen reference. -> (B, T)."""
        if not self.has_reference:
            raise RuntimeError("this policy was built with reference=False: no KL to a reference is available")
        with self._reference_mode():
            model = self.reference if self.reference is not None else self.model
            hidden = self._trunk(input_ids, attention_mask, model)[:, -num_generated - 1 : -1]
            logits = model.get_output_embeddings()(hidden).float()
        return learning_logprobs(logits, input_ids[:, -num_generated:], temperature)

    def _reference_mode(self) -> AbstractContextManager[Any]:
        return self.model.disable_adapter() if self.uses_lora else nullcontext()

    def _trunk(self, input_ids: Tensor, attention_mask: Tensor, model: nn.Module | None = None) -> Tensor:
        model = model or self.model
        out = model.get_decoder()(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
        )
        return out.last_hidden_state


def _with_lora(model: nn.Module, rank: int, alpha: float, targets: list[str] | str | None) -> nn.Module:
    if importlib.util.find_spec("peft") is None:
        raise ModuleNotFoundError("LoRA training needs peft: pip install peft")
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets or "all-linear", lora_dropout=0.0)
    return get_peft_model(model, config)
