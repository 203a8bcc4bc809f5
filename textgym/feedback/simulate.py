"""A scripted annotator: judges what the labelling app shows by a reward, through the app's own web endpoints.

It stands in for a person in tests and demos (the loop sample -> label -> train a reward model -> train a policy
runs end to end without one). For a pair it picks the completion the reward scores higher (a tie is skipped);
for a rating it maps the score linearly from ``score_range`` onto 1..scale. ``flip_prob`` makes it a noisy
person: each pair judgement is reversed with that probability.

Example (a server running ``textgym label``)::

    python -m textgym.feedback.simulate --url http://127.0.0.1:8765 --reward vader
"""

from __future__ import annotations

import argparse
import json
import random
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from textgym.rewards.base import RewardFn, make_reward


class SimulatedAnnotator:
    """Labels every item a labelling server hands out, judging by ``reward``.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8765``.
        reward: a reward (object, registered name or ``"module:attr"``) that plays the person's taste.
        score_range: the reward's range, mapped onto the rating scale (ratings mode).
        flip_prob: probability of reversing a pair judgement.
        seed: seeds the flips.
    """

    def __init__(
        self,
        url: str,
        reward: str | RewardFn,
        score_range: tuple[float, float] = (-1.0, 1.0),
        flip_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if not score_range[0] < score_range[1]:
            raise ValueError(f"score_range must be (low, high) with low < high, got {score_range}")
        self.url, self.reward = url.rstrip("/"), make_reward(reward)
        self.score_range, self.flip_prob = score_range, flip_prob
        self._rng = random.Random(seed)

    def label(self, limit: int | None = None) -> dict[str, int]:
        """Judge items until none is left (or ``limit`` judgements); returns ``{"judged", "skipped", "taken"}``
        (``taken``: items another annotator judged first, answered 409)."""
        config = self._call("/api/config")
        counts = {"judged": 0, "skipped": 0, "taken": 0}
        skipped: set[str] = set()
        while limit is None or counts["judged"] < limit:
            item = self._call("/api/next")["item"]
            if item is None or item["id"] in skipped:  # only skipped items are left
                break
            body = self._judgement(item, config)
            if body is None:
                self._call("/api/skip", {"item": item["id"]})
                skipped.add(item["id"])
                counts["skipped"] += 1
                continue
            try:
                self._call("/api/judge", body)
                counts["judged"] += 1
            except urllib.error.HTTPError as err:
                if err.code != 409:
                    raise
                counts["taken"] += 1
        return counts

    def _judgement(self, item: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        texts = [c["text"] for c in item["completions"]]
        scores = self.reward([item["prompt"]] * len(texts), texts)
        if config["mode"] == "ratings":
            low, high = self.score_range
            fraction = min(max((scores[0] - low) / (high - low), 0.0), 1.0)
            return {"item": item["id"], "rating": 1 + round(fraction * (config["rating_scale"] - 1))}
        if scores[0] == scores[1]:
            return None
        better = 0 if scores[0] > scores[1] else 1
        if self._rng.random() < self.flip_prob:
            better = 1 - better
        return {"item": item["id"], "choice": item["completions"][better]["index"]}

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def main(argv: Sequence[str] | None = None) -> int:
    """Label everything a running ``textgym label`` server shows, by a reward."""
    parser = argparse.ArgumentParser(prog="python -m textgym.feedback.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the labelling server, e.g. http://127.0.0.1:8765")
    parser.add_argument("--reward", required=True, help="the reward that plays the annotator (e.g. vader)")
    parser.add_argument("--score-range", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--flip-prob", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many judgements")
    args = parser.parse_args(argv)
    annotator = SimulatedAnnotator(args.url, args.reward, tuple(args.score_range), args.flip_prob, args.seed)
    print(json.dumps(annotator.label(args.limit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
