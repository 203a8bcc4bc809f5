"""What a person judges: a prompt with two completions (a pair to compare) or one (a completion to rate).

Items come from a JSONL file or are sampled live from a model. A file's rows may be any of:

- ``{"prompt": str, "completions": [str, ...]}``;
- ``{"prompt": str, "completion": str, ...}`` (e.g. ``textgym rollout --save``: a row per sample);
- ``{"prompt": str, "chosen": str, "rejected": str}`` (a preference file, to label again).

Completions are gathered per prompt in file order, duplicates dropped. For pairs, each prompt's completions are
paired in order (first with second, third with fourth, ...); for ratings, each completion is an item.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "items.jsonl"
    >>> _ = path.write_text('{"prompt": "Hi", "completions": ["Hello!", "Go away."]}\\n')
    >>> [item.completions for item in load_items(path, "pairs")]
    [('Hello!', 'Go away.')]
    >>> [item.completions for item in load_items(path, "ratings")]
    [('Hello!',), ('Go away.',)]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("pairs", "ratings")
ITEM_SHAPE = (
    'a JSON object with a string "prompt" and a list of strings "completions", a string "completion", or '
    'strings "chosen" and "rejected"'
)


@dataclass(frozen=True)
class Item:
    """A prompt and the completions a person judges: two (a pair) or one (a rating)."""

    prompt: str
    completions: tuple[str, ...]

    @property
    def id(self) -> str:
        """A content hash, the same whichever way round a pair's completions are listed."""
        return item_id(self.prompt, self.completions)


def item_id(prompt: str, completions: Sequence[str]) -> str:
    """12 hex digits of SHA-1 over the prompt and the sorted completions.

    Example:
        >>> item_id("Hi", ["a", "b"]) == item_id("Hi", ["b", "a"])
        True
    """
    text = json.dumps([prompt, sorted(completions)], ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def check_mode(mode: str) -> str:
    """``mode`` when it is ``"pairs"`` or ``"ratings"``, else a ``ValueError`` naming it."""
    if mode not in MODES:
        raise ValueError(f"unknown labelling mode {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def load_items(path: str | Path, mode: str) -> list[Item]:
    """The items of a JSONL file (see the module docs).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad line (naming the file and the line), or a file that yields no item (e.g. pairs mode
            and no prompt with two different completions).
    """
    check_mode(mode)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items file {str(path)!r} does not exist")
    by_prompt: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                prompt, completions = _parse_row(line, f"{path}:{number}")
                known = by_prompt.setdefault(prompt, [])
                known += [c for c in completions if c not in known]
    items = items_from_completions(by_prompt, mode)
    if not items:
        need = "a prompt with two different completions" if mode == "pairs" else "a completion"
        raise ValueError(f"{path}: no {mode} to label (needs at least {need}; rows are {ITEM_SHAPE})")
    return items


def _parse_row(line: str, where: str) -> tuple[str, list[str]]:
    from textgym.io import json_object_line

    row = json_object_line(line, where, ITEM_SHAPE)
    prompt = row.get("prompt")
    if "completions" in row:
        completions = row["completions"]
    elif "completion" in row:
        completions = [row["completion"]]
    elif "chosen" in row or "rejected" in row:
        completions = [row.get("chosen"), row.get("rejected")]
    else:
        completions = None
    good_list = isinstance(completions, list) and completions and all(isinstance(c, str) for c in completions)
    if not isinstance(prompt, str) or not good_list:
        text = line.strip()
        raise ValueError(f"{where}: expected {ITEM_SHAPE}, got {text if len(text) <= 200 else text[:200] + '...'}")
    return prompt, completions  # type: ignore[return-value]


def items_from_completions(by_prompt: dict[str, list[str]], mode: str) -> list[Item]:
    """Pairs (consecutive completions of a prompt) or ratings (each completion) from ``prompt -> completions``."""
    if mode == "ratings":
        return [Item(p, (c,)) for p, completions in by_prompt.items() for c in completions]
    return [
        Item(p, (completions[i], completions[i + 1]))
        for p, completions in by_prompt.items()
        for i in range(0, len(completions) - 1, 2)
    ]


def save_items(items: Sequence[Item], path: str | Path) -> None:
    """Write items as JSONL (``{"prompt", "completions"}``), atomically: a labelling session resumes from it."""
    from textgym.io import atomic_write_text

    rows = [json.dumps({"prompt": i.prompt, "completions": list(i.completions)}, ensure_ascii=False) for i in items]
    atomic_write_text(path, "".join(row + "\n" for row in rows))


def sample_items(
    env_id: str,
    n: int,
    mode: str,
    model: str = "default",
    model_b: str | None = None,
    seed: int = 0,
    device: str = "auto",
    split: str = "train",
    batch_size: int = 16,
) -> list[Item]:
    """``n`` items sampled live: prompts from ``env_id``'s ``split``, completions from ``model`` (pairs: one from
    ``model`` and one from ``model_b``, or two from ``model`` when ``model_b`` is not given).

    ``model`` and ``model_b`` are ``"default"``, a Hugging Face id or path, or a ``textgym train`` run folder or
    checkpoint file. Shows a progress bar.
    """
    import gymnasium as gym
    import torch
    from tqdm.auto import tqdm

    import textgym  # noqa: F401  (registers the ids)
    from agents.rollout import collect
    from agents.sampling import SamplingConfig
    from agents.trainer import resolve_device

    check_mode(mode)
    if n < 1:
        raise ValueError(f"n must be a positive number of items, got {n}")
    device = str(resolve_device(device))
    policies = [sampling_policy(model, device)]
    if mode == "pairs":
        policies.append(sampling_policy(model_b, device) if model_b else policies[0])
    envs = gym.make_vec(env_id, num_envs=min(batch_size, n), vectorization_mode="vector_entry_point", device=device)
    generator = torch.Generator(device).manual_seed(seed)
    items: dict[str, Item] = {}  # by id: a pair or a completion sampled twice is judged once
    with tqdm(total=n, desc=f"sampling {mode} from {env_id}", unit="item") as bar:
        batch_seed = seed
        while len(items) < n:
            # the same reset seed gives every policy the same prompts; the generator goes on, so samples differ
            batches = [collect(envs, p, SamplingConfig(), generator, batch_seed, {"split": split}) for p in policies]
            if any(b.prompts != batches[0].prompts for b in batches):
                raise RuntimeError(f"{env_id} gave the two policies different prompts for reset seed {batch_seed}")
            for prompt, *completions in zip(batches[0].prompts, *(b.completions for b in batches), strict=True):
                if len(set(completions)) == len(completions):  # a pair of two equal texts has nothing to compare
                    item = Item(prompt, tuple(completions))
                    items.setdefault(item.id, item)
            bar.update(min(len(items), n) - bar.n)
            batch_seed += 1
    envs.close()
    return list(items.values())[:n]


def sampling_policy(spec: str, device: str) -> Any:
    """The policy to sample from: a model (``"default"``, a HF id or path) or a ``textgym train`` checkpoint."""
    from agents.policy import LMPolicy

    path = Path(spec)
    if path.suffix == ".safetensors" or (path.is_dir() and any(path.glob("checkpoint*.safetensors"))):
        from agents.trainer import load_trainer

        return load_trainer(path, progress=False, tensorboard=False, device=device).policy
    return LMPolicy.from_pretrained(spec, device=device, value_head=False, reference=False)
