"""The reward catalogue: known inputs and expected scores, empty completions, composition, persistence."""

from __future__ import annotations

import json
import math
import pickle
import sys

import numpy as np
import pytest

from textgym.rewards import REWARDS, make_reward, validate_scores
from textgym.rewards.compose import Normalized, WeightedSum, dense_scores, pieces
from textgym.rewards.form import DistinctN, LengthPenalty, RepetitionPenalty

NEW_REWARDS = [
    name
    for name in REWARDS
    if name not in {"vader", "exact_match", "numeric_match", "sequence_match", "length"}
    and not name.startswith("judge")
]
POSITIVE, NEGATIVE = "A moving, beautifully acted and wonderful film.", "A tedious, clumsy and awful mess."


def score(name: str, completion: str, reference: str = "ref", prompt: str = "p", **kwargs) -> float:
    (value,) = make_reward(name, **kwargs)([prompt], [completion], references=[(reference,)])
    return value


COLUMNS = {"guessed_number": {"secret": [3, 4]}}  # rewards that read an example column besides the references


@pytest.mark.parametrize("name", NEW_REWARDS)
def test_every_new_reward_handles_empty_completions_and_pickles(name):
    reward = make_reward(name)
    columns = COLUMNS.get(name, {})
    scores = reward(["p", "q"], ["", "some words here"], references=[("ref",), ("words",)], **columns)
    assert validate_scores(scores, ["p", "q"], ["", "x"]) == pytest.approx(scores)
    assert reward(["p"][:0], [], references=[], **{k: [] for k in columns}) == []
    clone = pickle.loads(pickle.dumps(reward))  # loaded models are dropped, reloaded lazily
    later = {k: v[1:] for k, v in columns.items()}
    assert clone(["q"], ["some words here"], references=[("words",)], **later) == pytest.approx(scores[1:], abs=1e-5)


# -- classifiers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["textblob", "minilm_sentiment", "rt_preference"])
def test_sentiment_rewards_rank_positive_above_negative(name):
    good, bad = make_reward(name)(["A critic's review of Heat:"] * 2, [POSITIVE, NEGATIVE])
    assert good > bad


def test_textblob_known_scores():
    assert make_reward("textblob")(["", "", ""], ["a wonderful film", "a terrible film", ""]) == [1.0, -1.0, 0.0]


def test_minilm_sentiment_outputs_agree_and_artifact_is_accurate():
    from textgym.rewards.minilm_sentiment import MiniLMSentiment, load_artifact

    texts = [POSITIVE, NEGATIVE, ""]
    p = MiniLMSentiment(output="prob")([""] * 3, texts)
    signed = MiniLMSentiment()([""] * 3, texts)
    logit = MiniLMSentiment(output="logit")([""] * 3, texts)
    assert signed == pytest.approx([2 * x - 1 for x in p], abs=1e-6)
    assert p == pytest.approx([1 / (1 + math.exp(-x)) for x in logit], abs=1e-6)
    assert p[0] > 0.5 > p[1]
    artifact = load_artifact(train_if_missing=False)
    assert artifact["held_out_accuracy"] >= 0.75 and artifact["n_held_out"] == 1500
    with pytest.raises(ValueError, match="output"):
        MiniLMSentiment(output="score")


def test_offensive_and_non_offensive():
    texts = ["you stupid idiot, shut up", "thank you, have a lovely day", ""]
    rude, polite, empty = make_reward("offensive")([""] * 3, texts)
    assert rude > 0.9 and polite < 0.1 and 0.0 <= empty <= 1.0
    assert make_reward("non_offensive")([""] * 3, texts) == pytest.approx([1 - rude, 1 - polite, 1 - empty])


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from textgym.rewards.encoder import minilm_path

    folder = tmp_path_factory.mktemp("clf")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=3,
        id2label={0: "NEG", 1: "NEU", 2: "POS"},
        label2id={"NEG": 0, "NEU": 1, "POS": 2},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return str(folder)


def test_hf_classifier_probabilities_logits_and_labels(tiny_classifier):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textgym.rewards.classifier import HFClassifier

    texts = ["fine film", "", "a much longer text that needs more padding than the others"]
    probs = [HFClassifier(tiny_classifier, label=i, batch_size=2)([""] * 3, texts) for i in range(3)]
    assert np.allclose(np.sum(probs, axis=0), 1.0, atol=1e-5)
    assert HFClassifier(tiny_classifier, label="pos")([""] * 3, texts) == pytest.approx(probs[2])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    batch = AutoTokenizer.from_pretrained(tiny_classifier)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits[:, 2].tolist()
    assert HFClassifier(tiny_classifier, label=2, output="logit")([""] * 3, texts) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError, match="not in the model's labels"):
        HFClassifier(tiny_classifier, label="happy")([""], ["x"])
    reward = make_reward("textgym.rewards.classifier:HFClassifier", model=tiny_classifier, label="POS")
    assert reward.name == "classifier/POS"


