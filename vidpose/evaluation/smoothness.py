"""Temporal smoothness of predicted poses: acceleration error and jitter. Pure numpy.

- **Acceleration error** (HANet's / DeciWatch's "Accel"): on three consecutive frames
  ``t-1, t, t+1`` of one person, the second differences ``a = x_{t-1} - 2 x_t + x_{t+1}`` of
  the prediction and of the ground truth; the error is ``|a_pred - a_gt|`` in image pixels,
  averaged over every (triplet, joint) entry where the joint is annotated and predicted on
  all three frames. HANet averages over joints per frame, then over frames; the two agree
  when every joint is annotated on every frame (Sub-JHMDB), and the entry mean is the one
  that stays defined when joints are missing (PoseTrack). Needs GT on consecutive frames:
  every frame on Sub-JHMDB, PoseTrack's densely labelled stretch (poseval's frames, i.e. GT
  frames with people). ``gt_accel`` (mean ``|a_gt|`` over the same entries) says how much the
  people themselves accelerate.
- **Jitter**: ``|x_{t-1} - 2 x_t + x_{t+1}|`` of the *predictions* of one predicted track
  (pixels), over triplets of consecutive frames whose middle frame is not annotated (not
  evaluated by poseval; every frame when no GT is given). It needs predictions on
  unannotated frames, which ``tools/eval.py`` does not make (it predicts the GT frames'
  boxes); ``tools/demo.py`` predicts every frame with tracked boxes. Real motion accelerates
  too, so jitter compares methods on the same video, it is no error against a truth.

Linking people across frames: for the acceleration error, ``link="match"`` (default) gives a
prediction the GT track of the GT person poseval matched it to
(:func:`motion_analysis.build_match_table`), which works with any box source but leaves
predictions that match nobody (PCKh 0) out; ``link="track_id"`` takes the prediction whose
``track_id`` equals the GT track id on that frame, exact for predictions made on GT boxes
(``tools/eval.py`` writes the GT track ids then) whatever their accuracy. For jitter,
predictions are linked by their own ``track_id``. A track id repeated within a frame makes
that (track, frame) unusable; counted.

Command line::

    python -m vidpose.evaluation.smoothness --pred PRED_DIR [--gt GT_DIR] [--link match|track_id]
        [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.evaluation import posetrack_map as pm
from vidpose.evaluation.motion_analysis import (
    MatchTable,
    build_match_table,
    read_people_fields,
    read_videos,
)

__all__ = [
    "LINKS",
    "SmoothnessResult",
    "acceleration_error_terms",
    "jitter_terms",
    "main",
    "second_difference",
    "smoothness_from_dirs",
    "smoothness_from_index",
    "smoothness_of_sequences",
    "write_result",
]


def second_difference(xy: np.ndarray) -> np.ndarray:
    """``x_{t-1} - 2 x_t + x_{t+1}`` of points ``(T, K, 2)`` -> ``(T - 2, K, 2)``."""
    xy = np.asarray(xy, dtype=np.float64)
    return xy[:-2] - 2.0 * xy[1:-1] + xy[2:]


def _triplets(valid: np.ndarray) -> np.ndarray:
    """(T - 2, K) bool: valid on frames t-1, t and t+1."""
    valid = np.asarray(valid, dtype=bool)
    return valid[:-2] & valid[1:-1] & valid[2:]


def acceleration_error_terms(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per triplet and joint ``(T - 2, K)``: ``|a_pred - a_gt|``, ``|a_gt|`` and where defined.

    ``pred``/``gt`` ``(T, K, 2)`` on consecutive frames, ``valid (T, K)``: annotated and predicted.
    """
    ok = _triplets(valid)
    a_gt = second_difference(np.where(np.asarray(valid)[..., None], gt, 0.0))
    a_pred = second_difference(np.where(np.asarray(valid)[..., None], pred, 0.0))
    return np.linalg.norm(a_pred - a_gt, axis=-1), np.linalg.norm(a_gt, axis=-1), ok


