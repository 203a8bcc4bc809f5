"""Every Python block of the README and docs/ runs as written, on the tiny model and seconds-sized budgets.

README blocks run one by one, each in a fresh namespace (a reader copies one block); a docs page's blocks run
in order in one namespace (a guide builds on its earlier blocks). The only changes are the substitutions in
:data:`FAST`, each of which must apply somewhere, so the table cannot go stale silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# documented model and budgets -> the tiny random model and budgets of seconds; nothing else is changed
FAST = [
    ('"default"', '"tiny"'),
    ("total_timesteps=20_000", "total_timesteps=64"),
    ("total_timesteps=4096", "total_timesteps=96"),
    ("learn(4096,", "learn(96,"),
    ("n_envs=8", "n_envs=2"),
    ("num_envs=64", "num_envs=4"),
]
PAGES = {"README.md": "each block", "docs/sb3.md": "whole page"}


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def fast(code: str, used: set[str]) -> str:
    for old, new in FAST:
        if old in code:
            used.add(old)
            code = code.replace(old, new)
    return code


def run_page(page: str, used: set[str]) -> None:
    namespace: dict = {}
    for number, block in enumerate(python_blocks(page), 1):
        if PAGES[page] == "each block":
            namespace = {}
        try:
            exec(compile(fast(block, used), f"{page} block {number}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{page} python block {number} fails: {err!r}\n{block}") from err


@pytest.mark.slow  # about a minute on 2 idle cores (the SB3 guide steps a PPO rollout token by token)
def test_docs_code_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save files in the working folder
    used: set[str] = set()
    for page in PAGES:
        assert python_blocks(page), f"{page} has no python block"
        run_page(page, used)
    assert used == {old for old, _ in FAST}, f"substitutions that no block needs any more: {set(dict(FAST)) - used}"


@pytest.mark.parametrize("page", ["README.md", "docs/sb3.md", "docs/benchmarks.md"])
def test_docs_name_only_files_that_exist(page):
    """Paths the docs point at (configs, modules, folders) exist in the repository."""
    text = (ROOT / page).read_text()
    named = set(re.findall(r"`((?:configs|examples|docs|benchmarks|agents|textgym|leaderboards)/[\w./-]+)`", text))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{page} names files that do not exist: {missing}"
