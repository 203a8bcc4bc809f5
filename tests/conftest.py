"""Shared fixtures: the real SmolLM2 tokenizer (converted once), tiny random models for speed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tokenizer():
    from textgym.models import load_tokenizer

    return load_tokenizer("default")


@pytest.fixture
def tiny_model(tokenizer):
    from textgym.models import tiny_causal_lm

    return tiny_causal_lm(len(tokenizer), seed=0)