# -- metrics ----------------------------------------------------------------------------------------------

SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.mark.parametrize(
    ("name", "same", "disjoint"),
    [
        ("bleu", 1.0, 0.0),
        ("chrf", 1.0, 0.0),
        ("ter", 0.0, -1.0),
        ("rouge1", 1.0, 0.0),
        ("rouge2", 1.0, 0.0),
        ("rougeL", 1.0, 0.0),
        ("rougeLsum", 1.0, 0.0),
    ],
)
def test_overlap_metrics_identical_and_disjoint(name, same, disjoint):
    assert score(name, SENTENCE, SENTENCE) == pytest.approx(same)
    assert score(name, "abc def", "xyz qwv") == pytest.approx(disjoint, abs=1e-9)


def test_metric_scales_and_known_values():
    from textgym.rewards.overlap import Bleu, ChrF, Rouge

    assert Bleu(scale=1)([""], [SENTENCE], references=[[SENTENCE]]) == [pytest.approx(100.0)]
    assert score("rouge1", "the cat", "the cat sat") == pytest.approx(0.8)  # P=1, R=2/3
    assert score("rouge2", "the cat", "the cat sat") == pytest.approx(2 / 3)  # P=1, R=1/2
    best = Rouge("rouge1")([""], ["the cat"], references=[["a dog", "the cat"]])
    assert best == [1.0]
    assert ChrF(word_order=2).name == "chrf++"
    assert score("ter", "", "a b") == -1.0
    with pytest.raises(ValueError, match="kind"):
        Rouge("rouge3")


def test_meteor_identical_partial_and_disjoint():
    from textgym.rewards.wordnet import DEBIAN_WORDNET

    try:
        import nltk

        nltk.data.find("corpora/wordnet")
    except LookupError:
        if not (DEBIAN_WORDNET / "data.noun").exists():
            pytest.skip("WordNet missing: run .ci/setup-system.sh (apt-get install wordnet-base)")
    same = score("meteor", SENTENCE, SENTENCE)
    partial = score("meteor", "the quick fox", SENTENCE)
    assert same > 0.99 and 0.0 < partial < same
    assert score("meteor", "purple umbrellas", SENTENCE) == 0.0 and score("meteor", "", SENTENCE) == 0.0


def test_wordnet_lexnames_has_45_categories():
    from textgym.rewards.wordnet import lexnames_text

    lines = lexnames_text().splitlines()
    assert len(lines) == 45 and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_bertscore_and_embedding_similarity():
    ref = ["a cat sat on the mat"]
    same, para, other, empty = make_reward("bertscore")(
        [""] * 4,
        ["a cat sat on the mat", "the cat was sitting on a rug", "stock markets fell", ""],
        references=[ref] * 4,
    )
    assert same == pytest.approx(1.0, abs=1e-5) and same > para > other > 0.0 and empty == 0.0
    sims = make_reward("embedding_similarity")([""] * 2, ["a cat sat on the mat", ""], references=[ref] * 2)
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] == 0.0


@pytest.mark.slow
def test_bertscore_matches_the_bert_score_package():
    bert_score = pytest.importorskip("bert_score")
    from textgym.rewards.encoder import minilm_path
    from textgym.rewards.semantic import BertScore

    cands, refs = ["the cat sat on the mat", "stocks fell sharply"], ["a cat was sitting on the mat", "markets dropped"]
    p, r, f = bert_score.BERTScorer(model_type=str(minilm_path()), num_layers=6).score(cands, refs)
    for kind, expected in (("precision", p), ("recall", r), ("f1", f)):
        got = BertScore(kind)([""] * 2, cands, references=[[x] for x in refs])
        assert got == pytest.approx(expected.tolist(), abs=1e-4)


def test_form_rewards_known_values():
    assert DistinctN(1)(["", ""], ["the cat and the dog", ""]) == [0.8, 0.0]
    assert DistinctN(2)([""], ["a b a b"]) == [pytest.approx(2 / 3)]
    assert RepetitionPenalty(2)([""], ["the cat the cat the cat"]) == [pytest.approx(-0.6)]
    assert RepetitionPenalty(2)([""], ["all different words here"]) == [0.0]
    assert LengthPenalty(target=4, tolerance=1)([""] * 3, ["a b c", "a b c d e f", ""]) == [0.0, -0.25, -0.75]
    with pytest.raises(ValueError):
        DistinctN(0)


