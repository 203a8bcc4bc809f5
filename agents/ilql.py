"""ILQL: implicit language Q-learning (Snell et al. 2022), offline RL from scored or preference-labelled text.

The policy never acts while it learns: it reads a fixed dataset (:mod:`agents.offline`: scored completions,
preference pairs, or any agent's rollouts saved with ``textgym rollout --save``). On the LM's trunk sit

- the LM head, trained by behaviour cloning on the data: the behaviour policy ``pi_beta``;
- two Q heads and their Polyak-averaged target copies: ``Q_i(s, .) = E (W_i h(s) + b_i)``, a ``H x H`` map of
  the trunk state scored against the (frozen, unit-mean-norm) output embeddings ``E``: a Q-value for every token
  at the cost of one more LM-head product, with ``H^2`` parameters instead of ``H x vocab`` (zero at the start);
- the value head ``V(s)``.

Per token of the data (action ``a_t`` in state ``s_t``, reward ``r_t``: the score at the last token):

- Q loss: ``(Q_i(s_t, a_t) - r_t - gamma V(s_{t+1}))^2`` for both heads (``V`` after the last token is 0);
- V loss, the expectile regression of IQL: ``|expectile - 1{q - V(s_t) < 0}| (q - V(s_t))^2`` with
  ``q = min_i Q_target_i(s_t, a_t)``, so ``V`` tracks an upper expectile of the in-data Q-values (no max over
  tokens the data never tried);
- the conservative (CQL) penalty ``logsumexp Q_i(s_t, .) - Q_i(s_t, a_t)``, weighted ``cql_scale``;
- behaviour cloning, ``-log pi_beta(a_t | s_t)``, weighted ``bc_scale``.

``shared_trunk`` (off by default) lets the Q, V and CQL losses train the trunk beside behaviour cloning, as trlx
does. On SmolLM2 under LoRA that sharing wrecked the LM on Arithmetic-v1 (beta 0, plain behaviour cloning,
scored 0.016 against the zero-shot 0.29, at a KL of 9.6), so by default the heads read detached trunk states and
only behaviour cloning trains the adapter. The tiny random test model needs the sharing (its random trunk has no
features worth reading: with detached states ILQL fell below behaviour cloning on one seed in three).

Acting (evaluation, ``predict``, :class:`ILQLPolicy`) samples from ``log pi_beta(.|s) + beta (min_i Q_i(s, .) - V(s))``:
the data's behaviour tilted towards what the Q-function values. ``beta=0`` is plain behaviour cloning.

Example:
    >>> import pathlib
    >>> data = pathlib.Path(tempfile.mkdtemp()) / "data.jsonl"
    >>> _ = data.write_text('{"prompt": "abc", "completion": "cba", "score": 1.0}\\n')
    >>> agent = ILQL(model="tiny", env_id="TextGen-Reverse-v0", data=str(data), batch_size=2,
    ...              tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import tempfile  # noqa: F401  (used by the docstring example)
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from agents.config import TrainConfig, option
from agents.losses import entropy_from_logits, masked_mean
from agents.offline import layout_texts, load_offline_data
from agents.policy import GenerationState, LMPolicy, TokenScores, position_ids
from agents.qlearning import polyak_update
from agents.rollout import Rollout
from agents.sampling import learning_logprobs
from agents.trainer import Scored, Trainer


@dataclass
class ILQLConfig(TrainConfig):
    data: str = option("", "the offline dataset: a JSONL of scored completions or preference pairs (agents.offline)")
    beta: float = option(1.0, "acting: weight of the advantage min Q - V added to the behaviour logits", low=0)
    expectile: float = option(
        0.7,
        "expectile of the V loss (0.5 = the mean; towards 1 = the max)",
        low=0,
        high=1,
        low_inclusive=False,
        high_inclusive=False,
    )
    cql_scale: float = option(
        1.0, "weight of the conservative (CQL) penalty on the Q heads (0.1 let the heads favour EOS in tests)", low=0
    )
    bc_scale: float = option(1.0, "weight of behaviour cloning on the LM head", low=0)
    tau: float = option(
        0.05, "Polyak weight of the online Q heads in each target update (1 = copy)", low=0, high=1, low_inclusive=False
    )
    shared_trunk: bool = option(
        False,
        "the Q/V/CQL losses train the trunk too, as in trlx (off: the heads read detached states; BC alone trains it)",
    )
    kl_coef: float = option(0.0, "must be 0: offline learning has no KL penalty in its rewards", low=0, high=0)
    learning_rate: float = option(
        1e-3, "Adam learning rate (suits the default LoRA adapter and the heads)", low=0, low_inclusive=False
    )


class QHeads(nn.Module):
    """``count`` Q heads on trunk states: ``Q_i(s, .) = E (W_i h + b_i)`` with ``E`` the output embeddings."""

    def __init__(self, hidden: int, count: int = 2) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(count))
        for layer in self.maps:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, hidden: Tensor, embeddings: Tensor) -> Tensor:
        """Q-values ``(count, ..., V)`` of every token in states ``hidden`` ``(..., H)``.

        The embeddings are scaled to unit mean norm, so the heads learn at the same pace whatever the model's
        embedding scale (a randomly initialised test model's are ~20x smaller than SmolLM2's)."""
        weights = self._unit_scale(embeddings)
        return torch.stack([layer(hidden.float()) @ weights.T for layer in self.maps])

    def _unit_scale(self, embeddings: Tensor) -> Tensor:
        """The embeddings over their mean norm, recomputed only when they changed (never under LoRA)."""
        key = (embeddings.data_ptr(), embeddings._version)
        if getattr(self, "_scaled_key", None) != key:
            weights = embeddings.detach().float()
            self._scaled = weights / weights.norm(dim=-1).mean().clamp(min=1e-8)
            self._scaled_key = key
        return self._scaled


class ILQLPolicy(nn.Module):
    """The acting policy of an ILQL agent: ``LMPolicy``'s sampling and scoring interface, with the logits tilted
    by ``beta * (min_i Q_i - V)``. Collections, evaluations and ``predict`` use it in place of the LM policy."""

    def __init__(self, policy: LMPolicy, heads: QHeads, beta: float) -> None:
        super().__init__()
        self.policy, self.heads, self.beta = policy, heads, beta

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def has_reference(self) -> bool:
        return self.policy.has_reference

    def tilted_logits(self, hidden: Tensor) -> Tensor:
        """``log pi_beta + beta * (min_i Q_i - V)`` at trunk states ``hidden`` ``(..., H)``."""
        head = self.policy.model.get_output_embeddings()
        logits = torch.log_softmax(head(hidden).float(), -1)
        if self.beta == 0:
            return logits
        assert self.policy.value_head is not None  # ILQL builds its policy with a value head
        q = self.heads(hidden, head.weight).min(0).values
        return logits + self.beta * (q - self.policy.value_head(hidden.float()))

    @torch.no_grad()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> GenerationState:
        out = self._decoder(input_ids, attention_mask, position_ids(attention_mask), None)
        logits = self.tilted_logits(out.last_hidden_state[:, -1])
        return GenerationState(logits, out.cache, attention_mask, attention_mask.long().sum(-1))

    @torch.no_grad()
    def advance(self, state: GenerationState, tokens: Tensor) -> GenerationState:
        mask = torch.cat([state.attention_mask, torch.ones_like(state.attention_mask[:, :1])], dim=1)
        out = self._decoder(tokens[:, None], mask, state.next_position[:, None], state.cache)
        logits = self.tilted_logits(out.last_hidden_state[:, -1])
        return GenerationState(logits, out.cache, mask, state.next_position + 1)

    def _decoder(self, input_ids: Tensor, attention_mask: Tensor, positions: Tensor, cache: Any) -> Any:
        decoder = self.policy.model.get_decoder()
        return decoder(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, cache=cache, use_cache=True
        )

    @torch.no_grad()
    def next_token_logits(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.tilted_logits(self.policy.last_hidden(input_ids, attention_mask))

    @torch.no_grad()
    def score_tokens(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        num_generated: int,
        temperature: float = 1.0,
        with_entropy: bool = True,
    ) -> TokenScores:
        logits = self.tilted_logits(self.policy.token_hidden(input_ids, attention_mask, num_generated)) / temperature
        logprobs = learning_logprobs(logits, input_ids[:, -num_generated:])
        entropy = entropy_from_logits(logits) if with_entropy else torch.zeros_like(logprobs)
        return TokenScores(logprobs, entropy, None)

    def reference_logprobs(self, *args: Any) -> Tensor:
        return self.policy.reference_logprobs(*args)


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """``|expectile - 1{diff < 0}| * diff^2`` elementwise (IQL's value loss on ``diff = q - V``).

    >>> expectile_loss(torch.tensor([2.0, -2.0]), 0.7)
    tensor([2.8000, 1.2000])
    """
    weight = torch.where(diff < 0, 1 - expectile, expectile)
    return weight * diff**2


class ILQL(Trainer):
    """Offline implicit language Q-learning on a JSONL dataset; see the module docs."""

    config_class: ClassVar[type[TrainConfig]] = ILQLConfig
    config: ILQLConfig
    algo: ClassVar[str] = "ilql"

    def __init__(self, config: ILQLConfig | None = None, env: Any = None, policy: Any = None, **overrides: Any):
        super().__init__(config, env, policy, **overrides)
        if not self.config.data:
            raise ValueError("ILQL learns from a dataset: pass data=FILE (--data FILE), a JSONL of scored completions")
        if not self.single_turn_fast_path:
            raise ValueError(
                f"ILQL lays its data out as single-turn TextGenVectorEnv episodes; {self.config.env_id!r} is not one"
            )
        self.records = load_offline_data(self.config.data)
        self.target_heads = {name: p.detach().clone() for name, p in self.heads.named_parameters()}
        self.acting = ILQLPolicy(self.policy, self.heads, self.config.beta)

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The policy's trainable weights and the Q heads (built on first use: the base class builds the
        optimizer before this class's ``__init__`` body runs)."""
        if not hasattr(self, "heads"):
            hidden = self.policy.model.get_output_embeddings().weight.shape[1]
            self.heads = QHeads(hidden).to(self.policy.device)
        return [*self.policy.trainable_parameters(), *self.heads.parameters()]

    @property
    def acting_policy(self) -> Any:
        return self.acting

    # -- data -----------------------------------------------------------------------------------------------

    def data_batch(self, iteration: int) -> tuple[Rollout, Tensor]:
        """``batch_size`` records drawn from ``(seed, iteration)``, laid out as episodes, with per-token rewards
        (each record's score on its last token)."""
        setup = self.envs.setup
        picks = np.random.default_rng([self.config.seed, iteration]).integers(
            len(self.records), size=self.config.batch_size
        )
        chosen = [self.records[i] for i in picks]
        batch = layout_texts(
            setup,
            [r.prompt for r in chosen],
            [r.completion for r in chosen],
            self.policy.device,
            [r.score for r in chosen],
        )
        last = (batch.mask.sum(1).long() - 1).clamp(min=0)
        rewards = torch.zeros_like(batch.mask)
        rewards[torch.arange(len(last), device=rewards.device), last] = batch.scores
        return batch, rewards

    # -- learning -------------------------------------------------------------------------------------------

    def losses(self, batch: Rollout, rewards: Tensor) -> dict[str, Tensor]:
        """The four ILQL losses of a batch (masked token means), with gradients."""
        c, mask = self.config, batch.mask
        hidden = self.policy.token_hidden(batch.input_ids, batch.attention_mask, batch.num_generated)  # (B, T, H)
        states = hidden if c.shared_trunk else hidden.detach()  # see ``shared_trunk`` in the module docs
        head = self.policy.model.get_output_embeddings()
        actions = batch.actions.long()
        assert self.policy.value_head is not None  # ILQL builds its policy with a value head
        values = self.policy.value_head(states.float()).squeeze(-1)  # (B, T)
        q_all = self.heads(states, head.weight)  # (2, B, T, V)
        q_taken = q_all.gather(-1, actions.expand(len(q_all), *actions.shape).unsqueeze(-1)).squeeze(-1)  # (2, B, T)
        with torch.no_grad():
            target_q = torch.func.functional_call(self.heads, self.target_heads, (states, head.weight))
            target_taken = target_q.gather(-1, actions.expand(len(target_q), *actions.shape).unsqueeze(-1))
            target_taken = target_taken.squeeze(-1).min(0).values  # (B, T)
            next_values = torch.nn.functional.pad(values.detach()[:, 1:], (0, 1)) * torch.nn.functional.pad(
                mask[:, 1:], (0, 1)
            )
            td_targets = rewards + c.gamma * next_values
        q_loss = sum(masked_mean((q - td_targets) ** 2, mask) for q in q_taken)
        v_loss = masked_mean(expectile_loss(target_taken - values, c.expectile), mask)
        cql = sum(masked_mean(torch.logsumexp(q, -1) - taken, mask) for q, taken in zip(q_all, q_taken, strict=True))
        bc = -masked_mean(learning_logprobs(head(hidden).float(), actions), mask)
        return {"q": q_loss, "v": v_loss, "cql": cql, "bc": bc}  # type: ignore[dict-item]

    def train_iteration(self) -> dict[str, Any]:
        """One gradient step on a batch of data, then the target heads' Polyak update."""
        start = time.perf_counter()
        batch, rewards = self.data_batch(self.iteration)
        parts = self.losses(batch, rewards)
        c = self.config
        loss = parts["q"] + parts["v"] + c.cql_scale * parts["cql"] + c.bc_scale * parts["bc"]
        grad_norm = self.optimizer_step(loss, "ILQL loss")
        self.update_target()
        self.iteration += 1
        self.timesteps += batch.num_tokens
        seconds = time.perf_counter() - start
        return {
            **{f"losses/{name}": value.item() for name, value in parts.items()},
            "losses/grad_norm": grad_norm,
            "charts/data_score_mean": float(batch.scores.mean()),
            "charts/tokens": batch.num_tokens,
            "charts/tokens_per_s": batch.num_tokens / seconds,
            "charts/episode_length": float(batch.mask.sum(1).mean()),
        }

    @torch.no_grad()
    def update_target(self) -> None:
        """Move the target Q heads ``tau`` of the way to the online ones."""
        polyak_update(self.target_heads, dict(self.heads.named_parameters()), self.config.tau)

    def update(self, batch: Rollout, scored: Scored, forward: Any = None) -> dict[str, float]:
        raise NotImplementedError("ILQL learns from its dataset in train_iteration, not from scored rollouts")

    # -- checkpoints ----------------------------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        """The Q heads and their targets (the value head is in the policy's weights)."""
        heads = {name: p.detach().clone() for name, p in self.heads.named_parameters()}
        return {"heads": heads, "target_heads": dict(self.target_heads)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, p in self.heads.named_parameters():
                p.copy_(state["heads"][name])
            for name, weight in state["target_heads"].items():
                self.target_heads[name].copy_(weight)
