"""Pictures as uint8 RGB arrays (OpenCV drawing): skeleton overlays with per-joint scores, clip
strips, predicted vs target heatmap grids, heatmap overlays and the motion-aware target ellipses.

Every function returns a new ``(H, W, 3) uint8`` RGB image; :func:`save_png` writes one, and
``vidpose.engine.logging.RunLogger.image`` sends one to TensorBoard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from vidpose.data.keypoints import KeypointLayout
from vidpose.heatmaps.geometry import Geometry
from vidpose.heatmaps.motion_aware import motion_sigmas

__all__ = [
    "caption",
    "clip_strip",
    "draw_skeleton",
    "heatmap_grid",
    "heatmap_overlay",
    "hstack_padded",
    "motion_ellipses",
    "save_png",
]

PREV_COLOUR, NEXT_COLOUR, MISSING_COLOUR = (255, 200, 0), (0, 230, 255), (170, 170, 170)

LEFT, RIGHT, CENTRE = (60, 140, 255), (255, 120, 40), (80, 220, 80)


def _side_colour(name: str) -> tuple[int, int, int]:
    if name.startswith("left"):
        return LEFT
    if name.startswith("right"):
        return RIGHT
    return CENTRE


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    layout: KeypointLayout,
    threshold: float = 0.0,
    radius: int | None = None,
    show_scores: bool = False,
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Copy of an RGB image ``(H, W, 3)`` with joints ``(K, 2)`` whose score ``(K,)`` exceeds ``threshold``."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    radius = radius or max(1, round(min(h, w) / 80))
    scores = np.ones(len(keypoints)) if scores is None else np.asarray(scores, dtype=np.float64)
    shown = (scores > threshold) & np.isfinite(keypoints).all(axis=1)
    pts = np.round(keypoints).astype(int)
    for a, b in layout.skeleton:
        if shown[a] and shown[b]:
            c = colour or _side_colour(layout.joint_names[b])
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), c, max(1, radius // 2), cv2.LINE_AA)
    for k in np.flatnonzero(shown):
        c = colour or _side_colour(layout.joint_names[k])
        cv2.circle(out, tuple(pts[k]), radius, c, -1, cv2.LINE_AA)
        if show_scores:
            cv2.putText(out, f"{scores[k]:.2f}", (pts[k][0] + radius, pts[k][1] - radius),
                        cv2.FONT_HERSHEY_SIMPLEX, max(0.3, radius / 10), (255, 255, 255), 1, cv2.LINE_AA)
    return out


def hstack_padded(images: Sequence[np.ndarray], pad: int = 2, value: int = 0) -> np.ndarray:
    """Concatenate RGB images side by side, padding heights to the tallest, with ``pad`` px gaps."""
    height = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        canvas = np.full((height, im.shape[1], 3), value, np.uint8)
        canvas[: im.shape[0]] = im
        parts.append(canvas)
        if i + 1 < len(images):
            parts.append(np.full((height, pad, 3), value, np.uint8))
    return np.concatenate(parts, axis=1)


def caption(image: np.ndarray, text: str, height: int = 16) -> np.ndarray:
    """The image ``(H, W, 3)`` with a black band of ``height`` px on top holding ``text``."""
    band = np.zeros((height, image.shape[1], 3), np.uint8)
    cv2.putText(band, text, (3, height - 4), cv2.FONT_HERSHEY_SIMPLEX, height / 40, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([band, np.asarray(image, np.uint8)], axis=0)


def clip_strip(
    frames: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, layout: KeypointLayout, key_index: int
) -> np.ndarray:
    """All T frames ``(T, H, W, 3)`` side by side with their skeletons; the key frame is framed in white."""
    tiles = []
    for t in range(frames.shape[0]):
        tile = draw_skeleton(frames[t], keypoints[t], visible[t], layout, threshold=0.5)
        if t == key_index:
            cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (255, 255, 255), 2)
        tiles.append(tile)
    return hstack_padded(tiles)


def _colourise(hm: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    hm = np.clip(np.nan_to_num(hm), 0.0, 1.0)
    img = cv2.applyColorMap((hm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    img = cv2.resize(img, size, interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def heatmap_grid(pred: np.ndarray, target: np.ndarray | None = None, scale: int = 2) -> np.ndarray:
    """Predicted ``(K, h, w)`` maps in one row and (optionally) targets below, jet-coloured."""
    k, h, w = pred.shape
    size = (w * scale, h * scale)
    rows = [hstack_padded([_colourise(pred[j], size) for j in range(k)])]
    if target is not None:
        rows.append(hstack_padded([_colourise(target[j], size) for j in range(k)]))
    gap = np.zeros((2, rows[0].shape[1], 3), np.uint8)
    return np.concatenate([rows[0], gap, rows[1]], axis=0) if len(rows) == 2 else rows[0]


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The crop ``(H, W, 3)`` blended with the jet-coloured maximum over joints of ``(K, h, w)`` maps."""
    h, w = image.shape[:2]
    colour = _colourise(np.asarray(heatmaps, dtype=np.float64).max(axis=0), (w, h))
    blend = (1.0 - alpha) * image.astype(np.float64) + alpha * colour.astype(np.float64)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def _ellipse_input_px(
    geometry: Geometry, centre: np.ndarray, axis: np.ndarray, sigma_par: float, sigma_perp: float, n_sigma: float
) -> np.ndarray:
    """(64, 2) input-pixel polygon of the ``n_sigma`` ellipse drawn in heatmap pixels, through
    ``geometry.to_input`` so that per-axis (udp) scaling is honoured."""
    angle = np.linspace(0.0, 2.0 * math.pi, 64, endpoint=False)[:, None]
    across = np.array([-axis[1], axis[0]])
    points = centre + n_sigma * (sigma_par * np.cos(angle) * axis + sigma_perp * np.sin(angle) * across)
    return np.asarray(geometry.to_input(points))