def test_evaluate_adapter_loads_a_local_metric_module(tmp_path):
    pytest.importorskip("evaluate")
    from textgym.rewards.external import EvaluateMetric

    folder = tmp_path / "overlap_count"
    folder.mkdir()
    (folder / "overlap_count.py").write_text(
        "import datasets\nimport evaluate\n\n\n"
        "class OverlapCount(evaluate.Metric):\n"
        "    def _info(self):\n"
        "        return evaluate.MetricInfo(description='', citation='', inputs_description='', features="
        "datasets.Features({'predictions': datasets.Value('string'), "
        "'references': datasets.Sequence(datasets.Value('string'))}))\n\n"
        "    def _compute(self, predictions, references):\n"
        "        words = [len(set(p.split()) & set(' '.join(r).split())) for p, r in zip(predictions, references)]\n"
        "        return {'label': 'x', 'overlap': sum(words) / len(words)}\n"
    )
    reward = EvaluateMetric(str(folder), scale=2.0)
    scores = reward(["", "", ""], ["a b c", "z", ""], references=[["a b", "c d"], ["q"], ["r"]])
    assert scores == [1.5, 0.0, 0.0] and reward.name == "evaluate/overlap_count"
    assert pickle.loads(pickle.dumps(reward))([""], ["a"], references=[["a"]]) == [0.5]


def test_missing_optional_dependency_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(ModuleNotFoundError, match="pip install sacrebleu"):
        score("bleu", "a", "a")


# -- preference models and judges ---------------------------------------------------------------------------


def synthetic_pairs(n: int) -> list[dict[str, str]]:
    good = ["wonderful", "brilliant", "superb", "delightful", "great", "moving", "charming", "lovely"]
    bad = ["awful", "dreadful", "boring", "terrible", "dull", "clumsy", "tedious", "lifeless"]
    return [
        {
            "prompt": f"Review number {i}:",
            "chosen": f"A {good[i % 8]} film, truly {good[(i + 3) % 8]}.",
            "rejected": f"A {bad[i % 8]} film, truly {bad[(i + 5) % 8]}.",
        }
        for i in range(n)
    ]


