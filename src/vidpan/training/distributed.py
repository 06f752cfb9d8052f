"""``torch.distributed`` set-up from the ``torchrun`` environment, and the few collectives training needs.

``torchrun --nproc_per_node N -m vidpan train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`init_distributed`
reads them and joins the process group with NCCL on GPUs and gloo on CPUs. Without those
variables (plain ``vidpan train``) it is a single process and nothing is initialised. Every helper
here is a no-op in a single process, so the trainer has one code path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from vidpan.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False  # whether init_distributed created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from None


def resolve_device(device: str, local_rank: int) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if device == "cpu":
        return torch.device("cpu")
    if device in ("cuda", "auto"):
        if torch.cuda.is_available():
            if local_rank >= torch.cuda.device_count():
                raise InputError(
                    f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible"
                )
            return torch.device("cuda", local_rank)
        if device == "cuda":
            raise InputError("device: cuda requested but CUDA is not available")
        return torch.device("cpu")
    raise InputError(f"device: expected auto, cpu or cuda, got {device!r}")


def init_distributed(device: str = "auto", *, timeout_s: float = 3 * 3600.0) -> DistContext:
    """Join the process group described by the ``torchrun`` environment (or stay single-process).

    Uses NCCL when the device is CUDA and gloo on CPU. If a process group already exists (a
    test or a notebook set one up) it is reused. The long default timeout lets the other ranks
    wait at a barrier while rank 0 runs a periodic evaluation.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = _env_int("LOCAL_RANK", rank)
        return DistContext(rank, world, local, resolve_device(device, local), False)
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
    )
    return DistContext(rank, world, local, dev, True)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def is_initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_initialised():
        dist.barrier()


def all_reduce_mean(values: Mapping[str, float | torch.Tensor], device: torch.device) -> dict[str, float]:
    """Mean of each scalar over the ranks (for logging); every rank must pass the same keys."""
    keys = list(values)
    if not keys:
        return {}
    stacked = torch.stack(
        [torch.as_tensor(values[k], dtype=torch.float32, device=device).detach().reshape(()) for k in keys]
    )
    if is_initialised():
        dist.all_reduce(stacked)
        stacked = stacked / dist.get_world_size()
    return dict(zip(keys, stacked.tolist(), strict=True))


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not is_initialised():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_initialised():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
