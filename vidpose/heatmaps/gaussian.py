"""Standard Gaussian heatmap targets: a numpy reference and a batched torch version.

Both follow the codec of the :class:`~vidpose.heatmaps.geometry.Geometry` they are given
(``../shared/specs/models.md`` section 0.2):

- ``msra``: the centre is rounded, ``mu = floor(x_hm + 0.5)``, and the kernel is evaluated at
  integer offsets from ``mu``;
- ``udp``: the window is placed around the same rounded ``mu`` but the kernel is centred at
  the exact (continuous) heatmap point.

The window holds the pixels with ``|i - mu_x| <= 3 sigma`` and ``|j - mu_y| <= 3 sigma``, i.e.
``R = floor(3 sigma)`` pixels either side of ``mu`` (a relative tolerance of ``SUPPORT_RTOL``
keeps exact ties inside whatever the float rounding). For every ``sigma`` with an integer
``3 sigma`` (1, 2, 3, ...) this is exactly mmpose's ``MSRAHeatmap``/``UDPHeatmap`` and
DCPose's window ``[int(mu - 3 sigma), int(mu + 3 sigma + 1))``. For other ``sigma`` those
implementations truncate ``mu - 3 sigma`` with ``int()``, which adds one pixel on the low side
only (an asymmetric window); vidpose keeps the symmetric rule. The peak value is 1 (not
normalised).

Weights are 1 for a visible joint (``visible > 0``) whose window has at least one pixel inside
the map and 0 otherwise; a joint with weight 0 has an all-zero map. (mmpose and DCPose keep
weight 1 for a window that ends exactly one pixel before the map, ``right == 0``; vidpose
does not.) NaN or infinite coordinates on a visible joint raise a ``ValueError`` naming the
joint; coordinates of invisible joints are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vidpose.heatmaps.geometry import Geometry

if TYPE_CHECKING:
    import torch

__all__ = ["SUPPORT_RTOL", "gaussian_np", "gaussian", "support_radius"]

# Relative tolerance of every "within 3 sigma" test, so that exact ties (integer offsets on an
# integer 3 sigma, which float32 and float64 may round to either side) are always inside.
SUPPORT_RTOL = 1e-5

LOG2_E = 1.0 / math.log(2.0)


def support_radius(sigma: float) -> int:
    """Half-width ``R`` in pixels of the square window ``|d| <= 3 sigma`` around a rounded centre."""
    return math.floor(3.0 * sigma * (1.0 + SUPPORT_RTOL))


def joint_label(index: Sequence[int], joint_names: Any = None, axes: Sequence[str] = ()) -> str:
    """Readable joint reference, e.g. ``"joint 3 (left_ear) at sample 0, frame 2"``.

    ``index`` ends with the joint slot; its leading entries are named by ``axes``.
    ``joint_names`` is a sequence of joint names or a ``KeypointLayout``.
    """
    *lead, k = (int(i) for i in index)
    known = getattr(joint_names, "joint_names", joint_names)
    label = f"joint {k}"
    if known is not None and 0 <= k < len(known):
        label += f" ({known[k]})"
    if lead:
        label += " at " + ", ".join(f"{axis} {v}" for axis, v in zip(axes, lead, strict=False))
    return label


def check_visible_finite_np(
    xy: np.ndarray, visible: np.ndarray, joint_names: Any = None, axes: Sequence[str] = ()
) -> None:
    """Raise ``ValueError`` naming the first visible joint of ``xy (..., K, 2)`` with a NaN/inf."""
    bad = (np.asarray(visible) > 0) & ~np.isfinite(xy).all(axis=-1)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(
            f"keypoints: {joint_label(where, joint_names, axes)} is visible but has a non-finite coordinate "
            f"{xy[tuple(where)].tolist()}; mark it invisible (visible = 0) or fix the annotation"
        )


def check_visible_finite(
    xy: torch.Tensor, visible: torch.Tensor, joint_names: Any = None, axes: Sequence[str] = ()
) -> None:
    """Torch twin of :func:`check_visible_finite_np` for ``xy (..., K, 2)`` tensors."""
    bad = (visible > 0) & ~torch_module().isfinite(xy).all(dim=-1)
    if bool(bad.any()):
        where = bad.nonzero()[0].tolist()
        raise ValueError(
            f"keypoints: {joint_label(where, joint_names, axes)} is visible but has a non-finite coordinate "
            f"{xy[tuple(where)].tolist()}; mark it invisible (visible = 0) or fix the annotation"
        )


def torch_module() -> Any:
    """Import torch on first use, so that ``import vidpose.heatmaps`` needs numpy only."""
    import torch

    return torch


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive finite number of heatmap pixels, got {sigma!r}")
    return sigma


def gaussian_np(
    xy: np.ndarray, visible: np.ndarray, geo: Geometry, sigma: float = 2.0, joint_names: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Standard targets of one person: input px ``xy (K, 2)``, ``visible (K,)`` -> ``(K, h, w)``, ``(K,)``.

    Reference implementation: one window per joint, float64 maths, float32 output.
    ``joint_names`` (names or a ``KeypointLayout``) only improves error messages.
    """
    sigma = _check_sigma(sigma)
    xy = np.asarray(xy, dtype=np.float64)
    visible = np.asarray(visible)
    if xy.ndim != 2 or xy.shape[-1] != 2 or visible.shape != xy.shape[:1]:
        raise ValueError(
            f"gaussian_np expects xy (K, 2) and visible (K,), got {xy.shape} and {visible.shape}"
        )
    check_visible_finite_np(xy, visible, joint_names)
    h, w = geo.heatmap_hw
    heatmaps = np.zeros((xy.shape[0], h, w), dtype=np.float32)
    weights = np.zeros(xy.shape[0], dtype=np.float32)
    radius = support_radius(sigma)
    for k in np.flatnonzero(visible > 0):
        point = np.asarray(geo.to_heatmap(xy[k]))
        mu = np.floor(point + 0.5)
        centre = mu if geo.convention == "msra" else point
        x0, x1 = int(max(mu[0] - radius, 0)), int(min(mu[0] + radius, w - 1))
        y0, y1 = int(max(mu[1] - radius, 0)), int(min(mu[1] + radius, h - 1))
        if x0 > x1 or y0 > y1:
            continue
        dx = np.arange(x0, x1 + 1) - centre[0]
        dy = np.arange(y0, y1 + 1) - centre[1]
        squared = dy[:, None] ** 2 + dx[None, :] ** 2
        heatmaps[k, y0 : y1 + 1, x0 : x1 + 1] = np.exp(-squared / (2 * sigma**2))
        weights[k] = 1.0
    return heatmaps, weights


