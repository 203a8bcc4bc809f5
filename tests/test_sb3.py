"""Stock SB3 PPO / A2C and sb3-contrib TRPO train LMActorCriticPolicy on textgym envs (tiny model, CPU)."""

from __future__ import annotations

import multiprocessing

import gymnasium as gym
import numpy as np
import pytest
import torch

import textgym  # noqa: F401

sb3 = pytest.importorskip("stable_baselines3")
sb3_contrib = pytest.importorskip("sb3_contrib")

from sb3_contrib import TRPO  # noqa: E402
from stable_baselines3 import A2C, PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback, CallbackList  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402
from stable_baselines3.common.vec_env import SubprocVecEnv  # noqa: E402

from agents.losses import kl_penalty  # noqa: E402
from agents.sb3 import (  # noqa: E402
    ExplorationScheduleCallback,
    KLPenaltyCallback,
    LMActorCriticPolicy,
    left_align,
)

TINY = {"model": "tiny", "sampling": {"top_k": 10}}


def vowels(prompts: list[str], completions: list[str], **info) -> list[float]:
    """Fraction of vowels in the completion: a reward a random tiny model can learn fast."""
    return [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]


VOWEL_ENV = {
    "prompts": ["Hello", "The cat", "Once upon"],
    "reward": vowels,
    "max_new_tokens": 6,
    "max_prompt_tokens": 4,
    "render_mode": "ansi",  # SB3's make_vec_env asks for "rgb_array" unless told otherwise
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny model's ops are small: one thread avoids OpenMP contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def vowel_envs(n_envs: int = 2, seed: int = 0):
    return make_vec_env("TextGen-v0", n_envs=n_envs, env_kwargs=VOWEL_ENV, seed=seed)


def lm_state(policy: LMActorCriticPolicy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.lm.model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], policy: LMActorCriticPolicy) -> bool:
    after = policy.lm.model.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_token_ids_reach_the_lm_as_int64_ids():
    agent = PPO(LMActorCriticPolicy, vowel_envs(), n_steps=2, batch_size=4, policy_kwargs=TINY)
    obs = agent.env.reset()
    tensor_obs, _ = agent.policy.obs_to_tensor(obs)
    features = agent.policy.extract_features(tensor_obs)  # no float cast, no one-hot
    assert features.dtype == torch.int64
    assert features.shape == (2, 2, obs["input_ids"].shape[1])
    np.testing.assert_array_equal(features[:, 0].numpy(), obs["input_ids"])
    np.testing.assert_array_equal(features[:, 1].numpy(), obs["attention_mask"])
    as_float = {k: v.float() for k, v in tensor_obs.items()}  # as a float buffer would hand them back
    assert torch.equal(agent.policy.extract_features(as_float), features)


def test_left_align_keeps_tokens_and_order():
    ids = torch.tensor([[0, 0, 5, 6, 7, 0, 0], [0, 4, 5, 0, 0, 0, 0]])
    mask = (ids > 0).long()
    aligned, amask = left_align(ids, mask)
    assert aligned.tolist() == [[5, 6, 7], [0, 4, 5]] and amask.tolist() == [[1, 1, 1], [0, 1, 1]]


def test_lm_is_registered_and_covered_by_the_optimizer():
    agent = A2C(LMActorCriticPolicy, vowel_envs(), n_steps=2, policy_kwargs=TINY)
    policy = agent.policy
    optimized = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in policy.lm.model.parameters()} <= optimized
    assert isinstance(policy.optimizer, torch.optim.RMSprop)  # A2C's own optimizer choice reaches us
    assert any(k.startswith("lm.model.") for k in policy.state_dict())
    assert any(k.startswith("lm.value_head.") for k in policy.state_dict())


