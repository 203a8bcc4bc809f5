"""PromptBank: the initial observation rows of prompts, kept on the vector env's device."""

from __future__ import annotations

import numpy as np
import torch

from textgym.core import Draw, EpisodeSetup, prompt_row
from textgym.tasks import Example


class PromptBank:
    """Each prompt's left-padded ``(input_ids, attention_mask)`` row, encoded once and stored on ``device``.

    A reset then copies rows out of the bank with one indexed read per tensor, instead of tokenizing
    and uploading prompts. Prompts are added on first use, those new in a batch tokenized in one call.

    Example:
        >>> from textgym.core import draw_examples
        >>> from textgym.env import TextGenEnv
        >>> setup = TextGenEnv(task="arithmetic").setup
        >>> bank = PromptBank(setup, "cpu")
        >>> bank.slots(draw_examples(setup, {"prompt_index": [5, 9, 5]}, 3, None)).tolist()
        [0, 1, 0]
    """

    def __init__(self, setup: EpisodeSetup, device: str | torch.device, capacity: int = 64) -> None:
        self.setup, self.device = setup, torch.device(device)
        self.ids = torch.empty((capacity, setup.length), dtype=torch.long, device=self.device)
        self.mask = torch.empty_like(self.ids)
        self.size = 0
        self._split_slots: dict[str, np.ndarray] = {}  # split -> slot of each of its examples (-1: not yet)
        self._custom_slots: dict[str, int] = {}  # a custom prompt's text -> slot

    def slots(self, draw: Draw) -> np.ndarray:
        """The bank slot of each drawn example, adding the ones not in the bank yet."""
        if draw.split == "custom":  # options={"prompt": text}: every row has the same text
            example = draw.source[0][0]
            if example.prompt not in self._custom_slots:
                self._custom_slots[example.prompt] = int(self._add("custom", [int(draw.indices[0])], [example])[0])
            return np.full(len(draw.indices), self._custom_slots[example.prompt], dtype=np.int64)
        table = self._split_slots.get(draw.split)
        if table is None:
            table = self._split_slots[draw.split] = np.full(len(draw.source[0]), -1, dtype=np.int64)
        slots = table[draw.indices]
        if (slots < 0).any():
            fresh = np.unique(draw.indices[slots < 0])
            table[fresh] = self._add(draw.split, fresh.tolist(), draw.source[0][fresh].tolist())
            slots = table[draw.indices]
        return slots

    def _add(self, split: str, indices: list[int], examples: list[Example]) -> np.ndarray:
        rows = [prompt_row(self.setup, ids) for ids in self.setup.encode_many(split, indices, examples)]
        start, count = self.size, len(rows)
        while start + count > self.ids.shape[0]:  # grow by doubling
            self.ids = torch.cat([self.ids, torch.empty_like(self.ids)])
            self.mask = torch.cat([self.mask, torch.empty_like(self.mask)])
        self.ids[start : start + count] = torch.from_numpy(np.stack([ids for ids, _ in rows])).to(self.device)
        self.mask[start : start + count] = torch.from_numpy(np.stack([mask for _, mask in rows])).to(self.device)
        self.size += count
        return np.arange(start, start + count, dtype=np.int64)
