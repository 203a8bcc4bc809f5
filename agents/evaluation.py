"""Held-out evaluation of a policy, apart from any trainer (as SB3's ``evaluate_policy``).

Example:
    >>> import gymnasium as gym, textgym
    >>> from agents.policy import LMPolicy
    >>> from agents.sampling import SamplingConfig
    >>> envs = gym.make_vec("TextGen-Reverse-v0", num_envs=4, vectorization_mode="vector_entry_point")
    >>> policy = LMPolicy.from_pretrained("tiny", value_head=False, reference=False)
    >>> figures = evaluate_policy(policy, envs, SamplingConfig(), num_episodes=4)
    >>> figures["eval/kl_k3"], len(figures["eval/sample_pairs"])
    (0.0, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from agents.losses import kl_penalty
from agents.policy import LMPolicy
from agents.rollout import Rollout, collect
from agents.sampling import SamplingConfig
from textgym.rewards.form import ngrams, words

EVAL_SEED = 1_000_003
SAMPLE_PAIRS = 8  # held-out samples each evaluation reports (eval/sample_pairs; the run's samples/ reports)
SCORE_PREFIX = "eval/score/"  # the figures of the independent scorers: eval/score/<reward name>


@torch.no_grad()
def evaluate_policy(
    policy: LMPolicy,
    envs: Any,
    sampling: SamplingConfig,
    num_episodes: int,
    seed: int = 0,
    scorers: Sequence[str] = (),
) -> dict[str, Any]:
    """Quality on the held-out split: task reward, KL and perplexity under the reference, distinct-n, samples.

    Args:
        policy: the policy; its reference (if it has one) is what KL and perplexity are measured against, else
            the policy is its own reference (KL 0), as an untrained model is.
        envs: a ``TextGenVectorEnv``; its ``num_envs`` episodes run at a time.
        sampling: how to sample (temperature, top-k, top-p); the learning log-probs use its temperature.
        num_episodes: the first ``num_episodes`` prompts of the eval split (repeated when it has fewer).
        seed: seeds the sampling, so that two evaluations with the same seed see the same random numbers.
        scorers: reward names (``textgym.rewards.REWARDS``) that also score the same completions, as
            ``eval/score/<name>``: an independent check that a rising task reward is the behaviour it stands for.

    ``eval/kl`` is the mean over episodes of the summed per-token ``log pi - log ref`` of the sampled tokens (k1:
    unbiased, but a finite sample can come out negative); ``eval/kl_k3`` sums the k3 estimator ``r - 1 - log r``
    (``r = ref / pi``), which is never negative.
    """
    n, batch_size = num_episodes, envs.num_envs
    scores, kls, kls_k3, ref_nll, tokens = [], [], [], 0.0, 0
    prompts: list[str] = []
    completions: list[str] = []
    own_texts: list[str] = []  # the policy's own tokens (a multi-turn env's turns left out), for distinct-n
    available = len(envs.setup.task.examples("eval"))
    for start in range(0, n, batch_size):
        indices = [(start + i) % available for i in range(batch_size)]  # wraps round small eval sets
        options = {"split": "eval", "prompt_index": indices}
        generator = torch.Generator(envs.device).manual_seed(seed * 1_000_003 + EVAL_SEED + start)
        batch = collect(envs, policy, sampling, generator, EVAL_SEED, options)
        keep = min(batch_size, n - start)
        logp, ref = _logprobs(policy, batch, sampling.temperature)
        mask = batch.mask[:keep]
        scores.append(batch.scores[:keep])
        kls.append(((logp - ref)[:keep] * mask).sum(1))
        kls_k3.append((kl_penalty(logp, ref, "k3")[:keep] * mask).sum(1))
        prompts += batch.prompts[:keep]
        ref_nll -= float((ref[:keep] * mask).sum())
        tokens += int(mask.sum())
        completions += batch.completions[:keep]
        own_texts += policy_texts(envs, batch)[:keep]
    all_scores = torch.cat(scores)
    texts = [f"{p}\u2502{c}".replace("\n", " ") for p, c in zip(prompts[:4], completions[:4], strict=True)]
    return {
        "eval/score_mean": float(all_scores.mean()),
        "eval/score_std": float(all_scores.std()) if n > 1 else 0.0,
        "eval/kl": float(torch.cat(kls).mean()),
        "eval/kl_k3": float(torch.cat(kls_k3).mean()),
        **independent_scores(envs, scorers, prompts, completions),
        "eval/ref_perplexity": math.exp(ref_nll / max(tokens, 1)),
        "eval/distinct_1": distinct_ngrams(own_texts, 1),
        "eval/distinct_2": distinct_ngrams(own_texts, 2),
        "eval/episode_length": tokens / n,
        "eval/samples": "\n".join(texts),
        "eval/sample_pairs": [
            {"prompt": prompts[i], "completion": completions[i], "reward": float(all_scores[i])}
            for i in range(min(SAMPLE_PAIRS, n))
        ],
    }


def policy_texts(envs: Any, batch: Rollout) -> list[str]:
    """What the policy itself wrote in each episode: the completions, less a multi-turn env's own turns."""
    if batch.episode_mask is None:
        return batch.completions
    rows = [actions[mask.bool()].tolist() for actions, mask in zip(batch.actions, batch.mask, strict=True)]
    return envs.setup.decode(rows)


def independent_scores(
    envs: Any, scorers: Sequence[str], prompts: list[str], completions: list[str]
) -> dict[str, float]:
    """Mean score of the eval completions under each named reward (with the eval examples' references)."""
    from textgym.rewards import make_reward

    if not scorers:
        return {}
    examples = envs.setup.task.examples("eval")
    references = [list(examples[i % len(examples)].references) for i in range(len(completions))]
    return {
        f"{SCORE_PREFIX}{name}": float(np.mean(make_reward(name)(prompts, completions, references=references)))
        for name in scorers
    }


def _logprobs(policy: LMPolicy, batch: Rollout, temperature: float) -> tuple[Tensor, Tensor]:
    """Per-token log-probs of a batch under the policy and under the reference (the policy if none)."""
    args = (batch.input_ids, batch.attention_mask, batch.num_generated, temperature)
    logp = policy.score_tokens(*args, with_entropy=False).logprobs
    return logp, (policy.reference_logprobs(*args) if policy.has_reference else logp)


def distinct_ngrams(texts: list[str], n: int) -> float:
    """Corpus distinct-n: unique word n-grams over all n-grams of all ``texts`` (0 when there are none).

    Example:
        >>> distinct_ngrams(["the cat", "the dog"], 1)
        0.75
    """
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0
