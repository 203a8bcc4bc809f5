"""One native PPO iteration vs one optimizer step of TRL's GRPOTrainer / RLOOTrainer, side by side.

Same model (SmolLM2-135M-Instruct as a plain HF folder, float32 on CPU), same prompts (TextGen-Sentiment-v0
train split), same reward (VADER compound, ``textgym.rewards.make_reward("vader")``), same batch: 16 sampled
sequences of at most 32 new tokens, sampling at temperature 1 with no top-k / top-p, stopping at EOS on both
sides (the mean completion length of each side is printed, to check the work is comparable).

- ours: ``agents.ppo.PPO.train_iteration()`` = KV-cached rollout on ``TextGenVectorEnv`` + VADER + scoring
  pass (log-probs, values, reference log-probs for the KL penalty) + the PPO update (by default one epoch of
  one 16-sequence minibatch: one optimizer step, like TRL's). Value head always; LoRA with ``--lora-rank``.
- TRL GRPO: 4 prompts x 4 generations per step, ``beta=0`` (no reference model).
- TRL RLOO: the same with ``beta=0.05`` (a reference forward per step).

TRL is configured as ours runs: float32 weights (``bf16=False``), no gradient checkpointing (TRL defaults to
both), generation by ``transformers`` ``generate`` with sampling. Each contender runs one warm-up step, then
``--repeats`` timed steps; the steps are interleaved (ours, GRPO, RLOO, ours, ...) so load drift on a shared
machine hits every side alike. TRL's step time is from ``on_step_begin`` to ``on_step_end`` (generation,
reward, loss, backward and optimizer step; not ``train()``'s set-up). Medians and ratios are reported.
With ``--count-flops`` (on by default on CUDA) one more step per side runs under ``FlopCounterMode``:
executed GFLOP per step, and on CUDA the model-FLOPs utilisation.

    python -m benchmarks.trl_compare                      # ours vs GRPO and RLOO, CPU
    python -m benchmarks.trl_compare --lora-rank 16 --trainers grpo
    python -m benchmarks.trl_compare --device cuda --random-weights
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import add_speed_arguments, parse_and_set_threads, report
from benchmarks.generation import SMOLLM2_135M, peak_flops, pick_dtype, synchronize

ENV_ID = "TextGen-Sentiment-v0"


@dataclass
class Contender:
    """A trainer under test: ``step()`` runs one optimizer step and returns its seconds and mean length."""

    name: str
    step: Callable[[], tuple[float, float]]
    seconds: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    flops: float | None = None
    error: str | None = None


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def make_vader_reward() -> Callable[..., list[float]]:
    """textgym's VADER reward behind TRL's ``reward_funcs`` signature ``(prompts, completions, **kw)``."""
    from textgym.rewards import make_reward

    vader = make_reward("vader")

    def vader_reward(prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> list[float]:
        """VADER compound sentiment of each completion, in [-1, 1]."""
        return [float(s) for s in vader(list(prompts), list(completions))]

    return vader_reward


def model_folder(random_weights: bool, workdir: Path) -> Path:
    """The default model's HF folder, or the same architecture with random weights saved beside its tokenizer."""
    from textgym.models import default_model_path, load_tokenizer

    if not random_weights:
        return default_model_path()
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    target = workdir / "smollm2-random"
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).save_pretrained(target)
    load_tokenizer("default").save_pretrained(target)
    return target


# -- ours ------------------------------------------------------------------------------------------------------


