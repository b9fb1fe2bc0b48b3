"""Distributed data parallel helpers for ``torchrun --nproc_per_node=N``.

Why a module of tiny functions: every caller (trainer, hooks, recipes, tests) asks the same few
questions (am I rank 0? how many ranks? is this model wrapped?) and every answer must also be right
in a plain single-process run, where ``torch.distributed`` is not initialized at all.

Batch size convention (as BasicSR's ``batch_size_per_gpu``): ``batch_size`` is *per process*; the
global batch is ``batch_size * world_size``. DDP averages gradients over ranks, so a run on N ranks
with batch B follows the same trajectory (up to float summation order) as one process with batch N*B.

Launch::

    torchrun --nproc_per_node=2 tools/compress.py recipe.yaml   # gloo on CPU, nccl on GPUs
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "init_distributed",
    "destroy_distributed",
    "is_distributed",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "is_main_process",
    "barrier",
    "all_gather_object",
    "broadcast_object",
    "all_reduce_mean",
    "wrap_ddp",
    "unwrap",
    "default_device",
]


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Join the process group described by torchrun's environment, if any.

    Returns True when a multi-process group is active. Does nothing (returns False) when
    ``WORLD_SIZE`` is unset or 1, so the same script runs with ``python`` and with ``torchrun``.
    The backend defaults to nccl when CUDA is available, else gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(get_local_rank())
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def destroy_distributed() -> None:
    """Leave the process group (safe to call when none is active)."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialized process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Global rank, 0 outside a process group."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes, 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


def get_local_rank() -> int:
    """Rank on this node (torchrun's ``LOCAL_RANK``), used to pick the GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Rank 0 logs and writes files; the others only compute."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: Any) -> list:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` in a single process."""
    if get_world_size() == 1:
        return [obj]
    out: list = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (so all ranks take the same decision)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is untouched)."""
    t = t.detach().clone()
    if get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= get_world_size()
    return t


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", get_local_rank())
    return torch.device("cpu")


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """Wrap in ``DistributedDataParallel`` when more than one rank runs; otherwise return as is.

    DDP broadcasts rank 0's parameters and buffers at construction, so ranks start identical.
    """
    model = unwrap(model)
    if get_world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside a DDP/DataParallel wrapper (the module itself if unwrapped)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model
