"""Pytest settings for every collected test, the packages' docstring examples included."""

from __future__ import annotations

import os

import torch

# 2 threads on the 2-core CI machine; TEXTGYM_TEST_THREADS=1 beside another busy job (oversubscribed OpenMP threads
# spin: a tiny-model test then runs several times slower)
torch.set_num_threads(int(os.environ.get("TEXTGYM_TEST_THREADS", "2")))
