"""Suites: which agents run on which envs, with how many seeds, under which budget.

Every env gets a ``zero-shot`` row: the untrained policy, evaluated the same way.

Example:
    >>> runs = suite("quick")
    >>> sorted({r.agent for r in runs})
    ['a2c', 'ppo', 'reinforce', 'sb3-ppo', 'trpo', 'zero-shot']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ZERO_SHOT = "zero-shot"
SB3_PPO = "sb3-ppo"


@dataclass(frozen=True)
class RunSpec:
    """One leaderboard run: an agent trained on an env with a seed under a token budget."""

    suite: str
    agent: str
    env_id: str
    seed: int
    budget_tokens: int
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def run_id(self) -> str:
        return f"{self.env_id}__{self.agent}__seed{self.seed}"

    @property
    def command(self) -> str:
        return f"textgym leaderboard run --suite {self.suite} --only {self.run_id}"


# Shared by every agent of a suite, so rows differ only in the algorithm.
QUICK_COMMON: dict[str, Any] = {
    "model": "default",
    "batch_size": 8,
    "lora_rank": 8,
    "learning_rate": 3e-4,
    "kl_coef": 0.05,
    "eval_episodes": 32,
}
QUICK_AGENTS: dict[str, dict[str, Any]] = {
    "reinforce": {"baseline": "leave_one_out", "samples_per_prompt": 4},
    "a2c": {},
    "ppo": {"minibatch_size": 4},
    "trpo": {"max_kl": 0.02, "cg_iters": 3, "line_search_steps": 6},
    SB3_PPO: {},
}
COMMON_KEYS = set(QUICK_COMMON)
QUICK_ENVS = {"TextGen-Sentiment-v0": 1152, "TextGen-Arithmetic-v0": 768}


def _runs(name: str, envs: dict[str, int], agents: dict[str, dict[str, Any]], common: dict, seeds: range) -> list:
    runs = []
    for env_id, budget in envs.items():
        for seed in seeds:
            runs.append(RunSpec(name, ZERO_SHOT, env_id, seed, 0, dict(common)))
            runs += [RunSpec(name, a, env_id, seed, budget, {**common, **extra}) for a, extra in agents.items()]
    return runs


SUITES = {
    "quick": lambda: _runs("quick", QUICK_ENVS, QUICK_AGENTS, QUICK_COMMON, range(3)),
    "full": lambda: _runs(
        "full",
        {"TextGen-Sentiment-v0": 20_000, "TextGen-Arithmetic-v0": 10_000, "TextGen-Reverse-v0": 10_000},
        QUICK_AGENTS,
        {**QUICK_COMMON, "batch_size": 32, "eval_episodes": 200},
        range(3),
    ),
}


def suite(name: str) -> list[RunSpec]:
    """The runs of a named suite."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}: expected one of {sorted(SUITES)}")
    return SUITES[name]()
