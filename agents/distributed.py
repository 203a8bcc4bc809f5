"""Data-parallel training over processes, launched by ``torchrun`` or ``accelerate launch``.

Each process (rank) owns ``batch_size / world_size`` of the envs and a replica of the policy. Per iteration:

- the ranks' envs together play the episodes a single process would (sub-env seeds and prompt groups are the
  global batch's, split by rank), each rank sampling with its own generator;
- score normalisation, advantage whitening, the KL controller's input and the token count see the global batch;
- gradients are summed over ranks, each rank's weighted by its share of the loss's tokens, so a step is the step
  of the global batch's token mean (PPO's minibatches are per-rank shards of the global ones); TRPO's surrogate,
  KL and Fisher products are global the same way;
- only rank 0 writes: the run folder's lock, metrics, evaluations, samples and checkpoints; every rank resumes
  from the checkpoint rank 0 chose, so ``--resume`` works with any number of processes.

CPU runs use the ``gloo`` backend, CUDA runs ``nccl`` with one device per process (``LOCAL_RANK``).

Example (two processes on one machine)::

    torchrun --nproc_per_node 2 -m agents.cli --algo ppo --env TextGen-Sentiment-v0 --batch-size 16

A single process is the same code with ``world_size = 1``:

    >>> parallel = DataParallel()
    >>> parallel.enabled, parallel.is_main, parallel.sum(torch.tensor(3.0))
    (False, True, tensor(3.))
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

# algorithms whose updates are written for several processes
DATA_PARALLEL_ALGOS = ("reinforce", "a2c", "ppo", "trpo")


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the training processes (``world_size = 1``: alone, every method a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, device: str) -> DataParallel:
        """Join the process group that ``torchrun`` describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (and
        ``MASTER_ADDR``/``MASTER_PORT``); a plain ``python`` run is a world of one."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_available():
            raise RuntimeError("this torch build has no torch.distributed: data-parallel training is unavailable")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            cuda = device.startswith("cuda")
            if cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes (run folder, metrics, checkpoints, evaluations)."""
        return self.rank == 0

    def sum(self, tensor: Tensor) -> Tensor:
        """The sum over ranks (a new tensor; not differentiable)."""
        if not self.enabled:
            return tensor
        import torch.distributed as dist

        out = tensor.detach().clone()
        dist.all_reduce(out)
        return out

    def gather(self, tensor: Tensor) -> Tensor:
        """Every rank's ``tensor`` (the same shape on each) concatenated along dim 0, in rank order."""
        if not self.enabled:
            return tensor
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.detach().contiguous())
        return torch.cat(parts)

    def local_slice(self, tensor: Tensor) -> Tensor:
        """This rank's rows of a gathered tensor (see :meth:`gather`)."""
        rows = tensor.shape[0] // self.world_size
        return tensor[self.rank * rows : (self.rank + 1) * rows]

    def share(self, count: Tensor | float) -> float:
        """This rank's fraction of a count summed over ranks (e.g. the tokens a loss averages over)."""
        local = torch.as_tensor(count, dtype=torch.float64).reshape(1)
        total = float(self.sum(local))
        return float(local) / total if total > 0 else 1.0 / self.world_size

    def combine_gradients(self, parameters: Iterable[torch.nn.Parameter], share: float) -> None:
        """Replace each gradient by the sum over ranks of ``share * gradient``: with ``share`` this rank's part of
        the loss's denominator, the result is the gradient of the loss over the global batch."""
        if not self.enabled:
            return
        import torch.distributed as dist

        params = [p for p in parameters if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]) * share
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(g).to(g.dtype)
            offset += g.numel()

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()
