"""A labelling session: which item to show next, judgements, skips, undo, progress and agreement.

Every item not yet judged in the store is in the queue, in order. :meth:`LabelSession.next_item` hands out the
first one nobody holds and leases it for ``lease_s`` seconds, so two browser tabs get different items; a skipped
item goes to the back of the queue. A judgement of an item already judged (another tab, another process) is a
:class:`~textgym.feedback.store.DuplicateJudgement`. Undo removes this session's last judgement and puts its
item first again.

A pair is shown in an order fixed by its id (half of the pairs swapped), so a habit of picking one side does
not become a preference for the first completion listed.

Example:
    >>> import tempfile, pathlib
    >>> from textgym.feedback.items import Item
    >>> from textgym.feedback.store import JudgementStore
    >>> store = JudgementStore(pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl", "pairs")
    >>> session = LabelSession([Item("Hi", ("Hello!", "Go away."))], store)
    >>> shown = session.next_item()
    >>> session.judge(shown["id"], choice=0)["labelled"]
    1
    >>> session.next_item() is None
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from textgym.feedback.items import Item
from textgym.feedback.store import JudgementStore, row_item_id
from textgym.rewards.preference import spearman


class UnknownItem(KeyError):
    """An item id that is not in this session."""


class LabelSession:
    """The queue of items to judge and the judgements made, over one :class:`JudgementStore`.

    Args:
        items: what to judge (two completions each for pairs, one for ratings).
        store: where judgements go; items judged in it already are not shown again (a resumed session).
        reward_model: optional ``(prompts, completions) -> scores``; progress then reports how often it agrees
            with the judgements (pairs: the fraction where it scores the chosen completion higher; ratings:
            Spearman correlation with the ratings).
        annotator: the name written with each judgement.
        rating_scale: ratings are whole numbers from 1 to this.
        lease_s: how long a handed-out item is kept from other tabs.
    """

    def __init__(
        self,
        items: Sequence[Item],
        store: JudgementStore,
        reward_model: Callable[[list[str], list[str]], list[float]] | None = None,
        annotator: str = "human",
        rating_scale: int = 5,
        lease_s: float = 300.0,
    ) -> None:
        want = 2 if store.mode == "pairs" else 1
        bad = [item for item in items if len(item.completions) != want]
        if bad:
            raise ValueError(f"{store.mode} need {want} completion(s) per item, got {len(bad[0].completions)}")
        if rating_scale < 2:
            raise ValueError(f"rating_scale must be at least 2, got {rating_scale}")
        self.items = {item.id: item for item in items}
        self.store, self.reward_model, self.annotator = store, reward_model, annotator
        self.rating_scale, self.lease_s = rating_scale, lease_s
        self.mode = store.mode
        self._order = list(self.items)
        self._leases: dict[str, float] = {}
        self._undo_stack: list[str] = []
        self._scores: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    # -- the queue -------------------------------------------------------------------------------------------

    def next_item(self) -> dict[str, Any] | None:
        """The next item to show (leased to the caller), or ``None`` when every item is judged.

        Returns:
            ``{"id", "prompt", "completions": [{"index", "text"}, ...]}``: the completions in display order,
            each with its index in the item (what :meth:`judge` takes as ``choice``).
        """
        with self._lock:
            self.store.refresh()
            done = self.store.labelled_ids()
            now = time.monotonic()
            waiting = [i for i in self._order if i not in done]
            if not waiting:
                return None
            free = [i for i in waiting if self._leases.get(i, -float("inf")) + self.lease_s <= now]
            # every item held by another tab: hand out the one held longest rather than nothing
            chosen = free[0] if free else min(waiting, key=lambda i: self._leases[i])
            self._leases[chosen] = now
            return self._shown(self.items[chosen])

    def _shown(self, item: Item) -> dict[str, Any]:
        order = list(range(len(item.completions)))
        if len(order) == 2 and int(item.id, 16) % 2:
            order.reverse()
        return {
            "id": item.id,
            "prompt": item.prompt,
            "completions": [{"index": i, "text": item.completions[i]} for i in order],
        }

    def judge(self, item: str, choice: int | None = None, rating: int | None = None) -> dict[str, Any]:
        """Record a judgement: ``choice`` (the index of the better completion) for a pair, ``rating`` (1 to
        ``rating_scale``) for a rating. Returns :meth:`progress`.

        Raises:
            UnknownItem: ``item`` is not in this session.
            ValueError: a missing or out-of-range choice or rating.
            DuplicateJudgement: the item is already judged.
        """
        target = self._item(item)
        if self.mode == "pairs":
            if not isinstance(choice, int) or isinstance(choice, bool) or choice not in (0, 1):
                raise ValueError(f"choice must be 0 or 1 (the index of the better completion), got {choice!r}")
            chosen, rejected = target.completions[choice], target.completions[1 - choice]
            self.store.add_pair(target.prompt, chosen, rejected, self.annotator)
        else:
            if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= self.rating_scale:
                raise ValueError(f"rating must be a whole number from 1 to {self.rating_scale}, got {rating!r}")
            self.store.add_rating(target.prompt, target.completions[0], rating, self.annotator)
        with self._lock:
            self._leases.pop(item, None)
            self._undo_stack.append(item)
        return self.progress()

    def skip(self, item: str) -> dict[str, Any]:
        """Put an item at the back of the queue; returns :meth:`progress`."""
        self._item(item)
        with self._lock:
            self._order.remove(item)
            self._order.append(item)
            self._leases.pop(item, None)
        return self.progress()

    def undo(self) -> str | None:
        """Remove this session's last judgement still in the file; its item comes next. ``None``: nothing to undo."""
        with self._lock:
            while self._undo_stack:
                item = self._undo_stack.pop()
                if self.store.remove(item):
                    self._order.remove(item)
                    self._order.insert(0, item)
                    self._leases.pop(item, None)
                    return item
        return None

    def _item(self, item: str) -> Item:
        if item not in self.items:
            raise UnknownItem(f"no item {item!r} in this labelling session")
        return self.items[item]

    # -- progress --------------------------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        """``{"labelled", "total", "remaining", "agreement", "agreement_n"}`` over this session's items;
        ``agreement`` is ``None`` without a reward model or judgements."""
        rows = [row for row in self.store.rows() if row_item_id(row) in self.items]
        agreement = self._agreement(rows) if self.reward_model and rows else None
        return {
            "labelled": len(rows),
            "total": len(self.items),
            "remaining": len(self.items) - len(rows),
            "agreement": agreement,
            "agreement_n": len(rows) if agreement is not None else 0,
        }

    def _agreement(self, rows: list[dict[str, Any]]) -> float | None:
        if self.mode == "pairs":
            chosen = self._score([(r["prompt"], r["chosen"]) for r in rows])
            rejected = self._score([(r["prompt"], r["rejected"]) for r in rows])
            return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows)
        value = spearman(self._score([(r["prompt"], r["completion"]) for r in rows]), [r["rating"] for r in rows])
        return None if value != value else value  # NaN (fewer than 2 ratings, or all equal): not yet measurable

    def _score(self, texts: list[tuple[str, str]]) -> list[float]:
        """Reward-model scores, each (prompt, completion) scored once per session."""
        assert self.reward_model is not None
        missing = list(dict.fromkeys(t for t in texts if t not in self._scores))
        if missing:
            scores = self.reward_model([p for p, _ in missing], [c for _, c in missing])
            self._scores.update(zip(missing, scores, strict=True))
        return [self._scores[t] for t in texts]
