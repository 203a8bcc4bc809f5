"""TextGenEnv and TextGenVectorEnv: the Gymnasium contract, determinism and bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env

import textgym
from textgym.vector import TextGenVectorEnv

GENERIC_KWARGS = {"prompts": ["Once upon a time", "The weather today is"], "reward": "length"}
SPECS = [gym.spec(env_id) for env_id in textgym.ENV_IDS]


def make(env_id: str, **kwargs):
    if gym.spec(env_id).kwargs.get("task") == "prompts":
        kwargs = {**GENERIC_KWARGS, **kwargs}
    return gym.make(env_id, **kwargs)


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_gymnasium_check_env(spec):
    check_env(make(spec.id).unwrapped, skip_render_check=False)


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_sb3_check_env(spec):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(make(spec.id).unwrapped, warn=False)


@pytest.mark.parametrize("spec", SPECS, ids=[s.id for s in SPECS])
def test_spaces_follow_the_contract(spec, tokenizer):
    env = make(spec.id)
    setup = env.unwrapped.setup
    length = setup.max_prompt_tokens + setup.max_new_tokens
    assert env.action_space == gym.spaces.Discrete(len(tokenizer))
    assert env.observation_space["input_ids"].shape == (length,)
    assert env.observation_space["input_ids"].dtype == np.int64
    assert env.observation_space["attention_mask"].high.max() == 1


def play(env, seed: int, actions) -> list:
    obs, info = env.reset(seed=seed)
    trace = [obs["input_ids"].tolist(), info["prompt"]]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        trace.append((obs["input_ids"].tolist(), obs["attention_mask"].tolist(), reward, terminated, truncated))
        if terminated:
            trace.append(info["completion"])
            break
    return trace


def test_same_seed_same_episode_different_seed_differs(tokenizer):
    env = gym.make("TextGen-Sentiment-v0")
    actions = tokenizer(" a truly great and warm film", add_special_tokens=False)["input_ids"]
    assert play(env, 3, actions) == play(env, 3, actions)
    prompts = {play(env, seed, actions)[1] for seed in range(5)}
    assert len(prompts) > 1


def test_episode_ends_at_eos_with_terminal_reward(tokenizer):
    env = gym.make("TextGen-Arithmetic-v0")
    obs, info = env.reset(seed=0, options={"split": "eval", "prompt_index": 0})
    answer = env.unwrapped.setup.task.examples("eval")[0].references[0]
    tokens = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    rewards = []
    for token in tokens:
        obs, reward, terminated, truncated, info = env.step(token)
        rewards.append(reward)
    assert terminated and not truncated
    assert rewards[:-1] == [0.0] * (len(tokens) - 1) and rewards[-1] == 1.0
    assert info["completion"] == answer
    assert info["reward_breakdown"] == {"reward/numeric_match": 1.0}
    prompt_tokens = env.unwrapped.setup.max_prompt_tokens
    assert obs["input_ids"][prompt_tokens : prompt_tokens + len(tokens)].tolist() == tokens
    assert obs["attention_mask"].sum() == len(tokenizer(info["prompt"])["input_ids"]) + len(tokens)


def test_budget_terminates_without_truncation():
    env = gym.make("TextGen-Reverse-v0", max_new_tokens=3)
    env.reset(seed=1)
    flags = [env.step(5)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (True, False)]


def test_render_ansi_shows_prompt_and_completion(tokenizer):
    env = gym.make("TextGen-v0", prompts=["Hello"], reward="length", render_mode="ansi")
    env.reset(seed=0)
    env.step(tokenizer(" world", add_special_tokens=False)["input_ids"][0])
    assert env.render() == "Hello\u2502 world"


@pytest.mark.parametrize("action", [49152, -1, 3.0, True, "7", np.array([1, 2])])
def test_invalid_action_raises_value_error(action):
    env = gym.make("TextGen-Reverse-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


def test_numpy_integer_actions_are_accepted():
    env = gym.make("TextGen-Reverse-v0").unwrapped
    env.reset(seed=0)
    env.step(np.int64(7))
    obs, *_ = env.step(np.array(8))
    start = env.setup.max_prompt_tokens
    assert obs["input_ids"][start : start + 2].tolist() == [7, 8]


def test_step_after_termination_and_before_reset_raise():
    env = gym.make("TextGen-Reverse-v0", max_new_tokens=1).unwrapped
    with pytest.raises(ResetNeeded):
        env.step(1)
    env.reset(seed=0)
    env.step(1)
    with pytest.raises(ResetNeeded, match="ended"):
        env.step(1)


def test_unknown_ids_and_names_raise():
    with pytest.raises(gym.error.NameNotFound):
        gym.make("TextGen-Nonexistent-v0")
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        gym.make("TextGen-Sentiment-v0", reward="nope")
    with pytest.raises(ValueError, match="unknown task"):
        gym.make("TextGen-v0", task="nope")
    with pytest.raises(ValueError, match="needs prompts"):
        gym.make("TextGen-v0", reward="length")
    with pytest.raises(ValueError, match="split"):
        gym.make("TextGen-Reverse-v0").reset(options={"split": "test"})
    with pytest.raises(ValueError, match="prompt_index"):
        gym.make("TextGen-Reverse-v0").reset(options={"prompt_index": 10**6})


def nan_reward(prompts, completions, **info):
    return [float("nan")] * len(completions)


def short_reward(prompts, completions, **info):
    return []


def test_bad_reward_outputs_raise_with_the_text():
    env = gym.make("TextGen-v0", prompts=["Say hi"], reward=nan_reward, max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="nan for prompt 'Say hi'"):
        env.step(42)
    env = gym.make("TextGen-v0", prompts=["Say hi"], reward=short_reward, max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="0 scores for 1 completions"):
        env.step(42)


def test_reward_as_module_attr_string():
    env = gym.make("TextGen-v0", prompts=["x"], reward="tests.test_env:nan_reward", max_new_tokens=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="nan"):
        env.step(3)


def test_long_prompt_is_truncated_from_the_left(tokenizer):
    prompt = " ".join(f"word{i}" for i in range(40)) + " the end"
    env = gym.make("TextGen-v0", prompts=[prompt], reward="length", max_prompt_tokens=5)
    obs, _ = env.reset(seed=0)
    kept = obs["input_ids"][:5][obs["attention_mask"][:5] == 1].tolist()
    assert kept == tokenizer(prompt, add_special_tokens=False)["input_ids"][-5:]
    assert tokenizer.decode(kept).endswith("the end")


# -- the vector env ---------------------------------------------------------------------------------------


def test_make_vec_uses_the_vector_entry_point():
    envs = gym.make_vec("TextGen-Sentiment-v0", num_envs=8, vectorization_mode="vector_entry_point")
    assert isinstance(envs, TextGenVectorEnv)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, infos = envs.reset(seed=0)
    assert obs["input_ids"].shape == (8, 48) and obs["input_ids"].dtype == torch.long
    assert infos["_prompt"].all()


@pytest.mark.parametrize("ops", ["cpu", "device"])
@pytest.mark.parametrize(
    "env_id", ["TextGen-Arithmetic-v0", "TextGen-Sentiment-v0", "TextGen-NER-v0", "TextGen-Translate-v0"]
)
def test_vector_env_matches_single_envs(env_id, ops, tokenizer, monkeypatch):
    """Same seeds, same episodes, over EOS ends, autoresets and a switch to the eval split and back.

    ``ops="device"`` runs the state-on-device code path (the one CUDA uses) on CPU tensors.
    """
    if ops == "device":
        monkeypatch.setattr(textgym.vector, "state_ops", textgym.vector.DeviceOps)
    num_envs, seed = 5, 11
    rng = np.random.default_rng(0)
    eos = tokenizer.eos_token_id
    actions = rng.integers(3, 1000, size=(30, num_envs))
    actions[rng.random(actions.shape) < 0.15] = eos  # some episodes end early at EOS
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", max_new_tokens=6)
    singles = [gym.make(env_id, max_new_tokens=6) for _ in range(num_envs)]
    for split in ["train", "eval", "train"]:  # a change of split changes the range prompts are drawn from
        seeded = split == "train" and envs.prompts[0] == ""
        obs, infos = envs.reset(seed=seed if seeded else None, options={"split": split})
        single_obs = [
            env.reset(seed=seed + i if seeded else None, options={"split": split})[0] for i, env in enumerate(singles)
        ]
        assert infos["prompt"].tolist() == [env.unwrapped._example.prompt for env in singles]
        done = np.zeros(num_envs, dtype=bool)
        for step_actions in actions:
            for i in range(num_envs):
                np.testing.assert_array_equal(obs["input_ids"][i].numpy(), single_obs[i]["input_ids"])
                np.testing.assert_array_equal(obs["attention_mask"][i].numpy(), single_obs[i]["attention_mask"])
            obs, rewards, terminated, _, infos = envs.step(torch.as_tensor(step_actions))
            for i, env in enumerate(singles):
                if done[i]:  # NextStep autoreset: this step resets the sub-env (from the train split)
                    single_obs[i], info = env.reset()
                    assert infos["prompt"][i] == info["prompt"]
                    assert not terminated[i] and rewards[i] == 0
                    continue
                single_obs[i], reward, term, _, info = env.step(int(step_actions[i]))
                assert bool(terminated[i]) == term
                assert rewards[i].item() == pytest.approx(reward, abs=1e-6)
                if term:
                    assert infos["completion"][i] == info["completion"]
            done = terminated.numpy()


def test_vector_env_seeds_differ():
    envs = TextGenVectorEnv(4, task="sentiment")
    a = envs.reset(seed=0)[1]["prompt"].tolist()
    b = envs.reset(seed=100)[1]["prompt"].tolist()
    assert a != b and envs.reset(seed=0)[1]["prompt"].tolist() == a


@pytest.mark.parametrize("how", ["constructor", "metadata"])
def test_vector_env_disabled_autoreset_keeps_finished_episodes(how):
    """Disabled autoreset, set at construction or by switching ``metadata`` as the agents' rollouts do."""
    if how == "constructor":
        envs = TextGenVectorEnv(3, task="reverse", max_new_tokens=2, autoreset_mode="Disabled")
    else:
        envs = TextGenVectorEnv(3, task="reverse", max_new_tokens=2)
        envs.metadata = {**envs.metadata, "autoreset_mode": gym.vector.AutoresetMode.DISABLED}
    envs.reset(seed=0)
    eos = envs.setup.eos_token_id
    _, _, terminated, _, _ = envs.step(torch.tensor([eos, 5, 5]))
    assert terminated.tolist() == [True, False, False]
    _, rewards, terminated, _, _ = envs.step(torch.tensor([7, 5, 5]))
    assert terminated.tolist() == [True, True, True] and rewards[0] == 0
    assert envs.num_generated.tolist() == [1, 2, 2]
    envs.reset(options={"reset_mask": np.array([True, False, False])})
    assert envs.done.tolist() == [False, True, True]


