"""Zero-shot LLM-judge rewards: an instruct model's log-odds between two answers after a chat prompt.

The judge fills a template with the prompt and completion, applies the model's chat template, appends an
optional answer prefix (e.g. ``"Answer:"``) and compares the next-token logits of the two answer choices
(``"Positive"`` vs ``"Negative"`` as the assistant's first word, or ``" yes"`` vs ``" no"`` after
``"Answer:"``). The default model is the embedded
SmolLM2-135M-Instruct (``textgym.models``): about 70% on Rotten Tomatoes snippets (Qwen2.5-0.5B-Instruct,
if you have it, about 78%). Batched with left padding; deterministic (eval mode, no sampling).
"""

from __future__ import annotations

from typing import Any

from textgym.rewards._lazy import LazyModel

SENTIMENT_TEMPLATE = (
    "Is the sentiment of this movie review positive or negative?\n\nReview: {text}\n\n"
    "Answer with one word: positive or negative."
)
REPLY_TEMPLATE = (
    "Here is a short chat.\n\n{prompt}{completion}\n\n"
    "Is the bot's last reply a sensible, relevant and polite answer to the user? Answer yes or no."
)


class LLMJudge(LazyModel):
    """Score = logit(choice 0) - logit(choice 1) of the judge's next token (or the softmax over the two).

    Args:
        template: ``str.format`` template with ``{prompt}``, ``{completion}`` and/or ``{text}`` (= both).
        choices: the two answers; the first token of each is compared. Score is high for the first.
        answer_prefix: text the assistant turn starts with, before the answer.
        model: ``"default"`` (SmolLM2), a HF id or path, or a loaded causal LM.
        tokenizer: tokenizer id/path/object (default: the model's).
        output: ``"logodds"`` (unbounded) or ``"prob"`` (in [0, 1]).
        batch_size, max_length, device: inference settings (prompts are truncated from the left).
        name: the reward's name.

    Example:
        >>> from textgym.models import load_tokenizer, tiny_causal_lm
        >>> tok = load_tokenizer("default")
        >>> judge = LLMJudge(model=tiny_causal_lm(len(tok)), tokenizer=tok, output="prob")
        >>> p, q = judge(["", ""], ["great", ""])
        >>> 0.0 < p < 1.0 and 0.0 < q < 1.0
        True
    """

    def __init__(
        self,
        template: str = SENTIMENT_TEMPLATE,
        choices: tuple[str, str] = ("Positive", "Negative"),
        answer_prefix: str = "",
        model: str | Any = "default",
        tokenizer: str | Any | None = None,
        output: str = "logodds",
        batch_size: int = 16,
        max_length: int = 384,
        device: str = "cpu",
        name: str = "judge",
    ) -> None:
        if output not in ("logodds", "prob"):
            raise ValueError(f"output must be 'logodds' or 'prob', got {output!r}")
        self.template, self.choices, self.answer_prefix = template, tuple(choices), answer_prefix
        self.model = model if isinstance(model, str) else None
        self.tokenizer = tokenizer if isinstance(tokenizer, str) or tokenizer is None else None
        self.output, self.batch_size, self.max_length, self.device, self.name = (
            output,
            batch_size,
            max_length,
            device,
            name,
        )
        self._model: Any = None if isinstance(model, str) else model.eval()
        self._tokenizer: Any = None if isinstance(tokenizer, str) or tokenizer is None else tokenizer

    def _load(self) -> None:
        from textgym.models import load_causal_lm, load_tokenizer

        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer or self.model or "default")
        if self._model is None:
            self._model = load_causal_lm(self.model or "default", device=self.device).eval()

    def _choice_ids(self) -> list[int]:
        ids = [self._tokenizer(c, add_special_tokens=False)["input_ids"] for c in self.choices]
        if not all(ids) or ids[0][0] == ids[1][0]:
            raise ValueError(f"choices {self.choices} must start with two different tokens")
        return [i[0] for i in ids]

    def render(self, prompt: str, completion: str) -> str:
        """The judge's full input text for one pair (chat template applied when the tokenizer has one)."""
        content = self.template.format(prompt=prompt, completion=completion, text=(prompt + completion).strip())
        if getattr(self._tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": content}]
            chat = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return chat + self.answer_prefix
        return f"{content}\n{self.answer_prefix}"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        import torch

        if not completions:
            return []
        if self._model is None or self._tokenizer is None:
            self._load()
        pos, neg = self._choice_ids()
        scores: list[float] = []
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        for start in range(0, len(completions), self.batch_size):
            stop = start + self.batch_size
            texts = [self.render(p, c) for p, c in zip(prompts[start:stop], completions[start:stop], strict=True)]
            rows = [self._tokenizer(t, add_special_tokens=False)["input_ids"][-self.max_length :] for t in texts]
            width = max(len(r) for r in rows)
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)  # (B, T)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self._model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
            pair = logits[:, [pos, neg]].float()  # (B, 2)
            values = pair.softmax(-1)[:, 0] if self.output == "prob" else pair[:, 0] - pair[:, 1]
            scores.extend(values.tolist())
        return scores


class SentimentJudge(LLMJudge):
    """The default LLM judge: log-odds of "Positive" vs "Negative" as the answer's first token.

    With SmolLM2-135M the log-odds lean positive (0 is not the decision threshold), but they rank texts: on 48
    held-out snippets a median split is 71% right. As an RL reward only the ranking matters.

    Example:
        >>> SentimentJudge().choices
        ('Positive', 'Negative')
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"name": "judge_sentiment", **kwargs})


class ReplyJudge(LLMJudge):
    """Log-odds of " yes" vs " no" to "is the bot's reply sensible, relevant and polite?" (dialogue).

    Example:
        >>> ReplyJudge().choices
        (' yes', ' no')
    """

    def __init__(self, **kwargs: Any) -> None:
        defaults = {"template": REPLY_TEMPLATE, "choices": (" yes", " no"), "answer_prefix": "Answer:"}
        super().__init__(**{**defaults, "name": "judge_reply", **kwargs})