def test_bradley_terry_training_save_load_and_reward(tmp_path):
    from textgym.rewards import preference as pref

    data = tmp_path / "pairs.jsonl"
    pref.save_pairs(synthetic_pairs(60), data)
    pairs = pref.load_pairs(data)
    artifact = pref.train(pairs, hidden=8, epochs=30, progress=False)
    assert artifact["n_train"] + artifact["n_held_out"] == 60 and artifact["n_held_out"] > 0
    assert artifact["train_accuracy"] == 1.0 and artifact["held_out_accuracy"] >= 0.8
    pref.save(artifact, tmp_path / "rm.pt")
    reward = make_reward("preference", model=str(tmp_path / "rm.pt"))
    good, bad, empty = reward(["Review:"] * 3, ["A superb, lovely film.", "A dull, awful film.", ""])
    assert good > bad and math.isfinite(empty) and reward.name == "preference/rm"
    (data_bad := tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(ValueError, match="rejected"):
        pref.load_pairs(data_bad)


def test_shipped_demo_preference_sets_and_models():
    from textgym.rewards import preference as pref

    for name in pref.DEMOS:
        pairs = pref.load_pairs(pref.demo_data_path(name))
        assert len(pairs) > 1000 and sum(pref.is_held_out(p["prompt"]) for p in pairs) > 100
        artifact = pref.load(pref.demo_model_path(name))
        assert artifact["held_out_accuracy"] >= 0.7
    fit, off = make_reward("dialogue_preference")(["User: Hello\nBot:"] * 2, [" Hi, how are you?", " Photosynthesis."])
    assert fit > off


def test_preference_demo_data_command_is_deterministic(tmp_path, capsys):
    from textgym.rewards.preference import load_pairs, main

    assert main(["demo-data", "dialogue", "--out", str(tmp_path / "a.jsonl")]) == 0
    main(["demo-data", "dialogue", "--out", str(tmp_path / "b.jsonl")])
    assert load_pairs(tmp_path / "a.jsonl") == load_pairs(tmp_path / "b.jsonl")
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
def test_accuracy_commands_print_held_out_accuracy(capsys):
    from textgym.rewards import minilm_sentiment, preference

    assert preference.main(["eval", "--model", "rt", "--data", "rt"]) == 0
    sentiment_line = capsys.readouterr().out
    assert "held-out pairwise accuracy" in sentiment_line
    accuracy = float(sentiment_line.split("accuracy ")[1].split()[0])
    assert accuracy >= 0.7
    assert minilm_sentiment.main(["eval"]) == 0
    out = capsys.readouterr().out
    assert float(out.split("accuracy ")[1].split()[0]) >= 0.75


def test_judge_batched_left_padding_matches_one_by_one(tokenizer, tiny_model):
    from textgym.rewards.judge import LLMJudge, ReplyJudge

    texts = ["great", "", "a much longer completion that needs a lot of left padding in the batch"]
    batched = LLMJudge(model=tiny_model, tokenizer=tokenizer, batch_size=3)([""] * 3, texts)
    single = LLMJudge(model=tiny_model, tokenizer=tokenizer, batch_size=1)([""] * 3, texts)
    assert batched == pytest.approx(single, abs=1e-4)
    probs = LLMJudge(model=tiny_model, tokenizer=tokenizer, output="prob")([""] * 3, texts)
    assert probs == pytest.approx([1 / (1 + math.exp(-x)) for x in batched], abs=1e-5)
    reply = ReplyJudge(model=tiny_model, tokenizer=tokenizer)
    assert "User: hi" in reply.render("User: hi\nBot:", " hello") and reply.choices == (" yes", " no")
    with pytest.raises(ValueError, match="different tokens"):
        LLMJudge(model=tiny_model, tokenizer=tokenizer, choices=(" yes", " yes"))([""], ["x"])


@pytest.mark.slow
def test_sentiment_judge_with_the_default_model():
    good, bad, empty = make_reward("judge_sentiment")([""] * 3, [POSITIVE, NEGATIVE, ""])
    assert good > bad and math.isfinite(empty)


# -- composition --------------------------------------------------------------------------------------------


def test_weighted_sum_breakdown_combine_and_dense():
    total = WeightedSum({"bleu": 0.5, DistinctN(1): 2.0, RepetitionPenalty(1): 1.0})
    completions = [" the cat the cat", ""]
    refs = [("the cat",), ("x",)]
    parts = total.breakdown(["", ""], completions, references=refs)
    assert set(parts) == {"bleu", "distinct_1", "repetition_1"}
    expected = [0.5 * b + 2 * d + r for b, d, r in zip(*parts.values(), strict=True)]
    assert total(["", ""], completions, references=refs) == pytest.approx(expected)
    dense = total.dense(["", ""], completions, references=refs)
    assert [len(d) for d in dense] == [4, 0]
    assert sum(dense[0]) == pytest.approx(expected[0])
    with pytest.raises(ValueError, match="distinct names"):
        WeightedSum({DistinctN(1): 1.0, DistinctN(1): 2.0})


def test_dense_scores_use_tokens_when_given():
    tokens = [[" go", "od", " good", " day"]]
    dense = dense_scores(RepetitionPenalty(1), [""], [" good good day"], completion_tokens=tokens)
    assert dense == [[0.0, 0.0, pytest.approx(-1 / 3), 0.0]]
    assert dense_scores(LengthPenalty(target=1), [""], [" a b c"]) == [[0.0, 0.0, -2.0]]
    assert pieces("") == [] and "".join(pieces(" a  b ")) == " a  b "


def test_normalized_running_statistics():
    norm = Normalized(LengthPenalty(target=1))
    batches = [["a", "a b c", "a b"], ["a b c d e", "a"]]
    seen = []
    for batch in batches:
        out = norm([""] * len(batch), batch)
        seen += LengthPenalty(target=1)([""] * len(batch), batch)
    assert norm.count == 5 and norm.mean == pytest.approx(np.mean(seen)) and norm.std == pytest.approx(np.std(seen))
    assert out == pytest.approx(list((np.array(seen[-2:]) - np.mean(seen)) / np.std(seen)), abs=1e-6)
    clipped = Normalized(LengthPenalty(target=1), clip=0.5)([""] * 3, ["a", "a", "a b c d e f g"])
    assert max(abs(x) for x in clipped) == 0.5
    frozen = pickle.loads(pickle.dumps(norm))
    frozen.frozen = True
    frozen([""], ["a b c d e f g h"])
    assert frozen.count == 5 and frozen.breakdown([""], ["a"]) == {"length_penalty": [0.0]}
