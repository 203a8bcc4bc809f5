"""The ``textgym`` command: ``envs``, ``rollout``, ``train``, ``eval``, ``export``, ``leaderboard``, ``label``,
``reward``.

Example:
    $ textgym envs
    $ textgym rollout --env TextGen-Sentiment-v0 --n 8
    $ textgym rollout --env TextGen-Sentiment-v0 --n 64 --split train --save data/sentiment.jsonl
    $ textgym train --env TextGen-Sentiment-v0 --algo ilql --data data/sentiment.jsonl --total-timesteps 4096
    $ textgym train --env TextGen-Sentiment-v0 --algo ppo --total-timesteps 20000
    $ textgym eval --checkpoint runs/textgym
    $ textgym export runs/textgym exported/ppo-sentiment
    $ textgym leaderboard run --suite quick
    $ textgym label --env TextGen-Sentiment-v0 --n 50 --out prefs.jsonl
    $ textgym reward train --data prefs.jsonl --out rm.pt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import textgym
    from textgym.env import TextGenEnv

    for env_id in textgym.ENV_IDS:
        spec = gym.spec(env_id)
        if spec.kwargs.get("task") == "prompts":
            print(f"{env_id}\n  task: your prompts (prompts=...), reward: yours (reward=...)")
            continue
        env: TextGenEnv = gym.make(env_id).unwrapped
        setup = env.setup
        print(
            f"{env_id}\n  task: {setup.task.name}: {setup.task.description}\n"
            f"  reward: {setup.reward_key}  budget: {setup.max_new_tokens} new tokens after "
            f"{setup.max_prompt_tokens} prompt tokens\n  action_space: {env.action_space}\n"
            f"  observation_space: input_ids {env.observation_space['input_ids']}, attention_mask "
            f"{env.observation_space['attention_mask']}\n"
            f"  examples: train {len(setup.task.examples('train'))}, eval {len(setup.task.examples('eval'))}"
        )
    return 0


def _rollout(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import torch

    import textgym  # noqa: F401  (registers the ids)
    from agents.policy import LMPolicy
    from agents.rollout import collect
    from agents.sampling import SamplingConfig

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    env_id = args.env or ("TextGen-v0" if args.prompts else "TextGen-Sentiment-v0")
    if env_id == "TextGen-v0" and args.reward is None:
        raise ValueError("TextGen-v0 (your prompts) has no reward of its own: pass --reward NAME")
    kwargs = {"tokenizer": args.model, "device": device}
    optional = {"max_new_tokens": args.max_new_tokens, "prompts": args.prompts, "reward": args.reward}
    kwargs |= {k: v for k, v in optional.items() if v is not None}
    # the env first: a bad id, prompt file or reward name fails before the model loads
    envs = gym.make_vec(env_id, num_envs=args.n, vectorization_mode="vector_entry_point", **kwargs)
    policy = LMPolicy.from_pretrained(args.model, device=device, value_head=False, reference=False)
    generator = torch.Generator(device).manual_seed(args.seed)
    sampling = SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    batch = collect(envs, policy, sampling, generator, seed=args.seed, options={"split": args.split})
    for prompt, completion, score in zip(batch.prompts, batch.completions, batch.scores.tolist(), strict=True):
        print(f"[{score:+.3f}] {_one_line(prompt)}\u2502{_one_line(completion)}")  # one line per episode
    print(f"mean reward {batch.scores.mean().item():+.4f} over {args.n} episodes ({env_id}, {args.split} split)")
    if args.save:
        from agents.offline import save_rollouts

        print(f"appended {save_rollouts(batch, args.save, env_id)} scored completions to {args.save}")
    return 0


def _one_line(text: str) -> str:
    """``text`` with line breaks written as ``\\n``, so that each episode prints as one line.

    >>> print(_one_line("7+1=8\\nNext"))
    7+1=8\\nNext
    """
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _eval(args: argparse.Namespace) -> int:
    import json

    if args.checkpoint:  # a safetensors + JSON file, checksummed; its config may not name code (see agents.trainer)
        from agents.trainer import load_trainer

        metrics = load_trainer(args.checkpoint, progress=False, tensorboard=False).evaluate(args.episodes)
    else:  # the untrained model: its own reference
        import gymnasium as gym

        from agents.evaluation import evaluate_policy
        from agents.policy import LMPolicy
        from agents.sampling import SamplingConfig
        from agents.trainer import resolve_device

        device = resolve_device(args.device)
        kwargs = {"tokenizer": args.model, "device": device}
        envs = gym.make_vec(args.env, min(args.episodes, 16), vectorization_mode="vector_entry_point", **kwargs)
        policy = LMPolicy.from_pretrained(args.model, device=device, value_head=False, reference=False)
        metrics = evaluate_policy(policy, envs, SamplingConfig(), args.episodes)
    metrics.pop("eval/sample_pairs")
    print(metrics.pop("eval/samples"))
    print(json.dumps(metrics, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from agents.export import export_pretrained
    from agents.trainer import load_trainer

    trainer = load_trainer(args.checkpoint, progress=False, tensorboard=False, device=args.device)
    evaluation = trainer.evaluate(args.eval_episodes) if args.eval_episodes else None
    folder = export_pretrained(trainer, args.out_dir, evaluation, overwrite=args.force, push_to_hub=args.push_to_hub)
    print(f"exported {trainer.algo} policy ({trainer.timesteps} tokens trained) to {folder}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from leaderboards import runner
    from leaderboards.render import render
    from leaderboards.schema import load_result, result_file, write_result

    results = Path(args.results) if args.results else runner.default_folder() / "results"
    # another results folder gets its own page (inside it) unless --page says where: never the project's board
    page = (
        Path(args.page)
        if args.page
        else (results / "README.md" if args.results else runner.default_folder() / "README.md")
    )
    if args.action == "run":
        runner.run_suite(args.suite, results, args.device, args.only, args.threads, args.force, args.ray, args.retries)
        render(results, page)
        print(f"results in {results}; tables in {page}")
    elif args.action == "render":
        render(results, page)
        print(f"wrote {page} and its plots")
    else:
        if not args.file:
            raise ValueError("leaderboard submit needs the result FILE to validate")
        result = load_result(args.file)  # run_id and suite are checked: plain names, no way out of the folder
        target = result_file(results, result["suite"], result["run_id"])
        if target.exists() and not args.force:
            raise ValueError(f"{target} already exists: pass --force to replace it")
        write_result(result, target)
        print(f"valid result {result['run_id']}: added as {target}")
    return 0


def _label(args: argparse.Namespace) -> int:
    from textgym.feedback.command import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textgym",
        description="Token-level text-generation environments, LM agents that learn on them, and leaderboards.",
        epilog="examples:\n" + __doc__.split("Example:\n", 1)[1].replace("    $ ", "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("envs", help="list the registered env ids with their task, reward and spaces")
    roll = sub.add_parser("rollout", help="sample completions from a model and print them with their reward")
    roll.add_argument(
        "--env", default=None, help="registered env id (default: TextGen-Sentiment-v0; TextGen-v0 with --prompts)"
    )
    roll.add_argument("--prompts", default=None, help="your prompts: a .txt (one per line) or .jsonl file")
    roll.add_argument("--reward", default=None, help="a reward name (see textgym.rewards.REWARDS) for the env")
    roll.add_argument("--n", type=int, default=8, help="number of episodes (the batch size)")
    roll.add_argument("--model", default="default", help="'default' (SmolLM2-135M), a HF id or a local path")
    roll.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    roll.add_argument("--split", default="eval", choices=["train", "eval"])
    roll.add_argument("--seed", type=int, default=0)
    roll.add_argument("--temperature", type=float, default=1.0)
    roll.add_argument("--top-k", type=int, default=0)
    roll.add_argument("--top-p", type=float, default=1.0)
    roll.add_argument("--max-new-tokens", type=int, default=None)
    roll.add_argument(
        "--save",
        default=None,
        metavar="FILE",
        help="append the episodes to FILE as a JSONL of scored completions (an offline dataset for --algo ilql)",
    )
    sub.add_parser("train", help="train an agent (see `textgym train --algo ppo --help`)", add_help=False)
    ev = sub.add_parser("eval", help="held-out quality of a checkpoint or of an untrained model")
    ev.add_argument("--checkpoint", default=None, help="a run folder or a checkpoint file written by `textgym train`")
    ev.add_argument("--env", default="TextGen-Sentiment-v0", help="env id (without --checkpoint)")
    ev.add_argument("--model", default="default", help="model (without --checkpoint)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--episodes", type=int, default=64, help="held-out prompts to evaluate")
    export = sub.add_parser("export", help="write a checkpoint's policy as a Hugging Face model folder")
    export.add_argument("checkpoint", help="a run folder or a checkpoint file written by `textgym train`")
    export.add_argument("out_dir", help="the model folder to create (LoRA merged, tokenizer, model card)")
    export.add_argument(
        "--eval-episodes",
        type=int,
        default=0,
        help="evaluate first on N held-out prompts for the card (default 0: use the run's last logged evaluation)",
    )
    export.add_argument("--device", default="cpu", help="where to load the policy (default: cpu)")
    export.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    export.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="also upload it to this hub repo")
    from textgym.feedback.command import add_arguments

    label = sub.add_parser(
        "label",
        help="label completions in a local web app (pairs or ratings) for a reward model; serves on 127.0.0.1",
        description="Serve the labelling web app on this machine only (--host 127.0.0.1 unless you say otherwise).",
    )
    add_arguments(label)
    sub.add_parser(
        "reward", help="train or evaluate a reward model on judgements (see `textgym reward --help`)", add_help=False
    )
    board = sub.add_parser("leaderboard", help="run, render or submit leaderboard results")
    board.add_argument("action", choices=["run", "render", "submit"])
    board.add_argument("file", nargs="?", help="result JSON to validate and add (submit)")
    board.add_argument(
        "--force", action="store_true", help="run: run again from scratch; submit: replace an existing result"
    )
    board.add_argument("--suite", default="quick", help="quick (CPU-sized), full (every env) or sweep")
    board.add_argument("--only", default=None, help="run a single run id of the suite")
    board.add_argument("--device", default="auto")
    where = "leaderboards/ in a source checkout, else ./leaderboard/"
    board.add_argument("--results", default=None, help=f"results folder (default: results/ in {where})")
    board.add_argument(
        "--page",
        "--out",
        default=None,
        help=f"the page to write, plots beside it (default: README.md in {where}; with --results, README.md in it)",
    )
    board.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (0 = torch's default)")
    board.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run: schedule the runs as Ray tasks, on a local cluster or the one at ADDRESS (pip install ray)",
    )
    board.add_argument("--retries", type=int, default=2, help="run --ray: retries of a failed or killed run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``textgym`` console script."""
    from gymnasium.error import Error as GymnasiumError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    handlers = {
        "envs": _envs,
        "rollout": _rollout,
        "eval": _eval,
        "export": _export,
        "leaderboard": _leaderboard,
        "label": _label,
    }
    try:
        if command == "train":  # its flags depend on --algo: parsed by agents.cli
            from agents.cli import main as train_main

            return train_main(argv[1:])
        if command == "reward":  # the reward-model trainer's own commands
            from textgym.rewards.preference import main as reward_main

            return reward_main(argv[1:], prog="textgym reward")
        args = build_parser().parse_args(argv)
        return handlers[args.command](args)
    except (ValueError, OSError, ModuleNotFoundError, FloatingPointError, GymnasiumError) as err:  # ConnectionError too
        # SchemaError is a ValueError: a malformed submission names the bad field; OSErrors here name their path
        # (a run folder in use, a disk full while saving a checkpoint, ...)
        print(f"textgym {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
