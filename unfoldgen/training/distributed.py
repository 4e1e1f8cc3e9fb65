"""Data-parallel training over processes started by ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them training runs in one
process. Every process draws the same global batch (samples are seeded by step) and trains on
its slice; DistributedDataParallel averages the gradients, so the update equals one process
training on the whole global batch. Rank 0 alone writes files and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from unfoldgen.errors import SpecError


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def local_slice(self, global_batch: int) -> slice:
        if global_batch % self.world_size:
            raise SpecError(f"the batch size {global_batch} does not split evenly over {self.world_size} processes",
                            key_path="train.batch_size", hint="use a multiple of the number of processes")
        size = global_batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def start(device: str) -> Context:
    """Join the process group when launched by torchrun; pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device cuda was asked for, but PyTorch sees no CUDA GPU", key_path="train.device",
                        hint="use device: auto or cpu")
    target = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(target)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Context(rank, world_size, target)


def stop(context: Context) -> None:
    """Leave the process group once every rank is here: a rank that tore its gloo connections
    down while the other still used them aborted ("terminate called without an active
    exception") in one run of the two-process test on a loaded machine."""
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, context: Context, find_unused: bool) -> torch.nn.Module:
    if not context.distributed:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)
