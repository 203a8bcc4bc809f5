"""PromptBank: the initial observation rows of prompts, kept on the vector env's device."""

from __future__ import annotations

from collections import OrderedDict
from typing import cast

import numpy as np
import torch

from textgym.episode import CUSTOM, Draw, EpisodeSetup, prompt_row
from textgym.tasks import Example


class PromptBank:
    """Each prompt's left-padded token ids (``P`` columns) and length, encoded once and stored on ``device``.

    A reset then copies prompts out of the bank with one indexed read, instead of tokenizing and uploading
    them, and takes the attention-mask row from a ``(P + 1, L)`` table indexed by prompt length (small enough
    to stay in cache). Prompts are added on first use, those new in a batch tokenized in one call. The task's
    prompts stay; custom prompts (``options={"prompt": text}``) hold at most ``setup.prompt_cache_size`` slots,
    the least recently used one rewritten for a new text (a reset copies its rows out, so no episode reads it).

    Example:
        >>> from textgym.episode import draw_examples
        >>> from textgym.env import TextGenEnv
        >>> setup = TextGenEnv(task="arithmetic").setup
        >>> bank = PromptBank(setup, "cpu")
        >>> bank.slots(draw_examples(setup, {"prompt_index": [5, 9, 5]}, 3, None)).tolist()
        [0, 1, 0]
    """

    def __init__(self, setup: EpisodeSetup, device: str | torch.device, capacity: int = 64) -> None:
        self.setup, self.device = setup, torch.device(device)
        prompt_tokens = setup.max_prompt_tokens
        self.ids = torch.empty((capacity, prompt_tokens), dtype=torch.long, device=self.device)
        self.lengths = torch.zeros(capacity, dtype=torch.long, device=self.device)
        masks = [prompt_row(setup, [setup.pad_token_id] * length)[1] for length in range(prompt_tokens + 1)]
        self.mask_by_length = torch.from_numpy(np.stack(masks)).to(self.device)  # (P+1, L)
        self.size = 0
        self._split_slots: dict[str, np.ndarray] = {}  # split -> slot of each of its examples (-1: not yet)
        self._custom_slots: OrderedDict[str, int] = OrderedDict()  # a custom prompt's text -> slot, LRU first

    def slots(self, draw: Draw) -> np.ndarray:
        """The bank slot of each drawn example, adding the ones not in the bank yet."""
        if draw.split == CUSTOM:  # options={"prompt": text}: every row has the same text
            example = cast(Example, draw.source[0][0])  # an element of an object array
            return np.full(len(draw.indices), self._custom_slot(example), dtype=np.int64)
        table = self._split_slots.get(draw.split)
        if table is None:
            table = self._split_slots[draw.split] = np.full(len(draw.source[0]), -1, dtype=np.int64)
        slots = table[draw.indices]
        if (slots < 0).any():
            fresh = np.unique(draw.indices[slots < 0])
            table[fresh] = self._add(draw.split, fresh.tolist(), draw.source[0][fresh].tolist())
            slots = table[draw.indices]
        return slots

    def _custom_slot(self, example: Example) -> int:
        """The slot of a custom prompt: its own while it is among the ``prompt_cache_size`` most recently used,
        else a new one, or, when they are all taken, the least recently used one's, rewritten."""
        slot = self._custom_slots.get(example.prompt)
        if slot is not None:
            self._custom_slots.move_to_end(example.prompt)
            return slot
        if len(self._custom_slots) < self.setup.prompt_cache_size:
            slot = int(self._add(CUSTOM, [0], [example])[0])
        else:
            _, slot = self._custom_slots.popitem(last=False)
            self._write(np.array([slot]), CUSTOM, [0], [example])
        self._custom_slots[example.prompt] = slot
        return slot

    def _add(self, split: str, indices: list[int], examples: list[Example]) -> np.ndarray:
        """Append the prompts of ``examples`` to the bank (grown by doubling); returns their slots."""
        start, count = self.size, len(examples)
        while start + count > self.ids.shape[0]:
            self.ids = torch.cat([self.ids, torch.empty_like(self.ids)])
            self.lengths = torch.cat([self.lengths, torch.zeros_like(self.lengths)])
        slots: np.ndarray = np.arange(start, start + count, dtype=np.int64)
        self._write(slots, split, indices, examples)
        self.size += count
        return slots

    def _write(self, slots: np.ndarray, split: str, indices: list[int], examples: list[Example]) -> None:
        """Encode ``examples`` (through the setup's cache) and store their rows and lengths at ``slots``."""
        encoded = self.setup.encode_many(split, indices, examples)
        rows = np.stack([prompt_row(self.setup, ids)[0][: self.setup.max_prompt_tokens] for ids in encoded])
        index = torch.from_numpy(slots).to(self.device)
        self.ids[index] = torch.from_numpy(rows).to(self.device)
        self.lengths[index] = torch.tensor([len(ids) for ids in encoded], device=self.device)
