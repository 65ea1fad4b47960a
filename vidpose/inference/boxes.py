"""Person boxes of the inference API: per-frame arrays, a detection file, a detector or the whole frame.

Every form becomes, per input frame, an ``(n, 6)`` float64 array ``[x, y, w, h, score,
track_id]`` in 0-based image pixels (``track_id`` -1: none given). Boxes without track ids get
them from :class:`vidpose.tracking.IouTracker`, frame by frame; then each box is one
:class:`~vidpose.data.index.Instance` of the one-video index, as evaluation's boxes are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np

from vidpose.data.detections import load_detections
from vidpose.data.index import Instance, VideoPoseIndex
from vidpose.inference.frames import ArrayFrames, FolderFrames
from vidpose.tracking import IouTracker

__all__ = ["BoxInput", "Detector", "BOX_COLUMNS", "frame_boxes", "assign_tracks", "box_instances"]

#: a detector: RGB frame ``(H, W, 3) uint8`` -> boxes ``(n, 4)`` ``[x, y, w, h]`` or ``(n, 5)`` with scores
Detector = Callable[[np.ndarray], Any]
#: what :func:`frame_boxes` accepts (module docstring)
BoxInput = Union[None, str, os.PathLike, Detector, Mapping[int, Any], Sequence[Any], np.ndarray]
BOX_COLUMNS = "(n, 4) [x, y, w, h], (n, 5) [x, y, w, h, score] or (n, 6) [x, y, w, h, score, track_id]"


def _as_rows(value: Any, where: str) -> np.ndarray:
    """One frame's boxes as ``(n, 6)`` ``[x, y, w, h, score, track]``; ``(4,)``-``(6,)`` is one box."""
    rows = np.asarray(value, dtype=np.float64)
    if rows.size == 0:
        return np.zeros((0, 6))
    if rows.ndim == 1:
        rows = rows[None]
    if rows.ndim != 2 or rows.shape[1] not in (4, 5, 6):
        raise ValueError(f"{where}: expected {BOX_COLUMNS}, got shape {rows.shape}")
    defaults = np.array([0.0, 0.0, 0.0, 0.0, 1.0, -1.0])
    out = np.tile(defaults, (len(rows), 1))
    out[:, : rows.shape[1]] = rows
    return out


def _check_rows(rows: np.ndarray, where: str) -> np.ndarray:
    for j, (x, y, w, h, score, _) in enumerate(rows):
        if not (np.isfinite([x, y, w, h, score]).all() and w > 0 and h > 0):
            raise ValueError(f"{where}[{j}]: a box needs finite x, y, score and positive width and height, "
                             f"got [x, y, w, h, score] = {[x, y, w, h, score]}")
    return rows


def _usable(rows: np.ndarray, score_threshold: float) -> np.ndarray:
    """Boxes of finite positive size scored ``>= score_threshold`` (a detector's output is filtered, not checked)."""
    keep = np.isfinite(rows[:, :5]).all(axis=1) & (rows[:, 2] > 0) & (rows[:, 3] > 0) & (rows[:, 4] >= score_threshold)
    return rows[keep]


def _frame_entries(boxes: Mapping[int, Any] | Sequence[Any] | np.ndarray, n_frames: int) -> dict[int, Any]:
    """Frame position -> that frame's boxes; frames that do not exist are an error."""
    if isinstance(boxes, Mapping):
        bad = sorted(k for k in boxes if not (isinstance(k, (int, np.integer)) and 0 <= k < n_frames))
        if bad:
            raise ValueError(
                f"boxes: frame {bad[0]!r} does not exist (the input has {n_frames} frames, 0..{n_frames - 1}); "
                f"{len(bad)} key(s) out of range"
            )
        return {int(k): v for k, v in boxes.items()}
    if len(boxes) != n_frames:
        extra = f"; frames {n_frames}..{len(boxes) - 1} do not exist" if len(boxes) > n_frames else ""
        raise ValueError(
            f"boxes: {len(boxes)} entries for {n_frames} frames{extra}. Give one entry per frame (an empty "
            "list for a frame without people) or a mapping {frame index: boxes}"
        )
    return dict(enumerate(boxes))


def frame_boxes(
    boxes: BoxInput,
    source: ArrayFrames | FolderFrames,
    index: VideoPoseIndex,
    score_threshold: float = 0.0,
) -> list[np.ndarray]:
    """Per frame of ``source`` its boxes ``(n, 6)`` ``[x, y, w, h, score, track_id]`` (module docstring).

    ``boxes`` is None (one box ``[0, 0, W, H]`` per frame), a COCO-results detection file whose
    ``image_id`` are the index's image ids, a detector callable, a sequence with one entry per
    frame or a mapping frame index -> entry, each entry :data:`BOX_COLUMNS`. Scored boxes below
    ``score_threshold`` are dropped; an explicit box of non-positive size is an error.
    """
    n_frames = len(source)
    if boxes is None:
        return [np.array([[0.0, 0.0, w, h, 1.0, -1.0]]) for h, w in (source.size_hw(i) for i in range(n_frames))]
    if isinstance(boxes, (str, os.PathLike)):
        found = load_detections(boxes, index, score_threshold=score_threshold)
        frames = index.videos[0].frames
        return [_as_rows([[*box, score] for box, score in found.get(f.image_id, [])], str(boxes)) for f in frames]
    if callable(boxes):
        return [
            _usable(_as_rows(boxes(source.image(i)), f"detector output for frame {i}"), score_threshold)
            for i in range(n_frames)
        ]
    entries = _frame_entries(boxes, n_frames)
    out = []
    for i in range(n_frames):
        rows = _check_rows(_as_rows(entries.get(i, []), f"boxes[{i}]"), f"boxes[{i}]")
        out.append(rows[rows[:, 4] >= score_threshold])
    return out


def assign_tracks(per_frame: list[np.ndarray], tracker: IouTracker) -> list[np.ndarray]:
    """The boxes with track ids: as given when every box has one, else from ``tracker`` frame by frame."""
    given = [rows[:, 5] >= 0 for rows in per_frame]
    if all(g.all() for g in given):
        return per_frame
    if any(g.any() for g in given):
        with_ids = next(i for i, g in enumerate(given) if g.any())
        without = next(i for i, g in enumerate(given) if not g.all())
        raise ValueError(
            f"boxes: some boxes have track ids (e.g. in frame {with_ids}) and some do not (e.g. in frame {without}); "
            "give a track id for every box or for none (the IoU tracker then assigns them)"
        )
    tracked = []
    for rows in per_frame:
        rows = rows.copy()
        rows[:, 5] = tracker.update(rows[:, :4])
        tracked.append(rows)
    return tracked


def box_instances(per_frame: list[np.ndarray]) -> list[Instance]:
    """One instance of video 0 per box, in frame order then box order."""
    return [
        Instance(video=0, frame=f, bbox_xywh=row[:4].astype(np.float32), box_score=float(row[4]), track_id=int(row[5]))
        for f, rows in enumerate(per_frame)
        for row in rows
    ]
