"""Batching: collate Sample dicts, epoch-aware (distributed) samplers, worker seeding, device transfer.

Frames stay ``uint8 (B, T, H, W, 3)`` on the host (4x less to copy than float) and become float
on the device in :func:`to_device`. The samplers yield ``(epoch, index)`` pairs, so a dataset's
per-sample generator follows the epoch even inside persistent workers, which never see a
``set_epoch`` made on the main process's copy of the dataset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = [
    "VIEW_KEYS",
    "EpochSampler",
    "build_loader",
    "collate",
    "keep_freed_memory",
    "make_sampler",
    "set_epoch",
    "to_device",
    "worker_init_fn",
]


#: batch keys of single uint8 images ``(B, H, W, 3)`` that :func:`to_device` converts like the frames
VIEW_KEYS = ("view2",)


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack Sample dicts: arrays -> tensors ``(B, ...)``, numbers -> ``(B,)`` tensors, strings -> lists."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    keys = samples[0].keys()
    for i, sample in enumerate(samples[1:], start=1):
        if sample.keys() != keys:
            raise ValueError(f"sample {i} has keys {sorted(sample)}, sample 0 has {sorted(keys)}")
    batch: dict[str, Any] = {}
    for key in keys:
        values = [sample[key] for sample in samples]
        first = values[0]
        if isinstance(first, np.ndarray):
            batch[key] = torch.from_numpy(np.stack(values))
        elif isinstance(first, (bool, np.bool_)):
            batch[key] = torch.tensor([bool(v) for v in values], dtype=torch.bool)
        elif isinstance(first, (int, np.integer)):
            batch[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif isinstance(first, (float, np.floating)):
            batch[key] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        elif isinstance(first, str):
            batch[key] = list(values)
        else:
            raise TypeError(f"cannot collate sample key {key!r} of type {type(first).__name__}")
    return batch


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Move a batch to ``device``; frames ``uint8 (B, T, H, W, 3)`` -> float RGB in [0, 1] ``(B, T, 3, H, W)``.

    Single extra views (:data:`VIEW_KEYS`, e.g. the second view ``uint8 (B, H, W, 3)``) become
    ``(B, 3, H, W)`` the same way.

    The uint8 frames are transferred, then converted on the device. ImageNet normalisation is
    the model's first step (``PoseModel``), so flow estimators and normalised backbones see
    the same tensor.
    """
    device = torch.device(device)
    out = {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }
    frames = out["frames"]
    if frames.dtype != torch.uint8 or frames.dim() != 5 or frames.shape[-1] != 3:
        raise ValueError(f"batch['frames'] must be uint8 (B, T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    out["frames"] = frames.permute(0, 1, 4, 2, 3).float().div_(255.0).contiguous()
    for key in VIEW_KEYS:
        if key in out:
            view = out[key]
            if view.dtype != torch.uint8 or view.dim() != 4 or view.shape[-1] != 3:
                raise ValueError(f"batch[{key!r}] must be uint8 (B, H, W, 3), got {view.dtype} {tuple(view.shape)}")
            out[key] = view.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return out


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``: indices in order, shuffled per (seed, epoch), or from a DistributedSampler."""

    def __init__(
        self, num_samples: int, shuffle: bool, seed: int, distributed_sampler: DistributedSampler | None = None
    ) -> None:
        self.num_samples = int(num_samples)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.distributed_sampler = distributed_sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch for the next pass: changes the shuffle order and every sample's random draws."""
        self.epoch = int(epoch)
        if self.distributed_sampler is not None:
            self.distributed_sampler.set_epoch(self.epoch)

    def indices(self) -> list[int]:
        """The dataset indices of this epoch, in yield order."""
        if self.distributed_sampler is not None:
            return list(self.distributed_sampler)
        if not self.shuffle:
            return list(range(self.num_samples))
        # Same recipe as DistributedSampler, so a run's order depends on (seed, epoch) only.
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.num_samples, generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(epoch, i) for i in self.indices()])

    def __len__(self) -> int:
        if self.distributed_sampler is not None:
            return len(self.distributed_sampler)
        return self.num_samples


def make_sampler(
    dataset: Dataset,
    shuffle: bool,
    seed: int,
    distributed: bool = False,
    num_replicas: int | None = None,
    rank: int | None = None,
    drop_last: bool = False,
) -> EpochSampler:
    """The epoch-aware sampler of ``dataset``; distributed: each rank gets its share through a DistributedSampler.

    ``num_replicas``/``rank`` default to torch.distributed's world size and rank, which must then
    be initialised.
    """
    if not distributed:
        return EpochSampler(len(dataset), shuffle, seed)
    if (num_replicas is None or rank is None) and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "distributed=True needs torch.distributed to be initialised (torchrun), or explicit num_replicas and rank"
        )
    split = DistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )
    return EpochSampler(len(dataset), shuffle, seed, split)


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS; False where not glibc.

    A decoded 1920x1080 frame is 6 MB, above glibc's default mmap threshold: every decode would
    get fresh pages from the kernel (a page fault and zeroing per 4 KiB), which makes decoding
    about twice as slow as decoding into reused memory (docs/benchmarks.md, ``data``). A loader
    worker allocates the same sizes for every sample, so it keeps what it frees, as PyTorch's
    CUDA caching allocator does; its resident memory stays at its peak (tens of MB per worker).
    Called in every worker (:func:`worker_init_fn`) and, when a loader has no workers, in the
    process that loads.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    # 32 MiB is glibc's largest mmap threshold on 64-bit (a 4K frame, 25 MB, stays below it)
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(mallopt(m_trim_threshold, 256 * 2**20))


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy and ``random`` in a loader worker from torch's per-worker seed; OpenCV single-threaded; freed memory kept."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    # Each worker is already a process of its own; OpenCV's thread pool in every worker would
    # oversubscribe the cores. 0 (run sequentially) rather than 1: with OpenCV 5.0's pthreads
    # backend, setNumThreads(1) in a forked child of a parent that used the pool never returns.
    cv2.setNumThreads(0)
    keep_freed_memory()


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    drop_last: bool,
    distributed: bool = False,
    persistent_workers: bool | None = None,
    pin_memory: bool | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
    timeout: float = 0.0,
) -> DataLoader:
    """A DataLoader over ``dataset`` with :func:`collate`, an :class:`EpochSampler` and seeded workers.

    ``persistent_workers`` defaults to ``num_workers > 0``; ``pin_memory`` to CUDA being
    available; ``timeout`` > 0 makes a worker that delivers no batch for that many seconds an
    error instead of a hang. With ``num_workers=0`` this process loads, so it keeps freed memory
    as workers do (:func:`keep_freed_memory`). Call :func:`set_epoch` before each epoch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    sampler = make_sampler(dataset, shuffle, seed, distributed, num_replicas, rank, drop_last)
    if num_workers == 0:
        keep_freed_memory()  # this process decodes the frames: keep freed memory as a worker does
    if persistent_workers is None:
        persistent_workers = num_workers > 0
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=persistent_workers and num_workers > 0,
        worker_init_fn=worker_init_fn,
        timeout=float(timeout) if num_workers > 0 else 0.0,
        generator=torch.Generator().manual_seed(int(seed)),
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch of a loader made by :func:`build_loader` (shuffle order and per-sample randomness)."""
    if not isinstance(loader.sampler, EpochSampler):
        raise TypeError(f"loader.sampler is a {type(loader.sampler).__name__}, not an EpochSampler from build_loader")
    loader.sampler.set_epoch(epoch)
