"""Distributed set-up for ``torchrun``: NCCL on CUDA, gloo on CPU, with timeouts so a dead rank ends the job."""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = ["DistInfo", "init_distributed", "cleanup", "is_main", "barrier", "all_gather_objects", "ShardSampler", "ResumableSampler"]


@dataclass(frozen=True)
class DistInfo:
    """Rank facts of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    launched: bool = False  # started by torchrun (a process group exists even for one process)

    @property
    def distributed(self) -> bool:
        """Whether a process group runs: more than one process, or any torchrun launch.

        ``torchrun --nproc_per_node=1`` goes through the same process group and DDP wrapper as
        N processes, so a one-GPU machine exercises the multi-GPU code path.
        """
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, writes checkpoints and evaluates."""
        return self.rank == 0


def _pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("trainer.device=cuda but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if requested != "cpu":
        raise ValueError(f"trainer.device: expected auto, cpu or cuda, got {requested!r}")
    return torch.device("cpu")


def init_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Initialise the process group from torchrun's environment (or run single-process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    launched = "TORCHELASTIC_RUN_ID" in os.environ
    dev = _pick_device(device, local_rank)
    if (world_size > 1 or launched) and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=dev if dev.type == "cuda" else None,
        )
    return DistInfo(rank, world_size, local_rank, dev, launched)


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 or without a process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    """Synchronise ranks when distributed."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Gather one picklable object from every rank (a one-element list without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every sample exactly once over all ranks (no padding)."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableSampler(Sampler[tuple[int, int]]):
    """Per-epoch seeded order split into global batches, each split into contiguous per-rank blocks.

    With per-rank batch ``b`` and ``W`` ranks, global batch ``g`` is ``order[g*W*b : (g+1)*W*b]``
    and rank ``r`` takes its ``r``-th block of ``b``. So W ranks of batch b see exactly the
    micro-batches one process sees with batch b and ``accumulate = W``: DDP training equals
    single-process gradient accumulation, batch-norm statistics included. The order depends
    only on ``(seed, epoch)``; an incomplete last global batch is dropped. Yields
    ``(epoch, index)`` pairs, so per-sample randomness follows the epoch inside persistent
    workers; :meth:`set_epoch` with ``start`` skips the first ``start`` indices of this rank's
    share, which is how a resumed run continues inside an epoch.
    """

    def __init__(self, length: int, shuffle: bool, seed: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and the position in this rank's share to start at."""
        self.epoch, self.start = epoch, start

    def _share(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        b, world = self.batch_size, self.world_size
        num_global = self.length // (b * world)
        share: list[int] = []
        for g in range(num_global):
            first = g * b * world + self.rank * b
            share.extend(order[first : first + b])
        return share

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self._share()[self.start :])

    def __len__(self) -> int:
        return max(0, len(self._share()) - self.start)
