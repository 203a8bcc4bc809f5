"""Training tokens/s: stock SB3 PPO with LMActorCriticPolicy vs the native PPO, same env, model and batch.

Both train the same LM (value head on the trunk) with the same PPO settings on ``B`` episodes per rollout:

- native: ``agents.ppo.PPO`` on ``TextGenVectorEnv`` (KV-cached sampling, one forward per episode to score and
  to train);
- SB3: ``stable_baselines3.PPO(LMActorCriticPolicy, DummyVecEnv of B TextGenEnv)`` (one full forward per
  token while sampling and per token again while training; SB3 has no KV cache or sequence batching).

Timed after one warm-up iteration each, in one process, with the same threads; tokens are generated tokens
(SB3's env steps). No KL penalty unless ``--kl`` (then the native ``kl_coef`` and SB3's ``KLPenaltyCallback``).

    python -m benchmarks.sb3_vs_native --model default --batch-size 8 --max-new-tokens 8 --iterations 2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import torch

import textgym  # noqa: F401
from benchmarks.common import report


def native_tokens_per_s(args: argparse.Namespace, env_kwargs: dict) -> float:
    from agents.logger import read_metrics
    from agents.ppo import PPO

    with tempfile.TemporaryDirectory(prefix="bench-native-") as run_dir:  # learn() writes a final checkpoint here
        agent = PPO(
            model=args.model,
            env_id=args.env,
            env_kwargs=env_kwargs,
            batch_size=args.batch_size,
            minibatch_size=args.batch_size,
            n_epochs=args.n_epochs,
            learning_rate=args.learning_rate,
            lora_rank=0,  # full fine-tuning, as the SB3 policy does
            kl_coef=args.kl,
            device="cpu",
            seed=0,
            progress=False,
            tensorboard=False,
            eval_every=0,
            save_every=0,
            run_dir=run_dir,
        )
        agent.learn(total_timesteps=(args.iterations + 1) * args.batch_size * args.max_new_tokens)
        rows = [r for r in read_metrics(run_dir) if "charts/tokens_per_s" in r][1:]  # drop the warm-up iteration
        agent.close()
    tokens = sum(r["charts/tokens"] for r in rows)
    seconds = sum(r["charts/tokens"] / r["charts/tokens_per_s"] for r in rows)  # per iteration, checkpoint excluded
    return tokens / seconds


def sb3_tokens_per_s(args: argparse.Namespace, env_kwargs: dict) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.sb3 import KLPenaltyCallback, LMActorCriticPolicy

    def make_env() -> gym.Env:
        return gym.make(args.env, tokenizer=args.model, **env_kwargs)

    envs = DummyVecEnv([make_env] * args.batch_size)
    n_steps = args.max_new_tokens  # one rollout = B x max_new_tokens tokens, as a native batch of B episodes
    agent = PPO(
        LMActorCriticPolicy,
        envs,
        n_steps=n_steps,
        batch_size=args.batch_size * n_steps,  # one minibatch, as the native run
        n_epochs=args.n_epochs,
        learning_rate=args.learning_rate,
        gamma=1.0,
        seed=0,
        device="cpu",
        policy_kwargs={"model": args.model, "reference": args.kl > 0},
    )
    callback = KLPenaltyCallback(args.kl) if args.kl > 0 else None
    per_rollout = args.batch_size * n_steps
    agent.learn(total_timesteps=per_rollout, callback=callback)  # warm-up
    start = time.perf_counter()
    agent.learn(total_timesteps=args.iterations * per_rollout, callback=callback, reset_num_timesteps=False)
    seconds = time.perf_counter() - start
    return (agent.num_timesteps - per_rollout) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default' (SmolLM2-135M), 'tiny', a HF id or a path")
    parser.add_argument("--env", default="TextGen-Sentiment-v0")
    parser.add_argument("--batch-size", type=int, default=8, help="episodes per rollout (envs)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--max-prompt-tokens", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2, help="timed rollouts + updates (after 1 warm-up)")
    parser.add_argument("--n-epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--kl", type=float, default=0.0, help="KL-to-reference coefficient for both (0 = off)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env_kwargs = {"max_new_tokens": args.max_new_tokens, "max_prompt_tokens": args.max_prompt_tokens}
    native = native_tokens_per_s(args, env_kwargs)
    sb3 = sb3_tokens_per_s(args, env_kwargs)
    import sb3_contrib
    import stable_baselines3

    rows = [
        {"path": "native agents.ppo.PPO (TextGenVectorEnv)", "tokens_per_s": native},
        {"path": "SB3 PPO + LMActorCriticPolicy (DummyVecEnv)", "tokens_per_s": sb3},
    ]
    report(
        f"PPO training throughput, {args.env}, model={args.model}, B={args.batch_size}, "
        f"{args.max_new_tokens} new tokens, {args.n_epochs} epochs, kl={args.kl}",
        rows,
        {
            "native_over_sb3": round(native / sb3, 2),
            "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__,
        },
    )


if __name__ == "__main__":
    main()
