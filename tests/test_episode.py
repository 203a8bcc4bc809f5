"""The pieces the envs share: batched prompt draws, byte-table decoding, the prompt bank, score checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.seeding import np_random

from textgym.bank import PromptBank
from textgym.decoding import ByteTable, TokenizerDecoder, is_plain_byte_level, make_decoder
from textgym.env import TextGenEnv
from textgym.episode import draw_examples, prompt_row
from textgym.rewards import validate_scores
from textgym.streams import IndexStreams


def test_index_streams_match_one_generator_per_stream_across_blocks_and_range_switches():
    seeds = [3, 4, 5]
    streams = IndexStreams(seeds, block=128)
    references = [np_random(s)[0] for s in seeds]
    rng = np.random.default_rng(0)
    for draw in range(600):  # several blocks (64, 128, 128, ...) and frequent switches of range
        n = 50 if draw % 7 else 9
        rows = np.flatnonzero(rng.random(3) < 0.7)
        got = streams.draw(rows, n)
        assert got.tolist() == [int(references[r].integers(n)) for r in rows]


def test_byte_table_decodes_exactly_as_the_tokenizer(tokenizer):
    assert is_plain_byte_level(tokenizer)
    table = make_decoder(tokenizer)
    assert isinstance(table, ByteTable) and make_decoder(tokenizer) is table  # built once per tokenizer
    rng = np.random.default_rng(0)
    ids = np.concatenate(
        [
            rng.integers(0, len(tokenizer), size=(300, 12)),  # any token, special ones included
            rng.integers(0, 300, size=(300, 12)),  # special and single-byte tokens: broken UTF-8 throughout
        ]
    )
    counts = rng.integers(0, 13, size=len(ids))
    rows = [row[:count] for row, count in zip(ids.tolist(), counts.tolist(), strict=True)]
    expected = tokenizer.batch_decode(rows, skip_special_tokens=True)
    assert table(rows) == expected
    assert table.padded(ids, counts) == expected
    assert table.padded(ids[:, :0], np.zeros(len(ids), dtype=np.int64)) == [""] * len(ids)
    assert table.padded(ids[:0], counts[:0]) == []
    ascii_tokens = np.flatnonzero([len(b) > 0 and b.isascii() for b in table.table])
    whole_rows = rng.choice(ascii_tokens, size=(50, 12))  # all-ASCII text: the one-decode path
    expected = tokenizer.batch_decode(whole_rows.tolist(), skip_special_tokens=True)
    assert table.padded(whole_rows, np.full(50, 12)) == expected
    assert table.padded(np.full((4, 3), tokenizer.eos_token_id), np.full(4, 3)) == [""] * 4  # no bytes at all
    broken_tokens = np.flatnonzero([not _is_utf8(b) for b in table.table])  # e.g. one byte of a character
    broken_rows = rng.choice(broken_tokens, size=(20, 5))  # every row decoded on its own
    expected = tokenizer.batch_decode(broken_rows.tolist(), skip_special_tokens=True)
    assert table.padded(broken_rows, np.full(20, 5)) == expected


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_tokenizers_that_are_not_plain_byte_level_decode_through_the_tokenizer():
    from transformers import AutoTokenizer

    from textgym.rewards.encoder import minilm_path

    wordpiece = AutoTokenizer.from_pretrained(minilm_path())  # WordPiece: its decoder joins word pieces
    decoder = make_decoder(wordpiece)
    assert isinstance(decoder, TokenizerDecoder)
    ids = wordpiece("a fine film", add_special_tokens=False)["input_ids"]
    assert decoder.padded(np.array([ids, ids]), np.array([3, 1])) == ["a fine film", "a"]


def test_prompt_bank_encodes_each_prompt_once_and_keys_custom_prompts_by_text():
    setup = TextGenEnv(task="arithmetic").setup
    bank = PromptBank(setup, "cpu", capacity=2)
    first = bank.slots(draw_examples(setup, {"prompt_index": [5, 9, 5]}, 3, None))
    assert first.tolist() == [0, 1, 0] and bank.size == 2
    again = bank.slots(draw_examples(setup, {"prompt_index": [9, 7, 8]}, 3, None))  # grows past its capacity
    assert again.tolist() == [1, 2, 3] and bank.ids.shape[0] >= 4
    custom = bank.slots(draw_examples(setup, {"prompt": "2+2="}, 2, None))
    assert custom.tolist() == [4, 4] and bank.slots(draw_examples(setup, {"prompt": "2+2="}, 1, None)).tolist() == [4]
    ids = setup.encode("train", 9, setup.task.examples("train")[9])
    row, mask = prompt_row(setup, ids)
    assert bank.ids[1].tolist() == row[: setup.max_prompt_tokens].tolist() and bank.lengths[1] == len(ids)
    assert bank.mask_by_length[len(ids)].tolist() == mask.tolist()


def test_draw_examples_checks_prompt_indices():
    setup = TextGenEnv(task="arithmetic").setup
    with pytest.raises(ValueError, match="one per sub-env"):
        draw_examples(setup, {"prompt_index": [1, 2]}, 3, None)
    with pytest.raises(ValueError, match="prompt_index must be an int in"):
        draw_examples(setup, {"prompt_index": [1, -1]}, 2, None)
    with pytest.raises(ValueError, match="unknown split"):
        draw_examples(setup, {"split": "test"}, 1, None)


def test_validate_scores_takes_lists_arrays_and_tensors_and_names_bad_values():
    assert validate_scores(torch.tensor([0.5, 1.0]), ["p", "q"], ["a", "b"]) == [0.5, 1.0]
    assert validate_scores(np.array([2.0]), ["p"], ["a"]) == [2.0]
    with pytest.raises(ValueError, match="returned None for prompt 'q'"):
        validate_scores([0.0, None], ["p", "q"], ["a", "b"])
    with pytest.raises(ValueError, match="sequence of floats"):
        validate_scores(0.5, ["p"], ["a"])
    with pytest.raises(ValueError, match="sequence of floats"):
        validate_scores(["high"], ["p"], ["a"])