def gaussian(
    xy: torch.Tensor, visible: torch.Tensor, geo: Geometry, sigma: float = 2.0, joint_names: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched targets on the device of ``xy (B, K, 2)``, ``visible (B, K)`` -> ``(B, K, h, w)``, ``(B, K)``.

    The axis-aligned Gaussian restricted to its square window is the outer product of two 1-D
    Gaussians, each zero outside its window, so every map is written exactly once.
    Output dtype float32.
    """
    profile_x, profile_y, weight = gaussian_profiles(xy, visible, geo, sigma, joint_names)
    return outer_maps(profile_x, profile_y), weight.to(profile_x.dtype)


def outer_maps(profile_x: torch.Tensor, profile_y: torch.Tensor) -> torch.Tensor:
    """Maps ``(..., h, w)``: the outer product of profiles ``(..., h)`` and ``(..., w)``, written once."""
    torch = torch_module()
    shape = (*profile_y.shape, profile_x.shape[-1])
    out = torch.empty(shape, dtype=profile_x.dtype, device=profile_x.device)
    return torch.mul(profile_y[..., :, None], profile_x[..., None, :], out=out)


def gaussian_profiles(
    xy: torch.Tensor, visible: torch.Tensor, geo: Geometry, sigma: float = 2.0, joint_names: Any = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """1-D factors of :func:`gaussian`: ``profile_x (B, K, w)``, ``profile_y (B, K, h)``, ``weight (B, K)``.

    Profiles are float32, weights bool. The profiles of a joint with weight 0 are zero, so
    ``outer_maps(profile_x, profile_y)`` is the target.
    """
    torch = torch_module()
    sigma = _check_sigma(sigma)
    if xy.ndim != 3 or xy.shape[-1] != 2 or tuple(visible.shape) != tuple(xy.shape[:2]):
        raise ValueError(
            f"gaussian expects xy (B, K, 2) and visible (B, K), "
            f"got {tuple(xy.shape)} and {tuple(visible.shape)}"
        )
    check_visible_finite(xy, visible, joint_names, axes=("sample",))
    vis = visible > 0
    h, w = geo.heatmap_hw
    point = geo.to_heatmap(torch.where(vis[..., None], xy, 0).to(torch.float64))
    mu = torch.floor(point + 0.5)
    centre = mu if geo.convention == "msra" else point
    radius = support_radius(sigma)
    inside = ((mu + radius >= 0) & (mu - radius <= mu.new_tensor([w - 1, h - 1]))).all(dim=-1)
    weight = vis & inside
    sigma_t = torch.full_like(mu[..., 0], sigma)
    profile_x = axis_profiles(centre[..., 0], mu[..., 0], radius, sigma_t, w) * weight[..., None]
    profile_y = axis_profiles(centre[..., 1], mu[..., 1], radius, sigma_t, h) * weight[..., None]
    return profile_x, profile_y, weight


def axis_profiles(
    centre: torch.Tensor, window_centre: torch.Tensor, limit: Any, sigma: torch.Tensor, size: int
) -> torch.Tensor:
    """1-D Gaussians ``(..., size)`` float32 around ``centre``, zero where ``|i - window_centre| > limit``.

    ``centre``, ``window_centre``, ``sigma`` are float64 ``(...)`` tensors, ``limit`` a tensor or
    a number. The exponent is formed in float64 and evaluated with ``exp2``, several times faster
    than ``exp`` on CPU.
    """
    torch = torch_module()
    pixels = torch.arange(size, device=centre.device, dtype=torch.float64)
    limit = limit[..., None] if hasattr(limit, "shape") else limit
    exponent = (pixels - centre[..., None]) ** 2 * (-LOG2_E / (2 * sigma[..., None] ** 2))
    values = exponent.to(torch.float32).exp2_()
    return values.mul_((pixels - window_centre[..., None]).abs() <= limit)
