"""Pictures: skeleton overlays, clip strips and heatmap grids as uint8 RGB arrays (OpenCV drawing)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vidpose.data.keypoints import KeypointLayout

__all__ = ["draw_skeleton", "clip_strip", "heatmap_grid", "save_png", "hstack_padded"]

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
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
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


def save_png(path: str, image_rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (raises if OpenCV cannot write it)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path}")
