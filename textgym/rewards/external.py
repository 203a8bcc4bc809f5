"""Adapter for a metric module loaded with Hugging Face ``evaluate`` (e.g. from a local path).

``evaluate.load("bleu")`` needs the hub; ``evaluate.load("/path/to/my_metric")`` works offline. Metrics in
``evaluate`` are corpus-level, so the adapter scores each completion on its own (one ``compute`` call each).
"""

from __future__ import annotations

from typing import Any

from textgym.rewards._lazy import LazyModel, require
from textgym.rewards.metrics import _references


class EvaluateMetric(LazyModel):
    """A reward from an ``evaluate`` metric: ``compute(predictions=[c], references=[r])[key] / scale``.

    Args:
        metric: a path or name for ``evaluate.load`` (loaded lazily, so the reward stays picklable), or an
            already loaded ``evaluate.EvaluationModule``.
        key: which entry of the result dict to return (default: the only or first numeric one).
        scale: divide the value by this (e.g. 100 for sacrebleu-style metrics).
        single_reference: pass the first reference as a string instead of the list of references.
        compute_kwargs: extra arguments for ``compute``.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "same"
        >>> folder.mkdir()
        >>> _ = (folder / "same.py").write_text(
        ...     "import datasets\\nimport evaluate\\n"
        ...     "class Same(evaluate.Metric):\\n"
        ...     "    def _info(self):\\n"
        ...     "        return evaluate.MetricInfo(description='', citation='', inputs_description='',\\n"
        ...     "            features=datasets.Features({'predictions': datasets.Value('string'),\\n"
        ...     "                                        'references': datasets.Value('string')}))\\n"
        ...     "    def _compute(self, predictions, references):\\n"
        ...     "        return {'same': sum(p == r for p, r in zip(predictions, references)) / len(predictions)}\\n"
        ... )
        >>> EvaluateMetric(str(folder), single_reference=True)(["", ""], ["a", "b"], references=[["a"], ["c"]])
        [1.0, 0.0]
    """

    def __init__(
        self,
        metric: str | Any,
        key: str | None = None,
        scale: float = 1.0,
        single_reference: bool = False,
        **compute_kwargs: Any,
    ) -> None:
        self.metric = metric
        self.key, self.scale, self.single_reference, self.compute_kwargs = key, scale, single_reference, compute_kwargs
        label = metric if isinstance(metric, str) else getattr(metric, "name", "metric")
        self.name = f"evaluate/{str(label).rstrip('/').split('/')[-1]}"
        self._module: Any = None if isinstance(metric, str) else metric

    def _load(self) -> Any:
        if self._module is None:
            evaluate = require("evaluate", "evaluate")
            self._module = evaluate.load(self.metric)
        return self._module

    def _value(self, result: dict[str, Any]) -> float:
        if self.key is not None:
            return float(result[self.key])
        numeric = [v for v in result.values() if isinstance(v, int | float)]
        if not numeric:
            raise ValueError(f"{self.name}: no numeric value in {result!r}; pass key=...")
        return float(numeric[0])

    def __call__(self, prompts: list[str], completions: list[str], **info: Any) -> list[float]:
        module = self._load()
        refs = _references(info, len(completions))
        scores = []
        for completion, options in zip(completions, refs, strict=True):
            reference: Any = options[0] if self.single_reference else list(options)
            result = module.compute(predictions=[completion], references=[reference], **self.compute_kwargs)
            scores.append(self._value(result) / self.scale)
        return scores
