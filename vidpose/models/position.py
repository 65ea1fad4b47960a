"""Fixed 2-D sine-cosine position encodings for token grids (DETR / MAE style).

The encoding of the token at row ``y`` and column ``x`` is ``[sin(y w), cos(y w), sin(x w),
cos(x w)]`` with ``dim / 4`` frequencies ``w_i = temperature ** (-i / (dim / 4))`` each, so the
first half of the channels encodes the row and the second half the column. Tokens are ordered
row-major (token index ``y * width + x``), as a ``(B, C, H, W)`` map flattened over ``H, W``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sincos_2d"]


def sincos_2d(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Fixed encoding of an ``height x width`` grid as ``(height * width, dim)``, rows first."""
    if height <= 0 or width <= 0:
        raise ValueError(f"sincos_2d: grid must be positive, got {height} x {width}")
    if dim <= 0 or dim % 4:
        raise ValueError(
            f"sincos_2d: dim must be a positive multiple of 4 (sin and cos for rows and columns), got {dim}"
        )
    quarter = dim // 4
    omega = temperature ** (-torch.arange(quarter, device=device, dtype=torch.float64) / quarter)
    ys = torch.arange(height, device=device, dtype=torch.float64)
    xs = torch.arange(width, device=device, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    angle_y = grid_y.reshape(-1, 1) * omega
    angle_x = grid_x.reshape(-1, 1) * omega
    encoding = torch.cat((angle_y.sin(), angle_y.cos(), angle_x.sin(), angle_x.cos()), dim=1)
    return encoding.to(dtype)
