"""PromptBank: the initial observation rows of prompts, kept on the vector env's device."""

from __future__ import annotations

import numpy as np
import torch

from textgym.core import Draw, EpisodeSetup, prompt_row
from textgym.tasks import Example


class PromptBank:
    """Each prompt's left-padded token ids (``P`` columns) and length, encoded once and stored on ``device``.

    A reset then copies prompts out of the bank with one indexed read, instead of tokenizing and uploading
    them, and takes the attention-mask row from a ``(P + 1, L)`` table indexed by prompt length (small enough
    to stay in cache). Prompts are added on first use, those new in a batch tokenized in one call.

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
        prompt_tokens = setup.max_prompt_tokens
        self.ids = torch.empty((capacity, prompt_tokens), dtype=torch.long, device=self.device)
        self.lengths = torch.zeros(capacity, dtype=torch.long, device=self.device)
        masks = [prompt_row(setup, [setup.pad_token_id] * length)[1] for length in range(prompt_tokens + 1)]
        self.mask_by_length = torch.from_numpy(np.stack(masks)).to(self.device)  # (P+1, L)
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
        encoded = self.setup.encode_many(split, indices, examples)
        rows = np.stack([prompt_row(self.setup, ids)[0][: self.setup.max_prompt_tokens] for ids in encoded])
        start, count = self.size, len(rows)
        while start + count > self.ids.shape[0]:  # grow by doubling
            self.ids = torch.cat([self.ids, torch.empty_like(self.ids)])
            self.lengths = torch.cat([self.lengths, torch.zeros_like(self.lengths)])
        self.ids[start : start + count] = torch.from_numpy(rows).to(self.device)
        self.lengths[start : start + count] = torch.tensor([len(ids) for ids in encoded], device=self.device)
        self.size += count
        return np.arange(start, start + count, dtype=np.int64)
