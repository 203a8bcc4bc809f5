"""Your prompts and your reward, trained with PPO: `python examples/custom_reward.py`.

The reward pays for completions that mention the animal the prompt asks about. On the default model this takes
CPU minutes; `--model tiny --total-timesteps 64` runs in seconds.
"""

from __future__ import annotations

import argparse

from agents.ppo import PPO

PROMPTS = ["Tell me one fact about cats.", "Write a line about dogs.", "Say something nice about horses."]
HELD_OUT = ["Describe a cat in a few words.", "What do dogs like?", "Give me a horse fact."]


def mentions_the_animal(prompts: list[str], completions: list[str], **info) -> list[float]:
    """1 when the completion names the animal of its prompt, else 0 (any callable with this shape is a reward)."""
    animals = [next(a for a in ("cat", "dog", "horse") if a in p) for p in prompts]
    return [float(animal in completion.lower()) for animal, completion in zip(animals, completions, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--total-timesteps", type=int, default=2048)
    parser.add_argument("--run-dir", default="runs/custom_reward")
    args = parser.parse_args()
    agent = PPO(
        env_id="TextGen-v0",
        env_kwargs={"prompts": PROMPTS, "eval_prompts": HELD_OUT, "reward": mentions_the_animal, "max_new_tokens": 16},
        model=args.model,
        batch_size=8,
        minibatch_size=4,
        eval_episodes=24,
        run_dir=args.run_dir,
        overwrite=True,
    )
    before = agent.evaluate()["eval/score_mean"]
    agent.learn(total_timesteps=args.total_timesteps)
    after = agent.evaluate()["eval/score_mean"]
    print(f"held-out reward {before:.3f} -> {after:.3f}")


if __name__ == "__main__":
    main()
