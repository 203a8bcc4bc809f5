"""The human-feedback loop once, end to end, with a simulated annotator in place of a person.

1. Sample ``--pairs`` pairs of completions of Sentiment-v0's train prompts from the default model (one policy
   sampled twice).
2. Label them through the labelling app's web endpoints with :class:`textgym.feedback.simulate.SimulatedAnnotator`,
   whose taste is ``--person`` (default ``minilm_sentiment``: a sentiment classifier, not the env's VADER).
3. Train a Bradley-Terry reward model on the judgements (``--hidden 0``); report its held-out pairwise accuracy.
4. Train PPO on Sentiment-v0 with that reward model as the env reward (the quick suite's PPO settings and budget).
5. Train DPO on the same judgements, the offline alternative with no reward model.
6. Evaluate the untrained model, RM + PPO and DPO on the same 200 held-out prompts: the reward model's score, the
   person's own (minilm_sentiment), VADER (the env's usual reward, trained on by neither) and the KL to the
   reference.

Every step's output is kept in ``--out`` (default ``runs/feedback_loop``), so an interrupted run resumes where it
stopped (the training runs from their checkpoints). Prints progress on stderr and a table at the end, and writes
``benchmarks/results/feedback_loop.json``.

    python -m benchmarks.feedback_loop --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ENV_ID = "TextGen-Sentiment-v0"
PPO_SETTINGS = {"batch_size": 8, "lora_rank": 8, "learning_rate": 3e-4, "kl_coef": 0.05, "minibatch_size": 4}
PPO_SETTINGS |= {"score_normalization": "batch"}


def step(message: str) -> None:
    print(f"[feedback_loop] {message}", file=sys.stderr, flush=True)


def label(out: Path, pairs: int, person: str, seed: int) -> Path:
    """Sample the items (once) and let the simulated annotator judge every one through the web app."""
    from textgym.feedback.app import Server, create_app
    from textgym.feedback.items import load_items, sample_items, save_items
    from textgym.feedback.session import LabelSession
    from textgym.feedback.simulate import SimulatedAnnotator
    from textgym.feedback.store import JudgementStore

    items_path, prefs = out / "items.jsonl", out / "prefs.jsonl"
    if items_path.exists():
        items = load_items(items_path, "pairs")
    else:
        step(f"sampling {pairs} pairs from the default model on {ENV_ID} (train prompts)")
        items = sample_items(ENV_ID, pairs, "pairs", seed=seed, device="cpu")
        save_items(items, items_path)
    session = LabelSession(items, JudgementStore(prefs, "pairs"), annotator=f"simulated:{person}")
    server = Server(create_app(session))
    try:
        step(f"labelling with the simulated annotator ({person})")
        counts = SimulatedAnnotator(server.url, person, seed=seed).label()
    finally:
        server.stop()
    step(f"labelled: {counts}, progress {session.progress()}")
    return prefs


def train_reward_model(prefs: Path, out: Path) -> dict[str, Any]:
    from textgym.rewards import preference

    path = out / "rm.pt"
    if not path.exists():
        step("training the reward model")
        preference.save(preference.train(preference.load_pairs(prefs), hidden=0, progress=False), path)
    artifact = preference.load(path)
    return {k: artifact[k] for k in ("n_train", "n_held_out", "train_accuracy", "held_out_accuracy")}


def rm_env_kwargs(out: Path) -> dict[str, Any]:
    return {"reward": "preference", "reward_kwargs": {"model": str(out / "rm.pt")}}


def train(algo: str, out: Path, budget: int, seed: int, **config: Any) -> Any:
    from agents import trainer_class

    trainer = trainer_class(algo)(
        env_id=ENV_ID,
        seed=seed,
        device="cpu",
        total_timesteps=budget,
        run_dir=str(out / algo),
        eval_every=0,
        save_every=5,
        tensorboard=False,
        **config,
    )
    trainer.resume()
    if trainer.timesteps < budget:
        step(f"training {algo} ({trainer.timesteps}/{budget} tokens done)")
        trainer.learn(total_timesteps=budget)
    return trainer


def evaluate(policy: Any, out: Path, episodes: int) -> dict[str, float]:
    """Held-out figures of ``policy`` on Sentiment-v0's eval prompts, scored by the reward model (the env reward
    here), the person and VADER."""
    import gymnasium as gym

    from agents.evaluation import evaluate_policy
    from agents.sampling import SamplingConfig

    envs = gym.make_vec(ENV_ID, 16, vectorization_mode="vector_entry_point", **rm_env_kwargs(out))
    figures = evaluate_policy(policy, envs, SamplingConfig(), episodes, scorers=("minilm_sentiment", "vader"))
    envs.close()
    return {
        "reward_model": figures["eval/score_mean"],
        "person (minilm_sentiment)": figures["eval/score/minilm_sentiment"],
        "vader": figures["eval/score/vader"],
        "kl_k3": figures["eval/kl_k3"],
        "ref_perplexity": figures["eval/ref_perplexity"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/feedback_loop")
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--person", default="minilm_sentiment", help="the reward that plays the annotator")
    parser.add_argument("--ppo-budget", type=int, default=6144, help="generated tokens (the quick suite's)")
    parser.add_argument("--dpo-epochs", type=int, default=2, help="passes over the train pairs")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--results", default="benchmarks/results/feedback_loop.json")
    args = parser.parse_args(argv)
    import torch

    from agents.policy import LMPolicy
    from textgym.io import atomic_write_text
    from textgym.rewards.preference import is_held_out, load_pairs

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefs = label(out, args.pairs, args.person, args.seed)
    rm = train_reward_model(prefs, out)
    step(f"reward model: {rm}")
    rows: dict[str, dict[str, float]] = {}
    step("evaluating the untrained model")
    base = LMPolicy.from_pretrained("default", device="cpu", value_head=False, reference=False)
    rows["zero-shot"] = evaluate(base, out, args.episodes)
    del base
    ppo = train("ppo", out, args.ppo_budget, args.seed, env_kwargs=rm_env_kwargs(out), **PPO_SETTINGS)
    step("evaluating RM + PPO")
    rows["RM + PPO"] = {**evaluate(ppo.policy, out, args.episodes), "train_tokens": ppo.timesteps}
    ppo.close()
    train_pairs = [p for p in load_pairs(prefs) if not is_held_out(p["prompt"])]
    dpo_budget = args.dpo_epochs * len(train_pairs) * 2 * 24  # ~24 tokens per completion, both completions read
    dpo = train("dpo", out, dpo_budget, args.seed, data=str(prefs), batch_size=8, lora_rank=8, learning_rate=3e-4)
    step("evaluating DPO")
    rows["DPO"] = {**evaluate(dpo.policy, out, args.episodes), "train_tokens": dpo.timesteps}
    rows["DPO"]["held_out_pair_accuracy"] = dpo.preference_accuracy()
    dpo.close()
    result = {"env": ENV_ID, "pairs": args.pairs, "person": args.person, "reward_model": rm, "policies": rows}
    atomic_write_text(args.results, json.dumps(result, indent=2) + "\n")
    columns = ["reward_model", "person (minilm_sentiment)", "vader", "kl_k3", "ref_perplexity"]
    print(f"reward model: held-out pairwise accuracy {rm['held_out_accuracy']:.3f} on {rm['n_held_out']} pairs")
    print("| policy | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
