"""Benchmark ``targets``: MTPose motion-aware targets, batched torch vs per-joint numpy loop vs write floor.

The workload is one training batch of the issue: ``batch`` person clips of 3 frames with
``joints`` joints, three ``64 x 48`` maps per joint (``H_o``, ``motion_prev``, ``motion_next``:
40 MB of float32 at batch 64, 17 joints). Keypoints are synthetic but PoseTrack-like: joints
spread over the crop, motion between the key frame and each neighbour = a person shift
(N(0, 6) input px per axis) plus a per-joint shift (N(0, 4) px), 10 % invisible joints and
5 % clamped neighbour frames. Rows:

- ``floor: zeros``: ``torch.zeros`` of the three ``(B, K, h, w)`` outputs, i.e. the least any
  implementation must do (allocate and write 40 MB) with freed memory reused (``x_floor``).
- ``floor: copy_ of a ready tensor``: copying a ready tensor of the same size into
  preallocated memory (read + write), for reference.
- ``floor: zeros, fresh pages``: one ``torch.zeros`` of all three maps (40 MB at batch 64)
  with the default allocator, which maps new pages on every call (a page fault per 4 KiB),
  ``x_fresh_floor``. This is the floor the issue's ratios were taken against: the numpy loop
  measures ~4x of it, as the issue says.
- ``torch motion_aware``: :func:`vidpose.heatmaps.motion_aware`, the batched generator.
- ``numpy loop``: :func:`vidpose.heatmaps.motion_aware_np` per sample, which fills only each
  joint's window one joint at a time (the MMPose/DCPose way).

Goals: CPU within 1.5x of the issue's floor (``x_fresh_floor``); CUDA within 2x of writing the
outputs (``x_floor``, the caching allocator reuses memory, so this is memory bandwidth).
Against the reused-memory CPU floor the torch path stays several times slower: it evaluates
``exp`` on every pixel of ~1,600 support windows (~1.2 M pixels at batch 64) and scatters them,
which costs more per pixel than a memset of the 10 M output pixels.

``--threads`` sets torch's intra-op threads (on a shared machine 1 gives the stablest numbers).
After the fresh-pages row, glibc is told to keep freed memory (``mallopt``), as PyTorch's CUDA
caching allocator does, so that the other CPU rows measure computation rather than page faults.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import math
from typing import Any

import numpy as np

from vidpose.benchmarks import time_call
from vidpose.heatmaps.geometry import Geometry

DESCRIPTION = "motion-aware targets (B clips x K joints x 3 maps): batched torch vs numpy loop vs write floor"

CPU_GOAL = 1.5  # x the (fresh-pages) floor
CUDA_GOAL = 2.0  # x writing the outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``targets`` benchmark."""
    parser.add_argument("--batch", type=int, default=64, help="person clips per batch (default 64)")
    parser.add_argument("--joints", type=int, default=17, help="joints per person (default 17)")
    parser.add_argument("--convention", choices=("udp", "msra"), default="udp", help="heatmap codec (default udp)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (default 15, quick 3)")
    parser.add_argument("--seed", type=int, default=0)


