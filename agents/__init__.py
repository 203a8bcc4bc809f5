"""agents: LM policies with REINFORCE, A2C, PPO, TRPO, DQN, offline ILQL and DPO, and an SFT warm start, for
textgym envs.

Example:
    >>> from agents import make_trainer
    >>> make_trainer("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown algo 'nope': expected one of ['a2c', 'dpo', 'dqn', 'ilql', 'ppo', 'reinforce', 'sft', 'trpo']
"""

from __future__ import annotations

from typing import Any

from textgym.registry import load_entry_point

ALGOS: dict[str, str] = {
    "reinforce": "agents.reinforce:Reinforce",
    "a2c": "agents.a2c:A2C",
    "ppo": "agents.ppo:PPO",
    "trpo": "agents.trpo:TRPO",
    "sft": "agents.sft:SFT",
    "dqn": "agents.dqn:DQN",
    "ilql": "agents.ilql:ILQL",
    "dpo": "agents.dpo:DPO",
}


def trainer_class(algo: str) -> Any:
    """The trainer class registered as ``algo``."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}: expected one of {sorted(ALGOS)}")
    return load_entry_point(ALGOS[algo], "algo")


def make_trainer(algo: str, **kwargs: Any) -> Any:
    """Build the trainer for ``algo`` with config overrides, e.g. ``make_trainer("ppo", model="tiny")``."""
    return trainer_class(algo)(**kwargs)
