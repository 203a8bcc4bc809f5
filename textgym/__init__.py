"""textgym: token-level text-generation MDPs for Gymnasium.

Importing textgym only registers the env ids (string entry points): no torch or transformers import.

Example:
    >>> import gymnasium as gym
    >>> import textgym
    >>> "TextGen-Sentiment-v0" in gym.registry
    True
"""

from gymnasium.envs.registration import register

__version__ = "0.1.0"

ENV_IDS: dict[str, dict[str, object]] = {
    "TextGen-v0": {"task": "prompts"},
    "TextGen-Sentiment-v0": {"task": "sentiment"},
    "TextGen-Arithmetic-v0": {"task": "arithmetic"},
    "TextGen-Reverse-v0": {"task": "reverse"},
}

for _env_id, _kwargs in ENV_IDS.items():
    register(
        id=_env_id,
        entry_point="textgym.env:TextGenEnv",
        vector_entry_point="textgym.vector:TextGenVectorEnv",
        kwargs=dict(_kwargs),
    )
