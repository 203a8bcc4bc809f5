"""PromptBank: the initial observation rows of prompts, kept on the vector env's device."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from textgym.core import EpisodeSetup, prompt_row
from textgym.tasks import Example


class PromptBank:
    """Each prompt's left-padded ``(input_ids, attention_mask)`` row, encoded once and stored on ``device``.

    A reset then copies rows out of the bank with one indexed read per tensor, instead of tokenizing
    and uploading prompts. Prompts are added on first use, those new in a batch tokenized in one call.

    Example:
        >>> from textgym.env import TextGenEnv
        >>> setup = TextGenEnv(task="arithmetic").setup
        >>> bank = PromptBank(setup, "cpu")
        >>> examples = setup.task.examples("train")
        >>> bank.slots("train", [5, 9, 5], [examples[5], examples[9], examples[5]]).tolist()
        [0, 1, 0]
    """

    def __init__(self, setup: EpisodeSetup, device: str | torch.device, capacity: int = 64) -> None:
        self.setup, self.device = setup, torch.device(device)
        self.ids = torch.empty((capacity, setup.length), dtype=torch.long, device=self.device)
        self.mask = torch.empty_like(self.ids)
        self.size = 0
        self._split_slots: dict[str, np.ndarray] = {}  # split -> slot of each of its examples (-1: not yet)
        self._custom_slots: dict[int, int] = {}  # hash of a custom prompt -> slot

    def slots(self, split: str, indices: Sequence[int] | np.ndarray, examples: Sequence[Example]) -> np.ndarray:
        """The bank slot of each ``(split, index)`` example, adding the ones not in the bank yet."""
        if split == "custom":  # options={"prompt": text}: every row has the same text
            key = int(indices[0])
            if key not in self._custom_slots:
                self._custom_slots[key] = int(self._add(split, [key], [examples[0]])[0])
            return np.full(len(indices), self._custom_slots[key], dtype=np.int64)
        table = self._split_slots.get(split)
        if table is None:
            table = self._split_slots[split] = np.full(len(self.setup.task.examples(split)), -1, dtype=np.int64)
        wanted = np.asarray(indices, dtype=np.int64)
        slots = table[wanted]
        if (slots < 0).any():
            by_index = dict(zip(wanted.tolist(), examples, strict=True))
            fresh = np.unique(wanted[slots < 0]).tolist()
            table[fresh] = self._add(split, fresh, [by_index[i] for i in fresh])
            slots = table[wanted]
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