def synthetic_clips(
    batch: int, joints: int, geo: Geometry, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PoseTrack-like 3-frame clips in input px: ``xy (B, 3, K, 2)``, ``visible (B, 3, K)``, ``clamped (B, 3)``."""
    height, width = geo.input_hw
    centre = rng.uniform([0.3 * width, 0.3 * height], [0.7 * width, 0.7 * height], size=(batch, 1, 1, 2))
    pose = centre + rng.normal(0.0, [0.2 * width, 0.25 * height], size=(batch, 1, joints, 2))
    person_shift = rng.normal(0.0, 6.0, size=(batch, 3, 1, 2))
    joint_shift = rng.normal(0.0, 4.0, size=(batch, 3, joints, 2))
    person_shift[:, 1] = joint_shift[:, 1] = 0.0  # the key frame is the reference
    xy = pose + person_shift + joint_shift
    visible = (rng.uniform(size=(batch, 3, joints)) > 0.1).astype(np.float32)
    clamped = rng.uniform(size=(batch, 3)) < 0.05
    clamped[:, 1] = False
    return xy, visible, clamped


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time the floors, the batched torch path and the numpy loop: one row each, CUDA rows if available."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    batch = 8 if args.quick else args.batch
    repeats = args.repeats or (3 if args.quick else 15)
    geo = Geometry((256, 192), 4, args.convention)
    clips = synthetic_clips(batch, args.joints, geo, np.random.default_rng(args.seed))
    shape = (batch, args.joints, *geo.heatmap_hw)
    # Measured before the allocator is tuned: one 40 MB tensor is above glibc's mmap ceiling,
    # so every call maps fresh pages and pays a page fault per 4 KiB.
    fresh = time_call(lambda: torch.zeros((3, *shape)), repeats, 2)
    if not _keep_freed_memory():
        print("targets: could not tune the C allocator (not glibc); CPU timings may include page faults")
    rows = _device_rows("cpu", geo, clips, shape, repeats, fresh)
    if torch.cuda.is_available():
        rows += _device_rows("cuda", geo, clips, shape, repeats, fresh)
    return rows


def _device_rows(
    device: str,
    geo: Geometry,
    clips: tuple[np.ndarray, np.ndarray, np.ndarray],
    shape: tuple[int, ...],
    repeats: int,
    fresh: float,
) -> list[dict[str, Any]]:
    """Rows of one device: floors, the torch path and (CPU) the numpy loop."""
    import torch

    from vidpose.heatmaps.motion_aware import motion_aware, motion_aware_np

    sync = torch.cuda.synchronize if device == "cuda" else None
    xy, visible, clamped = clips
    xy_t = torch.as_tensor(xy, dtype=torch.float32, device=device)
    visible_t = torch.as_tensor(visible, device=device)
    clamped_t = torch.as_tensor(clamped, device=device)
    ready = torch.rand((3, *shape), device=device)
    out = torch.empty_like(ready)
    timings = {
        "floor: zeros of the 3 outputs": time_call(
            lambda: [torch.zeros(shape, device=device) for _ in range(3)], repeats, 2, sync
        ),
        "floor: copy_ of a ready tensor": time_call(lambda: out.copy_(ready), repeats, 2, sync),
    }
    if device == "cpu":
        timings["floor: zeros, fresh pages (one tensor)"] = fresh
    timings["torch motion_aware (batched)"] = time_call(
        lambda: motion_aware(xy_t, visible_t, geo, 1, clamped=clamped_t), repeats, 2, sync
    )
    if device == "cpu":
        timings["numpy per-joint loop"] = time_call(
            lambda: [motion_aware_np(xy[b], visible[b], geo, 1, clamped=clamped[b]) for b in range(len(xy))],
            max(1, repeats // 5),
            1,
        )
    floor = timings["floor: zeros of the 3 outputs"]
    goal = f"x_fresh_floor <= {CPU_GOAL}" if device == "cpu" else f"x_floor <= {CUDA_GOAL}"
    return [
        {
            "method": method,
            "device": device,
            "threads": torch.get_num_threads() if device == "cpu" else "",
            "ms": seconds * 1e3,
            "x_floor": seconds / floor,
            "x_fresh_floor": seconds / fresh if device == "cpu" else "",
            "goal": goal if method.startswith("torch") else "",
            "output_MB": 3 * math.prod(shape) * 4 / 1e6,
        }
        for method, seconds in timings.items()
    ]


def _keep_freed_memory() -> bool:
    """Make glibc reuse freed memory instead of returning it to the OS (as a caching allocator does).

    Without this, whether a 13 MB output lands on fresh pages depends on the allocation history,
    which swings every CPU row by up to 10x between runs. Returns False where glibc is absent.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))
