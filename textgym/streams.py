"""Per-sub-env random prompt draws, batched so that a vector env draws them without a Python call each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random


class IndexStreams:
    """``B`` independent generators drawing uniform indices a block at a time.

    Stream ``i`` yields exactly what ``np_random(seeds[i])[0].integers(n)`` would yield call after call (the
    draws a single ``TextGenEnv`` seeded with ``seeds[i]`` makes), but NumPy is called once per block of
    draws of a stream rather than once per draw; blocks start at 64 draws and double up to ``block``. When ``n``
    changes (a draw from another split), the stream rewinds to the start of its block and replays the draws
    it has used, so the sequence stays exact.

    Example:
        >>> streams = IndexStreams([0, 1])
        >>> first = streams.draw(np.array([0, 1]), n=10)
        >>> int(first[0]) == int(np_random(0)[0].integers(10))
        True
    """

    def __init__(self, seeds: Sequence[int | None], block: int = 1024) -> None:
        self.block = block
        count = len(seeds)
        self._size: np.ndarray = np.zeros(count, dtype=np.int64)  # size of each stream's current block
        self._seeds = list(seeds)
        self._rngs: list[np.random.Generator | None] = [None] * count  # built on first use
        self._buffer: np.ndarray = np.zeros((count, block), dtype=np.int64)
        self._cursor: np.ndarray = np.zeros(count, dtype=np.int64)  # next unused draw of each block
        self._n: np.ndarray = np.zeros(count, dtype=np.int64)  # the range each block was drawn for (0: none yet)
        self._block_start: list[Mapping[str, Any] | None] = [None] * count  # generator state before each block

    def draw(self, rows: np.ndarray, n: int) -> np.ndarray:
        """The next index in ``[0, n)`` of each stream in ``rows`` (distinct rows), as an int64 array."""
        stale = rows[(self._cursor[rows] >= self._size[rows]) | (self._n[rows] != n)]
        for row in stale.tolist():
            self._refill(row, n)
        picked = self._buffer[rows, self._cursor[rows]]
        self._cursor[rows] += 1
        return picked

    def _refill(self, row: int, n: int) -> None:
        rng = self._generator(row)
        used, size = int(self._cursor[row]), int(self._size[row])
        start = self._block_start[row]
        if used < size and start is not None:  # a switch of range: give back the unused draws of this block
            rng.bit_generator.state = start
            rng.integers(int(self._n[row]), size=used)
        size = min(max(2 * size, 64), self.block)
        self._block_start[row] = rng.bit_generator.state
        self._buffer[row, :size] = rng.integers(n, size=size)
        self._n[row], self._cursor[row], self._size[row] = n, 0, size

    def _generator(self, row: int) -> np.random.Generator:
        rng = self._rngs[row]
        if rng is None:
            rng = self._rngs[row] = np_random(self._seeds[row])[0]
        return rng
