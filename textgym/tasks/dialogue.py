"""Reply to a chat turn from the ``chatterbot-corpus`` English conversations (offline, BSD licence)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path

from textgym.registry import package_dir
from textgym.tasks.base import Example, Task

EVAL_FRACTION = 10  # one conversation in ten is held out
SPLIT_SEED = 0


def corpus_dir() -> Path:
    """The English conversations folder of the ``chatterbot-corpus`` package."""
    hint = "TextGen-Dialogue needs 'chatterbot-corpus': pip install --no-deps chatterbot-corpus"
    return package_dir("chatterbot_corpus", hint) / "data" / "english"


def load_conversations() -> list[tuple[str, list[str]]]:
    """``(topic, turns)`` for every English conversation, in file and corpus order."""
    import yaml

    conversations = []
    for path in sorted(corpus_dir().glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for turns in data.get("conversations") or []:
            texts = [" ".join(str(t).split()) for t in turns if t is not None]
            if len(texts) >= 2:
                conversations.append((path.stem, texts))
    return conversations


def load_turns() -> list[tuple[str, str, str]]:
    """``(topic, turn, next_turn)`` for every consecutive pair of turns."""
    return [(topic, a, b) for topic, turns in load_conversations() for a, b in itertools.pairwise(turns)]


def chat_prompt(turn: str) -> str:
    """The prompt format: ``"User: <turn>\\nBot:"``."""
    return f"User: {turn}\nBot:"


class DialogueTask(Task):
    """Reply to a user's turn; the chatterbot reply is the reference. Default reward: the demo dialogue
    preference model (trained to prefer the real reply over one from another topic).

    Splits: conversations are shuffled with a fixed seed; every tenth is held out (``eval``).

    Example:
        >>> DialogueTask().examples("eval")[0].prompt.startswith("User: ")
        True
    """

    name = "dialogue"
    default_reward = "dialogue_preference"
    max_new_tokens = 32
    max_prompt_tokens = 48
    description = "reply to a chatterbot-corpus turn; reward = demo preference model"

    def _build(self, split: str) -> Sequence[Example]:
        conversations = load_conversations()
        random.Random(SPLIT_SEED).shuffle(conversations)
        keep = [c for i, c in enumerate(conversations) if (i % EVAL_FRACTION == 0) == (split == "eval")]
        return [Example(chat_prompt(a), (" " + b,)) for _, turns in keep for a, b in itertools.pairwise(turns)]
