"""``textgym label``: serve the labelling app on items from a file or sampled live, or let a scripted annotator
label them.

Example:
    $ textgym label --env TextGen-Sentiment-v0 --n 50 --out prefs.jsonl
    $ textgym label --data completions.jsonl --mode ratings --out ratings.jsonl
    $ textgym label --env TextGen-Sentiment-v0 --n 50 --out prefs.jsonl --simulate vader
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textgym.feedback.items import MODES, Item, load_items, sample_items, save_items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``textgym label`` flags."""
    source = parser.add_argument_group("what to label (--data, or samples of --model on --env)")
    source.add_argument("--data", default=None, help="JSONL of prompts with completions (see textgym.feedback.items)")
    source.add_argument("--env", default=None, help="sample live: prompts from this env id's train split")
    source.add_argument("--n", type=int, default=50, help="items to sample (with --env)")
    source.add_argument(
        "--model", default="default", help="policy to sample: 'default', a HF id or path, or a textgym run folder"
    )
    source.add_argument(
        "--model-b", default=None, help="pairs: the second completion's policy (default: --model sampled twice)"
    )
    source.add_argument("--seed", type=int, default=0)
    source.add_argument("--device", default="auto")
    source.add_argument(
        "--items",
        default=None,
        help="where sampled items are kept, and reused when it exists (default: OUT with .items.jsonl)",
    )
    parser.add_argument("--mode", default="pairs", choices=MODES, help="compare two completions, or rate one")
    parser.add_argument("--rating-scale", type=int, default=5, help="ratings are 1 to this")
    parser.add_argument(
        "--out", required=True, help="the judgements JSONL (appended to; what is in it already is skipped)"
    )
    parser.add_argument(
        "--reward-model", default=None, help="a reward model (path or name) whose agreement with you is shown"
    )
    parser.add_argument("--annotator", default="human", help="the name written with each judgement")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--simulate",
        default=None,
        metavar="REWARD",
        help="no person: a scripted annotator judges by this reward through the same web endpoints, then exits",
    )
    parser.add_argument(
        "--flip-prob", type=float, default=0.0, help="--simulate: reverse each pair with this probability"
    )


def run(args: argparse.Namespace) -> int:
    """Build the session, then serve it (until Ctrl-C) or label it with the scripted annotator."""
    from textgym.feedback.app import Server, create_app, require_flask
    from textgym.feedback.session import LabelSession
    from textgym.feedback.store import JudgementStore

    require_flask()  # before sampling, which takes minutes
    store = JudgementStore(args.out, args.mode)  # a broken judgement file fails before anything is sampled
    items = _items(args)
    reward_model = _reward_model(args.reward_model)
    annotator = f"simulated:{args.simulate}" if args.simulate and args.annotator == "human" else args.annotator
    session = LabelSession(items, store, reward_model, annotator, args.rating_scale)
    app = create_app(session)
    progress = session.progress()
    print(f"{progress['labelled']} of {progress['total']} {args.mode} already labelled in {args.out}")
    if args.simulate:
        from textgym.feedback.simulate import SimulatedAnnotator

        server = Server(app, args.host, 0)
        try:
            counts = SimulatedAnnotator(server.url, args.simulate, flip_prob=args.flip_prob, seed=args.seed).label()
        finally:
            server.stop()
        print(f"simulated annotator ({args.simulate}): {counts}; progress {session.progress()}")
        return 0
    print(f"labelling {args.mode} at http://{args.host}:{args.port} (Ctrl-C to stop; judgements are saved as made)")
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


def _items(args: argparse.Namespace) -> list[Item]:
    if args.data:
        return load_items(args.data, args.mode)
    if not args.env:
        raise ValueError("textgym label needs --data FILE or --env ENV_ID (to sample items from --model)")
    path = Path(args.items) if args.items else Path(args.out).with_suffix(".items.jsonl")
    if path.exists():
        print(f"reusing the items in {path}")
        return load_items(path, args.mode)
    items = sample_items(args.env, args.n, args.mode, args.model, args.model_b, args.seed, args.device)
    save_items(items, path)
    print(f"sampled {len(items)} items into {path}")
    return items


def _reward_model(spec: str | None) -> Any:
    if spec is None:
        return None
    from textgym.rewards.base import make_reward
    from textgym.rewards.preference import PreferenceReward

    return PreferenceReward(spec) if Path(spec).suffix == ".pt" else make_reward(spec)