def build_ours(args: argparse.Namespace, model_path: Path, run_dir: Path) -> Contender:
    """Native PPO on TextGenVectorEnv: value head, KL to the reference (``--kl-coef``), optional LoRA."""
    from agents.ppo import PPO

    agent = PPO(
        env_id=ENV_ID,
        env_kwargs={"max_new_tokens": args.max_new_tokens},
        model=str(model_path),
        device=args.device,
        batch_size=args.batch_size,
        minibatch_size=args.minibatch_size or args.batch_size,
        n_epochs=args.n_epochs,
        lora_rank=args.lora_rank,
        kl_coef=args.kl_coef,
        learning_rate=args.learning_rate,
        temperature=1.0,
        seed=args.seed,
        progress=False,
        tensorboard=False,
        eval_every=0,
        save_every=0,
        run_dir=str(run_dir),
    )

    def step() -> tuple[float, float]:
        start = time.perf_counter()
        metrics = agent.train_iteration()
        synchronize(args.device)
        seconds = time.perf_counter() - start
        print(f"    ours: rollout {100 * metrics['charts/rollout_fraction']:.0f}% of the iteration")
        return seconds, float(metrics["charts/episode_length"])

    lora = f"LoRA r={args.lora_rank}" if args.lora_rank else "full fine-tuning"
    epochs = f"{args.n_epochs} epoch(s) x minibatch {args.minibatch_size or args.batch_size}"
    return Contender(f"ours PPO ({lora}, value head, KL {args.kl_coef}, {epochs})", step)


# -- TRL -------------------------------------------------------------------------------------------------------


def build_trl(kind: str, args: argparse.Namespace, model_path: Path, run_dir: Path) -> Contender:
    """TRL's ``GRPOTrainer`` (``beta=0``) or ``RLOOTrainer`` (``beta=0.05``): one optimizer step per ``train()``."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback

    from textgym.tasks import make_task

    if kind == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as TrainerClass

        beta, label = args.grpo_beta, "TRL GRPOTrainer"
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as TrainerClass

        beta, label = args.rloo_beta, "TRL RLOOTrainer"
    prompts = [e.prompt for e in make_task("sentiment").examples("train")[: args.num_prompts]]
    dtype = str(pick_dtype(args.device, "auto")).removeprefix("torch.")
    config = Config(
        output_dir=str(run_dir),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=beta,
        num_iterations=1,
        learning_rate=args.learning_rate,
        max_steps=1,  # one optimizer step per train() call: the steps interleave with the other contenders
        logging_steps=1_000_000,
        save_strategy="no",
        report_to="none",
        use_cpu=args.device == "cpu",
        bf16=False,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=args.seed,
        model_init_kwargs={"dtype": dtype},
    )
    peft_config = None
    if args.lora_rank and args.trl_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_rank, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0)
    trainer = TrainerClass(
        model=str(model_path),
        reward_funcs=make_vader_reward(),
        args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        peft_config=peft_config,
    )

    class StepTimer(TrainerCallback):
        """Wall-clock of each optimizer step (generation and reward included: TRL does them in the step)."""

        def __init__(self) -> None:
            self.start = 0.0
            self.seconds: list[float] = []
            self.lengths: list[float] = []

        def on_step_begin(self, *cb_args: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *cb_args: Any, **kwargs: Any) -> None:
            synchronize(args.device)
            self.seconds.append(time.perf_counter() - self.start)

        def on_log(self, *cb_args: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs and "completions/mean_length" in logs:
                self.lengths.append(float(logs["completions/mean_length"]))

    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.remove_callback(PrinterCallback)  # TRL's end-of-train log line, every step here

    def step() -> tuple[float, float]:
        trainer.train()
        return timer.seconds[-1], timer.lengths[-1] if timer.lengths else float("nan")

    lora = f", LoRA r={args.lora_rank}" if peft_config is not None else ""
    groups = f"{args.batch_size // args.num_generations} prompts x {args.num_generations} generations"
    return Contender(f"{label} (beta={beta}, {groups}{lora})", step)


# -- the comparison --------------------------------------------------------------------------------------------


def count_flops(contender: Contender) -> None:
    """One more step under ``FlopCounterMode``: executed FLOPs (forward, backward, generation)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        contender.step()
    contender.flops = float(counter.get_total_flops())


