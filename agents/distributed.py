"""Data-parallel training with ``torch.distributed``: a thin layer the solvers and ``python -m train`` use.

Launch any run under ``torchrun`` (one process per CPU socket / GPU, several machines possible)::

    torchrun --standalone --nproc_per_node=2 -m train configs/investment_linear_euler_identity.yaml

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT``; :func:`init_from_env`
reads them and starts the process group — NCCL when the run's device is CUDA (each process on GPU ``LOCAL_RANK``),
gloo otherwise. What is shared and what is per process (see README, "Distributed training"):

* every process builds the same networks (same seed) and DistributedDataParallel broadcasts rank 0's parameters
  when it wraps them; gradients are averaged over the processes at every step, so the parameters stay identical;
* every process simulates its OWN economies: after the run-wide draws (the investment economy's shared X_0 and
  fixed idiosyncratic draw), a solver re-seeds its data generator with :func:`rank_seed` (child ``rank`` of
  ``numpy.random.SeedSequence(seed)``: independent, reproducible streams);
* a solver's batch size is per process: the global batch is ``world_size × batch_size``;
* every stopping decision is taken identically on all ranks (validation metrics all-reduced, stop flags
  all-reduced, a wall-clock budget decided by rank 0 and broadcast), otherwise the processes would deadlock;
* only rank 0 writes the run directory, logs, checkpoints and runs the judge.

Every function here is a no-op (or the identity) when no process group with more than one process is running, so
single-process runs are bit for bit what they are without this module.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "LossModule",
    "all_reduce_gradients",
    "all_reduce_mean",
    "all_reduce_mean_dict",
    "any_flag",
    "barrier",
    "broadcast_flag",
    "broadcast_module_state",
    "broadcast_object",
    "destroy",
    "init_from_env",
    "is_distributed",
    "is_main",
    "launched",
    "local_rank",
    "process_device",
    "rank",
    "rank_seed",
    "reseed",
    "world_size",
    "wrap_loss",
]


# ---------------------------------------------------------------------------------------------- process group
def launched() -> bool:
    """True when this process was started by torchrun (or any launcher) as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; 0 when not launched)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def process_device(device: torch.device | str) -> torch.device:
    """The device this process trains on: ``cuda:LOCAL_RANK`` for a CUDA run under torchrun, else ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and launched():
        return torch.device("cuda", local_rank())
    return device


def init_from_env(device: torch.device | str = "cpu", timeout_minutes: float = 10.0) -> bool:
    """Start the default process group from torchrun's environment; returns True if this call started it.

    Does nothing (returns False) when not launched by torchrun or when a group already exists. The backend is NCCL
    for a CUDA device (the current CUDA device is set to ``LOCAL_RANK``), gloo otherwise. ``timeout_minutes``
    bounds how long a collective waits for the other processes (a crashed rank then fails the others instead of
    hanging them forever; torchrun also stops the other workers when one fails).
    """
    if not launched() or not dist.is_available() or dist.is_initialized():
        return False
    device = process_device(device)
    kwargs: dict[str, Any] = {"timeout": datetime.timedelta(minutes=timeout_minutes)}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        backend = "nccl"
        kwargs["device_id"] = device
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, **kwargs)
    return True


def destroy() -> None:
    """Destroy the default process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in every single-process run)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


