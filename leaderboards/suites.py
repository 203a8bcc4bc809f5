"""Suites: which agents run on which envs, with how many seeds, under which budget.

Every env gets a ``zero-shot`` row: the untrained policy, evaluated the same way. Every result is evaluated
on the same ``eval_episodes`` fixed held-out prompts of the env's eval split (200 in the shipped suites),
and scored again by the env's independent scorers (:data:`INDEPENDENT_SCORERS`) where one exists.

Example:
    >>> runs = suite("quick")
    >>> sorted({r.agent for r in runs})
    ['a2c', 'dqn', 'ilql', 'ppo', 'reinforce', 'sft', 'sft+ppo', 'trpo', 'zero-shot']
    >>> sorted({r.env_id for r in runs})
    ['TextGen-Arithmetic-v1', 'TextGen-GuessNumber-v0', 'TextGen-Reverse-v1', 'TextGen-Sentiment-v0']
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from textgym import MULTI_TURN_IDS

ZERO_SHOT = "zero-shot"
SB3_PPO = "sb3-ppo"
SFT = "sft"
SFT_PPO = "sft+ppo"  # SFT for half the budget, then PPO from its weights for the other half
ILQL = "ilql"  # offline: learns from the zero-shot policy's scored samples of train prompts (OFFLINE_EPISODES)
OFFLINE_EPISODES = 256
SINGLE_TURN_AGENTS = {"dqn", ILQL}
EVAL_EPISODES = 200
# settings of a row's preparation (an sft+ppo row's SFT phase, an ilql row's dataset), not of its trainer
WARM_START_KEYS = {"sft_learning_rate", "offline_episodes"}

# A second scorer of the same held-out completions that does not share the training reward's blind spots.
# Exact-match tasks (Arithmetic, Reverse) need none; envs missing here have no offline second scorer.
INDEPENDENT_SCORERS: dict[str, tuple[str, ...]] = {
    "TextGen-Sentiment-v0": ("minilm_sentiment",),  # trained on VADER, checked by the MiniLM classifier
    "TextGen-SentimentClassifier-v0": ("vader",),  # and the other way round
    "TextGen-Headline-v0": ("rougeL",),  # trained on chrF
    "TextGen-Detox-v0": ("vader",),  # non-offensive should not mean hostile in other words
    "TextGen-Translate-v0": ("bleu", "meteor"),  # trained on chrF (characters): words and synonyms too
}
# Envs whose tasks have demonstrations for the SFT rows (see textgym.tasks.Task.demonstration).
WITH_DEMONSTRATIONS = {
    "TextGen-Arithmetic-v0",
    "TextGen-Arithmetic-v1",
    "TextGen-Reverse-v0",
    "TextGen-Reverse-v1",
    "TextGen-Headline-v0",
    "TextGen-Concepts-v0",
    "TextGen-Dialogue-v0",
    "TextGen-NER-v0",
    "TextGen-Translate-v0",
}


@dataclass(frozen=True)
class RunSpec:
    """One leaderboard run: an agent trained on an env with a seed under a token budget."""

    suite: str
    agent: str
    env_id: str
    seed: int
    budget_tokens: int
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    variant: str = ""  # a sweep's settings, e.g. "learning_rate=3e-4": its own row and run id

    @property
    def name(self) -> str:
        """The row's name on the page: the agent, with the variant when there is one."""
        return f"{self.agent} [{self.variant}]" if self.variant else self.agent

    @property
    def run_id(self) -> str:
        variant = "".join(c if c.isalnum() or c in ".-" else "-" for c in self.variant)
        return f"{self.env_id}__{self.agent.replace('+', '-')}{'--' + variant if variant else ''}__seed{self.seed}"

    @property
    def command(self) -> str:
        return f"textgym leaderboard run --suite {self.suite} --only {self.run_id}"

    @property
    def algo(self) -> str:
        """The native trainer of the row: zero-shot and SB3 rows use a REINFORCE shell only to evaluate."""
        return {ZERO_SHOT: "reinforce", SB3_PPO: "reinforce", SFT_PPO: "ppo"}.get(self.agent, self.agent)

    @property
    def trainer_config(self) -> dict[str, Any]:
        """The row's config for :attr:`algo`'s trainer (the warm start's own settings left out)."""
        return {k: v for k, v in self.config.items() if k not in WARM_START_KEYS}

    @property
    def scorers(self) -> tuple[str, ...]:
        return INDEPENDENT_SCORERS.get(self.env_id, ())


