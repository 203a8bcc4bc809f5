"""Token-level deep Q-learning (the DQN family): replay, n-step targets, a target network, Double Q.

Q-values come from the LM head as a dueling Q-function (:mod:`agents.qlearning`):
``Q(s, a) = V(s) + q_scale * (logit(s, a) - max_b logit(s, b))``, with ``V`` the value head on the trunk. The
greedy action is the language model's argmax, so the untrained agent acts as the pretrained model does.

Each iteration:

1. **Act**: one batch of episodes. ``exploration="epsilon_greedy"`` takes the argmax, except that with probability
   ``epsilon`` a token is drawn uniformly from the candidates that survive ``top_k``/``top_p`` (default top 20);
   ``exploration="boltzmann"`` samples ``softmax(Q / tau)``, which is the LM at temperature ``tau / q_scale``
   (set ``temperature``). ``epsilon`` and ``temperature`` take schedules
   (``schedules={"epsilon": "linear:0.3:0.05:50"}``).
2. **Store**: the episodes and their per-step rewards (task score at the end, a dense reward where the env pays
   one, the per-token KL penalty) go into an :class:`agents.replay.EpisodeReplay` of ``buffer_size`` episodes.
3. **Learn**: ``gradient_steps`` times, draw ``minibatch_size`` episodes (uniformly, or by TD error with
   ``prioritized_replay``), compute every step's n-step target
   ``y_t = r_t + ... + gamma^{n-1} r_{t+n-1} + gamma^n max_a Q_target(s_{t+n}, a)`` (Double Q: the online network
   picks the action, the target network values it), and take a Huber-loss step on ``Q(s_t, a_t) - y_t``.
4. **Track**: the target network follows the online weights by Polyak averaging, ``tau`` every
   ``target_update_interval`` gradient steps (``tau=1`` with an interval is the periodic copy of the original
   DQN). Only the trainable weights are copied: under LoRA the target is a second adapter, not a second model.

Evaluation is greedy (argmax Q). Needs a single-turn textgym env (the replay buffer stores token layouts of
``TextGenVectorEnv``).

Example:
    >>> agent = DQN(model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, minibatch_size=4,
    ...             tensorboard=False, progress=False, eval_every=0, run_dir=tempfile.mkdtemp())
    >>> _ = agent.learn(total_timesteps=8)
"""

from __future__ import annotations

import dataclasses
import tempfile  # noqa: F401  (used by the docstring example)
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from agents.config import TrainConfig, option
from agents.losses import entropy_from_logits, masked_mean
from agents.policy import LMPolicy, TokenScores
from agents.qlearning import bootstrap_values, huber, n_step_targets, polyak_update, q_values
from agents.replay import EpisodeReplay
from agents.rollout import Rollout
from agents.sampling import SamplingConfig
from agents.trainer import Scored, Trainer

EXPLORATIONS = ("epsilon_greedy", "boltzmann")


@dataclass
class DQNConfig(TrainConfig):
    exploration: str = option(
        "epsilon_greedy",
        "how actions are chosen while training: epsilon_greedy (argmax, else a uniform top-k candidate with "
        "probability epsilon) or boltzmann (sample softmax(Q / tau): the LM at temperature tau / q_scale)",
        choices=EXPLORATIONS,
    )
    epsilon: float = option(
        0.3, "epsilon-greedy: probability of a uniform draw among the top_k/top_p candidates", low=0, high=1
    )
    schedules: dict = option(
        {"epsilon": "linear:0.3:0.05:32"},
        "field -> schedule; by default epsilon decays from 0.3 to 0.05 over the first 32 iterations",
    )
    top_k: int = option(20, "candidates of the uniform epsilon draw (and of Boltzmann sampling; 0 = all)", low=0)
    q_scale: float = option(
        0.1,
        "Q(s, a) = V(s) + q_scale * (logit(s, a) - max logit(s)): how far apart the LM head puts actions",
        low=0,
        low_inclusive=False,
    )
    buffer_size: int = option(512, "episodes the replay buffer keeps (the oldest are overwritten)", low=1)
    learning_starts: int = option(8, "episodes in the buffer before the first gradient step", low=1)
    gradient_steps: int = option(2, "gradient steps per iteration (per batch of new episodes)", low=0)
    minibatch_size: int = option(16, "episodes per gradient step", low=1)
    n_step: int = option(4, "steps of rewards before bootstrapping from the target network", low=1)
    double_q: bool = option(True, "Double Q-learning: the online network picks the bootstrap action")
    tau: float = option(
        0.1, "Polyak weight of the online weights in each target update (1 = copy)", low=0, high=1, low_inclusive=False
    )
    target_update_interval: int = option(1, "gradient steps between target-network updates", low=1)
    prioritized_replay: bool = option(False, "draw episodes by their last mean absolute TD error")
    priority_alpha: float = option(0.6, "prioritised replay: how strongly priorities shape the draw", low=0)
    priority_beta: float = option(0.4, "prioritised replay: importance-weight correction (1 = full)", low=0, high=1)
    huber_delta: float = option(1.0, "TD errors beyond this are penalised linearly", low=0, low_inclusive=False)


class _TokenOutputs(nn.Module):
    """``policy.token_outputs`` as a module's forward, so ``torch.func.functional_call`` can run it with the
    target network's weights in place of the trainable ones."""

    def __init__(self, policy: LMPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, input_ids: Tensor, attention_mask: Tensor, num_generated: int) -> tuple[Tensor, Tensor | None]:
        return self.policy.token_outputs(input_ids, attention_mask, num_generated)


