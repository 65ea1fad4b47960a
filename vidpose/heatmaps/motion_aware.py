"""MTPose motion-aware targets (``../shared/specs/models.md`` section 1.2): numpy reference + batched torch.

For the key frame ``c`` and its neighbours ``p`` (previous) and ``n`` (next), every joint gets
three maps centred on the current location ``mu = phi(J_c)`` (``phi`` = ``geo.to_heatmap``;
msra rounds ``mu`` per axis, udp keeps it continuous):

- ``heatmap``: the standard circular target ``H_o`` with ``sigma0`` (:mod:`.gaussian` rules);
- ``motion_prev`` / ``motion_next``: an elongated Gaussian whose shape encodes the motion
  ``m = phi(J_c) - phi(J_p)`` (resp. ``- phi(J_n)``), measured in heatmap pixels without
  rounding. With ``r = (|m| - delta) / delta``:

  * ``|m| <= delta``: ``sigma_par = sigma_perp = sigma0 + r`` (a circle, ``sigma0 - 1`` at rest);
  * ``|m| >  delta``: ``sigma_par = sigma0 + r`` along the motion and
    ``sigma_perp = max(sigma0 - r, sigma_min)`` across it;
  * ``theta = atan2(m_y, m_x)`` (computed as ``(cos, sin) = m / |m|``; 0 when ``m = 0``);
  * at heatmap pixel ``(i, j)``: ``a = dx cos + dy sin``, ``b = -dx sin + dy cos`` with
    ``dx = i - mu_x``, ``dy = j - mu_y``, and ``G = exp(-a^2 / 2 sigma_par^2 - b^2 / 2 sigma_perp^2)``
    where ``|a| <= 3 sigma_par`` and ``|b| <= 3 sigma_perp`` (the truncated kernel rotated: a
    rotated rectangle), else 0. For ``theta = 0`` and an integer ``sigma`` this is the msra
    square window exactly.

Edge cases:

- a neighbour frame flagged ``clamped`` (the clip ran past the video boundary): ``m = 0``
  (circle ``sigma0 - 1``), whatever the neighbour's visibility;
- a missing neighbour (joint invisible, unlabeled or the person absent in that frame):
  ``missing_motion="standard"`` makes that motion map a copy of ``H_o`` with ``H_o``'s weight;
  ``missing_motion="ignore"`` makes it an all-zero map with weight 0 (only that map's weight,
  ``weight_prev`` or ``weight_next``; ``weight`` of ``H_o`` is unchanged);
- current joint invisible: all three maps zero, all three weights 0; a map whose own support
  has no pixel inside the heatmap is zero with weight 0 (each map is judged on its own support);
- ``sigma_max`` (default None = the paper, no cap) caps ``sigma_par`` and ``sigma_perp``;
  ``oversized`` counts the motion maps (prev and next counted separately) whose uncapped
  ``3 sigma_par`` exceeds ``max(h, w)``: a sign of identity switches or annotation errors.

Variants: ``"motion_aware"`` (above), ``"sigma_only"`` (the paper's Table 5 "Sigma-adjusted"
ablation: a circle with ``sigma = sigma0 + r`` on both axes, no rotation, no ``sigma_perp``
branch) and ``"standard"`` (all three maps are ``H_o``, for ablations).

Weights are 0/1 float32: the current joint's visibility (``visible > 0``) times the rules above.
Support tests use the relative tolerance :data:`~vidpose.heatmaps.gaussian.SUPPORT_RTOL`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from vidpose.heatmaps.gaussian import (
    LOG2_E,
    SUPPORT_RTOL,
    axis_profiles,
    check_visible_finite,
    check_visible_finite_np,
    gaussian_np,
    gaussian_profiles,
    outer_maps,
    torch_module,
)
from vidpose.heatmaps.geometry import Geometry

if TYPE_CHECKING:
    import torch

__all__ = ["MOTION_VARIANTS", "MISSING_MOTION", "motion_sigmas", "motion_aware_np", "motion_aware"]

MOTION_VARIANTS = ("motion_aware", "sigma_only", "standard")
MISSING_MOTION = ("standard", "ignore")


def check_motion_options(
    sigma0: float, delta: float, sigma_min: float, sigma_max: float | None, variant: str, missing_motion: str
) -> None:
    """Raise ``ValueError`` naming the first motion-aware option out of its range."""
    if variant not in MOTION_VARIANTS:
        raise ValueError(
            f"motion-aware target: unknown variant {variant!r}; expected one of {MOTION_VARIANTS}"
        )
    if missing_motion not in MISSING_MOTION:
        raise ValueError(
            f"motion-aware target: unknown missing_motion {missing_motion!r}; expected one of {MISSING_MOTION}"
        )
    if not sigma0 > 1:
        raise ValueError(
            f"motion-aware target: sigma0 must be > 1 heatmap px (at rest sigma = sigma0 - 1), got {sigma0}"
        )
    if not delta > 0:
        raise ValueError(f"motion-aware target: delta must be > 0 heatmap px, got {delta}")
    if not sigma_min > 0:
        raise ValueError(f"motion-aware target: sigma_min must be > 0 heatmap px, got {sigma_min}")
    if sigma_max is not None and not sigma_max >= sigma_min:
        raise ValueError(f"motion-aware target: sigma_max must be None or >= sigma_min, got {sigma_max}")


def _frame_indices(num_frames: int, key: int, prev: int | None, next_: int | None) -> tuple[int, int, int]:
    """``(key, prev, next)`` clip positions, neighbours defaulting to ``key -/+ 1``, all checked."""
    prev = key - 1 if prev is None else prev
    next_ = key + 1 if next_ is None else next_
    for label, index in (("key", key), ("prev", prev), ("next", next_)):
        if not 0 <= index < num_frames:
            raise ValueError(
                f"motion-aware target: {label} frame index {index} is outside the clip of {num_frames} frames"
            )
    return key, prev, next_


def motion_sigmas(
    norm: float,
    sigma0: float = 3.0,
    delta: float = 3.0,
    sigma_min: float = 1.0,
    variant: str = "motion_aware",
) -> tuple[float, float]:
    """``(sigma_par, sigma_perp)`` in heatmap px for a motion of length ``norm`` heatmap px (no cap)."""
    r = (norm - delta) / delta
    if variant == "sigma_only" or norm <= delta:
        return sigma0 + r, sigma0 + r
    return sigma0 + r, max(sigma0 - r, sigma_min)


def motion_aware_np(
    xy: np.ndarray,
    visible: np.ndarray,
    geo: Geometry,
    key: int,
    prev: int | None = None,
    next: int | None = None,
    clamped: np.ndarray | None = None,
    sigma0: float = 3.0,
    delta: float = 3.0,
    sigma_min: float = 1.0,
    sigma_max: float | None = None,
    variant: str = "motion_aware",
    missing_motion: str = "standard",
    joint_names: Any = None,
    annotated: np.ndarray | None = None,
) -> dict[str, Any]:
    """Targets of one person clip: ``xy (T, K, 2)`` input px, ``visible (T, K)``, ``clamped (T,)``.

    Returns ``heatmap``, ``motion_prev``, ``motion_next`` ``(K, h, w)`` float32, ``weight``,
    ``weight_prev``, ``weight_next`` ``(K,)`` float32 and ``oversized`` (int). ``prev``/``next``
    default to ``key - 1``/``key + 1``. ``annotated (T, K)`` (default ``visible``) marks joints
    whose position is known although they may lie outside the crop: a neighbour's motion
    vector needs only its annotation; the key joint's visibility alone decides the weights.
    Reference implementation: one joint at a time, float64.
    """
    check_motion_options(sigma0, delta, sigma_min, sigma_max, variant, missing_motion)
    xy = np.asarray(xy, dtype=np.float64)
    visible = np.asarray(visible)
    annotated = visible if annotated is None else np.asarray(annotated)
    if xy.ndim != 3 or xy.shape[-1] != 2 or visible.shape != xy.shape[:2] or annotated.shape != visible.shape:
        raise ValueError(
            f"motion_aware_np expects xy (T, K, 2), visible (T, K) and annotated (T, K), got {xy.shape}, "
            f"{visible.shape} and {annotated.shape}"
        )
    num_frames = visible.shape[0]
    key, prev, next_ = _frame_indices(num_frames, key, prev, next)
    clamped = np.zeros(num_frames, dtype=bool) if clamped is None else np.asarray(clamped, dtype=bool)
    if clamped.shape != (num_frames,):
        raise ValueError(f"motion_aware_np expects clamped ({num_frames},), got {clamped.shape}")
    check_visible_finite_np(xy, np.maximum(visible, annotated), joint_names, axes=("frame",))

    heatmap, weight = gaussian_np(xy[key], visible[key], geo, sigma0, joint_names)
    out: dict[str, Any] = {"heatmap": heatmap, "weight": weight, "oversized": 0}
    h, w = geo.heatmap_hw
    for side, neighbour in (("prev", prev), ("next", next_)):
        maps = np.zeros_like(heatmap)
        weights = np.zeros_like(weight)
        for k in np.flatnonzero(visible[key] > 0):
            if variant == "standard" or not (clamped[neighbour] or annotated[neighbour, k] > 0):
                if variant == "standard" or missing_motion == "standard":
                    maps[k], weights[k] = heatmap[k], weight[k]
                continue
            current = np.asarray(geo.to_heatmap(xy[key, k]))
            neighbour_point = np.asarray(geo.to_heatmap(xy[neighbour, k]))
            motion = np.zeros(2) if clamped[neighbour] else current - neighbour_point
            norm = math.hypot(motion[0], motion[1])
            sigma_par, sigma_perp = motion_sigmas(norm, sigma0, delta, sigma_min, variant)
            out["oversized"] += int(3 * sigma_par > max(h, w))
            if sigma_max is not None:
                sigma_par, sigma_perp = min(sigma_par, sigma_max), min(sigma_perp, sigma_max)
            cos, sin = (motion / norm) if norm > 0 and variant == "motion_aware" else (1.0, 0.0)
            centre = np.floor(current + 0.5) if geo.convention == "msra" else current
            weights[k] = _draw_rotated(maps[k], centre, cos, sin, sigma_par, sigma_perp)
        out[f"motion_{side}"], out[f"weight_{side}"] = maps, weights
    return out


def _draw_rotated(
    target: np.ndarray, centre: np.ndarray, cos: float, sin: float, sigma_par: float, sigma_perp: float
) -> float:
    """Draw the rotated-rectangle Gaussian into ``target (h, w)``; 1.0 if a pixel of it is inside, else 0.0."""
    h, w = target.shape
    limit_par = 3 * sigma_par * (1 + SUPPORT_RTOL)
    limit_perp = 3 * sigma_perp * (1 + SUPPORT_RTOL)
    extent_x = limit_par * abs(cos) + limit_perp * abs(sin)
    extent_y = limit_par * abs(sin) + limit_perp * abs(cos)
    x0, x1 = max(math.ceil(centre[0] - extent_x), 0), min(math.floor(centre[0] + extent_x), w - 1)
    y0, y1 = max(math.ceil(centre[1] - extent_y), 0), min(math.floor(centre[1] + extent_y), h - 1)
    if x0 > x1 or y0 > y1:
        return 0.0
    dx = np.arange(x0, x1 + 1)[None, :] - centre[0]
    dy = np.arange(y0, y1 + 1)[:, None] - centre[1]
    along = dx * cos + dy * sin
    across = -dx * sin + dy * cos
    inside = (np.abs(along) <= limit_par) & (np.abs(across) <= limit_perp)
    values = np.exp(-(along**2) / (2 * sigma_par**2) - across**2 / (2 * sigma_perp**2))
    target[y0 : y1 + 1, x0 : x1 + 1] = np.where(inside, values, 0.0)
    return float(inside.any())


def motion_aware(
    xy: torch.Tensor,
    visible: torch.Tensor,
    geo: Geometry,
    key_index: int,
    prev_index: int | None = None,
    next_index: int | None = None,
    clamped: torch.Tensor | None = None,
    sigma0: float = 3.0,
    delta: float = 3.0,
    sigma_min: float = 1.0,
    sigma_max: float | None = None,
    variant: str = "motion_aware",
    missing_motion: str = "standard",
    joint_names: Any = None,
    annotated: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Batched targets on the device of ``xy (B, T, K, 2)`` input px, ``visible (B, T, K)``, ``clamped (B, T)``.

    Returns ``heatmap``, ``motion_prev``, ``motion_next`` ``(B, K, h, w)`` float32, ``weight``,
    ``weight_prev``, ``weight_next`` ``(B, K)`` float32 and ``oversized`` ``(B,)`` int64, the
    same values as :func:`motion_aware_np` per sample (``annotated (B, T, K)`` as there). Axis-aligned maps (``H_o``, copies of
    it, no motion, motion along x or y, ``sigma_only``) are outer products of two 1-D profiles,
    written once; a rotated map is evaluated only on the bounding window of its support.
    """
    torch = torch_module()
    check_motion_options(sigma0, delta, sigma_min, sigma_max, variant, missing_motion)
    annotated = visible if annotated is None else annotated
    if xy.ndim != 4 or xy.shape[-1] != 2 or tuple(visible.shape) != tuple(xy.shape[:3]) or tuple(
        annotated.shape
    ) != tuple(visible.shape):
        raise ValueError(
            f"motion_aware expects xy (B, T, K, 2), visible (B, T, K) and annotated (B, T, K), "
            f"got {tuple(xy.shape)}, {tuple(visible.shape)} and {tuple(annotated.shape)}"
        )
    batch, num_frames, _ = visible.shape
    key, prev, next_ = _frame_indices(num_frames, key_index, prev_index, next_index)
    if clamped is None:
        clamped = torch.zeros(batch, num_frames, dtype=torch.bool, device=xy.device)
    if tuple(clamped.shape) != (batch, num_frames):
        raise ValueError(f"motion_aware expects clamped ({batch}, {num_frames}), got {tuple(clamped.shape)}")
    known = (visible > 0) | (annotated > 0)
    check_visible_finite(xy, known, joint_names, axes=("sample", "frame"))
    h, w = geo.heatmap_hw

    standard_x, standard_y, standard_weight = gaussian_profiles(
        xy[:, key], visible[:, key], geo, sigma0, joint_names
    )
    weight = standard_weight.to(torch.float32)
    heatmap = outer_maps(standard_x, standard_y)

    # One entry per motion map, leading axis (prev, next): (2, B, K) float64 / bool.
    vis = visible > 0
    point = geo.to_heatmap(torch.where(known[..., None], xy, 0).to(torch.float64))  # (B, T, K, 2)
    current = point[:, key]
    centre = torch.floor(current + 0.5) if geo.convention == "msra" else current
    side_clamped = torch.stack([clamped[:, prev], clamped[:, next_]]).bool()[..., None]  # (2, B, 1)
    neighbour = torch.stack([point[:, prev], point[:, next_]])
    motion = torch.where(side_clamped[..., None], 0.0, current - neighbour)
    present = vis[:, key].expand(2, -1, -1)
    measurable = side_clamped | torch.stack([known[:, prev], known[:, next_]])
    own = present & measurable if variant != "standard" else torch.zeros_like(present)
    copies = present & ~own if (variant == "standard" or missing_motion == "standard") else None

    norm = motion.norm(dim=-1)
    r = (norm - delta) / delta
    sigma_par = sigma0 + r
    if variant == "sigma_only":
        sigma_perp = sigma_par
    else:
        sigma_perp = torch.where(r <= 0, sigma_par, (sigma0 - r).clamp(min=sigma_min))
    oversized = (own & (3 * sigma_par > max(h, w))).sum(dim=(0, 2))
    if sigma_max is not None:
        sigma_par, sigma_perp = sigma_par.clamp(max=sigma_max), sigma_perp.clamp(max=sigma_max)
    oriented = (norm > 0) & (variant == "motion_aware")
    safe_norm = torch.where(oriented, norm, 1.0)
    cos = torch.where(oriented, motion[..., 0] / safe_norm, 1.0)
    sin = torch.where(oriented, motion[..., 1] / safe_norm, 0.0)
    # An axis-aligned map (no motion, motion along x or y, sigma_only) is separable.
    rotated = own & (sin != 0) & (cos != 0)
    separable = own & ~rotated
    along_x = sin == 0
    sigma_x = torch.where(along_x, sigma_par, sigma_perp)
    sigma_y = torch.where(along_x, sigma_perp, sigma_par)
    centre_x, centre_y = centre[..., 0].expand(2, -1, -1), centre[..., 1].expand(2, -1, -1)
    limit_x, limit_y = 3 * (1 + SUPPORT_RTOL) * sigma_x, 3 * (1 + SUPPORT_RTOL) * sigma_y
    profile_x = axis_profiles(centre_x, centre_x, limit_x, sigma_x, w) * separable[..., None]
    profile_y = axis_profiles(centre_y, centre_y, limit_y, sigma_y, h) * separable[..., None]
    hits_map = (profile_x > 0).any(-1) & (profile_y > 0).any(-1)
    motion_weight = (separable & hits_map).to(torch.float32)
    if copies is not None:
        profile_x = torch.where(copies[..., None], standard_x, profile_x)
        profile_y = torch.where(copies[..., None], standard_y, profile_y)
        motion_weight = torch.where(copies, weight, motion_weight)
    # Two (B, K, h, w) outputs rather than one (2, B, K, h, w): allocations above the C
    # allocator's mmap ceiling (32 MB for glibc) get fresh pages on every call.
    maps = [outer_maps(profile_x[side], profile_y[side]) for side in range(2)]  # rotated: all-zero
    index = rotated.flatten().nonzero().squeeze(1)
    if index.numel():
        motion_weight.view(-1)[index] = _draw_rotated_windows(
            [m.view(-1, h, w) for m in maps],
            index,
            centre.expand(2, -1, -1, -1).reshape(-1, 2)[index],
            cos.flatten()[index],
            sin.flatten()[index],
            sigma_par.flatten()[index],
            sigma_perp.flatten()[index],
        )
    return {
        "heatmap": heatmap,
        "weight": weight,
        "motion_prev": maps[0],
        "motion_next": maps[1],
        "weight_prev": motion_weight[0],
        "weight_next": motion_weight[1],
        "oversized": oversized,
    }