@pytest.mark.parametrize("ops", ["cpu", "device"])
def test_vector_env_bad_actions(ops, monkeypatch):
    if ops == "device":
        monkeypatch.setattr(textgym.vector, "state_ops", textgym.vector.DeviceOps)
    envs = TextGenVectorEnv(2, task="reverse")
    vocab = envs.setup.vocab_size
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(torch.tensor([1, 2]))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        envs.step(torch.tensor([1, 2, 3]))
    eos = envs.setup.eos_token_id
    out_of_range = [10**6, -1, vocab, -vocab - 1, -2 * vocab, -2 * vocab + eos, -(2**40), 2**63 - 1, -(2**63)]
    for bad in [torch.tensor([1, a]) for a in out_of_range] + [np.array([-vocab - 1, 2]), [2, -(2**40)]]:
        with pytest.raises(ValueError, match=r"action -?\d+ of sub-env \d is out of range: token ids are in \[0, "):
            envs.step(bad)
    with pytest.raises(ValueError, match="integer"):
        envs.step(torch.tensor([1.0, 2.0]))
    envs.step(np.array([0, vocab - 1]))  # both ends of the range are fine


def test_composite_reward_breakdown_in_info(tokenizer):
    from textgym.rewards.compose import WeightedSum
    from textgym.rewards.form import DistinctN, LengthPenalty

    reward = WeightedSum({DistinctN(1): 1.0, LengthPenalty(target=2): 0.5})
    env = gym.make("TextGen-v0", prompts=["Hi"], reward=reward, max_new_tokens=3)
    env.reset(seed=0)
    for token in tokenizer(" a a b", add_special_tokens=False)["input_ids"][:3]:
        _, total, terminated, _, info = env.step(token)
    assert terminated
    parts = info["reward_breakdown"]
    assert parts["reward/distinct_1"] == pytest.approx(2 / 3) and parts["reward/length_penalty"] == -0.5
    assert total == pytest.approx(2 / 3 - 0.25)
    envs = TextGenVectorEnv(2, prompts=["Hi"], reward=reward, max_new_tokens=1)
    envs.reset(seed=0)
    _, rewards, _, _, infos = envs.step(torch.tensor([5, 6]))
    assert infos["_reward/distinct_1"].all() and len(infos["reward/length_penalty"]) == 2
    for i in range(2):
        expected = infos["reward/distinct_1"][i] + 0.5 * infos["reward/length_penalty"][i]
        assert rewards[i].item() == pytest.approx(expected, abs=1e-6)


