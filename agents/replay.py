"""A replay buffer of whole episodes on the device, with optional prioritised sampling.

Token-level Q-learning replays transitions ``(s_t, a_t, r_t, s_{t+1})``; a language model's state is the whole
prefix, so the buffer keeps whole episodes and one forward over an episode scores every transition in it (and
the n-step targets need the following steps anyway). Each slot holds one episode: its prompt left-padded to the
env's prompt width, its tokens right-padded to the token budget, its per-step rewards. Memory is
``capacity * (prompt_width + max_new_tokens) * 17`` bytes or so (ids, attention mask, step mask, rewards);
the oldest episode is overwritten first.

Prioritised replay (Schaul et al. 2016) is at the episode level: an episode is drawn with probability
``p_i^alpha / sum_j p_j^alpha``, ``p_i`` its mean absolute TD error when it was last replayed (new episodes get
the largest priority so far), and its loss weighted by ``(N * P(i))^-beta`` normalised by the largest weight.

Example:
    >>> buffer = EpisodeReplay(capacity=4, prompt_width=3, max_new_tokens=3, pad_token_id=0, device="cpu")
    >>> ids = torch.tensor([[0, 7, 8, 9, 2, 0]])  # a prompt of 2 tokens after 1 padding, then 2 generated + padding
    >>> episode = Rollout(ids, (ids > 0).long(), torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([1.0]))
    >>> buffer.add(episode, torch.tensor([[0.0, 1.0, 0.0]]))
    >>> drawn = buffer.sample(2, torch.Generator().manual_seed(0))
    >>> drawn.batch.input_ids.tolist(), drawn.rewards.tolist()
    ([[7, 8, 9, 2], [7, 8, 9, 2]], [[0.0, 1.0], [0.0, 1.0]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agents.rollout import Rollout


@dataclass
class ReplaySample:
    """Episodes drawn from the buffer: the batch, its per-step rewards ``(B, T)``, their slots and loss weights."""

    batch: Rollout
    rewards: Tensor
    slots: Tensor
    weights: Tensor


class EpisodeReplay:
    """A ring buffer of ``capacity`` episodes on ``device``; see the module docs.

    Args:
        capacity: episodes kept (the oldest is overwritten first).
        prompt_width: the env's prompt columns (``TextGenVectorEnv.prompt_length``).
        max_new_tokens: the env's token budget.
        pad_token_id: the id padding columns hold.
        device: where the episodes live (the policy's device).
        prioritized: draw episodes by priority instead of uniformly.
        alpha: how strongly priorities shape the draw (0 = uniform).
    """

    def __init__(
        self,
        capacity: int,
        prompt_width: int,
        max_new_tokens: int,
        pad_token_id: int,
        device: str | torch.device,
        prioritized: bool = False,
        alpha: float = 0.6,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1 episode, got {capacity}")
        width = prompt_width + max_new_tokens
        self.capacity, self.prompt_width, self.max_new_tokens = capacity, prompt_width, max_new_tokens
        self.prioritized, self.alpha, self.pad_token_id = prioritized, alpha, pad_token_id
        self.input_ids = torch.full((capacity, width), pad_token_id, dtype=torch.long, device=device)
        self.attention_mask = torch.zeros(capacity, width, dtype=torch.long, device=device)
        self.mask = torch.zeros(capacity, max_new_tokens, device=device)
        self.rewards = torch.zeros(capacity, max_new_tokens, device=device)
        self.priorities = torch.zeros(capacity, device=device)
        self.size, self.next_slot = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Rollout, rewards: Tensor) -> None:
        """Store every episode of ``batch`` with its per-step rewards ``(B, T)``, overwriting the oldest."""
        if batch.episode_mask is not None:
            raise ValueError("the replay buffer holds single-turn episodes: every generated token must be an action")
        steps, count = batch.num_generated, len(batch.scores)
        prompt = batch.input_ids.shape[1] - steps
        if steps > self.max_new_tokens or prompt > self.prompt_width or count > self.capacity:
            raise ValueError(
                f"{count} episodes of {prompt} prompt and {steps} generated columns do not fit a replay buffer of "
                f"{self.capacity} episodes of {self.prompt_width} and {self.max_new_tokens} columns"
            )
        slots = (self.next_slot + torch.arange(count, device=self.input_ids.device)) % self.capacity
        columns = torch.arange(self.prompt_width - prompt, self.prompt_width + steps, device=self.input_ids.device)
        self.input_ids[slots] = self.pad_token_id
        self.attention_mask[slots] = 0
        self.mask[slots] = 0
        self.rewards[slots] = 0
        self.input_ids[slots[:, None], columns] = batch.input_ids
        self.attention_mask[slots[:, None], columns] = batch.attention_mask.long()
        self.mask[slots, :steps] = batch.mask
        self.rewards[slots, :steps] = rewards.to(self.rewards.dtype)
        self.priorities[slots] = float(self.priorities[: self.size].max()) if self.size else 1.0
        self.next_slot = int((self.next_slot + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)

    def sample(self, count: int, generator: torch.Generator, beta: float = 0.4) -> ReplaySample:
        """``count`` episodes (with replacement), cut to the columns they use; weights are 1 unless prioritised.

        ``beta``: how fully prioritised sampling's bias is corrected (1 = fully).
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if self.prioritized:
            probs = self.priorities[: self.size] ** self.alpha
            probs = probs / probs.sum()
            slots = torch.multinomial(probs, count, replacement=True, generator=generator)
            weights = (self.size * probs[slots]) ** -beta
            weights = weights / weights.max()
        else:
            slots = torch.randint(self.size, (count,), generator=generator, device=generator.device)
            slots = slots.to(self.input_ids.device)
            weights = torch.ones(count, device=self.input_ids.device)
        full = Rollout(self.input_ids[slots], self.attention_mask[slots], self.mask[slots], torch.zeros_like(weights))
        batch = full.trimmed()
        return ReplaySample(batch, self.rewards[slots, : batch.num_generated], slots, weights)

    def update_priorities(self, slots: Tensor, priorities: Tensor) -> None:
        """Set the drawn episodes' priorities (e.g. their mean absolute TD errors); kept above a small floor."""
        self.priorities[slots] = priorities.detach().to(self.priorities.dtype).clamp(min=1e-3)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's contents and position, for checkpoints (a resumed run replays the same episodes)."""
        return {
            "input_ids": self.input_ids[: self.size].clone(),
            "attention_mask": self.attention_mask[: self.size].clone(),
            "mask": self.mask[: self.size].clone(),
            "rewards": self.rewards[: self.size].clone(),
            "priorities": self.priorities[: self.size].clone(),
            "size": self.size,
            "next_slot": self.next_slot,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s contents into a buffer of the same capacity and widths."""
        size = int(state["size"])
        if size > self.capacity or tuple(state["input_ids"].shape[1:]) != tuple(self.input_ids.shape[1:]):
            raise ValueError(
                f"saved replay buffer ({size} episodes of {tuple(state['input_ids'].shape[1:])} columns) does not fit "
                f"this one ({self.capacity} episodes of {tuple(self.input_ids.shape[1:])})"
            )
        for name in ("input_ids", "attention_mask", "mask", "rewards", "priorities"):
            getattr(self, name)[:size] = state[name].to(self.input_ids.device)
        self.size, self.next_slot = size, int(state["next_slot"])
