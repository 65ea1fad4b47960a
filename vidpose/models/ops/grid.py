"""Feature-pixel coordinates <-> ``grid_sample`` coordinates: the one place this maths lives.

Feature-pixel coordinates are ``(x, y)`` with pixel centres at integers (pixel ``i`` covers
``[i - 0.5, i + 0.5)``), as everywhere in vidpose. ``grid_sample`` is always called with
``align_corners=False``, whose normalised coordinate ``-1`` is the *outer edge* of the first
pixel, so ``g = 2 (x + 0.5) / W - 1``. Using this one mapping for every sampling op keeps the
DAT convention (``align_corners=True``) and the Deformable-DETR one (``[0, 1]`` locations)
from ever mixing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pixel_to_grid", "grid_to_pixel", "pixel_centres", "sample_at_pixels"]


def _size_tensor(size_hw: Sequence[int], like: Tensor) -> Tensor:
    height, width = (int(v) for v in size_hw)
    if height <= 0 or width <= 0:
        raise ValueError(f"size_hw must be two positive integers (H, W), got {tuple(size_hw)!r}")
    return torch.tensor([width, height], dtype=like.dtype, device=like.device)


def _check_xy(xy: Tensor, name: str) -> None:
    if xy.shape[-1] != 2:
        raise ValueError(
            f"{name} must have a last dimension of 2 (x, y), got shape {tuple(xy.shape)}"
        )
    if not xy.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {xy.dtype}")


def pixel_to_grid(xy: Tensor, size_hw: Sequence[int]) -> Tensor:
    """Feature-pixel points ``(..., 2)`` (x, y) on an ``H x W`` map -> ``grid_sample`` coords."""
    _check_xy(xy, "xy")
    return 2.0 * (xy + 0.5) / _size_tensor(size_hw, xy) - 1.0


def grid_to_pixel(grid: Tensor, size_hw: Sequence[int]) -> Tensor:
    """Inverse of :func:`pixel_to_grid`: ``grid_sample`` coords ``(..., 2)`` -> feature pixels."""
    _check_xy(grid, "grid")
    return (grid + 1.0) * _size_tensor(size_hw, grid) / 2.0 - 0.5


def pixel_centres(
    size_hw: Sequence[int],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Integer pixel centres of an ``H x W`` map as ``(H, W, 2)`` (x, y) points."""
    height, width = (int(v) for v in size_hw)
    if height <= 0 or width <= 0:
        raise ValueError(f"size_hw must be two positive integers (H, W), got {tuple(size_hw)!r}")
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1)


def sample_at_pixels(features: Tensor, xy: Tensor) -> Tensor:
    """Bilinear read of ``(N, C, H, W)`` at feature pixels ``(N, Ho, Wo, 2)`` -> ``(N, C, Ho, Wo)``.

    Points outside the map read zeros (``padding_mode='zeros'``), as DCNv2, DAT and
    Deformable-DETR do. Half-precision inputs are sampled in float32 (a bf16 grid cannot hold
    sub-pixel positions on a 64-pixel map) and returned in their own dtype.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    _check_xy(xy, "xy")
    if xy.dim() != 4 or xy.shape[0] != features.shape[0]:
        raise ValueError(
            f"xy must be (N, Ho, Wo, 2) with N = {features.shape[0]} matching features, "
            f"got {tuple(xy.shape)}"
        )
    work_dtype = torch.promote_types(features.dtype, torch.float32)
    grid = pixel_to_grid(xy.to(work_dtype), features.shape[-2:])
    sampled = F.grid_sample(
        features.to(work_dtype), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return sampled.to(features.dtype)