# Shared by every agent of a suite, so rows differ only in the algorithm.
QUICK_COMMON: dict[str, Any] = {
    "model": "default",
    "batch_size": 8,
    "lora_rank": 8,
    "learning_rate": 3e-4,
    "kl_coef": 0.05,
    "eval_episodes": EVAL_EPISODES,
}
# Per-algorithm settings: score normalisation as the tiny-model learning tests found it works best
# (tests/test_agents.py); the `sweep` suite below compares the choices on the real model.
QUICK_AGENTS: dict[str, dict[str, Any]] = {
    "reinforce": {"baseline": "leave_one_out", "samples_per_prompt": 4},
    "a2c": {"score_normalization": "batch"},
    "ppo": {"minibatch_size": 4, "score_normalization": "batch"},
    "trpo": {"max_kl": 0.02, "cg_iters": 3, "line_search_steps": 6, "score_normalization": "batch"},
    # epsilon-greedy over the top 20, decaying over the ~32 iterations every quick budget gives (see configs/dqn.yaml)
    # the defaults, with minibatches of 8 (replay ratio 2: 2 steps of 8 episodes per 8 new ones)
    "dqn": {"minibatch_size": 8},
    # offline, from the zero-shot policy's own scored samples; its budget is tokens of that data read
    # the defaults (shared_trunk off: see agents/ilql.py), restated over the common learning rate and KL
    ILQL: {"learning_rate": 1e-3, "kl_coef": 0.0, "offline_episodes": OFFLINE_EPISODES},
    SFT: {"learning_rate": 1e-3, "kl_coef": 0.0},
    SFT_PPO: {"minibatch_size": 4, "score_normalization": "batch", "sft_learning_rate": 1e-3},
}
COMMON_KEYS = set(QUICK_COMMON)
# Generated tokens of training per run (the policy's own: a multi-turn env's answers are not counted). Sentiment
# episodes are 24 tokens, Reverse 12, Arithmetic-v1 4, GuessNumber about 12 of the policy's in some 45.
# Quick: the v1 envs of Reverse and Arithmetic, where the default model succeeds sometimes (v0: about 1%), and the
# multi-turn guessing game.
QUICK_ENVS = {
    "TextGen-Sentiment-v0": 6144,
    "TextGen-Reverse-v1": 3072,
    "TextGen-Arithmetic-v1": 1024,
    "TextGen-GuessNumber-v0": 2048,
}
# The full suite: every registered env. Slow envs get smaller budgets (their cost per token is in the table).
FULL_ENVS = {
    "TextGen-Sentiment-v0": 6144,
    "TextGen-SentimentClassifier-v0": 6144,
    "TextGen-Reverse-v0": 3072,
    "TextGen-Reverse-v1": 3072,
    "TextGen-Arithmetic-v0": 2048,
    "TextGen-Arithmetic-v1": 1024,
    "TextGen-Headline-v0": 4096,
    "TextGen-Concepts-v0": 4096,
    "TextGen-Concepts-v1": 4096,  # the dense-reward variant
    "TextGen-Detox-v0": 4096,
    "TextGen-Dialogue-v0": 2048,  # the reward model and 32-token replies make it the slowest per token
    "TextGen-NER-v0": 2048,  # 2-shot prompts of up to 224 tokens
    "TextGen-Translate-v0": 2048,
    "TextGen-GuessNumber-v0": 2048,  # multi-turn: the env's own answers are not counted as generated tokens
}
FULL_AGENTS = {**QUICK_AGENTS, SB3_PPO: {}}


def _runs(name: str, envs: dict[str, int], agents: dict[str, dict[str, Any]], common: dict, seeds: range) -> list:
    runs = []
    for env_id, budget in envs.items():
        for seed in seeds:
            runs.append(RunSpec(name, ZERO_SHOT, env_id, seed, 0, dict(common)))
            for agent, extra in agents.items():
                if agent in (SFT, SFT_PPO) and env_id not in WITH_DEMONSTRATIONS:
                    continue
                if agent == SB3_PPO and env_id in MULTI_TURN_IDS:  # SB3 would count the env's tokens as its steps
                    continue
                if agent in SINGLE_TURN_AGENTS and env_id in MULTI_TURN_IDS:  # replay holds single-turn layouts
                    continue
                runs.append(RunSpec(name, agent, env_id, seed, budget, {**common, **extra}))
    return runs


# The sweep behind the per-algorithm settings: each RL algorithm x each combination of the grid, 2 seeds, on the
# cheapest quick env. Run it with `textgym leaderboard run --suite sweep --results benchmarks/results/sweep`,
# then `textgym leaderboard render --results benchmarks/results/sweep --page docs/sweep.md`.
SWEEP_ENVS = {"TextGen-Arithmetic-v1": 1024}
SWEEP_AGENTS = ("reinforce", "a2c", "ppo", "trpo")
SWEEP_GRID: dict[str, tuple[Any, ...]] = {"score_normalization": ("none", "batch"), "learning_rate": (3e-4, 1e-3)}


def _sweep_runs(seeds: range) -> list[RunSpec]:
    runs = []
    for env_id, budget in SWEEP_ENVS.items():
        for seed in seeds:
            runs.append(RunSpec("sweep", ZERO_SHOT, env_id, seed, 0, dict(QUICK_COMMON)))
            for agent in SWEEP_AGENTS:
                for values in itertools.product(*SWEEP_GRID.values()):
                    combo = dict(zip(SWEEP_GRID, values, strict=True))
                    variant = ",".join(f"{k}={v}" for k, v in combo.items())
                    config = {**QUICK_COMMON, **QUICK_AGENTS[agent], **combo}
                    runs.append(RunSpec("sweep", agent, env_id, seed, budget, config, variant))
    return runs


# A suite of seconds on the random tiny model: checks an install, a cluster (`--suite smoke --ray`) or the runner
# itself; its numbers mean nothing.
SMOKE_COMMON: dict[str, Any] = {**QUICK_COMMON, "model": "tiny", "batch_size": 4, "eval_episodes": 8}
SMOKE_AGENTS = {"reinforce": QUICK_AGENTS["reinforce"], "ppo": {**QUICK_AGENTS["ppo"], "minibatch_size": 2}}

SUITES = {
    "quick": lambda: _runs("quick", QUICK_ENVS, QUICK_AGENTS, QUICK_COMMON, range(3)),
    "full": lambda: _runs("full", FULL_ENVS, FULL_AGENTS, QUICK_COMMON, range(3)),
    "sweep": lambda: _sweep_runs(range(2)),
    "smoke": lambda: _runs("smoke", {"TextGen-Reverse-v0": 64}, SMOKE_AGENTS, SMOKE_COMMON, range(1)),
}


def suite(name: str) -> list[RunSpec]:
    """The runs of a named suite."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}: expected one of {sorted(SUITES)}")
    return SUITES[name]()