class DQN(Trainer):
    """Token-level deep Q-learning on the LM; see the module docs."""

    config_class: ClassVar[type[TrainConfig]] = DQNConfig
    config: DQNConfig
    algo: ClassVar[str] = "dqn"

    def __init__(self, config: DQNConfig | None = None, env: Any = None, policy: Any = None, **overrides: Any):
        super().__init__(config, env, policy, **overrides)
        if not self.single_turn_fast_path:
            raise ValueError(
                f"DQN replays single-turn TextGenVectorEnv episodes; {self.config.env_id!r} is "
                f"{'multi-turn' if self.fast_path else 'not a textgym env'}: use reinforce, a2c, ppo or trpo"
            )
        c = self.config
        self.replay = EpisodeReplay(
            c.buffer_size,
            self.envs.prompt_length,
            self.envs.max_new_tokens,
            self.envs.setup.pad_token_id,
            self.policy.device,
            c.prioritized_replay,
            c.priority_alpha,
        )
        self.target = {name: p.detach().clone() for name, p in self._trainable()}
        self.gradient_step = 0
        self._outputs = _TokenOutputs(self.policy)

    def _trainable(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in self.policy.named_parameters() if p.requires_grad]

    # -- acting ---------------------------------------------------------------------------------------------

    def sampling_at(self, iteration: int) -> SamplingConfig:
        """Epsilon-greedy: the argmax with the scheduled epsilon; Boltzmann: sampling with the scheduled
        temperature and no epsilon."""
        sampling = super().sampling_at(iteration)
        if self.config.exploration == "epsilon_greedy":
            return dataclasses.replace(sampling, greedy=True)
        return dataclasses.replace(sampling, epsilon=0.0)

    def evaluation_sampling(self) -> SamplingConfig:
        """Greedy: the action with the largest Q-value."""
        return SamplingConfig(greedy=True)

    # -- learning -------------------------------------------------------------------------------------------

    def update(self, batch: Rollout, scored: Scored, forward: TokenScores | None = None) -> dict[str, float]:
        self.replay.add(batch, scored.rewards)
        c = self.config
        if len(self.replay) < c.learning_starts:
            return {"losses/replay_size": float(len(self.replay))}
        stats: dict[str, list[float]] = {"td": [], "q": [], "target": [], "entropy": []}
        for _ in range(c.gradient_steps):
            self._gradient_step(stats)
        metrics = {f"losses/{k}": sum(v) / len(v) for k, v in stats.items() if v}
        metrics["losses/replay_size"] = float(len(self.replay))
        return metrics

    def _gradient_step(self, stats: dict[str, list[float]]) -> None:
        c = self.config
        drawn = self.replay.sample(c.minibatch_size, self._generator(20_000_000 + self.gradient_step), c.priority_beta)
        mb, steps = drawn.batch, drawn.batch.step_mask
        logits, values = self.policy.token_outputs(mb.input_ids, mb.attention_mask, mb.num_generated)
        assert values is not None  # DQN builds its policy with a value head
        q = q_values(logits, values, mb.actions, c.q_scale)
        targets = self.targets(mb, drawn.rewards, logits.detach())
        td = (q - targets) * steps
        per_step = huber(td, c.huber_delta) * drawn.weights[:, None]
        loss = (per_step * steps).sum() / steps.sum().clamp(min=1)
        entropy = masked_mean(entropy_from_logits(logits), steps)
        self.optimizer_step(loss - self.entropy_coef_at(self.iteration) * entropy, "TD loss")
        self.gradient_step += 1
        if self.gradient_step % c.target_update_interval == 0:
            self.update_target()
        episode_td = td.abs().sum(1) / steps.sum(1).clamp(min=1)
        if c.prioritized_replay:
            self.replay.update_priorities(drawn.slots, episode_td)
        stats["td"].append(loss.item())
        stats["q"].append(float(masked_mean(q.detach(), steps)))
        stats["target"].append(float(masked_mean(targets, steps)))
        stats["entropy"].append(entropy.item())

    @torch.no_grad()
    def targets(self, batch: Rollout, rewards: Tensor, online_logits: Tensor) -> Tensor:
        """n-step targets ``(B, T)`` of a replayed batch, bootstrapped from the target network."""
        c = self.config
        target_logits, target_values = torch.func.functional_call(
            self._outputs,
            {f"policy.{name}": weight for name, weight in self.target.items()},
            (batch.input_ids, batch.attention_mask, batch.num_generated),
        )
        bootstrap = bootstrap_values(target_logits, target_values, c.q_scale, online_logits if c.double_q else None)
        return n_step_targets(rewards, bootstrap, batch.step_mask, c.gamma, c.n_step)

    @torch.no_grad()
    def update_target(self) -> None:
        """Move the target weights ``tau`` of the way to the online ones (``tau=1``: copy them)."""
        polyak_update(self.target, dict(self._trainable()), self.config.tau)

    # -- checkpoints ----------------------------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        """The replay buffer, the target network and the gradient-step count: a resumed run continues exactly."""
        return {"replay": self.replay.state_dict(), "target": dict(self.target), "gradient_step": self.gradient_step}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.replay.load_state_dict(state["replay"])
        for name, weight in state["target"].items():
            self.target[name].copy_(weight)
        self.gradient_step = int(state["gradient_step"])
