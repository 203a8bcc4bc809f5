"""Bad input and failing rewards: clear errors, and an env left in a defined state.

Covers the single env (``TextGenEnv``) and the vector env (``TextGenVectorEnv``, both its CPU state and the
state-on-device path that CUDA uses, run here on CPU tensors).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.error import ResetNeeded

import textgym
from textgym.env import TextGenEnv
from textgym.episode import MAX_TOKEN_BUDGET, PROMPT_CACHE_SIZE
from textgym.vector import TextGenVectorEnv

REWARD_ERROR = r"call reset\(\) after the reward error"


class FailingReward:
    """A free reward that raises on its ``fail_on``-th call (1-based) and works on every other call."""

    def __init__(self, fail_on: int) -> None:
        self.fail_on, self.calls = fail_on, 0

    def __call__(self, prompts: list[str], completions: list[str], **info) -> list[float]:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("reward service unavailable")
        return [float(len(c)) for c in completions]


class RecordingReward:
    """A zero reward that keeps the references it was given."""

    def __init__(self) -> None:
        self.references: list = []

    def __call__(self, prompts: list[str], completions: list[str], references=(), **info) -> list[float]:
        self.references.extend(references)
        return [0.0] * len(completions)


@pytest.fixture(params=["cpu", "device"])
def ops(request, monkeypatch):
    """Run the vector env with its CPU state, or with the state-on-device code path (on CPU tensors)."""
    if request.param == "device":
        monkeypatch.setattr(textgym.vector, "state_ops", textgym.vector.DeviceOps)
    return request.param


def prompt_lengths(setup, prompts: list[str]) -> list[int]:
    """Tokens each prompt fills in the first ``max_prompt_tokens`` columns."""
    return [len(setup.encode_many("custom", [0], [textgym.tasks.Example(p)])[0]) for p in prompts]


def assert_rows_intact(setup, ids: np.ndarray, mask: np.ndarray, prompts: list[str], written: list[int]) -> None:
    """Each row: the mask covers exactly its prompt (right-aligned in the first P columns) and the ``written``
    tokens after it; the padding after them is untouched (pad ids, mask 0)."""
    p = setup.max_prompt_tokens
    for row, (length, n) in enumerate(zip(prompt_lengths(setup, prompts), written, strict=True)):
        expected = np.zeros(setup.length, dtype=np.int64)
        expected[p - length : p + n] = 1
        np.testing.assert_array_equal(mask[row], expected, err_msg=f"attention mask of row {row}")
        assert (ids[row, p + n :] == setup.pad_token_id).all(), f"padding of row {row} was written"


def current_prompts(prompts: list[str], infos: dict) -> list[str]:
    """``prompts`` updated with the sub-envs a step (auto)reset, as its ``infos`` report them."""
    reset = infos.get("_prompt", np.zeros(len(prompts), dtype=bool))
    return [infos["prompt"][i] if reset[i] else prompt for i, prompt in enumerate(prompts)]


# -- 1. a reward that raises --------------------------------------------------------------------------------


def test_single_env_refuses_to_step_after_a_reward_error_until_reset():
    env = TextGenEnv(task="reverse", reward=FailingReward(fail_on=2), max_new_tokens=2)
    for episode in range(2):  # the first episode is scored; the second one's reward raises
        env.reset(seed=0)
        env.step(5)
        if episode == 0:
            env.step(6)
        else:
            with pytest.raises(RuntimeError, match="unavailable"):
                env.step(6)
    for action in (7, 8):
        with pytest.raises(ResetNeeded, match=REWARD_ERROR):
            env.step(action)
    obs, info = env.reset(seed=1)
    assert_rows_intact(env.setup, obs["input_ids"][None], obs["attention_mask"][None], [info["prompt"]], [0])
    env.step(5)
    obs, reward, terminated, _, info = env.step(6)
    assert terminated and reward == len(info["completion"])
    assert_rows_intact(env.setup, obs["input_ids"][None], obs["attention_mask"][None], [info["prompt"]], [2])


@pytest.mark.parametrize("mode", ["NextStep", "Disabled"])
def test_vector_env_refuses_to_step_after_a_reward_error_until_a_full_reset(ops, mode):
    """Before the fix the next step wrote finished rows' tokens into the next row's prompt padding, or raised
    IndexError from the last row."""
    envs = TextGenVectorEnv(3, task="reverse", reward=FailingReward(fail_on=2), max_new_tokens=2, autoreset_mode=mode)
    eos = envs.setup.eos_token_id
    envs.reset(seed=0)
    envs.step(torch.tensor([eos, 5, 5]))  # row 0 ends and is scored (call 1)
    with pytest.raises(RuntimeError, match="unavailable"):
        envs.step(torch.tensor([5, 6, 6]))  # rows 1 and 2 reach the budget: call 2 raises
    for _ in range(2):
        with pytest.raises(RuntimeError, match=REWARD_ERROR):
            envs.step(torch.tensor([7, 7, 7]))
    with pytest.raises(ValueError, match="every sub-env"):
        envs.reset(options={"reset_mask": np.array([True, False, False])})
    with pytest.raises(RuntimeError, match=REWARD_ERROR):  # the refused partial reset did not clear it
        envs.step(torch.tensor([7, 7, 7]))
    obs, infos = envs.reset(seed=3)
    setup, prompts = envs.setup, infos["prompt"].tolist()
    assert_rows_intact(setup, obs["input_ids"].numpy(), obs["attention_mask"].numpy(), prompts, [0, 0, 0])
    assert envs.num_generated.tolist() == [0, 0, 0] and not envs.done.any()
    obs, _, _, _, _ = envs.step(torch.tensor([5, eos, 5]))
    assert_rows_intact(setup, obs["input_ids"].numpy(), obs["attention_mask"].numpy(), prompts, [1, 1, 1])
    obs, rewards, terminated, _, infos = envs.step(torch.tensor([6, 6, 6]))
    assert terminated.tolist() == [True, mode == "Disabled", True]
    assert rewards[0] == len(infos["completion"][0]) and rewards[2] == len(infos["completion"][2])
    written = [2, 1 if mode == "Disabled" else 0, 2]  # NextStep: row 1 (ended by EOS) restarts in this step
    prompts = current_prompts(prompts, infos)
    assert_rows_intact(setup, obs["input_ids"].numpy(), obs["attention_mask"].numpy(), prompts, written)


def test_vector_env_steps_on_correctly_after_reset_following_a_reward_error(ops):
    """Many episodes after the error and the reset: the mask stays over prompt + written tokens in every row."""
    envs = TextGenVectorEnv(4, task="reverse", reward=FailingReward(fail_on=1), max_new_tokens=3)
    envs.reset(seed=0)
    with pytest.raises(RuntimeError, match="unavailable"):
        for _ in range(3):
            envs.step(torch.tensor([5, 6, 7, 8]))
    obs, infos = envs.reset(seed=1)
    prompts = infos["prompt"].tolist()
    rng = np.random.default_rng(0)
    for _ in range(12):
        obs, _, _, _, infos = envs.step(torch.as_tensor(rng.integers(3, 1000, size=4)))
        prompts = current_prompts(prompts, infos)
        written = envs.num_generated.tolist()
        assert_rows_intact(envs.setup, obs["input_ids"].numpy(), obs["attention_mask"].numpy(), prompts, written)


# -- 2. unclear errors become ValueErrors naming the input ----------------------------------------------------


@pytest.mark.parametrize(
    "actions",
    [np.array(["a", "b"]), ["a", "b"], [1, None], np.array([1.5, 2.0])],
    ids=["str-array", "str-list", "object", "float-array"],
)
def test_vector_env_non_integer_actions(ops, actions):
    envs = TextGenVectorEnv(2, task="reverse")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be integer token ids"):
        envs.step(actions)
    envs.step(np.array([5, 6]))  # the env is untouched


def test_lone_surrogate_in_prompts_is_a_value_error():
    with pytest.raises(ValueError, match=r"prompt 0 of split 'train' must be valid Unicode"):
        TextGenEnv(prompts=["\ud800"], reward="length").reset(seed=0)
    with pytest.raises(ValueError, match=r"prompt 1 of split 'train' must be valid Unicode"):
        TextGenVectorEnv(2, prompts=["fine", "bad \udfff"], reward="length").reset(options={"prompt_index": [0, 1]})


@pytest.mark.parametrize("vector", [False, True], ids=["single", "vector"])
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"prompt": "\ud800"}, r"options\['prompt'\] must be valid Unicode text"),
        ({"prompt": 42}, r"options\['prompt'\] must be a string"),
        ({"prompt": "2+2=", "references": None}, r"options\['references'\] must be a string .*or a list"),
        ({"prompt": "2+2=", "references": ["4", 4]}, r"options\['references'\]\[1\] must be a string"),
        ({"prompt_index": 1.0}, r"prompt_index must be an int or a list of ints"),
        ({"prompt_index": "1"}, r"prompt_index must be an int or a list of ints"),
        ({"prompt_index": True}, r"prompt_index must be an int in \[0, "),
        ({"splitt": "eval"}, r"unknown reset option\(s\) \['splitt'\]: valid keys are \['split', 'prompt_index'"),
        ({"references": ["4"]}, r"options\['references'\] goes with options\['prompt'\]"),
        ({"prompt": "x", "prompt_index": 0}, r"exclude each other"),
        ("str", r"options must be a dict with keys among \['split'"),
        ([("split", "eval")], r"options must be a dict"),
    ],
)
def test_bad_reset_options(vector, options, match):
    env = TextGenVectorEnv(2, task="reverse") if vector else TextGenEnv(task="reverse")
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)
    env.reset(seed=0, options=None)
    env.reset(seed=0, options={})


@pytest.mark.parametrize("chosen", [[0, 1.0], [0], np.zeros((2, 1), dtype=np.int64)], ids=["float", "short", "2d"])
def test_vector_env_bad_prompt_index_lists(chosen):
    envs = TextGenVectorEnv(2, task="reverse")
    with pytest.raises(ValueError, match=r"prompt_index must be an int"):
        envs.reset(options={"prompt_index": chosen})


def test_vector_env_unknown_option_lists_reset_mask_as_valid():
    with pytest.raises(ValueError, match=r"\['reset_masks'\]: valid keys are .*'reset_mask'\]"):
        TextGenVectorEnv(2, task="reverse").reset(options={"reset_masks": [True, True]})


@pytest.mark.parametrize("name", ["max_new_tokens", "max_prompt_tokens"])
@pytest.mark.parametrize("value", ["4", 2.5, True, -1, MAX_TOKEN_BUDGET + 1, 10**7])
def test_token_budgets_must_be_bounded_ints(name, value):
    low = 1 if name == "max_new_tokens" else 0
    with pytest.raises(ValueError, match=rf"{name} must be an int in \[{low}, {MAX_TOKEN_BUDGET}\], got"):
        TextGenEnv(task="reverse", **{name: value})
    with pytest.raises(ValueError, match=name):
        TextGenVectorEnv(2, task="reverse", **{name: value})


def test_token_budget_bound_is_inclusive_and_numpy_ints_are_fine():
    env = TextGenEnv(task="reverse", max_new_tokens=np.int64(MAX_TOKEN_BUDGET), max_prompt_tokens=np.int32(4))
    assert (env.setup.max_new_tokens, env.setup.max_prompt_tokens) == (MAX_TOKEN_BUDGET, 4)
    assert type(env.setup.max_new_tokens) is int


@pytest.mark.parametrize("num_envs", [True, 0, 2.0, "2"])
def test_num_envs_must_be_a_positive_int(num_envs):
    with pytest.raises(ValueError, match=r"num_envs must be an int >= 1, got"):
        TextGenVectorEnv(num_envs, task="reverse")


@pytest.mark.parametrize("vector", [False, True], ids=["single", "vector"])
def test_a_string_reference_is_one_reference(vector):
    """Before the fix ``"42"`` became the references ``("4", "2")``, so an answer of 4 matched."""
    reward = RecordingReward()
    kwargs = {"prompts": ["x"], "reward": reward, "max_new_tokens": 1}
    env = TextGenVectorEnv(2, **kwargs) if vector else TextGenEnv(**kwargs)
    action = torch.tensor([5, 5]) if vector else 5
    env.reset(options={"prompt": "2+2=", "references": "42"})
    env.step(action)
    env.reset(options={"prompt": "2+2=", "references": ["4", "four"]})
    env.step(action)
    copies = 2 if vector else 1
    assert reward.references == [("42",)] * copies + [("4", "four")] * copies


# -- 3. the cache of custom prompts is bounded ----------------------------------------------------------------


def test_prompt_cache_default_and_bad_sizes():
    assert TextGenEnv(task="reverse").setup.prompt_cache_size == PROMPT_CACHE_SIZE == 4096
    for size in (0, -3, 1.5, None):
        with pytest.raises(ValueError, match="prompt_cache_size must be an int >= 1"):
            TextGenEnv(task="reverse", prompt_cache_size=size)


def expected_prompt_row(setup, tokenizer, text: str) -> np.ndarray:
    """The prompt columns of the first observation of ``text``, computed without the env's caches."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][-setup.max_prompt_tokens :]
    row = np.full(setup.max_prompt_tokens, setup.pad_token_id, dtype=np.int64)
    row[setup.max_prompt_tokens - len(ids) :] = ids
    return row


