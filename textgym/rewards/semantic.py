"""Embedding rewards on the bundled MiniLM: BERTScore and sentence similarity to the references.

Example:
    >>> same, other = BertScore()(["", ""], ["a cat sat on the mat", "stock markets fell"],
    ...                           references=[["a cat sat on the mat"]] * 2)
    >>> round(same, 4), other < 0.8
    (1.0, True)
"""

from __future__ import annotations

from typing import Any

from textgym.rewards.encoder import MINILM, embed, hidden_states
from textgym.rewards.metrics import _references


class BertScore:
    """BERTScore (greedy cosine matching of contextual token embeddings), the best over the references.

    Uses the encoder's last layer, no idf weighting and no baseline rescaling; ``[CLS]`` and ``[SEP]`` can be
    matched but are not averaged over: with ``model="minilm"`` this is ``bert_score`` with
    ``model_type=<MiniLM folder>, num_layers=6``.
    Scores are cosines (about 0.2-1.0 for English); an empty completion scores 0.

    Args:
        kind: ``"f1"``, ``"precision"`` or ``"recall"``.
        model: ``"minilm"`` (bundled all-MiniLM-L6-v2) or any HF encoder id or path.
        device: where the encoder runs.
    """

    def __init__(self, kind: str = "f1", model: str = MINILM, device: str = "cpu") -> None:
        if kind not in ("f1", "precision", "recall"):
            raise ValueError(f"kind must be 'f1', 'precision' or 'recall', got {kind!r}")
        self.kind, self.model, self.device = kind, model, device
        self.name = "bertscore" if kind == "f1" else f"bertscore_{kind}"

    def _token_vectors(self, texts: list[str]) -> list[Any]:
        import torch

        states, mask = hidden_states(texts, self.model, self.device)
        states = torch.nn.functional.normalize(states, dim=-1)  # (B, T, H)
        lengths = mask.sum(1).tolist()
        return [states[i, :n] for i, n in enumerate(lengths)]  # (T_i, H), with [CLS] ... [SEP]

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        flat = [r for options in refs for r in options]
        if not completions:
            return []
        cand = self._token_vectors(list(completions))
        ref = self._token_vectors(flat)
        scores, k = [], 0
        for c, options in zip(cand, refs, strict=True):
            best = 0.0
            for r in ref[k : k + len(options)]:
                if len(c) > 2 and len(r) > 2:
                    sim = c @ r.T  # (Tc, Tr); [CLS]/[SEP] may be matched but are not averaged (as bert_score)
                    p, rc = sim[1:-1].max(1).values.mean().item(), sim[:, 1:-1].max(0).values.mean().item()
                    value = {"precision": p, "recall": rc, "f1": 2 * p * rc / (p + rc) if p + rc > 0 else 0.0}
                    best = max(best, value[self.kind])
            scores.append(best)
            k += len(options)
        return scores


class EmbeddingSimilarity:
    """Cosine similarity of the completion's and the best reference's sentence embeddings, in [-1, 1].

    Example:
        >>> EmbeddingSimilarity()([""], ["a good film"], references=[["a good film"]])[0] > 0.99
        True
    """

    name = "embedding_similarity"

    def __init__(self, model: str = MINILM, device: str = "cpu") -> None:
        self.model, self.device = model, device

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        refs = _references(info, len(completions))
        if not completions:
            return []
        cand = embed(list(completions), self.model, self.device)
        flat = embed([r for options in refs for r in options], self.model, self.device)
        scores, k = [], 0
        for i, options in enumerate(refs):
            sims = flat[k : k + len(options)] @ cand[i]
            scores.append(float(sims.max()) if c_nonempty(completions[i]) else 0.0)
            k += len(options)
        return scores


def c_nonempty(text: str) -> bool:
    """Whether ``text`` has any non-space character."""
    return bool(text.strip())
