"""Training on several processes: PyTorch's DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node N -m ppl_models.cli.main train ...`` starts N copies of the command;
each finds its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins one process group (NCCL on CUDA, gloo on the CPU).
Without those variables, or with a world of one, nothing here does anything and training is the
single-process loop it always was.

How a distributed run is laid out (the pattern of Pyro's Lightning and Horovod examples):

- ``--batch-size`` is the **global** batch. Every rank draws the same permutation (the data RNG is
  seeded alike on every rank) and takes its contiguous share of each batch (:meth:`World.shard`),
  so an epoch has the same steps at every world size and a checkpoint's position means the same
  thing whatever the world size that resumes it.
- The loss is an ``nn.Module`` holding the model (:class:`ReplicatedLoss`), so DDP sees the model's
  parameters and all-reduces their gradients during ``backward``. DDP averages; each rank's loss is a
  sum over its share, so it is multiplied by the world size first: the gradient is then that of the
  whole global batch, exactly what one process on the combined batch computes (the role that the
  plate's subsample scale, the global data size, plays in Pyro's Horovod example).
- Each rank samples from its own random stream (:func:`rank_seed`); parameters start equal (same
  seed, and DDP broadcasts rank 0's at construction) and stay equal (same averaged gradients).
- Only rank 0 writes: checkpoints, metrics, events, figures. Checkpoints hold every rank's random
  state, so a run resumed at the same world size repeats exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ppl_models.inference.strategy import Strategy

if TYPE_CHECKING:
    from ppl_models.train.config import TrainConfig


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank ``rank``'s random stream (rank 0 keeps ``seed`` itself, so a world of one is a
    plain run); ``step`` derives a fresh stream for a rank that a checkpoint holds no state for."""
    if rank == 0 and step == 0:
        return seed
    return (seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2**63 - 1)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes, and the collectives the loop uses.

    With ``size == 1`` every collective returns its input, so the training loop calls them
    unconditionally.
    """

    rank: int = 0  # this process's index, 0..size-1
    size: int = 1  # number of training processes
    local_rank: int = 0  # index among this node's processes (which GPU it drives)

    @property
    def writer(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch's indices (shares differ by at most one)."""
        return idx if self.size == 1 else idx.tensor_split(self.size)[self.rank]

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the ranks (a new tensor; ``t`` itself is left alone)."""
        t = t.clone()
        if self.size > 1:
            dist.all_reduce(t)
        return t

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (picklable values)."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.size > 1:
            dist.barrier()


def is_writer() -> bool:
    """Whether this process writes results: True unless it is a rank above 0 of a joined process group."""
    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


def join(device: str) -> tuple[World, str]:
    """Join the process group ``torchrun`` describes in the environment; return the world and the
    device this rank trains on (``cuda:LOCAL_RANK`` for ``auto``/``cuda`` when CUDA is present).

    Args:
        device: the configured device name (auto | cpu | cuda | cuda:N).

    Raises:
        ValueError: a world of several processes asked to share one explicit GPU (``cuda:N``).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device.startswith("cuda:"):
        raise ValueError(f"--device {device} names one GPU, but torchrun started {size} processes; "
                         "use --device cuda (each process takes the GPU of its LOCAL_RANK) or --device cpu")
    if cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    elif device == "auto":
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(rank, size, local_rank), device


class ReplicatedLoss(torch.nn.Module):
    """The objective's loss as a module that holds the model, so DDP can wrap it (a loss built from bound
    methods has no parameters, and DDP refuses a module without any).

    Args:
        module: the model (an ``nn.Module`` with Pyro ``model`` and ``guide`` methods).
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``loss_fn(x)``: a loss of the model on this rank's share ``x`` (the objective through Pyro, or the
        execution plan's loss)."""
        return loss_fn(x)


class DistributedStep:
    """The SVI step of a distributed run: DDP's forward, the loss times the world size, backward (where DDP
    all-reduces the gradients), then the optimizer.

    Args:
        module: the model, already on this rank's device.
        world: the process group's layout.
    """

    def __init__(self, module: torch.nn.Module, world: World):
        self.module, self.world = module, world
        on_cuda = next(module.parameters()).device.type == "cuda"
        self.ddp = DistributedDataParallel(ReplicatedLoss(module),
                                           device_ids=[world.local_rank] if on_cuda else None)

    @property
    def loss_scale(self) -> int:
        """The factor on each rank's loss before ``backward``: DDP averages the ranks' gradients."""
        return self.world.size

    def forward(self, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``loss_fn(x)`` through DDP's forward, so that the next ``backward`` all-reduces the gradients
        (what the execution plan runs its loss through: ``ExecutionPlan(..., through=step.forward)``)."""
        return self.ddp(loss_fn, x)

    def __call__(self, objective, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
        """One step of ``objective`` on this rank's share ``x``; returns its detached loss (a sum over the share)."""
        module = self.module
        loss = self.forward(lambda xb: objective.differentiable_loss(module.model, module.guide, xb), x)
        optimizer.zero_grad(set_to_none=True)
        (loss * self.loss_scale).backward()
        optimizer.step()
        return loss.detach()


def refuse_undistributable(strategy: Strategy, tc: TrainConfig, model: torch.nn.Module, labelled: bool,
                           world: World) -> None:
    """Raise ``ValueError`` naming what a distributed run cannot do yet: strategies with their own steps
    (per-data-point state, a GAN's two players), models bound to labels, a global batch smaller than the world."""
    size = world.size
    if type(strategy).step is not Strategy.step or not strategy.uses_objective:
        raise ValueError(f"--strategy {tc.strategy} runs its own steps (per-data-point state or two players), "
                         f"which torchrun's {size} processes cannot share yet; train it in one process")
    if labelled:
        raise ValueError(f"{type(model).__name__} is bound to labels, which torchrun's {size} processes "
                         "do not shard yet; train it in one process")
    if tc.batch_size < size:
        raise ValueError(f"--batch-size {tc.batch_size} is the global batch, smaller than the {size} processes "
                         f"torchrun started; use at least {size}")


def rank_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This rank's random state (the CPU generator's, and its GPU's on CUDA), for a checkpoint."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rank_rng(world: World, ranks: list[dict] | None, seed: int, step: int, device: torch.device) -> str | None:
    """Put this rank's stream back from a checkpoint's ``ranks`` (every rank's :func:`rank_rng_state`).

    A checkpoint written at another world size holds no stream for some ranks: ranks above 0 then draw
    fresh streams derived from ``step`` (rank 0 keeps the checkpoint's own state), and the returned
    line says so; ``None`` when the run repeats exactly.
    """
    if not ranks and world.size == 1:
        return None
    if ranks and len(ranks) == world.size:
        torch.set_rng_state(ranks[world.rank]["torch"])
        if "cuda" in ranks[world.rank] and device.type == "cuda":
            torch.cuda.set_rng_state(ranks[world.rank]["cuda"], device)
        return None
    if world.rank > 0:
        torch.manual_seed(rank_seed(seed, world.rank, step))
    return (f"resumed by {world.size} process(es) from a checkpoint that {len(ranks or [None])} wrote: ranks above "
            "0 draw fresh random streams, so this run does not repeat the original bit for bit")
