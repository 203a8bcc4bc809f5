"""Train briefly, export a Hugging Face folder, and generate from it with transformers alone:
`python examples/export_model.py`.

The default model takes CPU minutes; `--model tiny --total-timesteps 64` runs in seconds.
"""

from __future__ import annotations

import argparse

from transformers import pipeline

from agents.sft import SFT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--total-timesteps", type=int, default=512)
    parser.add_argument("--out", default="exported/sft-arithmetic")
    args = parser.parse_args()
    agent = SFT(
        env_id="TextGen-Arithmetic-v1",
        model=args.model,
        batch_size=8,
        eval_every=0,
        overwrite=True,
        run_dir="runs/export_example",
    )
    agent.learn(total_timesteps=args.total_timesteps)
    folder = agent.save_pretrained(args.out, evaluation=agent.evaluate(16), overwrite=True)
    generate = pipeline("text-generation", str(folder), device="cpu")
    prompt = agent.envs.setup.task.examples("eval")[0].prompt
    reply = generate(prompt, max_new_tokens=4, do_sample=False)[0]["generated_text"][len(prompt) :]
    print(f"exported to {folder}; {prompt.splitlines()[-1]!r} -> {reply!r}")


if __name__ == "__main__":
    main()
