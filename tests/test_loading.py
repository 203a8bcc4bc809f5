"""Loading: models by path or hub id (fast, clear failures offline), preference JSONL, the supported cache API."""

from __future__ import annotations

import json
import logging
import time
import warnings

import pytest
import torch

from textgym.models import ModelNotFoundError, load_causal_lm, load_tokenizer, looks_like_path, tiny_causal_lm
from textgym.rewards.preference import load_pairs
from textgym.rewards.preference import main as preference_main

UNKNOWN_ID = "textgym-tests/no-such-model"


@pytest.fixture
def no_hub(monkeypatch):
    """The hub endpoint is a closed local port (refused at once) and offline mode is not declared."""
    from huggingface_hub import constants
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401  (import time is not the loader's)

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


# -- models -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("load", [load_causal_lm, load_tokenizer])
@pytest.mark.parametrize("name", ["./no/such/model", "~/no-such-textgym-model", "/no/such/model", "runs/a/b"])
def test_missing_local_path_names_the_path(load, name):
    with pytest.raises(ModelNotFoundError, match=rf"model path '{name}' does not exist") as err:
        load(name)
    assert isinstance(err.value, FileNotFoundError)  # callers catching FileNotFoundError/OSError still do
    assert "'default'" in str(err.value)


@pytest.mark.parametrize("load", [load_causal_lm, load_tokenizer])
def test_unknown_hub_id_fails_at_once_when_the_hub_is_unreachable(no_hub, load):
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        load(UNKNOWN_ID)
    assert time.perf_counter() - start < 5  # was a minute of retries
    message = str(err.value)
    assert UNKNOWN_ID in message and "neither a local folder" in message and "not reachable" in message
    assert "'default'" in message and "local model folder" in message


def test_unknown_hub_id_fails_fast_on_this_machine():
    """No endpoint patching: here the hub's name does not resolve; with a network the hub says 'not found'."""
    from transformers import AutoModelForCausalLM  # noqa: F401  (import time is not the loader's)

    start = time.perf_counter()
    with pytest.raises(OSError, match=UNKNOWN_ID):
        load_causal_lm(UNKNOWN_ID)
    assert time.perf_counter() - start < 15


def test_declared_offline_mode_names_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_causal_lm(UNKNOWN_ID)


def test_cached_hub_id_loads_without_the_hub(no_hub, monkeypatch, tmp_path):
    """An id already in the Hugging Face cache loads from it when the hub is down (no retries either)."""
    from huggingface_hub import constants

    repo = "textgym-tests/tiny-llama"
    snapshot = tmp_path / "models--textgym-tests--tiny-llama" / "snapshots" / ("0" * 40)
    tiny_causal_lm(vocab_size=64).save_pretrained(snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    model = load_causal_lm(repo)
    assert time.perf_counter() - start < 20  # 0.4 s on an idle machine; the hub's retries alone took a minute
    assert model.config.vocab_size == 64


def test_existing_local_folder_loads(tmp_path):
    folder = tmp_path / "my-model"
    tiny_causal_lm(vocab_size=32).save_pretrained(folder)
    assert load_causal_lm(str(folder)).config.vocab_size == 32


def test_paths_and_hub_ids_are_told_apart():
    assert looks_like_path("./m") and looks_like_path("/m") and looks_like_path("~/m") and looks_like_path("a/b/c")
    assert not looks_like_path("HuggingFaceTB/SmolLM2-135M-Instruct") and not looks_like_path("gpt2")


# -- the supported KV-cache API -----------------------------------------------------------------------------


def test_kv_cache_sampling_uses_the_supported_cache_api(caplog):
    """No deprecated ``past_key_values`` (kwarg: FutureWarning; output attribute: a logged warning)."""
    from agents.policy import LMPolicy

    clear_once = getattr(logging.Logger.warning_once, "cache_clear", None)  # transformers warns once per process
    if clear_once is not None:
        clear_once()
    # the model's own forward (fast_decode=False): the packed path has no transformers cache
    policy = LMPolicy(tiny_causal_lm(vocab_size=50), value_head=False, reference=False, fast_decode=False)
    ids, mask = torch.randint(0, 50, (2, 5)), torch.ones(2, 5, dtype=torch.long)
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error", FutureWarning)
        state = policy.prefill(ids, mask)
        state = policy.advance(state, torch.tensor([1, 2]))
        state = policy.advance(state, torch.tensor([3, 4]))
    assert state.cache.get_seq_length() == 7
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]
    full = policy.next_token_logits(torch.cat([ids, torch.tensor([[1, 3], [2, 4]])], 1), torch.ones(2, 7).long())
    torch.testing.assert_close(state.logits, full, atol=1e-4, rtol=1e-4)  # the cache gives the same logits


# -- preference pairs ---------------------------------------------------------------------------------------

GOOD = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"prompt": "p", "chosen": "a", ', r"not valid JSON"),
        ("[1, 2]", r"got a JSON list"),
        ('"just text"', r"got a JSON str"),
        ('{"prompt": "p", "chosen": "a"}', r"missing or not a string: rejected"),
        ('{"prompt": 3, "chosen": "a", "rejected": null}', r"missing or not a string: prompt, rejected"),
    ],
)
def test_bad_preference_line_names_file_line_and_keys(tmp_path, bad_line, expected):
    path = tmp_path / "prefs.jsonl"
    path.write_text(f"{GOOD}\n\n{GOOD}\n{bad_line}\n{GOOD}\n")
    with pytest.raises(ValueError, match=expected) as err:
        load_pairs(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4: ")  # the blank line counts: line numbers are the file's
    assert '"prompt", "chosen" and "rejected"' in message


def test_good_preference_file_and_empty_file(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(f"{GOOD}\n\n{GOOD}\n")
    assert load_pairs(path) == [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 2
    path.write_text("\n")
    with pytest.raises(ValueError, match="no preference pairs"):
        load_pairs(path)


def test_preference_trainer_reports_a_bad_line_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "prefs.jsonl"
    path.write_text(f"{GOOD}\nnot json\n")
    assert preference_main(["train", "--data", str(path), "--out", str(tmp_path / "rm.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: not valid JSON" in err and "error:" in err
    assert not (tmp_path / "rm.pt").exists()
