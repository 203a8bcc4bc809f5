"""Dense rewards end to end: envs pay per-token scores step by step (``dense_reward=True``) and learners keep them
where they were paid."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import make_trainer
from textgym.rewards.compose import PrefixShaped, WeightedSum, dense_scores
from textgym.rewards.form import LengthPenalty, RepetitionPenalty

PROMPTS = ["Hello", "The cat"]


def play(env, tokens: list[int]) -> tuple[list[float], dict]:
    env.reset(seed=0)
    rewards = []
    for token in tokens:
        _, reward, terminated, _, info = env.step(token)
        rewards.append(reward)
        if terminated:
            return rewards, info
    raise AssertionError("episode did not end")


def test_the_env_pays_each_tokens_score_once_the_next_is_written_and_the_rest_at_the_end(tokenizer):
    reward = RepetitionPenalty(1)
    env = gym.make("TextGen-v0", prompts=PROMPTS, reward=reward, dense_reward=True, max_new_tokens=8)
    tokens = tokenizer(" good good bad good", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    rewards, info = play(env, tokens)
    pieces = [tokenizer.decode([t], skip_special_tokens=True) for t in tokens]

    def score_of_previous_token(written: int) -> float:  # scored on the text so far, once the next token is there
        prefix = pieces[:written]
        return dense_scores(reward, [""], ["".join(prefix)], completion_tokens=[prefix])[0][written - 2]

    assert rewards[:-1] == pytest.approx([0.0, *(score_of_previous_token(n) for n in range(2, len(tokens)))])
    assert sum(rewards) == pytest.approx(info["reward_breakdown"]["reward/repetition_1"])  # the terminal score
    assert min(rewards[:-1]) < 0  # the repeat was paid before the end
    sparse, _ = play(gym.make("TextGen-v0", prompts=PROMPTS, reward=reward, max_new_tokens=8), tokens)
    assert sparse[:-1] == [0.0] * (len(tokens) - 1) and sparse[-1] == pytest.approx(sum(rewards))


def test_a_terminal_only_part_is_never_paid_early(tokenizer):
    """A weighted sum puts a part without per-token scores on the last piece: paid at the end, not on prefixes."""
    reward = WeightedSum({RepetitionPenalty(1): 1.0, LengthPenalty(target=1): 1.0})
    env = gym.make("TextGen-v0", prompts=PROMPTS, reward=reward, dense_reward=True, max_new_tokens=6)
    tokens = tokenizer(" a b c d", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]  # no repeats
    rewards, info = play(env, tokens)
    assert rewards[:-1] == [0.0] * (len(rewards) - 1) and rewards[-1] == pytest.approx(
        info["reward_breakdown"]["reward/weighted_sum"]
    )


@pytest.mark.parametrize("ops", ["cpu", "device"])
def test_vector_env_pays_like_single_envs(ops, tokenizer, monkeypatch):
    """``ops="device"`` runs the state-on-device code path (the one CUDA uses) on CPU tensors."""
    import textgym.vector

    if ops == "device":
        monkeypatch.setattr(textgym.vector, "state_ops", textgym.vector.DeviceOps)
    num_envs, rng = 3, np.random.default_rng(0)
    kwargs = {"prompts": PROMPTS, "reward": RepetitionPenalty(1), "dense_reward": True, "max_new_tokens": 6}
    envs = gym.make_vec("TextGen-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    singles = [gym.make("TextGen-v0", **kwargs) for _ in range(num_envs)]
    envs.reset(seed=4)
    for i, env in enumerate(singles):
        env.reset(seed=4 + i)
    vocab = tokenizer(" good bad ugly", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    for _ in range(20):  # several episodes, repeats and EOS ends, NextStep autoresets
        actions = rng.choice(vocab, size=num_envs)
        _, rewards, terminated, _, _ = envs.step(torch.as_tensor(actions))
        for i, env in enumerate(singles):
            if env.unwrapped._done:
                env.reset()
                continue
            _, reward, term, _, _ = env.step(int(actions[i]))
            assert rewards[i].item() == pytest.approx(reward, abs=1e-6) and bool(terminated[i]) == term


def test_learners_keep_dense_rewards_where_they_were_paid(tmp_path):
    agent = make_trainer(
        "reinforce",
        model="tiny",
        env_id="TextGen-v0",
        env_kwargs={"prompts": PROMPTS, "reward": RepetitionPenalty(1), "dense_reward": True, "max_new_tokens": 8},
        batch_size=8,
        top_k=3,  # few candidates: repeats are common
        kl_coef=0.0,
        score_normalization="batch",
        tensorboard=False,
        progress=False,
        eval_every=0,
        save_every=0,
        run_dir=str(tmp_path),
    )
    batch = agent.collect_rollout(0)
    assert batch.token_rewards is not None
    assert torch.allclose(batch.token_rewards.sum(1), batch.scores, atol=1e-6)
    assert (batch.token_rewards[:, :-1] != 0).any()  # some repeats were paid before the end
    rewards = agent.score(batch).rewards
    whitened = (batch.scores - batch.scores.mean()) / batch.scores.std().clamp_min(1e-8)
    assert torch.allclose(rewards.sum(1), whitened, atol=1e-4)  # the episode's total is the normalised score
    last = (batch.mask.sum(1).long() - 1).clamp(min=0)
    before_last = torch.arange(batch.num_generated)[None] < last[:, None]
    assert torch.equal(rewards[before_last], batch.token_rewards[before_last])  # earlier tokens keep their pay


def test_dense_reward_must_be_a_bool_and_its_scores_finite():
    with pytest.raises(ValueError, match="dense_reward must be True or False, got 'yes'"):
        gym.make("TextGen-v0", prompts=PROMPTS, reward="length", dense_reward="yes")

    class NaNDense:
        def __call__(self, prompts, completions, **info):
            return [0.0] * len(completions)

        def dense(self, prompts, completions, **info):
            return [[float("nan")] * len(t) for t in info["completion_tokens"]]

    env = gym.make("TextGen-v0", prompts=PROMPTS, reward=NaNDense(), dense_reward=True, max_new_tokens=4)
    env.reset(seed=0)
    env.step(300)
    with pytest.raises(ValueError, match="one finite score per token"):
        env.step(301)


class CountingVowels:
    """Vowels in the text; counts the texts it scored."""

    name = "vowel_count"

    def __init__(self):
        self.scored = []

    def __call__(self, prompts, completions, **info):
        self.scored += completions
        return [float(sum(ch in "aeiou" for ch in c)) for c in completions]


def test_prefix_shaping_turns_any_reward_into_a_dense_one_scoring_each_prefix_once(tokenizer):
    base = CountingVowels()
    shaped = PrefixShaped(base)
    pieces = [" ca", "t", " eat", "s"]
    dense = shaped.dense(["p"], ["".join(pieces)], completion_tokens=[pieces])[0]
    assert dense == [1.0, 0.0, 2.0, 0.0] and sum(dense) == shaped(["p"], ["".join(pieces)])[0]
    base.scored.clear()
    shaped.dense(["p"], [" cats"], completion_tokens=[[" ca", "ts"]])  # " ca" is cached: one new prefix
    assert base.scored == [" cats"]
    env = gym.make("TextGen-v0", prompts=PROMPTS, reward=PrefixShaped(CountingVowels()), dense_reward=True)
    tokens = tokenizer(" a cat ate", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    rewards, _ = play(env, tokens)
    assert rewards[1] == 1.0 and sum(rewards) == pytest.approx(4.0)  # " a" is paid once the next token is written


def test_reinforce_leave_one_out_baseline_is_per_step(tmp_path):
    """With rewards paid along the episode (or a discount), later steps' rewards-to-go are smaller than the episode
    return: each step's baseline is the other samples' reward-to-go at that same step."""
    agent = make_trainer(
        "reinforce",
        model="tiny",
        env_id="TextGen-v0",
        env_kwargs={"prompts": PROMPTS, "reward": LengthPenalty(target=2), "max_new_tokens": 4},
        batch_size=4,
        samples_per_prompt=2,
        progress=False,
        tensorboard=False,
        run_dir=str(tmp_path),
    )
    returns = torch.tensor([[3.0, 2.0, 1.0], [5.0, 1.0, 0.0], [1.0, 1.0, 1.0], [7.0, 3.0, 2.0]])
    expected = [[returns[i ^ 1, t].item() for t in range(3)] for i in range(4)]  # the other sample of the pair
    assert agent.baseline(returns).tolist() == expected


class FirstTokenReward:
    """Pays 1 on the first generated token when its text holds an "e", nothing on the others; as a terminal
    reward (``dense_reward=False``) the same 1 comes at the end of the episode."""

    name = "first_token_e"

    def dense(self, prompts: list[str], completions: list[str], **info: object) -> list[list[float]]:
        from textgym.rewards.compose import completion_pieces

        pieces = completion_pieces(completions, info)
        return [[float(i == 0 and "e" in piece) for i, piece in enumerate(parts)] for parts in pieces]

    def __call__(self, prompts: list[str], completions: list[str], **info: object) -> list[float]:
        return [sum(row) for row in self.dense(prompts, completions, **info)]


def first_token_e_probability(agent) -> float:
    """The policy's exact probability (top-k sampling, mean over the prompts) that its first token holds an "e"."""
    envs = agent.envs
    observations, _ = envs.reset(seed=0, options={"split": "train"})
    ids = torch.as_tensor(observations["input_ids"])
    mask = torch.as_tensor(observations["attention_mask"])
    with torch.no_grad():
        logits = agent.policy.next_token_logits(ids, mask)
    top = logits.topk(agent.config.top_k, dim=-1)
    probs = torch.softmax(top.values, -1)
    texts = agent.tokenizer.convert_ids_to_tokens(top.indices.flatten().tolist())
    has_e = torch.tensor([float("e" in t) for t in texts]).view_as(probs)
    return float((probs * has_e).sum(-1).mean())