def jitter_terms(
    pred: np.ndarray, valid: np.ndarray, unannotated: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``|a_pred|`` per triplet and joint ``(T - 2, K)`` and where counted (valid on all three
    frames and, when ``unannotated (T,)`` is given, the middle frame unannotated)."""
    ok = _triplets(valid)
    if unannotated is not None:
        ok = ok & np.asarray(unannotated, dtype=bool)[1:-1, None]
    a_pred = second_difference(np.where(np.asarray(valid)[..., None], pred, 0.0))
    return np.linalg.norm(a_pred, axis=-1), ok


def _mean(total: float, count: int) -> float:
    return total / count if count else math.nan


@dataclass
class SmoothnessResult:
    """Acceleration error and jitter (image pixels) with the entries they average over."""

    accel_error: float  # mean |a_pred - a_gt|, NaN without entries
    gt_accel: float  # mean |a_gt| over the same entries
    accel_entries: int  # (triplet, joint) entries
    accel_entries_unpredicted: int  # annotated triplet entries lacking a prediction on a frame
    jitter: float  # mean |a_pred| on triplets centred on unannotated frames
    jitter_entries: int
    pred_frames_duplicate_track: int  # (track, frame) predictions dropped for a repeated track id

    def summary(self) -> dict[str, float]:
        """The numbers reported next to mAP / PCK."""
        return {"smooth/accel_error_px": self.accel_error, "smooth/jitter_px": self.jitter}

    def describe(self) -> str:
        """One paragraph with both metrics and their entry counts."""
        return (
            f"acceleration error {self.accel_error:.3f} px over {self.accel_entries} (triplet, joint) entries "
            f"(GT acceleration {self.gt_accel:.3f} px; {self.accel_entries_unpredicted} annotated entries "
            f"without a prediction on every frame); jitter {self.jitter:.3f} px over {self.jitter_entries} "
            f"entries centred on unannotated frames ({self.pred_frames_duplicate_track} predictions dropped "
            "for a track id repeated within a frame)"
        )


class _Accumulator:
    def __init__(self) -> None:
        self.accel = self.gt_accel = self.jitter = 0.0
        self.accel_n = self.unpredicted = self.jitter_n = self.duplicates = 0

    def add_accel(
        self, pred: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray, pred_valid: np.ndarray
    ) -> None:
        error, gt_norm, ok = acceleration_error_terms(pred, gt, gt_valid & pred_valid)
        self.accel += float(error[ok].sum())
        self.gt_accel += float(gt_norm[ok].sum())
        self.accel_n += int(ok.sum())
        self.unpredicted += int((_triplets(gt_valid) & ~ok).sum())

    def add_jitter(
        self, pred: np.ndarray, valid: np.ndarray, unannotated: np.ndarray | None
    ) -> None:
        magnitude, ok = jitter_terms(pred, valid, unannotated)
        self.jitter += float(magnitude[ok].sum())
        self.jitter_n += int(ok.sum())

    def result(self) -> SmoothnessResult:
        return SmoothnessResult(
            accel_error=_mean(self.accel, self.accel_n),
            gt_accel=_mean(self.gt_accel, self.accel_n),
            accel_entries=self.accel_n,
            accel_entries_unpredicted=self.unpredicted,
            jitter=_mean(self.jitter, self.jitter_n),
            jitter_entries=self.jitter_n,
            pred_frames_duplicate_track=self.duplicates,
        )


def smoothness_of_sequences(sequences: Sequence[dict[str, np.ndarray]]) -> SmoothnessResult:
    """Smoothness over per-person sequences on consecutive frames.

    Each sequence has ``pred (T, K, 2)`` and ``pred_valid (T, K)``; optionally ``gt (T, K, 2)``
    with ``gt_valid (T, K)`` (acceleration error), and ``annotated (T,)`` (jitter counts only
    triplets centred on unannotated frames; without it, every frame counts for jitter when
    there is no ``gt``, none when there is).
    """
    acc = _Accumulator()
    for i, seq in enumerate(sequences):
        pred, pred_valid = (
            np.asarray(seq["pred"], dtype=np.float64),
            np.asarray(seq["pred_valid"], dtype=bool),
        )
        if pred.ndim != 3 or pred.shape[-1] != 2 or pred_valid.shape != pred.shape[:2]:
            raise ValueError(
                f"sequence {i}: expected pred (T, K, 2) and pred_valid (T, K), got {pred.shape}, {pred_valid.shape}"
            )
        if len(pred) < 3:
            continue
        if "gt" in seq:
            gt, gt_valid = (
                np.asarray(seq["gt"], dtype=np.float64),
                np.asarray(seq["gt_valid"], dtype=bool),
            )
            if gt.shape != pred.shape or gt_valid.shape != pred_valid.shape:
                raise ValueError(
                    f"sequence {i}: gt {gt.shape} / gt_valid {gt_valid.shape} do not match pred {pred.shape}"
                )
            acc.add_accel(pred, gt, gt_valid, pred_valid)
        annotated = seq.get("annotated")
        if annotated is not None:
            acc.add_jitter(pred, pred_valid, ~np.asarray(annotated, dtype=bool))
        elif "gt" not in seq:
            acc.add_jitter(pred, pred_valid, None)
    return acc.result()


LINKS = ("match", "track_id")


def smoothness_from_dirs(
    gt_dir: str | Path | None, pred_dir: str | Path, mode: str = "poseval", link: str = "match"
) -> SmoothnessResult:
    """Acceleration error (needs ``gt_dir``) and jitter of a PoseTrack prediction directory."""
    if link not in LINKS:
        raise ValueError(f"link: expected one of {LINKS}, got {link!r}")
    acc = _Accumulator()
    if gt_dir is not None:
        gt_videos, pred_videos, unused = read_videos(gt_dir, pred_dir, mode)
        table = build_match_table(gt_videos, pred_videos, mode, None, unused)
        _accumulate_accel(acc, table, link)
        annotated = [pm._selected_frames(gt, mode) for gt in gt_videos]
    else:
        pred_dir = Path(pred_dir)
        files = pm._json_files(pred_dir)
        if not files:
            raise FileNotFoundError(f"prediction directory {pred_dir} holds no *.json files")
        pred_videos = [pm.read_video_file(p, "pred", mode) for p in files]
        annotated = [None] * len(pred_videos)
    for pred, frames_annotated in zip(pred_videos, annotated):
        if pred is not None:
            _accumulate_jitter(acc, pred, frames_annotated)
    return acc.result()


def _prediction_of_gt(table: MatchTable, link: str) -> np.ndarray:
    """(Ng,) the prediction row linked to each GT row, -1 if none (a track id repeated within a
    frame links nothing there; the jitter pass counts those predictions)."""
    pred_of_gt = np.full(len(table.gt.frame), -1, dtype=np.int64)
    if link == "match":
        matched = np.flatnonzero(table.assigned >= 0)
        pred_of_gt[table.assigned[matched]] = matched
        return pred_of_gt
    usable = table.pred_track >= 0
    keys = table.pred_track * len(table.frame_video) + table.pred.frame
    unique, counts = np.unique(keys[usable], return_counts=True)
    repeated = usable & np.isin(keys, unique[counts > 1])
    rows = np.flatnonzero(usable & ~repeated)
    lookup = dict(zip(keys[rows].tolist(), rows.tolist()))
    gt_keys = table.gt_track * len(table.frame_video) + table.gt.frame
    return np.array([lookup.get(k, -1) for k in gt_keys.tolist()], dtype=np.int64)


def _accumulate_accel(acc: _Accumulator, table: MatchTable, link: str) -> None:
    """Per GT track: GT and linked predictions on every frame of its video."""
    n_frames = np.bincount(table.frame_video)
    pred_of_gt = _prediction_of_gt(table, link)
    video = table.frame_video[table.gt.frame]
    for v, track in sorted(set(zip(video.tolist(), table.gt_track.tolist()))):
        rows = np.flatnonzero((video == v) & (table.gt_track == track))
        frames = table.frame_index[table.gt.frame[rows]]
        t = int(n_frames[v])
        gt = np.zeros((t, pm.NUM_JOINTS, 2))
        gt_valid = np.zeros((t, pm.NUM_JOINTS), dtype=bool)
        pred = np.zeros_like(gt)
        pred_valid = np.zeros_like(gt_valid)
        gt[frames], gt_valid[frames] = table.gt.xy[rows], table.gt.present[rows]
        has = pred_of_gt[rows] >= 0
        pred[frames[has]] = table.pred.xy[pred_of_gt[rows][has]]
        pred_valid[frames[has]] = table.pred.present[pred_of_gt[rows][has]]
        acc.add_accel(pred, gt, gt_valid, pred_valid)


def _accumulate_jitter(
    acc: _Accumulator, pred: pm.VideoAnnotations, annotated: np.ndarray | None
) -> None:
    """Per predicted track id: predictions on every frame of the video."""
    tracks, _ = read_people_fields(pred.path, pred, "pred")
    people = pred.people
    usable = (tracks >= 0) & people.usable
    repeated = np.zeros(len(tracks), dtype=bool)
    if usable.any():
        keys = tracks[usable] * pred.n_frames + people.frame[usable]
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        repeated[usable] = counts[inverse] > 1
    acc.duplicates += int(repeated.sum())
    usable &= ~repeated
    unannotated = None if annotated is None else ~np.asarray(annotated, dtype=bool)
    for track in np.unique(tracks[usable]):
        rows = np.flatnonzero(usable & (tracks == track))
        xy = np.zeros((pred.n_frames, pm.NUM_JOINTS, 2))
        valid = np.zeros((pred.n_frames, pm.NUM_JOINTS), dtype=bool)
        xy[people.frame[rows]], valid[people.frame[rows]] = people.xy[rows], people.present[rows]
        if pred.n_frames >= 3:
            acc.add_jitter(xy, valid, unannotated)


def smoothness_from_index(index: Any, predictions: Sequence[Any]) -> SmoothnessResult:
    """Acceleration error of predictions (``image_id``, ``keypoints (K, 3)``) against the first
    GT person of every labelled frame of an annotation index (Sub-JHMDB: one person per video)."""
    by_image = {p.image_id: np.asarray(p.keypoints, dtype=np.float64)[:, :2] for p in predictions}
    sequences = []
    for video in index.videos:
        t, k = len(video.frames), index.layout.num_joints
        gt, gt_valid = np.zeros((t, k, 2)), np.zeros((t, k), dtype=bool)
        pred, pred_valid = np.zeros((t, k, 2)), np.zeros((t, k), dtype=bool)
        annotated = np.zeros(t, dtype=bool)
        for f, frame in enumerate(video.frames):
            if frame.people:
                annotated[f] = True
                gt[f], gt_valid[f] = (
                    frame.people[0].keypoints,
                    np.asarray(frame.people[0].visible) > 0,
                )
            if frame.image_id in by_image:
                pred[f], pred_valid[f] = by_image[frame.image_id], True
        sequences.append(
            {
                "pred": pred,
                "pred_valid": pred_valid,
                "gt": gt,
                "gt_valid": gt_valid,
                "annotated": annotated,
            }
        )
    return smoothness_of_sequences(sequences)


def write_result(result: SmoothnessResult, path: str | Path) -> Path:
    """Write the result as JSON (NaN as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in asdict(result).items()
    }
    record["description"] = result.describe()
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print acceleration error and jitter; optionally write JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m vidpose.evaluation.smoothness",
        description="Acceleration error (needs --gt) and jitter of PoseTrack-format predictions.",
    )
    parser.add_argument("--pred", required=True, help="directory of per-video prediction files")
    parser.add_argument(
        "--gt", default=None, help="GT directory (acceleration error; marks annotated frames)"
    )
    parser.add_argument("--json", default=None, help="also write the result to this JSON file")
    parser.add_argument("--mode", choices=pm.MODES, default="poseval")
    parser.add_argument(
        "--link",
        choices=LINKS,
        default="match",
        help="predictions of a GT track: poseval's match (any boxes) or equal track_id (GT boxes)",
    )
    args = parser.parse_args(argv)
    try:
        result = smoothness_from_dirs(args.gt, args.pred, args.mode, args.link)
    except (pm.PoseTrackFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.describe())
    if args.json:
        write_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