def test_single_env_prompt_cache_stays_at_its_bound(tokenizer):
    env = TextGenEnv(task="reverse", prompt_cache_size=8)
    texts = [f"Prompt number {i} says" for i in range(40)]
    for text in [*texts, texts[0], texts[-1], texts[5]]:  # the last three: evicted, cached, evicted
        obs, info = env.reset(options={"prompt": text})
        assert info["prompt"] == text
        p = env.setup.max_prompt_tokens
        np.testing.assert_array_equal(obs["input_ids"][:p], expected_prompt_row(env.setup, tokenizer, text))
        assert len(env.setup._custom) <= 8
    assert len(env.setup._custom) == 8
    assert list(env.setup._custom)[-3:] == [texts[0], texts[-1], texts[5]]  # most recently used last


def test_vector_env_prompt_bank_stays_at_its_bound(ops, tokenizer):
    envs = TextGenVectorEnv(3, task="reverse", prompt_cache_size=4)
    texts = [f"Tell me about item {i}" for i in range(30)]
    p = envs.prompt_length
    for text in [*texts, texts[0], texts[-1]]:
        obs, _ = envs.reset(options={"prompt": text})
        expected = expected_prompt_row(envs.setup, tokenizer, text)
        for row in obs["input_ids"].numpy():
            np.testing.assert_array_equal(row[:p], expected)
    assert len(envs._bank._custom_slots) == 4 and envs._bank.size == 4
    assert len(envs.setup._custom) == 4
    envs.reset(seed=0)  # task prompts still work beside the custom ones, and are not evicted
    assert envs._bank.size > 4 and len(envs._bank._custom_slots) == 4


def test_a_reused_bank_slot_leaves_running_episodes_alone(ops, tokenizer):
    """With room for one custom prompt, a second one rewrites the first one's slot while a sub-env still runs an
    episode of the first: that episode's observation must not change."""
    envs = TextGenVectorEnv(2, task="reverse", prompt_cache_size=1)
    first, second = "The first prompt", "A different second one"
    envs.reset(options={"prompt": first})
    envs.step(torch.tensor([5, 6]))
    obs, _ = envs.reset(options={"prompt": second, "reset_mask": np.array([False, True])})
    p = envs.prompt_length
    np.testing.assert_array_equal(obs["input_ids"][0, :p].numpy(), expected_prompt_row(envs.setup, tokenizer, first))
    np.testing.assert_array_equal(obs["input_ids"][1, :p].numpy(), expected_prompt_row(envs.setup, tokenizer, second))
    assert obs["input_ids"][0, p].item() == 5 and envs.prompts == [first, second]
    assert len(envs._bank._custom_slots) == 1 and envs._bank.size == 1