def run(args: argparse.Namespace) -> None:
    import trl

    print(f"trl {trl.__version__}, peft {package_version('peft')}, accelerate {package_version('accelerate')}")
    workdir = Path(tempfile.mkdtemp(prefix="textgym-trl-compare-"))
    model_path = model_folder(args.random_weights, workdir)
    builders: list[tuple[str, Callable[[], Contender]]] = [
        ("ours", lambda: build_ours(args, model_path, workdir / "ours"))
    ]
    for kind in args.trainers:
        builders.append((kind, lambda kind=kind: build_trl(kind, args, model_path, workdir / kind)))
    contenders: list[Contender] = []
    for name, build in builders:
        try:
            contenders.append(build())
        except Exception as err:  # a trainer that fails to build is reported, the others still run
            print(f"!! could not build {name}: {type(err).__name__}: {err}")
            traceback.print_exc()
    for round_index in range(1 + args.repeats):  # round 0 is the warm-up
        for c in contenders:
            if c.error is not None:
                continue
            try:
                seconds, length = c.step()
            except Exception as err:
                c.error = f"{type(err).__name__}: {err}"
                print(f"!! {c.name} failed: {c.error}")
                traceback.print_exc()
                continue
            print(f"  round {round_index}: {c.name}: {seconds:.2f} s, mean completion length {length:.1f}")
            if round_index > 0:
                c.seconds.append(seconds)
                c.lengths.append(length)
    if args.count_flops or args.device.startswith("cuda"):
        for c in contenders:
            if c.error is None:
                try:
                    count_flops(c)
                except Exception as err:
                    print(f"!! FLOP count of {c.name} failed: {type(err).__name__}: {err}")
    peak = peak_flops(args.device, pick_dtype(args.device, "auto"), args.peak_tflops)
    timed = [c for c in contenders if c.seconds]
    ours = next((c for c in timed if c.name.startswith("ours")), None)
    rows = []
    for c in timed:
        median = statistics.median(c.seconds)
        row: dict[str, Any] = {
            "trainer": c.name,
            "seconds_per_step": median,
            "mean_completion_tokens": statistics.mean(c.lengths),
            "generated_tok_per_s": statistics.mean(c.lengths) * args.batch_size / median,
        }
        if ours is not None:
            row["time_ratio_vs_ours"] = median / statistics.median(ours.seconds)
        if c.flops is not None:
            row["gflop_per_step"] = c.flops / 1e9
            if peak is not None:
                row["mfu_percent"] = 100 * c.flops / median / peak
        rows.append(row)
    extra = {
        "trl": trl.__version__,
        "peft": package_version("peft"),
        "accelerate": package_version("accelerate"),
        "datasets": package_version("datasets"),
        "model": "SmolLM2-135M architecture, random weights" if args.random_weights else "SmolLM2-135M-Instruct",
        "dtype": str(pick_dtype(args.device, "auto")).removeprefix("torch."),
        "batch": f"{args.batch_size} sequences, <= {args.max_new_tokens} new tokens, VADER reward, {ENV_ID} prompts",
        "timing": f"median of {args.repeats} interleaved steps after 1 warm-up step each",
        "failed": {c.name: c.error for c in contenders if c.error} or "none",
    }
    report(f"one RL optimizer step: ours vs TRL, {args.device}", rows, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", nargs="*", default=["grpo", "rloo"], choices=["grpo", "rloo"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per optimizer step (both sides)")
    parser.add_argument("--num-generations", type=int, default=4, help="TRL: completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up (median reported)")
    parser.add_argument("--lora-rank", type=int, default=0, help="ours: LoRA rank (0 = full fine-tuning)")
    parser.add_argument("--trl-lora", action="store_true", help="give TRL the same LoRA adapter (peft_config)")
    parser.add_argument("--kl-coef", type=float, default=0.05, help="ours: KL-to-reference coefficient")
    parser.add_argument("--n-epochs", type=int, default=1, help="ours: PPO epochs per iteration")
    parser.add_argument("--minibatch-size", type=int, default=0, help="ours: PPO minibatch (0 = the whole batch)")
    parser.add_argument("--grpo-beta", type=float, default=0.0)
    parser.add_argument("--rloo-beta", type=float, default=0.05)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--num-prompts", type=int, default=512, help="TRL: train prompts in the dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count-flops", action="store_true", help="count FLOPs per step (always on CUDA)")
    add_speed_arguments(parser)
    run(parse_and_set_threads(parser))


if __name__ == "__main__":
    main()
