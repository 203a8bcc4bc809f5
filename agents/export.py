"""Export a trained policy as a plain Hugging Face model folder: weights, tokenizer, chat template, model card.

The folder loads with ``transformers.AutoModelForCausalLM.from_pretrained(folder)``, works in
``pipeline("text-generation", folder)`` and as ``textgym rollout --model folder``: a LoRA adapter is merged
into the base weights first (the trainer's own policy is left as it was). Beside the model it holds

- ``value_head.safetensors``: the critic (A2C, PPO, TRPO), for whoever wants to continue from it;
- ``textgym.json``: algorithm, env, reward, generated tokens trained and the held-out figures;
- ``README.md``: a model card with the same facts.

The folder is written under a temporary name beside ``out_dir`` and renamed into place, so an interrupted
export never leaves a half-written model.

Example:
    >>> import tempfile
    >>> from agents import make_trainer
    >>> trainer = make_trainer("reinforce", model="tiny", env_id="TextGen-Reverse-v0", batch_size=4,
    ...                        kl_coef=0.0, progress=False, tensorboard=False, run_dir=tempfile.mkdtemp())
    >>> folder = export_pretrained(trainer, tempfile.mkdtemp() + "/model")
    >>> sorted(p.name for p in folder.iterdir())[:3]
    ['README.md', 'chat_template.jinja', 'config.json']
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgym.io import atomic_folder

if TYPE_CHECKING:
    from agents.trainer import Trainer

EXPORT_INFO = "textgym.json"
VALUE_HEAD = "value_head.safetensors"
# What "default" stands for on a model card (the embedded GGUF build of this hub model, dequantized).
DEFAULT_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def export_pretrained(
    trainer: Trainer,
    out_dir: str | Path,
    evaluation: dict[str, Any] | None = None,
    overwrite: bool = False,
    push_to_hub: str | None = None,
) -> Path:
    """Write ``trainer``'s policy to ``out_dir`` as a Hugging Face model folder (see the module docstring).

    Args:
        trainer: a trained (or loaded, see :func:`agents.trainer.load_trainer`) trainer.
        out_dir: the folder to create.
        evaluation: held-out figures for the card (``Trainer.evaluate()``'s ``eval/...`` keys); default: the
            last evaluation logged in the trainer's run folder, if any.
        overwrite: replace an existing ``out_dir``.
        push_to_hub: a Hugging Face repo id (``"you/ppo-sentiment"``) to upload the folder to, when the hub is
            reachable and you are logged in (``huggingface-cli login`` or ``HF_TOKEN``).

    Raises:
        FileExistsError: ``out_dir`` exists and ``overwrite`` is not set.
        ConnectionError: ``push_to_hub`` is set but the hub cannot be reached (the folder is written first).
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.resolve() == run_folder(trainer).resolve():
        raise ValueError(f"export folder {str(out_dir)!r} is the run's own folder: choose another")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"export folder {str(out_dir)!r} already exists: pass overwrite=True (--force)")
    if evaluation is None:
        evaluated_at, evaluation = last_logged_evaluation(run_folder(trainer), trainer.iteration)
    else:
        evaluated_at = trainer.iteration
    info = export_info(trainer, _plain_figures(evaluation), evaluated_at)
    with atomic_folder(out_dir, replace=True) as tmp:
        merged_model(trainer).save_pretrained(tmp)
        trainer.tokenizer.save_pretrained(tmp)
        head = trainer.policy.value_head
        if head is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, tmp / VALUE_HEAD)
        (tmp / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(model_card(info), encoding="utf-8")
    if push_to_hub:
        upload(out_dir, push_to_hub)
    return out_dir


def upload(folder: Path, repo_id: str) -> None:
    """Upload an exported folder to the Hugging Face hub (creating the model repo if needed)."""
    from huggingface_hub import HfApi

    from textgym.models import hub_reachable

    if not hub_reachable():
        raise ConnectionError(
            f"cannot push to {repo_id!r}: the Hugging Face hub is not reachable (the model is saved in "
            f"{str(folder)!r}; upload it later with `huggingface-cli upload {repo_id} {folder}`)"
        )
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model")


def merged_model(trainer: Trainer) -> Any:
    """The policy's causal LM with any LoRA adapter merged in: a copy, so training can go on unchanged."""
    model = trainer.policy.model
    if not trainer.policy.uses_lora:
        return model
    return copy.deepcopy(model).merge_and_unload()


def export_info(trainer: Trainer, evaluation: dict[str, float], evaluated_at: int | None = None) -> dict[str, Any]:
    """The facts the model card states: what was trained, on what, how long, and how well it does."""
    config = trainer.config
    model = DEFAULT_BASE_MODEL if config.model == "default" else config.model
    return {
        "library": "textgym",
        "algo": trainer.algo,
        "env_id": config.env_id,
        "reward": trainer.envs.setup.reward_key.removeprefix("reward/") if trainer.fast_path else None,
        "base_model": model,
        "lora_rank": config.lora_rank,
        "generated_tokens_trained": trainer.timesteps,
        "iterations": trainer.iteration,
        "seed": config.seed,
        "evaluation": evaluation,
        "evaluated_at_iteration": evaluated_at,
    }


def model_card(info: dict[str, Any]) -> str:
    """A Hugging Face model card (YAML front matter, then Markdown) for :func:`export_info`'s facts."""
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation"]
    if "/" in str(info["base_model"]) and not Path(str(info["base_model"])).exists():
        front.append(f"base_model: {info['base_model']}")
    front += ["tags:", "- textgym", "- reinforcement-learning", f"- {info['algo']}", "---", ""]
    lora = f" (LoRA rank {info['lora_rank']}, merged)" if info["lora_rank"] else ""
    lines = [
        f"# {info['algo'].upper()} on {info['env_id']}",
        "",
        f"Trained with textgym's {info['algo']} on `{info['env_id']}` with reward `{info['reward']}`, from "
        f"`{info['base_model']}`{lora}: {info['generated_tokens_trained']} generated tokens in "
        f"{info['iterations']} iterations, seed {info['seed']}.",
        "",
    ]
    if info["evaluation"]:
        at = info["evaluated_at_iteration"]
        lines += ["## Held-out evaluation", "", f"Of the weights at iteration {at}." if at is not None else ""]
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in info["evaluation"].items()]
        lines.append("")
    lines += [
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        "generate = pipeline('text-generation', 'path/to/this/folder')",
        "```",
        "",
        "or `textgym rollout --model path/to/this/folder --env " + info["env_id"] + "`.",
        "",
    ]
    return "\n".join(front + lines)


def run_folder(trainer: Trainer) -> Path:
    """The folder of the trainer's run: beside the checkpoint it was loaded from, else its ``run_dir``."""
    return trainer.loaded_from.parent if trainer.loaded_from is not None else Path(trainer.config.run_dir)


def last_logged_evaluation(run_dir: str | Path, up_to: int) -> tuple[int | None, dict[str, Any]]:
    """The iteration and ``eval/`` figures of the run's last evaluation at or before iteration ``up_to`` (the
    weights being exported); ``(None, {})`` when there is none."""
    from agents.logger import METRICS, read_metrics

    if not (Path(run_dir) / METRICS).exists():
        return None, {}
    for record in reversed(read_metrics(run_dir)):
        figures = {k: v for k, v in record.items() if k.startswith("eval/")}
        if figures and record["iteration"] <= up_to:
            return record["iteration"], figures
    return None, {}


def _plain_figures(evaluation: dict[str, Any]) -> dict[str, float]:
    """The numeric figures of an evaluation (samples and sample pairs left out)."""
    return {k: float(v) for k, v in evaluation.items() if isinstance(v, int | float) and not isinstance(v, bool)}