def _draw_rotated_windows(
    targets: list[torch.Tensor],
    index: torch.Tensor,
    centre: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    sigma_par: torch.Tensor,
    sigma_perp: torch.Tensor,
) -> torch.Tensor:
    """Draw rotated-rectangle Gaussians into all-zero maps; return their 0/1 weights ``(M,)``.

    ``index (M,)`` (sorted) counts maps across ``targets``, a list of ``(N, h, w)`` tensors:
    entry ``i`` is map ``i % N`` of ``targets[i // N]``. Per map: ``centre (M, 2)`` heatmap px,
    the unit motion direction ``cos``/``sin`` (neither 0) and the two sigmas, all float64.
    Only the axis-aligned bounding window of each support is evaluated; the exponent and the
    support test of all windows are each one batched matrix product of rank-3 factors.
    """
    torch = torch_module()
    num_maps, h, w = targets[0].shape
    device = index.device
    limit_par = 3 * (1 + SUPPORT_RTOL) * sigma_par
    limit_perp = 3 * (1 + SUPPORT_RTOL) * sigma_perp
    # A window of 2R + 1 pixels around round(centre) covers the support when
    # R >= floor(extent + 0.5); moved inside the map it still covers every in-map pixel of it.
    extent_x = limit_par * cos.abs() + limit_perp * sin.abs()
    extent_y = limit_par * sin.abs() + limit_perp * cos.abs()
    radius_x, radius_y = torch.floor(torch.stack([extent_x.max(), extent_y.max()]) + 0.5).tolist()
    size_x, size_y = min(2 * int(radius_x) + 1, w), min(2 * int(radius_y) + 1, h)
    start = torch.floor(centre + 0.5) - centre.new_tensor([radius_x, radius_y])
    start_x = start[:, 0].clamp(0, w - size_x)
    start_y = start[:, 1].clamp(0, h - size_y)
    columns = torch.arange(size_x, device=device, dtype=torch.float64)
    rows = torch.arange(size_y, device=device, dtype=torch.float64)
    dx = start_x[:, None] - centre[:, :1] + columns  # (M, Wx)
    dy = start_y[:, None] - centre[:, 1:] + rows  # (M, Wy)

    # log2 G = -(A dx^2 + C dy^2 + D dx dy), A, C, D from the rotation and the sigmas;
    # exp2 is several times faster than exp on CPU.
    inv_par, inv_perp = 0.5 / sigma_par**2, 0.5 / sigma_perp**2
    a_coef = -LOG2_E * (cos**2 * inv_par + sin**2 * inv_perp)
    c_coef = -LOG2_E * (sin**2 * inv_par + cos**2 * inv_perp)
    d_coef = -LOG2_E * 2 * cos * sin * (inv_par - inv_perp)
    ones_x, ones_y = torch.ones_like(dx), torch.ones_like(dy)
    row_factors = torch.stack([dy, ones_y, c_coef[:, None] * dy**2], dim=2)  # (M, Wy, 3)
    column_factors = torch.stack([d_coef[:, None] * dx, a_coef[:, None] * dx**2, ones_x], dim=1)  # (M, 3, Wx)
    values = torch.bmm(row_factors.to(torch.float32), column_factors.to(torch.float32)).exp2_()

    # Support: row j of the rectangle |a| <= L_par, |b| <= L_perp is the column interval
    # [first_j, last_j] (window coordinates). Its indicator clamp((i - first)(last - i) + 1, 0, 1)
    # is again a rank-3 product, exact in float32 because every term is a small integer.
    sin_dy, cos_dy = sin[:, None] * dy, cos[:, None] * dy
    par_ends = torch.stack([-limit_par[:, None] - sin_dy, limit_par[:, None] - sin_dy]) / cos[:, None]
    perp_ends = torch.stack([cos_dy - limit_perp[:, None], cos_dy + limit_perp[:, None]]) / sin[:, None]
    low = torch.maximum(par_ends.amin(0), perp_ends.amin(0))
    high = torch.minimum(par_ends.amax(0), perp_ends.amax(0))
    offset = centre[:, :1] - start_x[:, None]
    first = torch.ceil(low + offset).clamp(0, size_x)
    last = torch.floor(high + offset).clamp(-1, size_x - 1)
    empty = first > last
    first = torch.where(empty, -1.0, first)  # (i + 1)(-1 - i) + 1 <= 0 for every i >= 0
    last = torch.where(empty, -1.0, last)
    interval_factors = torch.stack([first + last, ones_y, 1 - first * last], dim=2)
    column_powers = torch.stack([columns, -(columns**2), torch.ones_like(columns)]).expand(len(index), 3, size_x)
    indicator = torch.bmm(interval_factors.to(torch.float32), column_powers.to(torch.float32))
    values.mul_(indicator.clamp_(0, 1))

    local = index % num_maps
    pixel_rows = (local * h)[:, None] + start_y.long()[:, None] + torch.arange(size_y, device=device)
    pixel_columns = start_x.long()[:, None] + torch.arange(size_x, device=device)
    flat = (pixel_rows * w)[:, :, None] + pixel_columns[:, None, :]
    counts = torch.bincount(index // num_maps, minlength=len(targets)).tolist()
    for target, flat_part, values_part in zip(targets, flat.split(counts), values.split(counts), strict=True):
        target.view(-1).scatter_(0, flat_part.flatten(), values_part.flatten())
    return (~empty).any(dim=1).to(values.dtype)
