"""Fast decoding of generated token ids to text, identical to the tokenizer's own decode.

Byte-level BPE tokenizers (GPT-2, SmolLM2, Llama 3, Qwen...) decode by concatenating each token's bytes
and reading the result as UTF-8, with invalid sequences replaced by U+FFFD. :class:`ByteTable` does that
from a table of every token's bytes built once, which is several times faster than the Rust decoder's
per-call overhead for the short completions RL generates. :func:`make_decoder` uses it only when the
tokenizer's decoder is exactly that (a plain ``ByteLevel`` decoder, no clean-up of spaces) and otherwise
falls back to the tokenizer, so the text is always the tokenizer's.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

_DECODERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # one decoder per tokenizer


def _byte_level_alphabet() -> dict[str, int]:
    """The ByteLevel (GPT-2) map from the printable character standing for a byte back to the byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


class ByteTable:
    """Decode token ids through a table of token bytes (special tokens map to no bytes).

    ``table(rows)`` decodes lists of ids; ``table.padded(ids, counts)`` decodes the first ``counts[i]`` ids of
    each row of an ``(R, T)`` array with a handful of NumPy calls, the way a vector env holds completions.

    Example:
        >>> import numpy as np
        >>> from textgym.models import load_tokenizer
        >>> tok = load_tokenizer("default")
        >>> ids = tok(" Hello world", add_special_tokens=False)["input_ids"]
        >>> table = ByteTable(tok)
        >>> table([ids + [tok.eos_token_id]])
        [' Hello world']
        >>> table.padded(np.array([ids, ids]), np.array([2, 1]))
        [' Hello world', ' Hello']
    """

    def __init__(self, tokenizer: Any) -> None:
        alphabet = _byte_level_alphabet()
        special = set(tokenizer.all_special_ids) | {
            i for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items() if added.special
        }
        table = []
        for token_id in range(len(tokenizer)):
            token = tokenizer.convert_ids_to_tokens(token_id)
            if token_id in special or token is None:
                table.append(b"")
            elif all(ch in alphabet for ch in token):
                table.append(bytes(alphabet[ch] for ch in token))
            else:  # an added token outside the byte alphabet is written as its own UTF-8 text
                table.append(token.encode("utf-8"))
        self.table = table
        lengths = np.array([len(b) for b in table], dtype=np.int64)
        offsets = np.cumsum(lengths) - lengths  # where each token's bytes start in the pool
        self._length_bits = max(int(lengths.max()).bit_length(), 1)
        packed = (offsets << self._length_bits) | lengths  # one lookup gives both, from a table half the size
        self._packed = packed.astype(np.int32 if packed.max() < 2**31 else np.int64)  # (V,)
        self._pool = np.frombuffer(b"".join(table), dtype=np.uint8)

    def __call__(self, rows: Sequence[Sequence[int]]) -> list[str]:
        table, join = self.table, b"".join
        return [join([table[i] for i in row]).decode("utf-8", "replace") for row in rows]

    def padded(self, ids: np.ndarray, counts: np.ndarray) -> list[str]:
        """Texts of ``ids[i, :counts[i]]`` for each row of an ``(R, T)`` int array."""
        rows, width = ids.shape
        if width == 0 or rows == 0:
            return [""] * rows
        packed = self._packed.take(ids)  # (R, T); take() is about twice as fast as fancy indexing
        counts = np.asarray(counts)
        if counts.min() < width:
            packed[np.arange(width)[None, :] >= counts[:, None]] = 0  # no bytes past each row's count
        packed = packed.ravel()
        lengths = packed & ((1 << self._length_bits) - 1)
        row_ends = np.cumsum(lengths)[width - 1 :: width].tolist()
        has_bytes = lengths > 0  # the tokens that have bytes, in output order
        starts = packed[has_bytes] >> self._length_bits
        data = self._pool.take(_concatenated_ranges(starts, lengths[has_bytes])).tobytes()
        bounds = zip([0, *row_ends[:-1]], row_ends, strict=True)
        if data.isascii():  # one decode, and byte offsets are character offsets
            text = data.decode("ascii")
            return [text[a:b] for a, b in bounds]
        return [data[a:b].decode("utf-8", "replace") for a, b in bounds]


def _concatenated_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` for positive lengths, as one cumsum
    of steps: 1 inside a range, and a jump from the end of one range to the start of the next.

    Example:
        >>> _concatenated_ranges(np.array([5, 0]), np.array([2, 3])).tolist()
        [5, 6, 0, 1, 2]
    """
    steps = np.ones(int(lengths.sum()), dtype=starts.dtype)
    if len(steps):
        steps[0] = starts[0]
        steps[np.cumsum(lengths[:-1])] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    return np.cumsum(steps, dtype=starts.dtype)


class TokenizerDecoder:
    """The tokenizer's own ``batch_decode``, behind the same interface as :class:`ByteTable`."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: Sequence[Sequence[int]]) -> list[str]:
        return self.tokenizer.batch_decode([list(r) for r in rows], skip_special_tokens=True)

    def padded(self, ids: np.ndarray, counts: np.ndarray) -> list[str]:
        return self([row[:count] for row, count in zip(ids.tolist(), np.asarray(counts).tolist(), strict=True)])


def is_plain_byte_level(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` decodes as :class:`ByteTable` does: a fast tokenizer whose whole decoder is
    ``ByteLevel`` and that does not clean up tokenization spaces."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return False
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    return decoder.get("type") == "ByteLevel"


def make_decoder(tokenizer: Any) -> ByteTable | TokenizerDecoder:
    """The fastest decoder giving exactly ``tokenizer.batch_decode(rows, skip_special_tokens=True)``.

    Built once per tokenizer object and shared (a ``SyncVectorEnv`` of 256 envs builds one table).
    """
    with contextlib.suppress(KeyError, TypeError):
        return _DECODERS[tokenizer]
    decoder = ByteTable(tokenizer) if is_plain_byte_level(tokenizer) else TokenizerDecoder(tokenizer)
    with contextlib.suppress(TypeError):  # an unhashable or non-weakrefable tokenizer is not cached
        _DECODERS[tokenizer] = decoder
    return decoder
