"""Input size, heatmap stride and pixel-centre convention: the only place this maths lives.

Coordinates everywhere are ``(x, y)``: x to the right, y down, pixel centres at integers
(pixel ``i`` covers ``[i - 0.5, i + 0.5)``). Three frames of reference:

- *image*: pixels of the original frame;
- *input*: pixels of the ``H x W`` network input (the crop);
- *heatmap*: pixels of the ``h x w`` heatmap.

Two conventions relate them (``../shared/specs/models.md`` section 0.2):

- ``msra`` (SimpleBaseline / HRNet / DCPose): the crop maps the box centre to ``(W/2, H/2)``
  with one scale ``W / box_w``; input -> heatmap is ``x / stride``.
- ``udp`` (ViTPose): the crop maps the box onto ``[0, W-1] x [0, H-1]`` (centre to
  ``((W-1)/2, (H-1)/2)``, per-axis scale ``(W-1)/box_w``, ``(H-1)/box_h``); input -> heatmap is
  ``x * (w-1)/(W-1)`` per axis.

Flipping a crop always means mirroring its pixel columns: ``x_in -> (W - 1) - x_in``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Geometry", "CONVENTIONS", "box_to_center_scale", "invert_affine", "apply_affine"]

CONVENTIONS = ("msra", "udp")


def apply_affine(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points ``(..., 2)``; returns float of the same shape."""
    xy = np.asarray(xy, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return xy @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine as a (2, 3) matrix."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def box_to_center_scale(
    box_xywh: np.ndarray, aspect_ratio: float, enlarge: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Person box ``[x, y, w, h]`` -> (centre (2,), size (2,) = enlarged box ``(w, h)`` in pixels).

    The shorter side grows so that ``w / h == aspect_ratio`` (input ``W / H``), then both sides
    are multiplied by ``enlarge`` (1.25 in every seed paper).
    """
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(4))
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"box {box_xywh!r} has a non-finite value")
    if w <= 0 or h <= 0:
        raise ValueError(f"box {box_xywh!r} has a non-positive width or height")
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float64)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w * enlarge, h * enlarge], dtype=np.float64)


@dataclass(frozen=True)
class Geometry:
    """Input size ``(H, W)``, heatmap stride and pixel-centre convention (``msra`` | ``udp``)."""

    input_hw: tuple[int, int] = (256, 192)
    stride: int = 4
    convention: str = "msra"

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.input_hw)
        object.__setattr__(self, "input_hw", (h, w))
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown pixel-centre convention {self.convention!r}; expected one of {CONVENTIONS}")
        if self.stride < 1 or h % self.stride or w % self.stride:
            raise ValueError(f"input size {self.input_hw} must be divisible by the stride {self.stride}")

    # sizes -------------------------------------------------------------------------------
    @property
    def heatmap_hw(self) -> tuple[int, int]:
        """Heatmap size ``(h, w)``."""
        return self.input_hw[0] // self.stride, self.input_hw[1] // self.stride

    @property
    def aspect_ratio(self) -> float:
        """Input ``W / H``."""
        return self.input_hw[1] / self.input_hw[0]

    def input_to_heatmap_scale(self) -> tuple[float, float]:
        """Per-axis factor ``(sx, sy)`` with heatmap = input * factor."""
        (H, W), (h, w) = self.input_hw, self.heatmap_hw
        if self.convention == "msra":
            return 1.0 / self.stride, 1.0 / self.stride
        return (w - 1) / (W - 1), (h - 1) / (H - 1)

    # input <-> heatmap -------------------------------------------------------------------
    def to_heatmap(self, xy: Any) -> Any:
        """Input pixels -> continuous heatmap pixels; works on numpy arrays and torch tensors ``(..., 2)``."""
        sx, sy = self.input_to_heatmap_scale()
        return _scale_xy(xy, sx, sy)

    def to_input(self, xy: Any) -> Any:
        """Heatmap pixels -> input pixels (inverse of :meth:`to_heatmap`), ``(..., 2)``."""
        sx, sy = self.input_to_heatmap_scale()
        return _scale_xy(xy, 1.0 / sx, 1.0 / sy)

    # image <-> input ---------------------------------------------------------------------
    def crop_affine(
        self, center: np.ndarray, size: np.ndarray, rotation: float = 0.0, flip: bool = False
    ) -> np.ndarray:
        """(2, 3) affine taking image pixels to input pixels.

        ``center``/``size`` come from :func:`box_to_center_scale` (``size`` already enlarged and
        aspect-corrected); ``rotation`` in degrees, counter-clockwise as seen on screen (the
        image content turns left, as ``cv2.getRotationMatrix2D``); ``flip`` mirrors the input
        columns after cropping (``x -> W - 1 - x``).
        """
        H, W = self.input_hw
        cx, cy = (float(v) for v in np.asarray(center, dtype=np.float64).reshape(2))
        bw, bh = (float(v) for v in np.asarray(size, dtype=np.float64).reshape(2))
        if not (bw > 0 and bh > 0 and math.isfinite(bw) and math.isfinite(bh)):
            raise ValueError(f"crop size must be positive and finite, got {size!r}")
        if self.convention == "msra":
            sx = sy = W / bw
            ox, oy = W / 2.0, H / 2.0
        else:
            sx, sy = (W - 1) / bw, (H - 1) / bh
            ox, oy = (W - 1) / 2.0, (H - 1) / 2.0
        theta = math.radians(rotation)
        cos, sin = math.cos(theta), math.sin(theta)
        # y points down, so a counter-clockwise turn on screen is [[c, s], [-s, c]].
        rot = np.array([[cos, sin], [-sin, cos]])
        linear = np.diag([sx, sy]) @ rot
        offset = np.array([ox, oy]) - linear @ np.array([cx, cy])
        matrix = np.hstack([linear, offset[:, None]])
        if flip:
            mirror = np.array([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            matrix = (mirror @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
        return matrix

    def input_to_image(
        self, xy: np.ndarray, center: np.ndarray, size: np.ndarray, rotation: float = 0.0, flip: bool = False
    ) -> np.ndarray:
        """Input pixels ``(..., 2)`` -> image pixels through the inverse crop affine."""
        return apply_affine(invert_affine(self.crop_affine(center, size, rotation, flip)), xy)

    def image_to_input(
        self, xy: np.ndarray, center: np.ndarray, size: np.ndarray, rotation: float = 0.0, flip: bool = False
    ) -> np.ndarray:
        """Image pixels ``(..., 2)`` -> input pixels through the crop affine."""
        return apply_affine(self.crop_affine(center, size, rotation, flip), xy)

    def heatmap_to_image(self, xy: np.ndarray, center: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Heatmap pixels ``(..., 2)`` of an unrotated, unflipped crop -> image pixels."""
        return self.input_to_image(np.asarray(self.to_input(np.asarray(xy, dtype=np.float64))), center, size)

    def flip_input_x(self, xy: Any) -> Any:
        """Mirror input-pixel points ``(..., 2)`` across the crop: ``x -> W - 1 - x``."""
        W = self.input_hw[1]
        out = xy.clone() if hasattr(xy, "clone") else np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] = (W - 1) - out[..., 0]
        return out


def _scale_xy(xy: Any, sx: float, sy: float) -> Any:
    if hasattr(xy, "new_tensor"):  # torch tensor, kept on its device and dtype
        return xy * xy.new_tensor([sx, sy])
    return np.asarray(xy, dtype=np.float64) * np.array([sx, sy])
