"""A chat dataset with an answer column, scored zero-shot: `python examples/custom_dataset.py`.

Rows have a conversational `prompt` (turns, rendered with the model's chat template) and an `answer` column,
which reaches the reward as a keyword argument, as in TRL. The `test` split is the held-out one.
The default model takes a minute or so on a CPU; `--model tiny` runs in seconds.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from datasets import Dataset, DatasetDict

import textgym  # noqa: F401  (registers the ids)
from agents.evaluation import evaluate_policy
from agents.policy import LMPolicy
from agents.sampling import SamplingConfig


def rows(pairs: list[tuple[int, int]]) -> dict[str, list]:
    system = {"role": "system", "content": "Answer with the number only."}
    return {
        "prompt": [[system, {"role": "user", "content": f"What is {a} plus {b}?"}] for a, b in pairs],
        "answer": [str(a + b) for a, b in pairs],
    }


def exact_answer(prompts: list[str], completions: list[str], answer: list[str], **info) -> list[float]:
    """1 when the reply starts with the answer (``answer`` is the dataset's column, one value per episode)."""
    return [float(c.strip().startswith(a)) for c, a in zip(completions, answer, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--episodes", type=int, default=32)
    args = parser.parse_args()
    splits = DatasetDict(
        {
            "train": Dataset.from_dict(rows([(a, b) for a in range(1, 10) for b in range(1, 10) if (a + b) % 4])),
            "test": Dataset.from_dict(rows([(a, b) for a in range(1, 10) for b in range(1, 10) if not (a + b) % 4])),
        }
    )
    envs = gym.make_vec(
        "TextGen-v0",
        num_envs=8,
        vectorization_mode="vector_entry_point",
        prompts=splits,
        reward=exact_answer,
        chat_template=True,
        max_new_tokens=6,
        tokenizer=args.model,
    )
    policy = LMPolicy.from_pretrained(args.model, value_head=False, reference=False)
    figures = evaluate_policy(policy, envs, SamplingConfig(temperature=0.7), num_episodes=args.episodes)
    print(f"zero-shot exact answers on the test split: {figures['eval/score_mean']:.3f}")
    for sample in figures["eval/sample_pairs"][:3]:
        print(f"  {sample['prompt']!r} -> {sample['completion']!r} ({sample['reward']:.0f})")


if __name__ == "__main__":
    main()
