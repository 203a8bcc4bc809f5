"""Classifier rewards: a score of the completion's class (sentiment, offensiveness, any HF classifier).

The project-trained neural sentiment classifier lives in :mod:`textgym.rewards.minilm_sentiment`.
"""

from __future__ import annotations

from typing import Any

from textgym.rewards._lazy import LazyModel, require


class VaderSentiment(LazyModel):
    """VADER lexicon sentiment of the completion: the compound score in [-1, 1] (positive is high).

    Example:
        >>> reward = VaderSentiment()
        >>> good, bad = reward(["", ""], ["What a wonderful, moving film.", "A dull, awful mess."])
        >>> good > 0 > bad
        True
    """

    name = "vader"

    def __init__(self) -> None:
        self._analyzer: Any = None  # built lazily: picklable and cheap to construct

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()
        return [float(self._analyzer.polarity_scores(text)["compound"]) for text in completions]


class TextBlobSentiment:
    """TextBlob's lexicon (pattern) polarity of the completion, in [-1, 1]; 0 for empty or unknown words.

    Example:
        >>> TextBlobSentiment()(["", ""], ["a wonderful film", "a terrible film"])
        [1.0, -1.0]
    """

    name = "textblob"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        textblob = require("textblob", "textblob")
        return [float(textblob.TextBlob(text).sentiment.polarity) for text in completions]


class Offensive:
    """Probability that the completion is offensive, from ``alt-profanity-check``'s bundled linear model.

    Args:
        invert: return ``1 - p`` (high for clean text), the detoxification reward.

    Example:
        >>> rude, polite = Offensive()(["", ""], ["you stupid idiot", "thank you, friend"])
        >>> rude > 0.9 > 0.1 > polite
        True
    """

    name = "offensive"

    def __init__(self, invert: bool = False) -> None:
        self.invert = invert
        if invert:
            self.name = "non_offensive"

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        if not completions:
            return []
        profanity_check = require("profanity_check", "alt-profanity-check")
        probs = profanity_check.predict_prob(list(completions))
        return [float(1.0 - p) if self.invert else float(p) for p in probs]


class NonOffensive(Offensive):
    """``1 - P(offensive)``: the reward of TextGen-Detox (see :class:`Offensive`).

    Example:
        >>> NonOffensive()([""], ["have a lovely day"])[0] > 0.9
        True
    """

    def __init__(self) -> None:
        super().__init__(invert=True)


class HFClassifier(LazyModel):
    """Any Hugging Face sequence-classification model (hub id or local folder) as a reward.

    Args:
        model: HF id or path of an ``AutoModelForSequenceClassification`` checkpoint.
        label: the class to score, by name (``"POSITIVE"``, from ``config.id2label``) or index.
        output: ``"prob"`` (softmax probability of ``label``, or sigmoid for a 1-logit model) or ``"logit"``.
        include_prompt: classify ``prompt + completion`` instead of the completion alone.
        batch_size, max_length, device: inference settings.

    Example:
        >>> import tempfile
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> from textgym.rewards.encoder import minilm_path
        >>> folder = tempfile.mkdtemp()
        >>> config = BertConfig(vocab_size=30522, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...                     intermediate_size=8, id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1})
        >>> BertForSequenceClassification(config).save_pretrained(folder)
        >>> from transformers import AutoTokenizer
        >>> _ = AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
        >>> (p,) = HFClassifier(folder, label="POS")([""], ["fine"])
        >>> 0.0 < p < 1.0
        True
    """

    def __init__(
        self,
        model: str,
        label: str | int = 1,
        output: str = "prob",
        include_prompt: bool = False,
        batch_size: int = 64,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        if output not in ("prob", "logit"):
            raise ValueError(f"output must be 'prob' or 'logit', got {output!r}")
        self.model, self.label, self.output = model, label, output
        self.include_prompt, self.batch_size, self.max_length, self.device = (
            include_prompt,
            batch_size,
            max_length,
            device,
        )
        self.name = f"classifier/{label}"
        self._tokenizer: Any = None
        self._model: Any = None
        self._index: int | None = None

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model)
        self._model = AutoModelForSequenceClassification.from_pretrained(self.model).to(self.device).eval()
        self._index = self._label_index(self._model.config)

    def _label_index(self, config: Any) -> int:
        if config.num_labels == 1:
            return 0
        if isinstance(self.label, int):
            if not 0 <= self.label < config.num_labels:
                raise ValueError(f"label index {self.label} out of range for {config.num_labels} labels")
            return self.label
        names = {str(v).lower(): int(k) for k, v in config.id2label.items()}
        if self.label.lower() not in names:
            raise ValueError(f"label {self.label!r} not in the model's labels {sorted(config.id2label.values())}")
        return names[self.label.lower()]

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        import torch

        if self._model is None:
            self._load()
        texts = [p + c for p, c in zip(prompts, completions, strict=True)] if self.include_prompt else completions
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self._model(**batch).logits.float()  # (B, C)
            if self.output == "logit":
                chosen = logits[:, self._index]
            elif logits.shape[-1] == 1:
                chosen = torch.sigmoid(logits[:, 0])
            else:
                chosen = logits.softmax(-1)[:, self._index]
            scores.extend(chosen.tolist())
        return scores