def motion_ellipses(
    image: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    geometry: Geometry,
    key: int,
    prev: int | None = None,
    next: int | None = None,
    clamped: np.ndarray | None = None,
    sigma0: float = 3.0,
    delta: float = 3.0,
    sigma_min: float = 1.0,
    sigma_max: float | None = None,
    variant: str = "motion_aware",
    n_sigma: float = 3.0,
    joints: Sequence[int] | None = None,
) -> np.ndarray:
    """The crop ``(H, W, 3)`` with the ``n_sigma`` ellipses of the MTPose motion-aware targets.

    ``keypoints (T, K, 2)`` in input pixels, ``visible (T, K)``, ``clamped (T,)``; ``prev``/``next``
    default to ``key -/+ 1``; ``joints`` limits the drawing to some joint indices. Per visible
    key-frame joint, the ``motion_prev`` ellipse (yellow) and
    ``motion_next`` ellipse (cyan) with sigmas from :func:`vidpose.heatmaps.motion_sigmas`, the
    targets' centre and orientation, and a line to each neighbour's joint; a missing neighbour
    (joint not visible there, frame not clamped) draws the standard ``sigma0`` circle in grey.
    """
    xy = np.asarray(keypoints, dtype=np.float64)
    shown = np.asarray(visible) > 0
    num_frames = xy.shape[0]
    prev = key - 1 if prev is None else prev
    next = key + 1 if next is None else next
    for label, index in (("key", key), ("prev", prev), ("next", next)):
        if not 0 <= index < num_frames:
            raise ValueError(f"motion_ellipses: {label} frame index {index} is outside the clip of {num_frames} frames")
    clamped = np.zeros(num_frames, dtype=bool) if clamped is None else np.asarray(clamped, dtype=bool)
    out = np.ascontiguousarray(np.asarray(image, np.uint8).copy())
    thickness = max(1, round(min(out.shape[:2]) / 160))
    drawn = np.flatnonzero(shown[key])
    if joints is not None:
        drawn = [k for k in drawn if k in set(joints)]
    for k in drawn:
        current = np.asarray(geometry.to_heatmap(xy[key, k]))
        # the target's centre: msra rounds it per axis, udp keeps it continuous
        centre = np.floor(current + 0.5) if geometry.convention == "msra" else current
        for neighbour, colour in ((prev, PREV_COLOUR), (next, NEXT_COLOUR)):
            if not (clamped[neighbour] or shown[neighbour, k]):
                polygon = _ellipse_input_px(geometry, centre, np.array([1.0, 0.0]), sigma0, sigma0, n_sigma)
                cv2.polylines(out, [np.round(polygon).astype(np.int32)], True, MISSING_COLOUR, thickness, cv2.LINE_AA)
                continue
            motion = np.zeros(2) if clamped[neighbour] else current - np.asarray(geometry.to_heatmap(xy[neighbour, k]))
            norm = float(np.hypot(*motion))
            sigma_par, sigma_perp = motion_sigmas(norm, sigma0, delta, sigma_min, variant)
            if sigma_max is not None:
                sigma_par, sigma_perp = min(sigma_par, sigma_max), min(sigma_perp, sigma_max)
            axis = motion / norm if norm > 0 and variant == "motion_aware" else np.array([1.0, 0.0])
            polygon = _ellipse_input_px(geometry, centre, axis, sigma_par, sigma_perp, n_sigma)
            cv2.polylines(out, [np.round(polygon).astype(np.int32)], True, colour, thickness, cv2.LINE_AA)
            if not clamped[neighbour]:
                a, b = np.round(xy[neighbour, k]).astype(int), np.round(xy[key, k]).astype(int)
                cv2.line(out, tuple(a), tuple(b), colour, 1, cv2.LINE_AA)
        cv2.circle(out, tuple(np.round(xy[key, k]).astype(int)), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def save_png(path: str, image_rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (raises if OpenCV cannot write it)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path}")
