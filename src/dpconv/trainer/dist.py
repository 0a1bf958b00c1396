"""Devices and multi-process training (``torchrun``).

With ``WORLD_SIZE > 1`` in the environment the process group is initialised
from the usual ``MASTER_ADDR``/``MASTER_PORT``/``RANK`` variables (NCCL on
CUDA, Gloo on CPU); each rank samples its own shard of every system and the
gradients are averaged with one ``all_reduce`` per step, which is what
``DistributedDataParallel`` does. Only rank 0 writes files.
"""

from __future__ import annotations

import os

import torch

from dpconv.errors import ConfigError


def resolve_device(spec: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    spec = "auto" if spec is None else str(spec)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {spec!r} requested but torch sees no CUDA device")
        if spec == "cuda":
            spec = f"cuda:{local_rank % torch.cuda.device_count()}"
    elif spec != "cpu":
        raise ConfigError(f"unknown device {spec!r} (auto, cpu, cuda, cuda:N)")
    return torch.device(spec)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def finish_distributed() -> None:
    """Wait for every rank, then tear the process group down (a rank that exits while Gloo still
    holds the group can abort at interpreter shutdown). Does nothing without a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer."""
    if world <= 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    off = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[off : off + n].view_as(p).clone()
        off += n
