"""Data-parallel ACM training under ``torch.distributed``: launch with ``torchrun --nproc_per_node P`` and every process
runs the same command.

:func:`init` reads torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) and
starts a process group: gloo on CPU, nccl when CUDA is available (one GPU per local rank). Without torchrun it is a
world of one and every helper here does nothing, so the single-process path is the same code.

How the phases use it (:mod:`edgekit.acm.convert`, :mod:`edgekit.acm.finetune`):

* phases 1 and 2 train layer ``l`` on rank ``l % world`` (every rank walks the frozen model, which is cheap; each
  trains its own layers), then :func:`broadcast_module` sends each layer's ACM from its owner to everyone;
* phase 3 starts from rank 0's parameters (:func:`broadcast_params`), gives each rank its own windows of every step,
  and averages the gradients (:func:`all_reduce_grads`) before each identical optimizer step, so the parameters stay
  identical on every rank;
* only rank 0 writes the ACM directory (:attr:`Dist.main`).

``edgekit distill`` uses the same helpers (:mod:`edgekit.distill.train`: gradients averaged over equal shares of
each step's global batch; :mod:`edgekit.distill.teacher`: the teacher's top-k scored in shares and gathered).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Whether this process writes results (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.world > 1


def init() -> Dist:
    """Join the torchrun job described by the environment (a world of one without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def barrier(d: Dist) -> None:
    """Wait until every rank gets here (nothing to wait for in a world of one)."""
    if d.active:
        import torch.distributed as dist

        dist.barrier()


def finish(d: Dist) -> None:
    """Leave the process group (after every rank is done)."""
    if d.active:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def broadcast_params(params, d: Dist, src: int = 0) -> None:
    """Overwrite ``params`` (tensors) on every rank with rank ``src``'s."""
    if not d.active:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src)


def broadcast_module(module: torch.nn.Module, d: Dist, src: int) -> None:
    """Every parameter and buffer of ``module`` from rank ``src``."""
    broadcast_params(list(module.parameters()) + list(module.buffers()), d, src)


def broadcast_object(obj, d: Dist, src: int):
    """A picklable object (a report row) from rank ``src`` to every rank; returned."""
    if not d.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def all_reduce_grads(params, d: Dist) -> None:
    """Average the gradients of ``params`` over the ranks (a missing gradient counts as zero)."""
    if not d.active:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= d.world


def mean_scalar(value: float, d: Dist) -> float:
    """The mean of a per-rank number over the ranks (for the progress bar and the report)."""
    if not d.active:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t) / d.world
