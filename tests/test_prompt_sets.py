"""Prompt sets as TRL users bring them: chat turns rendered by the chat template, extra columns for the reward,
datasets with their own held-out split."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import textgym  # noqa: F401  (registers the ids)

ROWS = [
    {"prompt": "What is 2+2?", "answer": "4"},
    {
        "prompt": [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "3+3?"}],
        "answer": "6",
    },
]


def seen(log: list):
    """A reward that records what it was called with and pays 1 when the completion holds the answer."""

    def reward(prompts, completions, answer, **info):
        log.append({"prompts": prompts, "answer": answer, **info})
        return [float(a in c) for a, c in zip(answer, completions, strict=True)]

    return reward


def prompt_text(env, obs) -> str:
    ids = np.asarray(obs["input_ids"])[np.asarray(obs["attention_mask"]).astype(bool)]
    return env.unwrapped.setup.tokenizer.decode(ids)


def test_chat_template_renders_a_plain_prompt_as_a_user_turn_ready_for_the_reply():
    env = gym.make("TextGen-v0", prompts=["What is 2+2?"], reward="length", chat_template=True)
    obs, _ = env.reset(seed=0)
    text = prompt_text(env, obs)
    assert text.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    plain, _ = gym.make("TextGen-v0", prompts=["What is 2+2?"], reward="length").reset(seed=0)
    assert prompt_text(env, plain).endswith("What is 2+2?") and "<|im_start|>" not in prompt_text(env, plain)


def test_conversational_prompts_keep_their_turns_and_the_reward_gets_the_extra_columns():
    log: list = []
    env = gym.make("TextGen-v0", prompts=ROWS, reward=seen(log), chat_template=True, max_new_tokens=2)
    obs, info = env.reset(seed=0, options={"prompt_index": 1})
    assert info["prompt"] == "3+3?"
    assert "<|im_start|>system\nAnswer with a number.<|im_end|>" in prompt_text(env, obs)
    for token in env.unwrapped.setup.tokenizer.encode("6!")[:2]:
        _, reward, terminated, _, _ = env.step(token)
    assert terminated and reward == 1.0 and log[-1]["answer"] == ["6"] and log[-1]["prompts"] == ["3+3?"]


def test_the_vector_env_passes_each_episodes_extra_columns():
    log: list = []
    envs = gym.make_vec(
        "TextGen-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        prompts=ROWS,
        reward=seen(log),
        max_new_tokens=1,
    )
    envs.reset(seed=0, options={"prompt_index": [0, 1]})
    envs.step(np.array([5, 5]))
    assert log[-1]["answer"] == ["4", "6"] and log[-1]["references"] == [(), ()]


def test_a_dataset_dict_evaluates_on_its_own_held_out_split():
    datasets = pytest.importorskip("datasets")
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"prompt": ["a", "b"], "answer": ["1", "2"]}),
            "test": datasets.Dataset.from_dict({"prompt": ["held out"], "answer": ["3"]}),
        }
    )
    task = gym.make("TextGen-v0", prompts=splits, reward="length").unwrapped.setup.task
    assert [e.prompt for e in task.examples("train")] == ["a", "b"]
    assert [(e.prompt, e.extra["answer"]) for e in task.examples("eval")] == [("held out", "3")]


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        ([{"prompt": [{"role": "user"}]}], r"prompts\[0\]: 'prompt' must be a string or a list of turns"),
        ({"validation": ["x"]}, r"need a 'train' split, got the splits \['validation'\]"),
        ([{"messages": []}], r"prompts\[0\]: 'prompt' must be a string or a list of turns"),
    ],
)
def test_malformed_prompt_sets_are_clear_errors(prompts, message):
    with pytest.raises(ValueError, match=message):
        gym.make("TextGen-v0", prompts=prompts, reward="length").reset(seed=0)


def test_chat_template_needs_a_tokenizer_that_has_one(tokenizer):
    class NoTemplate:
        def __getattr__(self, name):
            return None if name == "chat_template" else getattr(tokenizer, name)

        def __len__(self):
            return len(tokenizer)

    with pytest.raises(ValueError, match=r"chat_template=True but tokenizer .* has no chat template"):
        gym.make("TextGen-v0", prompts=["x"], reward="length", tokenizer=NoTemplate(), chat_template=True)


def test_a_finished_conversation_keeps_its_reply_as_the_reference_not_the_prompt():
    row = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}
    env = gym.make("TextGen-v0", prompts=[row], reward="length", chat_template=True)
    obs, info = env.reset(seed=0)
    example = env.unwrapped.setup.task.examples("train")[0]
    assert info["prompt"] == "What is 2+2?" and example.references == ("4",)
    assert prompt_text(env, obs).endswith("What is 2+2?<|im_end|>\n<|im_start|>assistant\n")


def test_a_chat_prompt_longer_than_the_budget_is_an_error_not_a_cut_template():
    env = gym.make("TextGen-v0", prompts=["word " * 60], reward="length", chat_template=True)
    with pytest.raises(
        ValueError, match=r"renders to \d+ tokens with the chat template, more than max_prompt_tokens=64"
    ):
        env.reset(seed=0)


def test_columns_named_like_the_rewards_own_arguments_are_refused():
    with pytest.raises(ValueError, match=r"column names \['completions'\] are taken by the reward's own arguments"):
        gym.make("TextGen-v0", prompts=[{"prompt": "x", "completions": "y"}], reward="length").reset(seed=0)