def test_a_time_limit_cut_is_scored_like_an_episode_of_that_budget():
    """gym.make(..., max_episode_steps=n) cuts below the token budget; under ScoreTruncated the cut step pays."""
    from textgym.wrappers import ScoreTruncated

    cut = ScoreTruncated(gym.make("TextGen-Reverse-v0", max_episode_steps=3))
    short = gym.make("TextGen-Reverse-v0", max_new_tokens=3)
    results = []
    for env in (cut, short):
        env.reset(seed=0)
        for token in (263, 264, 265):
            _, reward, terminated, truncated, info = env.step(token)
        results.append((reward, info["completion"], terminated, truncated))
    assert results[0][:2] == results[1][:2] and results[0][2:] == (False, True) and results[1][2:] == (True, False)
    with pytest.raises(gym.error.ResetNeeded):
        cut.step(263)


def test_stable_baselines3_make_vec_env_works_without_a_render_mode():
    """SB3 asks for render_mode="rgb_array" and retries without it on a TypeError, which our error also is."""
    from stable_baselines3.common.env_util import make_vec_env

    from textgym.episode import RenderModeError

    envs = make_vec_env("TextGen-Reverse-v0", n_envs=2)
    assert set(envs.reset()) == {"input_ids", "attention_mask"}
    with pytest.raises(RenderModeError, match="render_mode must be one of \\['ansi'\\] or None, got 'rgb_array'"):
        gym.make("TextGen-Reverse-v0", render_mode="rgb_array")


def test_gymnasium_vector_wrappers_run_on_the_numpy_view_of_the_vector_env():
    from gymnasium.wrappers.vector import NormalizeReward, RecordEpisodeStatistics

    from textgym.wrappers import NumpyVectorEnv

    base = gym.make_vec("TextGen-Reverse-v0", num_envs=3, vectorization_mode="vector_entry_point", max_new_tokens=2)
    envs = NormalizeReward(RecordEpisodeStatistics(NumpyVectorEnv(base)))
    envs.reset(seed=0)
    episodes = []
    for _ in range(6):
        obs, rewards, _, _, infos = envs.step(np.full(3, 263))
        assert isinstance(obs["input_ids"], np.ndarray) and isinstance(rewards, np.ndarray)
        if "episode" in infos:
            episodes += list(infos["episode"]["l"][infos["_episode"]])
    assert episodes and set(episodes) == {2}  # every episode: 2 tokens, recorded by Gymnasium's own wrapper
