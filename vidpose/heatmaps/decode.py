"""Heatmaps -> keypoints (argmax + sub-pixel refinement) and the flip-test merge.

Decoding always ends with ``geo.to_input``, the inverse of the encoder's map, so a model
decodes with the codec it was trained with (``../shared/specs/models.md`` section 0.2):

- ``refine="quarter"`` (default for ``msra``): exactly HRNet's and DCPose's ``get_final_preds``,
  the evaluation lineage of every seed paper. A map whose maximum is ``<= 0`` decodes to heatmap
  pixel ``(0, 0)`` with that maximum as its score (HRNet masks such coordinates to 0). Otherwise,
  from the argmax ``(x, y)``, both axes move 0.25 heatmap px towards the larger of their two
  neighbours, and only when ``1 < x < w - 1`` and ``1 < y < h - 1``: a peak on row/column 0
  or 1 or on the last row/column is not refined at all.
- ``refine="quarter_per_axis"``: MMPose 1.x's ``refine_keypoints`` rule, each axis on its own: x
  moves when ``1 < x < w - 1``, y when ``1 < y < h - 1``, whatever the other axis. (MMPose marks
  a map whose maximum is ``<= 0`` with location ``-1``; here it decodes like ``"none"``.)
- ``refine="dark"`` for ``msra`` (DARK): blur each map with a ``blur_kernel`` Gaussian,
  rescale it to its original maximum, floor at 1e-10, take the log and make one Newton step
  ``-H^-1 g`` with second-order central differences (``H`` from points two pixels apart), only
  where the argmax is at least 2 px from every border and ``det H != 0``.
- ``refine="dark"`` for ``udp`` (default for ``udp``, DARK-UDP): blur and rescale as above,
  clip to ``[1e-3, 50]``, log, pad the map by one pixel with edge values and make one Newton
  step with central differences and ``H + eps I`` (``eps`` = float32 machine epsilon).
- ``refine="none"``: the argmax pixel.

The blur kernel defaults to ``6 sigma - 1`` pixels (11 for sigma 2, 17 for sigma 3, the values
mmpose pairs with those sigmas) with the OpenCV kernel width for ``sigma=0``,
``0.3 ((k - 1) / 2 - 1) + 0.8``, and zero padding. ``sigma`` is the training target's sigma;
it defaults to 3 for ``msra`` and 2 for ``udp`` (vidpose's defaults for HRNet and ViT methods).

The score of a joint is the maximum of its (unblurred) map. Apart from ``"quarter"`` (above), a
map whose maximum is ``<= 0`` decodes to its first maximum, unrefined by the quarter rules, with
that maximum as score; an all-zero map decodes to its first pixel with score 0: filter on the
score.

Flip test: the flipped crop mirrors input columns ``x -> W - 1 - x``. With ``udp`` that is
exactly the heatmap mirror ``j -> (w - 1) - j``, so :func:`flip_back` only mirrors columns and
swaps left/right channels. With ``msra`` input ``x`` sits at heatmap ``x / s``; the mirrored
point sits at ``(W - 1 - x) / s = (w - 1) - x / s + (1 - 1 / s)``, so a column-mirrored map is
offset by ``-(1 - 1/s)`` = -0.75 heatmap px (s = 4). The standard correction
(``shift_heatmap=True`` in mmpose's "heatmap" flip mode, HRNet, DCPose) shifts it one pixel to
the right, leaving +0.25 px; column 0 keeps its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vidpose.heatmaps.gaussian import torch_module
from vidpose.heatmaps.geometry import Geometry

__all__ = ["REFINEMENTS", "decode", "default_blur_kernel", "flip_back", "merge_flip", "crop_to_image"]

REFINEMENTS = ("quarter", "quarter_per_axis", "dark", "none")
DEFAULT_SIGMA = {"msra": 3.0, "udp": 2.0}
DEFAULT_REFINE = {"msra": "quarter", "udp": "dark"}


def default_blur_kernel(sigma: float) -> int:
    """DARK blur kernel size for a target ``sigma``: ``6 sigma - 1``, made odd (11 for 2, 17 for 3)."""
    size = round(6 * sigma - 1)
    return size if size % 2 else size + 1


def decode(
    heatmaps: Any,
    geo: Geometry,
    refine: str | None = None,
    blur_kernel: int | None = None,
    sigma: float | None = None,
) -> tuple[Any, Any]:
    """Heatmaps ``(B, K, h, w)`` -> keypoints ``(B, K, 2)`` in input px and scores ``(B, K)``.

    Accepts a numpy array or a torch tensor and returns the same kind (torch: float32 on the
    input's device; the maths runs in float64 numpy). ``refine`` defaults to ``"quarter"`` for
    msra and ``"dark"`` (DARK-UDP) for udp; see the module docstring.
    """
    is_torch = hasattr(heatmaps, "detach")
    maps = heatmaps.detach().to("cpu").double().numpy() if is_torch else np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 4 or tuple(maps.shape[2:]) != geo.heatmap_hw:
        h, w = geo.heatmap_hw
        raise ValueError(f"decode expects heatmaps (B, K, {h}, {w}), got {maps.shape}")
    refine = DEFAULT_REFINE[geo.convention] if refine is None else refine
    if refine not in REFINEMENTS:
        raise ValueError(f"decode: unknown refine {refine!r}; expected one of {REFINEMENTS}")
    if refine == "dark":
        if blur_kernel is None:
            blur_kernel = default_blur_kernel(DEFAULT_SIGMA[geo.convention] if sigma is None else sigma)
        kernel = int(blur_kernel)
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"decode: blur_kernel must be an odd size >= 3, got {kernel}")
    finite = np.isfinite(maps).all(axis=(2, 3))
    if not finite.all():
        sample, joint = np.argwhere(~finite)[0]
        raise ValueError(f"decode: heatmap of joint {joint} of sample {sample} has NaN or infinite values")

    xy, scores = _argmax(maps)
    if refine == "quarter":
        xy = np.where(scores[..., None] > 0, xy, 0.0)
        xy = xy + _quarter_offset(maps, xy, both_axes_inside=True)
    elif refine == "quarter_per_axis":
        xy = xy + _quarter_offset(maps, xy, both_axes_inside=False)
    elif refine == "dark" and geo.convention == "msra":
        xy = xy + _dark_offset(np.log(np.maximum(_blur(maps, kernel), 1e-10)), xy)
    elif refine == "dark":
        xy = xy + _dark_udp_offset(np.log(np.clip(_blur(maps, kernel), 1e-3, 50.0)), xy)
    keypoints = np.asarray(geo.to_input(xy))
    if is_torch:
        torch = torch_module()
        device = heatmaps.device
        return (
            torch.as_tensor(keypoints, dtype=torch.float32, device=device),
            torch.as_tensor(scores, dtype=torch.float32, device=device),
        )
    return keypoints, scores


def _argmax(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First maximum of every map (row-major): ``xy (B, K, 2)`` float64 and the maximum ``(B, K)``."""
    b, k, h, w = maps.shape
    flat = maps.reshape(b, k, h * w)
    index = flat.argmax(axis=-1)
    scores = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    return np.stack([index % w, index // w], axis=-1).astype(np.float64), scores


def _at(maps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``maps[b, k, y[b, k], x[b, k]]`` for integer ``x``, ``y`` ``(B, K)`` (clipped into the map)."""
    b, k, h, w = maps.shape
    x = np.clip(x, 0, w - 1)
    y = np.clip(y, 0, h - 1)
    return np.take_along_axis(maps.reshape(b, k, h * w), (y * w + x)[..., None], axis=-1)[..., 0]


def _quarter_offset(maps: np.ndarray, xy: np.ndarray, both_axes_inside: bool) -> np.ndarray:
    """0.25 px towards the larger neighbour per axis ``(B, K, 2)``, where the rule allows it.

    An axis moves only for ``1 < coordinate < size - 1``; with ``both_axes_inside`` (HRNet)
    neither moves unless both qualify, else (MMPose) each axis decides alone.
    """
    h, w = maps.shape[2:]
    x, y = xy[..., 0].astype(np.int64), xy[..., 1].astype(np.int64)
    inside_x, inside_y = (x > 1) & (x < w - 1), (y > 1) & (y < h - 1)
    if both_axes_inside:
        inside_x = inside_y = inside_x & inside_y
    step_x = np.sign(_at(maps, x + 1, y) - _at(maps, x - 1, y)) * inside_x
    step_y = np.sign(_at(maps, x, y + 1) - _at(maps, x, y - 1)) * inside_y
    return 0.25 * np.stack([step_x, step_y], axis=-1)


def _blur(maps: np.ndarray, kernel: int) -> np.ndarray:
    """Zero-padded separable Gaussian blur of every map, rescaled to keep each map's maximum."""
    h, w = maps.shape[2:]
    blurred = _blur_matrix(h, kernel) @ maps @ _blur_matrix(w, kernel).T
    peak = maps.max(axis=(2, 3), keepdims=True)
    blurred_peak = blurred.max(axis=(2, 3), keepdims=True)
    return blurred * np.where(blurred_peak > 0, peak / np.where(blurred_peak > 0, blurred_peak, 1.0), 1.0)


def _blur_matrix(size: int, kernel: int) -> np.ndarray:
    """``(size, size)`` matrix applying a 1-D Gaussian of ``kernel`` taps with zero padding."""
    radius = kernel // 2
    sigma = 0.3 * (radius - 1) + 0.8  # OpenCV's width for ksize with sigma = 0
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    offset = np.arange(size)[None, :] - np.arange(size)[:, None]
    return np.where(np.abs(offset) <= radius, taps[np.clip(offset + radius, 0, kernel - 1)], 0.0)


def _dark_offset(log_maps: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """DARK Newton step ``(B, K, 2)`` on log maps; zero within 2 px of a border or for a singular Hessian."""
    h, w = log_maps.shape[2:]
    x, y = xy[..., 0].astype(np.int64), xy[..., 1].astype(np.int64)

    def f(ox: int, oy: int) -> np.ndarray:
        return _at(log_maps, x + ox, y + oy)

    gx, gy = 0.5 * (f(1, 0) - f(-1, 0)), 0.5 * (f(0, 1) - f(0, -1))
    hxx = 0.25 * (f(2, 0) - 2 * f(0, 0) + f(-2, 0))
    hyy = 0.25 * (f(0, 2) - 2 * f(0, 0) + f(0, -2))
    hxy = 0.25 * (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1))
    det = hxx * hyy - hxy**2
    usable = (x >= 2) & (x <= w - 3) & (y >= 2) & (y <= h - 3) & (det != 0)
    det = np.where(usable, det, 1.0)
    # -H^-1 g with H^-1 = [[hyy, -hxy], [-hxy, hxx]] / det
    offset = -np.stack([hyy * gx - hxy * gy, hxx * gy - hxy * gx], axis=-1) / det[..., None]
    return np.where(usable[..., None], offset, 0.0)


def _dark_udp_offset(log_maps: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """DARK-UDP Newton step ``(B, K, 2)`` on edge-padded log maps with a float32-epsilon regulariser."""
    padded = np.pad(log_maps, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    x, y = xy[..., 0].astype(np.int64) + 1, xy[..., 1].astype(np.int64) + 1

    def f(ox: int, oy: int) -> np.ndarray:
        return _at(padded, x + ox, y + oy)

    gx, gy = 0.5 * (f(1, 0) - f(-1, 0)), 0.5 * (f(0, 1) - f(0, -1))
    hxx = f(1, 0) - 2 * f(0, 0) + f(-1, 0)
    hyy = f(0, 1) - 2 * f(0, 0) + f(0, -1)
    hxy = 0.5 * (f(1, 1) - f(1, 0) - f(0, 1) + 2 * f(0, 0) - f(-1, 0) - f(0, -1) + f(-1, -1))
    eps = float(np.finfo(np.float32).eps)
    hxx, hyy = hxx + eps, hyy + eps
    det = hxx * hyy - hxy**2
    usable = det != 0
    det = np.where(usable, det, 1.0)
    offset = -np.stack([hyy * gx - hxy * gy, hxx * gy - hxy * gx], axis=-1) / det[..., None]
    return np.where(usable[..., None], offset, 0.0)


def _permutation(flip_pairs: Any, num_joints: int) -> np.ndarray:
    """Left/right permutation ``(K,)`` from a ``KeypointLayout``, a permutation or ``(a, b)`` pairs."""
    if hasattr(flip_pairs, "flip_permutation"):
        perm = np.asarray(flip_pairs.flip_permutation())
    else:
        pairs = np.asarray(flip_pairs, dtype=np.int64)
        if pairs.ndim == 1 and pairs.size:
            perm = pairs
        else:
            if pairs.size and (pairs.ndim != 2 or pairs.shape[1] != 2):
                raise ValueError(f"flip_pairs must be (a, b) pairs or a permutation, got shape {pairs.shape}")
            perm = np.arange(num_joints)
            for a, b in pairs.reshape(-1, 2):
                perm[a], perm[b] = b, a
    if sorted(perm.tolist()) != list(range(num_joints)):
        raise ValueError(f"flip permutation {perm.tolist()} is not a permutation of the {num_joints} channels")
    return perm


def flip_back(heatmaps: Any, flip_pairs: Any, geo: Geometry) -> Any:
    """Output of a horizontally flipped crop ``(B, K, h, w)`` -> the unflipped crop's frame, same shape and kind.

    Mirrors the columns, swaps left/right channels (``flip_pairs``: a ``KeypointLayout``, a
    ``(K,)`` permutation or ``(a, b)`` pairs) and, for ``msra`` only, shifts the map one pixel
    to the right (see the module docstring for why).
    """
    perm = _permutation(flip_pairs, heatmaps.shape[1])
    if hasattr(heatmaps, "flip"):  # torch
        out = heatmaps.flip(-1)[:, heatmaps.new_tensor(perm, dtype=torch_module().long)]
    else:
        out = np.asarray(heatmaps)[:, perm, :, ::-1].copy()
    if geo.convention == "msra":
        out[..., 1:] = out[..., :-1].clone() if hasattr(out, "clone") else out[..., :-1].copy()
    return out


def merge_flip(heatmaps: Any, flipped_back: Any) -> Any:
    """Flip-test average ``(B, K, h, w)``: the plain output and the flipped crop's after :func:`flip_back`.

    Usage: ``merge_flip(out, flip_back(out_of_flipped_crop, layout, geo))``.
    """
    if tuple(heatmaps.shape) != tuple(flipped_back.shape):
        raise ValueError(f"merge_flip: shapes differ, {tuple(heatmaps.shape)} and {tuple(flipped_back.shape)}")
    return 0.5 * (heatmaps + flipped_back)


def crop_to_image(
    xy: Any,
    center: Sequence[Any] | np.ndarray,
    size: Sequence[Any] | np.ndarray,
    geo: Geometry,
    rotation: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Input-px keypoints ``(B, K, 2)`` of ``B`` crops -> image px; per-crop ``center``, ``size`` ``(B, 2)``.

    ``rotation`` ``(B,)`` degrees, default 0 (evaluation crops are unrotated and unflipped).
    """
    xy = xy.detach().to("cpu").double().numpy() if hasattr(xy, "detach") else np.asarray(xy, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    size = np.asarray(size, dtype=np.float64).reshape(-1, 2)
    rotation = np.zeros(len(xy)) if rotation is None else np.asarray(rotation, dtype=np.float64).reshape(-1)
    if not (len(center) == len(size) == len(rotation) == len(xy)):
        raise ValueError(
            f"crop_to_image: {len(xy)} crops of keypoints but {len(center)} centres, {len(size)} sizes, "
            f"{len(rotation)} rotations"
        )
    crops = zip(xy, center, size, rotation, strict=True)
    return np.stack([geo.input_to_image(p, c, s, float(r)) for p, c, s, r in crops])

