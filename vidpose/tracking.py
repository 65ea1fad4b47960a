"""Box identity across frames by IoU: the simple tracker of ``tools/demo.py``.

Each frame's boxes are matched to the tracks alive in the previous frames by maximum total IoU
(Hungarian assignment on ``1 - IoU``, ``scipy.optimize.linear_sum_assignment``); a pair below
``iou_threshold`` is never matched. A matched box takes the track's id and becomes its last
box; an unmatched box starts a new track with the next unused id; a track unmatched for more
than ``max_age`` frames is dropped (its id is never reused).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["IouTracker", "box_iou"]


def box_iou(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """IoU ``(N, M)`` of boxes ``(N, 4)`` and ``(M, 4)`` given as ``[x, y, w, h]`` (continuous areas)."""
    a = np.asarray(a_xywh, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xywh, dtype=np.float64).reshape(-1, 4)
    if (a[:, 2:] < 0).any() or (b[:, 2:] < 0).any():
        raise ValueError("box_iou: boxes need non-negative width and height")
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # (4,) last matched box
    age: int = 0  # frames since the last match


class IouTracker:
    """Assigns persistent integer ids to per-frame person boxes (module docstring)."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 1) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"IouTracker: iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_age < 0:
            raise ValueError(f"IouTracker: max_age must be >= 0, got {max_age}")
        self.iou_threshold = float(iou_threshold)
        self.max_age = int(max_age)
        self.tracks: list[_Track] = []
        self.next_id = 0

    def update(self, boxes_xywh: np.ndarray) -> np.ndarray:
        """Track ids ``(N,) int64`` of one frame's boxes ``(N, 4)`` ``[x, y, w, h]``."""
        boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        matched_tracks: set[int] = set()
        if self.tracks and len(boxes):
            iou = box_iou(boxes, np.stack([t.box for t in self.tracks]))
            rows, cols = linear_sum_assignment(1.0 - iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_threshold:
                    ids[r] = self.tracks[c].track_id
                    self.tracks[c].box, self.tracks[c].age = boxes[r], 0
                    matched_tracks.add(c)
        for c, track in enumerate(self.tracks):
            if c not in matched_tracks:
                track.age += 1
        self.tracks = [t for t in self.tracks if t.age <= self.max_age]
        for r in np.flatnonzero(ids < 0):
            ids[r] = self.next_id
            self.tracks.append(_Track(self.next_id, boxes[r]))
            self.next_id += 1
        return ids
