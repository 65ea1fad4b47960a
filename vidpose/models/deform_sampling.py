"""Modulated deformable convolution (DCNv2) as bilinear sampling + one contraction.

``deform_conv2d_sampled`` computes what ``torchvision.ops.deform_conv2d`` computes (same offset
and mask layout, see :mod:`vidpose.models.ops.deform_conv`; stride 1, one convolution group)
by sampling every kernel tap with ``F.grid_sample`` and contracting the ``C * k * k`` samples
with the weight. On CPU a forward + backward pass is several times faster than torchvision's
(about 4x for the MTPose fusion at the CPU twin's sizes, 2x at 64x48 with one offset field per
joint; docs/methods/mtpose.md); ``tests/test_models/test_mtpose.py`` checks that values and
gradients agree. torchvision's kernel stays the choice on CUDA, where it needs no
``(B, C, k*k, H, W)`` buffer.

Out-of-map samples read zeros exactly as torchvision's bilinear rule does: a corner outside
the map contributes 0, so a point at or beyond one pixel outside reads 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidpose.models.ops.grid import pixel_to_grid

__all__ = ["DEFORM_BACKENDS", "deform_conv2d_sampled", "resolve_deform_backend"]

DEFORM_BACKENDS = ("auto", "torchvision", "grid_sample")


def resolve_deform_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``torchvision`` on CUDA, ``grid_sample`` elsewhere; others are returned checked."""
    if backend not in DEFORM_BACKENDS:
        raise ValueError(f"deform backend: expected one of {DEFORM_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "torchvision" if device.type == "cuda" else "grid_sample"
    return backend


def deform_conv2d_sampled(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    padding: int,
    dilation: int,
    mask: Tensor | None = None,
) -> Tensor:
    """DCNv2 at stride 1: x ``(B, C, H, W)``, offset ``(B, 2Gk², Ho, Wo)``, mask ``(B, Gk², Ho, Wo)``.

    ``weight`` is ``(O, C, k, k)``; returns ``(B, O, Ho, Wo)`` with ``Ho = H + 2 padding -
    dilation (k - 1)``. ``mask=None`` weights every tap 1 (DCNv1).
    """
    batch, channels, height, width = x.shape
    out_channels, in_channels, kernel_h, kernel_w = weight.shape
    if in_channels != channels or kernel_h != kernel_w:
        raise ValueError(
            f"deform_conv2d_sampled: weight {tuple(weight.shape)} must be (O, {channels}, k, k) for input {tuple(x.shape)}"
        )
    taps = kernel_h * kernel_w
    out_h = height + 2 * padding - dilation * (kernel_h - 1)
    out_w = width + 2 * padding - dilation * (kernel_w - 1)
    groups = offset.shape[1] // (2 * taps)
    if offset.shape != (batch, 2 * groups * taps, out_h, out_w) or groups < 1 or channels % groups:
        raise ValueError(
            f"deform_conv2d_sampled: offset {tuple(offset.shape)} must be (B, 2*G*{taps}, {out_h}, {out_w}) "
            f"with G dividing {channels} channels"
        )
    if mask is not None and mask.shape != (batch, groups * taps, out_h, out_w):
        raise ValueError(
            f"deform_conv2d_sampled: mask {tuple(mask.shape)} must be ({batch}, {groups * taps}, {out_h}, {out_w})"
        )
    dtype = torch.promote_types(x.dtype, torch.float32)  # sub-pixel positions need float32
    # regular sampling positions (x, y) of each tap for each output pixel: (taps, Ho, Wo, 2)
    rows = torch.arange(out_h, device=x.device, dtype=dtype) - padding
    cols = torch.arange(out_w, device=x.device, dtype=dtype) - padding
    tap_rows = torch.arange(kernel_h, device=x.device, dtype=dtype).repeat_interleave(kernel_w) * dilation
    tap_cols = torch.arange(kernel_w, device=x.device, dtype=dtype).repeat(kernel_h) * dilation
    base_y = (tap_rows[:, None, None] + rows[None, :, None]).expand(taps, out_h, out_w)
    base_x = (tap_cols[:, None, None] + cols[None, None, :]).expand(taps, out_h, out_w)
    delta = offset.to(dtype).view(batch, groups, taps, 2, out_h, out_w)  # (dy, dx) per tap
    points = torch.stack((base_x + delta[:, :, :, 1], base_y + delta[:, :, :, 0]), dim=-1)
    grid = pixel_to_grid(points.view(batch * groups, taps * out_h, out_w, 2), (height, width))
    per_group = channels // groups
    sampled = F.grid_sample(
        x.to(dtype).reshape(batch * groups, per_group, height, width),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    ).view(batch, groups, per_group, taps, out_h, out_w)
    if mask is not None:
        sampled = sampled * mask.to(dtype).view(batch, groups, 1, taps, out_h, out_w)
    columns = sampled.reshape(batch, channels * taps, out_h * out_w)
    out = torch.matmul(weight.to(dtype).reshape(out_channels, channels * taps), columns)
    out = out.view(batch, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.to(dtype).view(1, -1, 1, 1)
    return out.to(x.dtype)