@pytest.mark.parametrize(
    ("algo", "kwargs"),
    [
        (PPO, {"n_steps": 6, "batch_size": 6, "n_epochs": 2}),
        (A2C, {"n_steps": 6}),
        (TRPO, {"n_steps": 4, "batch_size": 8, "n_critic_updates": 1, "cg_max_steps": 3}),
    ],
    ids=["PPO", "A2C", "TRPO"],
)
def test_stock_algorithms_train_and_change_the_lm(algo, kwargs, tmp_path):
    agent = algo(LMActorCriticPolicy, vowel_envs(), learning_rate=1e-3, seed=0, policy_kwargs=TINY, **kwargs)
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    before, head_before = lm_state(agent.policy), agent.policy.lm.value_head.weight.detach().clone()
    agent.learn(total_timesteps=2 * kwargs["n_steps"] * 2, log_interval=1)  # two rollouts
    assert changed(before, agent.policy)
    assert not torch.equal(head_before, agent.policy.lm.value_head.weight)
    assert "train/value_loss" in (tmp_path / "progress.csv").read_text().splitlines()[0]


def test_forward_logprob_is_the_learning_logprob_of_the_sampled_token():
    """SB3 stores forward's log-prob; it equals what evaluate_actions recomputes (PPO ratio starts at 1)."""
    agent = PPO(LMActorCriticPolicy, vowel_envs(4), n_steps=2, batch_size=8, policy_kwargs=TINY)
    obs, _ = agent.policy.obs_to_tensor(agent.env.reset())
    torch.manual_seed(0)
    with torch.no_grad():
        actions, values, logp = agent.policy(obs)
        values2, logp2, entropy = agent.policy.evaluate_actions(obs, actions)
        logits, _ = agent.policy._heads(obs)
    torch.testing.assert_close(logp, logp2)
    torch.testing.assert_close(values, values2)
    top10 = logits.topk(10, dim=-1).indices
    assert all(a in row for a, row in zip(actions.tolist(), top10.tolist(), strict=True))  # sampled with top-k
    assert bool((entropy > 0).all())


def test_ppo_raises_reward_on_a_synthetic_task():
    def mean_reward(agent) -> float:
        envs = vowel_envs(16, seed=1000)
        torch.manual_seed(123)
        obs, rewards = envs.reset(), []
        while len(rewards) < 48:
            actions, _ = agent.predict(obs)
            obs, reward, done, _ = envs.step(actions)
            rewards += list(reward[done])
        return float(np.mean(rewards))

    agent = PPO(
        LMActorCriticPolicy,
        vowel_envs(16),
        n_steps=6,
        batch_size=32,
        n_epochs=4,
        learning_rate=1e-2,
        gamma=1.0,
        seed=0,
        policy_kwargs=TINY,
    )
    before = mean_reward(agent)
    agent.learn(total_timesteps=16 * 6 * 6)
    after = mean_reward(agent)
    assert after > before + 0.05, (before, after)


def test_save_load_predict_gives_the_same_actions(tmp_path):
    agent = PPO(LMActorCriticPolicy, vowel_envs(), n_steps=4, batch_size=8, seed=0, policy_kwargs=TINY)
    agent.learn(total_timesteps=8)
    agent.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", device="cpu")
    assert loaded.policy_kwargs == TINY
    obs = vowel_envs(4, seed=7).reset()
    for deterministic in (True, False):
        torch.manual_seed(1)
        expected, _ = agent.predict(obs, deterministic=deterministic)
        torch.manual_seed(1)
        actual, _ = loaded.predict(obs, deterministic=deterministic)
        np.testing.assert_array_equal(actual, expected)
    agent.policy.save(tmp_path / "policy.pt")  # the policy alone: constructor parameters + weights
    policy = LMActorCriticPolicy.load(tmp_path / "policy.pt")
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])