# ---------------------------------------------------------------------------------------------- seeds
def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s data stream: child ``rank`` of ``numpy.random.SeedSequence(seed)`` (as
    ``SeedSequence(seed).spawn(rank + 1)[rank]``), as a 63-bit integer. Streams of different ranks (and seeds)
    are statistically independent and every one is reproducible."""
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    child = np.random.SeedSequence(int(seed) % 2**64, spawn_key=(int(rank),))
    hi, lo = (int(v) for v in child.generate_state(2, np.uint32))
    return ((hi << 32) | lo) & (2**63 - 1)


def reseed(generator: torch.Generator, seed: int) -> torch.Generator:
    """Distributed runs: re-seed ``generator`` with this process's stream ``rank_seed(seed, rank())``; otherwise
    leave it untouched (single-process runs keep their stream)."""
    if is_distributed():
        generator.manual_seed(rank_seed(seed, rank()))
    return generator


# ---------------------------------------------------------------------------------------------- collectives
def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(x: float | torch.Tensor) -> float | torch.Tensor:
    """The mean of ``x`` over the processes (a float, or a tensor of the same shape); ``x`` itself when not
    distributed. Non-finite values stay non-finite (a NaN on one rank is a NaN on all)."""
    if not is_distributed():
        return x
    if isinstance(x, torch.Tensor):
        t = x.detach().to(_comm_device(), torch.float64, copy=True)
        dist.all_reduce(t)
        return (t / world_size()).to(x.device, x.dtype)
    t = torch.tensor(float(x), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t) / world_size()


@torch.no_grad()
def all_reduce_gradients(parameters) -> None:
    """Average the gradients of ``parameters`` over the processes in place (one collective on a flat buffer), as
    DistributedDataParallel does for a module it wraps; a no-op when not distributed. Every process must pass the
    same parameters, each with a gradient."""
    if not is_distributed():
        return
    grads = [p.grad for p in parameters]
    if any_flag(any(g is None for g in grads)):  # decided together: a lone raise would leave the others waiting
        raise ValueError("all_reduce_gradients: a parameter has no gradient on some process (every process must "
                         "pass the same parameters, each with one)")
    flat = all_reduce_mean(torch.cat([g.reshape(-1) for g in grads]))
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def all_reduce_mean_dict(values: dict[str, float]) -> dict[str, float]:
    """Each value's mean over the processes (one collective for all of them); ``values`` when not distributed."""
    if not is_distributed() or not values:
        return values
    t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return {k: float(v) / world_size() for k, v in zip(values, t.cpu().tolist())}


def any_flag(flag: bool) -> bool:
    """True on every process if ``flag`` is True on any (a max all-reduce); ``flag`` when not distributed."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor(1.0 if flag else 0.0, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t > 0)


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every process (e.g. a wall-clock budget, decided by one clock); ``flag`` when not
    distributed."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor(1.0 if flag else 0.0, dtype=torch.float64, device=_comm_device())
    dist.broadcast(t, src=0)
    return bool(t > 0)


def broadcast_object(obj: Any) -> Any:
    """Rank 0's picklable ``obj`` on every process (tensors inside should be on the CPU); ``obj`` when not
    distributed."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def broadcast_module_state(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers of ``module`` into every process's (no-op when not distributed)."""
    if not is_distributed():
        return
    state = broadcast_object({k: v.detach().cpu() for k, v in module.state_dict().items()} if is_main() else None)
    module.load_state_dict(state)


class LossModule(nn.Module):
    """A whole loss as one module: ``forward(*inputs) = loss_fn(*inputs)``, the trained network a submodule.

    DistributedDataParallel expects one forward per backward; a loss that calls the network several times (the
    Euler residual at the states and their successors, a DeepHAM unroll over many periods) is one forward of this
    module. ``loss_fn`` must compute with ``module``'s parameters (and may use anything else: the economy, …)."""

    def __init__(self, module: nn.Module, loss_fn) -> None:
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, *inputs):
        return self.loss_fn(*inputs)


def wrap_loss(module: nn.Module, loss_fn) -> nn.Module:
    """``LossModule(module, loss_fn)`` in ``DistributedDataParallel``: calling it computes the loss; its backward
    averages the gradients of ``module``'s parameters over the processes. Wrapping broadcasts rank 0's parameters
    and buffers (a collective: every process must call it)."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    return DistributedDataParallel(
        LossModule(module, loss_fn), device_ids=[device] if device.type == "cuda" else None
    )