@pytest.mark.slow  # six short training runs
def test_a_dense_reward_changes_what_is_learned(tmp_path):
    """The same reward for the first token, paid on it (dense) or at the end of a 6-token episode (terminal),
    discounted by gamma 0.5: REINFORCE learns to start with an "e" token only from the dense one, whose credit
    reaches the first token undiscounted (the terminal pay reaches it scaled by 0.5^5). Over 3 seeds, the dense
    run's rise of that probability beats the terminal one's by more than 3 standard errors of the paired
    difference, and in every seed."""
    gains = {True: [], False: []}
    for seed in range(3):
        for dense in (True, False):
            agent = make_trainer(
                "reinforce",
                model="tiny",
                env_id="TextGen-v0",
                env_kwargs={
                    "prompts": PROMPTS,
                    "reward": FirstTokenReward(),
                    "dense_reward": dense,
                    "max_new_tokens": 6,
                },
                batch_size=8,
                top_k=8,
                gamma=0.5,
                kl_coef=0.0,
                learning_rate=3e-3,
                score_normalization="none",
                seed=seed,
                tensorboard=False,
                progress=False,
                eval_every=0,
                save_every=0,
                run_dir=str(tmp_path / f"{dense}{seed}"),
            )
            before = first_token_e_probability(agent)
            agent.learn(total_timesteps=8 * 6 * 30)
            gains[dense].append(first_token_e_probability(agent) - before)
            agent.close()
    differences = np.subtract(gains[True], gains[False])
    standard_error = differences.std(ddof=1) / np.sqrt(len(differences))
    assert differences.mean() > 3 * standard_error and (differences > 0).all(), gains
