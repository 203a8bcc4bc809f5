"""Rewards: one batched protocol for classifiers, metrics and preference models."""

from textgym.rewards.base import REWARDS, RewardFn, make_reward, register_reward, reward_name, validate_scores

__all__ = ["REWARDS", "RewardFn", "make_reward", "register_reward", "reward_name", "validate_scores"]
