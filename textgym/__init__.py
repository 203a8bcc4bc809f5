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
    # v1: three solved puzzles first, the answer's first line scored (v0: ~1% zero-shot, v1: ~17%)
    "TextGen-Reverse-v1": {"task": "reverse", "task_kwargs": {"few_shot": 3}, "reward_kwargs": {"first_line": True}},
    # v1: one-digit addition after three solved examples, which the default model can learn from (v0: ~1% zero-shot)
    "TextGen-Arithmetic-v1": {
        "task": "arithmetic",
        "task_kwargs": {"difficulty": "easy", "few_shot": 3},
        "max_new_tokens": 4,
    },
    # Sentiment scored by the project-trained MiniLM classifier instead of VADER (its own id: a variant, not a
    # newer version of TextGen-Sentiment-v0, so gym.make of that one does not warn "out of date")
    "TextGen-SentimentClassifier-v0": {"task": "sentiment", "reward": "minilm_sentiment"},
    "TextGen-Headline-v0": {"task": "headline"},
    "TextGen-Concepts-v0": {"task": "concepts"},
    # the same reward paid as it is earned: each concept word on the token that completes it (a dense reward)
    "TextGen-Concepts-v1": {"task": "concepts", "dense_reward": True},
    "TextGen-Detox-v0": {"task": "detox"},
    "TextGen-Dialogue-v0": {"task": "dialogue"},
    "TextGen-NER-v0": {"task": "ner"},
    # one user turn through the chat template: the instruction-tuned model answers and ends its turn
    "TextGen-Translate-v0": {"task": "translate", "chat_template": True},
    "TextGen-GuessNumber-v0": {"task": "guess_number"},  # multi-turn: see MULTI_TURN_IDS
}
# Envs whose tasks are multi-turn: the environment writes its own turns (textgym.multiturn).
MULTI_TURN_IDS = {"TextGen-GuessNumber-v0"}

for _env_id, _kwargs in ENV_IDS.items():
    register(
        id=_env_id,
        entry_point="textgym.multiturn:MultiTurnEnv" if _env_id in MULTI_TURN_IDS else "textgym.env:TextGenEnv",
        vector_entry_point=(
            "textgym.multiturn:MultiTurnVectorEnv" if _env_id in MULTI_TURN_IDS else "textgym.vector:TextGenVectorEnv"
        ),
        kwargs=dict(_kwargs),
    )