def test_kl_penalty_callback_shapes_rewards_and_recomputes_advantages(tmp_path):
    seen = {}

    class Before(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buffer = self.model.rollout_buffer
            seen["rewards"], seen["advantages"] = buffer.rewards.copy(), buffer.advantages.copy()

    class After(Before):
        def _on_rollout_end(self) -> None:
            buffer, policy = self.model.rollout_buffer, self.model.policy
            obs = {k: torch.as_tensor(v.reshape(-1, v.shape[-1])) for k, v in buffer.observations.items()}
            actions = torch.as_tensor(buffer.actions.reshape(-1)).long()
            ids, mask = obs["input_ids"], obs["attention_mask"]
            # independent reference log-probs: append the action right after each state's last token
            ref = []
            for row, row_mask, action in zip(ids, mask, actions, strict=True):
                tokens = torch.cat([row[row_mask.bool()], action[None]])[None]
                with torch.no_grad():
                    logits = policy.lm.reference(input_ids=tokens).logits[0, -2].float()
                ref.append(torch.log_softmax(logits, -1)[action])
            kl = kl_penalty(torch.as_tensor(buffer.log_probs).flatten(), torch.stack(ref), "k3")
            expected = seen["rewards"] - 0.5 * kl.reshape(buffer.rewards.shape).numpy()
            np.testing.assert_allclose(buffer.rewards, expected, rtol=1e-4, atol=1e-5)
            assert not np.allclose(buffer.advantages, seen["advantages"])
            np.testing.assert_allclose(buffer.returns, buffer.advantages + buffer.values, rtol=1e-5, atol=1e-5)
            seen["checked"] = True

    agent = PPO(LMActorCriticPolicy, vowel_envs(), n_steps=4, batch_size=8, policy_kwargs={**TINY, "reference": True})
    with torch.no_grad():  # move the policy away from its reference so the KL is not zero
        for p in agent.policy.lm.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    callbacks = CallbackList([Before(), KLPenaltyCallback(coef=0.5, estimator="k3"), After()])
    agent.learn(total_timesteps=8, callback=callbacks)
    assert seen["checked"]
    assert "rollout/kl_ref" in (tmp_path / "progress.csv").read_text().splitlines()[0]


def test_kl_penalty_needs_a_reference():
    agent = PPO(LMActorCriticPolicy, vowel_envs(), n_steps=2, batch_size=4, policy_kwargs=TINY)
    with pytest.raises(ValueError, match="reference"):
        agent.learn(total_timesteps=4, callback=KLPenaltyCallback(coef=0.1))


def test_exploration_schedule_sets_the_behaviour_policy():
    agent = PPO(LMActorCriticPolicy, vowel_envs(), n_steps=2, batch_size=4, policy_kwargs=TINY)
    agent.learn(total_timesteps=8, callback=ExplorationScheduleCallback({"temperature": "linear:2.0:1.0:2"}))
    assert agent.policy.sampling.temperature == pytest.approx(1.5)  # the 2nd rollout (iteration 1)
    assert agent.policy.temperature == 1.0  # the learning log-probs keep the constructor's temperature
    with pytest.raises(ValueError, match="cannot schedule"):
        ExplorationScheduleCallback({"greedy": 1})


def test_subproc_vec_env():
    start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None  # fork: no re-imports
    envs = make_vec_env(
        "textgym:TextGen-v0",  # "module:id" makes the worker import textgym, which registers the ids
        n_envs=2,
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": start_method},
        env_kwargs={**VOWEL_ENV, "reward": "length", "max_new_tokens": 3},  # a registered reward, by name
    )
    try:
        agent = PPO(LMActorCriticPolicy, envs, n_steps=3, batch_size=6, n_epochs=1, seed=0, policy_kwargs=TINY)
        before = lm_state(agent.policy)
        agent.learn(total_timesteps=12)
        assert agent.num_timesteps == 12
        assert changed(before, agent.policy)
    finally:
        envs.close()


def test_clear_errors():
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="TextGen spaces"):
        PPO(LMActorCriticPolicy, env, policy_kwargs=TINY)
    with pytest.raises(ValueError, match="estimator"):
        KLPenaltyCallback(coef=0.1, estimator="k9")


def test_lora_trpo_trains_only_the_adapter_and_the_value_head():
    """Frozen base weights are hidden from SB3's optimizer and from TRPO's per-parameter KL gradients."""
    pytest.importorskip("peft")
    kwargs = {**TINY, "lora_rank": 4, "reference": True}
    agent = TRPO(LMActorCriticPolicy, vowel_envs(), n_steps=6, batch_size=12, cg_max_steps=3, policy_kwargs=kwargs)
    assert all(p.requires_grad for p in agent.policy.parameters())
    before = {k: v.clone() for k, v in agent.policy.state_dict().items()}
    agent.learn(total_timesteps=12, callback=KLPenaltyCallback(coef=0.1))
    updated = [k for k, v in agent.policy.state_dict().items() if not torch.equal(before[k], v)]
    assert updated and all("lora_" in k or "value_head" in k for k in updated)
