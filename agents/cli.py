"""``textgym train``: train an agent on an env from flags and/or a YAML config, resumable.

Example:
    $ textgym train --env TextGen-Sentiment-v0 --algo ppo --total-timesteps 20000 --run-dir runs/ppo
    $ textgym train --algo ppo --config configs/ppo.yaml --resume
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import ALGOS, trainer_class
from agents.config import add_config_arguments, load_yaml, merge_config


def _front_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgym train", add_help=False)
    parser.add_argument("--algo", default="ppo", help=f"one of {sorted(ALGOS)}")
    parser.add_argument("--config", default=None, help="YAML file of config keys (flags override it)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR from its newest intact checkpoint (start it when there is none)",
    )
    parser.add_argument("-h", "--help", action="store_true", help="show the flags of --algo (default ppo) and exit")
    return parser


def parse(argv: Sequence[str]) -> tuple[Any, argparse.Namespace]:
    """Parse ``argv`` into (the algo's config, the front options). Unknown flags and keys are errors.

    With ``--resume`` and a checkpoint in the run folder, the settings not given now (flags or YAML) are the
    run's own, from its checkpoint, not today's defaults: a run continues as it started.
    """
    front, _ = _front_parser().parse_known_args(argv)
    cls = trainer_class(front.algo)
    parser = argparse.ArgumentParser(prog="textgym train", parents=[_front_parser()], add_help=False)
    add_config_arguments(parser, cls.config_class)
    if front.help:
        parser.print_help()
        raise SystemExit(0)
    flags = vars(parser.parse_args(argv))
    updates = load_yaml(front.config) if front.config else {}
    updates.update({k: v for k, v in flags.items() if k not in ("algo", "config", "resume", "help")})
    base = cls.config_class()
    if front.resume:
        base = merge_config(base, saved_settings(str(updates.get("run_dir", base.run_dir)), front.algo, updates))
    return merge_config(base, updates), front


def saved_settings(run_dir: str, algo: str, given: dict[str, Any]) -> dict[str, Any]:
    """The config of the newest checkpoint in ``run_dir`` when it is an ``algo`` run (``{}`` when there is none).

    Raises:
        CheckpointError: the saved config would import code to build the env (see ``Trainer.load``), unless the
            env is given now (``--env-id`` / ``--env-kwargs``).
    """
    from agents.run_dir import RunDir
    from agents.trainer import _refuse_code

    if not Path(run_dir).is_dir():
        return {}
    found = RunDir(run_dir).latest_checkpoint()
    if found is None or found[0].get("algo") != algo:
        return {}
    state, source = found
    saved = {k: v for k, v in state["config"].items() if k != "overwrite"}  # an action, not a setting
    _refuse_code(saved, given, source)
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    """Train, printing the final evaluation as JSON."""
    config, front = parse(list(sys.argv[1:] if argv is None else argv))
    trainer = trainer_class(front.algo)(config)
    try:
        if front.resume and trainer.resume() and trainer.parallel.is_main:
            message = f"resuming {front.algo} from iteration {trainer.iteration} ({trainer.timesteps} tokens)"
            print(message, file=sys.stderr)
        trainer.learn()
        if not trainer.parallel.is_main:  # data-parallel: rank 0 evaluates and reports
            return 0
        result = trainer.final_evaluation() if trainer.fast_path else {}
    finally:
        trainer.close()
    print(json.dumps({"algo": front.algo, "env_id": config.env_id, "iteration": trainer.iteration, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
