"""Stock Stable-Baselines3 PPO on a textgym env, then SB3's own evaluate_policy: `python examples/sb3_ppo.py`.

SB3 calls the policy once per token on the whole prefix, so it is slower than the native agents (see
`python -m benchmarks.sb3_vs_native`): the default model takes CPU minutes;
`--model tiny --total-timesteps 96` runs in seconds.
"""

from __future__ import annotations

import argparse

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import textgym  # noqa: F401  (registers the ids)
from agents.sb3 import KLPenaltyCallback, LMActorCriticPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--total-timesteps", type=int, default=1024)
    args = parser.parse_args()
    envs = make_vec_env("TextGen-Reverse-v1", n_envs=2, seed=0, env_kwargs={"tokenizer": args.model})
    agent = PPO(
        LMActorCriticPolicy,
        envs,
        n_steps=48,  # per env: a few whole 12-token episodes
        batch_size=24,
        gamma=1.0,
        learning_rate=3e-4,
        policy_kwargs={"model": args.model, "lora_rank": 8, "reference": True, "sampling": {"top_k": 50}},
        seed=0,
    )
    agent.learn(total_timesteps=args.total_timesteps, callback=KLPenaltyCallback(coef=0.05))
    mean, std = evaluate_policy(agent, envs, n_eval_episodes=8)  # SB3 evaluates on the envs' (train) prompts
    print(f"reward after {args.total_timesteps} steps: {mean:.3f} +- {std:.3f} (8 episodes, train prompts)")


if __name__ == "__main__":
    main()
