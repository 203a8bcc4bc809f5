"""Rewards with known inputs and scores; tasks' fixed splits; prompt sources."""

from __future__ import annotations

import json

import pytest

from textgym.rewards import REWARDS, make_reward, validate_scores
from textgym.tasks import make_task
from textgym.tasks.prompts import PromptTask, load_examples
from textgym.tasks.sentiment import EVAL_SIZE


def test_vader_ranks_positive_above_negative_and_handles_empty():
    reward = make_reward("vader")
    good, bad, empty = reward(["", "", ""], ["A brilliant, joyful triumph.", "A boring, dreadful failure.", ""])
    assert good > 0.5 and bad < -0.5 and empty == 0.0


@pytest.mark.parametrize(
    ("name", "completion", "reference", "expected"),
    [
        ("exact_match", " 42 ", "42", 1.0),
        ("exact_match", "43", "42", 0.0),
        ("numeric_match", "-16, I think", "-16", 1.0),
        ("numeric_match", "sixteen", "-16", 0.0),
        ("numeric_match", "", "3", 0.0),
        ("sequence_match", " c b a", "c b a", 1.0),
        ("sequence_match", "", "c b a", 0.0),
        ("sequence_match", "c b", "c b a", 2 / 3),
    ],
)
def test_metric_rewards_known_scores(name, completion, reference, expected):
    assert make_reward(name)(["p"], [completion], references=[(reference,)]) == [pytest.approx(expected)]


def test_metric_reward_without_references_is_a_clear_error():
    with pytest.raises(ValueError, match="references"):
        make_reward("exact_match")(["p"], ["x"])


COLUMNS = {"guessed_number": {"secret": [3]}}  # rewards that read an example column besides the references


def test_every_registered_reward_resolves_and_scores_empty_text():
    for name in REWARDS:
        scores = make_reward(name)(["p"], [""], references=[("ref",)], **COLUMNS.get(name, {}))
        assert validate_scores(scores, ["p"], [""]) == [pytest.approx(scores[0])]


def test_make_reward_errors():
    with pytest.raises(ValueError, match="unknown reward 'sentimnet'"):
        make_reward("sentimnet")
    with pytest.raises(ValueError, match="cannot import"):
        make_reward("no_such_module:thing")
    with pytest.raises(ValueError, match="has no attribute"):
        make_reward("textgym.rewards.metrics:Nope")
    with pytest.raises(ValueError, match="inf"):
        validate_scores([float("inf")], ["p"], ["c"])


def test_sentiment_splits_are_fixed_and_disjoint():
    task = make_task("sentiment")
    train, evaluation = task.examples("train"), task.examples("eval")
    assert len(evaluation) == EVAL_SIZE
    assert not {e.references[0] for e in evaluation} & {e.references[0] for e in train}
    assert make_task("sentiment").examples("eval")[:5] == evaluation[:5]
    assert all(e.references[0].startswith(e.prompt) for e in evaluation[:50])


def test_arithmetic_references_are_correct():
    for example in make_task("arithmetic").examples("eval")[:100]:
        expression = example.prompt.rstrip("=")
        assert str(eval(expression)) == example.references[0]


def test_reverse_references_are_reversed():
    for example in make_task("reverse").examples("train")[:50]:
        letters = example.prompt.removeprefix("Reverse: ").removesuffix(" ->").split()
        assert example.references[0].split() == letters[::-1]


def test_prompt_sources(tmp_path):
    text = tmp_path / "prompts.txt"
    text.write_text("first\n\nsecond\n")
    assert [e.prompt for e in load_examples(text)] == ["first", "second"]
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text(json.dumps({"prompt": "2+2=", "reference": "4"}) + "\n")
    assert load_examples(jsonl)[0].references == ("4",)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a"}\n{oops\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2"):
        load_examples(broken)
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"prompts\[0\]"):
        load_examples([{"text": "no prompt key"}])
    task = PromptTask(["a"], eval_prompts=["b"])
    assert task.examples("train")[0].prompt == "a" and task.examples("eval")[0].prompt == "b"


def test_prompts_from_a_datasets_dataset():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"prompt": ["x", "y"], "references": [["1"], ["2"]]})
    assert load_examples(ds)[1].references == ("2",)
