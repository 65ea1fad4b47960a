"""Motion-stratified PoseTrack AP: how accuracy depends on how fast the joints move. Pure numpy.

**Joint motion.** For a GT person (track ``r``) on frame ``f`` and a joint ``j`` it has, the
*adjacent annotated frames* are the previous and the next frame of the same video on which
track ``r`` has a GT entry, if they lie at most ``max_gap`` frames away. Each such neighbour
``n`` that also has joint ``j`` gives one displacement per frame,
``|x_f - x_n| / |f - n|`` (image pixels per frame), and the joint's motion is the mean of the
(one or two) displacements divided by the person's box size ``sqrt(w * h)`` on frame ``f``
(the GT ``bbox``; without one, the extent of the person's annotated joints). Motion is a
fraction of the box size per frame; it is undefined (NaN) for a joint without an annotated
neighbour (a track seen once, a joint missing next door, a gap above ``max_gap``) or a
person without a usable size.

**AP per motion bin.** Bins are half-open intervals ``[e_b, e_{b+1})`` of motion; the
last edge may be ``inf``. Everything poseval does is done once, on the full set (frame
selection, ignore regions, the two-step person matching and the per-joint true-positive
labels, all by :mod:`vidpose.evaluation.posetrack_map`'s own functions). A bin then keeps

- as ground truth, the GT joints whose motion lies in the bin (``nGT`` of the bin);
- every detection assigned to one of those GT joints (its predicted person was matched to
  that GT person, and the GT person has the joint), with its poseval label;
- with ``unassigned="fp"`` (default) every *unassigned* detection as a false positive: a
  predicted person matched to nobody, or matched to a GT person without that joint. These
  have no GT motion, so they count against every bin, as poseval counts them against the
  full set. ``unassigned="ignore"`` leaves them out of every bin (AP of the assigned
  detections only).

Detections assigned to GT joints of *other* bins (or of undefined motion) are ignored:
neither true nor false positives. The bin's AP is poseval's VOC AP of the kept detections
against the bin's ``nGT`` (``_joint_ap``, same ranking and tie order); a bin without GT of a
joint has AP NaN for it (poseval would give 0 when it also has no detection). GT joints
with undefined motion form their own row, ``no motion``, evaluated the same way. Group
columns and ``Total`` are means over the joints that have GT in the bin. With one bin
``[0, inf)`` and no undefined motion, the bin's per-joint AP is the evaluator's exactly.

**Motion subset.** Videos ranked by the mean motion of all their GT joints (defined ones);
the top ``k`` GT files are copied unchanged into a directory the evaluator reads, like
MTPose's PoseTrack21 "Motion" subset.

Command line::

    python -m vidpose.evaluation.motion_analysis --gt GT_DIR --pred PRED_DIR \\
        [--pred-b PRED_DIR_B] --out OUT_DIR [--bins quantiles:5 | --bins 0,0.01,0.03,inf] \\
        [--motion-subset K] [--max-gap 8] [--mode poseval|pt21] [--unassigned fp|ignore]

writes ``motion_analysis.json``, ``motion_ap.txt`` and the plots ``motion_histogram.png``,
``ap_by_motion.png``, ``ap_by_motion_groups.png`` and, with ``--pred-b``,
``ap_gain_vs_motion.png``; with ``--motion-subset`` the directory ``motion_subset/`` and its
ranking ``motion_subset_videos.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.data.keypoints import POSEVAL
from vidpose.evaluation import posetrack_map as pm
from vidpose.evaluation.posetrack_map import (
    NUM_JOINTS,
    PeopleArrays,
    PoseTrackFormatError,
    PoseTrackResult,
    VideoAnnotations,
)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MAX_GAP",
    "GROUP_COLUMNS",
    "MatchTable",
    "MotionAnalysis",
    "MotionBin",
    "analyse_evaluation",
    "ap_by_motion",
    "bin_edges",
    "build_match_table",
    "gain_json",
    "joint_motion",
    "main",
    "plot_ap_by_motion",
    "plot_ap_gain",
    "plot_groups_by_motion",
    "plot_motion_histogram",
    "read_people_fields",
    "read_videos",
    "run_motion_analysis",
    "select_motion_subset",
    "subset_ap",
    "video_motion",
]

DEFAULT_BINS = "quantiles:5"
# (ours) two PoseTrack val annotation strides: a track missing on one labelled frame still
# gets a motion, a track that reappears after a long occlusion does not
DEFAULT_MAX_GAP = 8
GROUP_COLUMNS = (*POSEVAL.groups, "Total")
UNASSIGNED = ("fp", "ignore")
NO_MOTION = "no motion"


# --- reading ---------------------------------------------------------------------------------


def _track_value(value: Any, where: str) -> int:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not float(value).is_integer()
    ):
        raise PoseTrackFormatError(f"{where}.track_id: expected an integer, got {value!r}")
    return int(value)


def _box_size(value: Any) -> float:
    """``sqrt(w * h)`` of a ``[x, y, w, h]`` box, NaN when absent or not a positive finite box."""
    if not isinstance(value, list) or len(value) != 4:
        return math.nan
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return math.nan
    w, h = float(value[2]), float(value[3])
    return math.sqrt(w * h) if math.isfinite(w * h) and w > 0 and h > 0 else math.nan


def _keypoint_extent_size(people: PeopleArrays) -> np.ndarray:
    """(N,) ``sqrt(w * h)`` of each person's annotated-joint extent; NaN below two joints or area 0."""
    present = people.present[..., None]
    extent = np.max(np.where(present, people.xy, -np.inf), axis=1) - np.min(
        np.where(present, people.xy, np.inf), axis=1
    )
    with np.errstate(invalid="ignore", over="ignore"):
        area = extent[:, 0] * extent[:, 1]
        usable = (people.present.sum(axis=1) >= 2) & np.isfinite(area) & (area > 0)
        return np.where(usable, np.sqrt(np.where(usable, area, 1.0)), np.nan)


def read_people_fields(
    path: str | Path, video: VideoAnnotations, role: str
) -> tuple[np.ndarray, np.ndarray]:
    """Track ids ``(N,)`` (-1 when absent) and box sizes ``(N,)`` of a parsed file's people rows.

    Rows are those of ``video.people`` (the evaluator's order: by frame, file order within a
    frame). GT people must carry a ``track_id``. A box size is ``sqrt(w * h)`` of the person's
    ``bbox``, else of its annotated-joint extent, else NaN.
    """
    path = Path(path)
    data = pm.read_json(path)
    frames, tracks, sizes = [], [], []
    if "annolist" in data:
        for f, entry in enumerate(data["annolist"]):
            for r, rect in enumerate(entry["annorect"]):
                where = f"{path}: annolist[{f}].annorect[{r}]"
                frames.append(f)
                tracks.append(_track_value(rect["track_id"], where) if "track_id" in rect else None)
                sizes.append(math.nan)
    else:
        frame_of_id = {image["id"]: f for f, image in enumerate(data["images"])}
        for i, ann in enumerate(data["annotations"]):
            where = f"{path}: annotations[{i}]"
            frames.append(frame_of_id[ann["image_id"]])
            tracks.append(_track_value(ann["track_id"], where) if "track_id" in ann else None)
            sizes.append(_box_size(ann.get("bbox")))
    if role == "gt" and None in tracks:
        i = tracks.index(None)
        raise PoseTrackFormatError(
            f"{path}: GT person {i} (in file order) has no track_id; joint motion links a "
            "person's annotated frames by it"
        )
    order = np.argsort(np.asarray(frames, dtype=np.int64), kind="stable")
    if len(order) != len(video.people.frame) or not np.array_equal(
        np.asarray(frames, dtype=np.int64)[order], video.people.frame
    ):
        raise PoseTrackFormatError(
            f"{path}: people of the file do not line up with the parsed rows"
        )
    track_ids = np.array([-1 if t is None else t for t in tracks], dtype=np.int64)[order]
    box = np.asarray(sizes, dtype=np.float64)[order]
    box = np.where(np.isnan(box), _keypoint_extent_size(video.people), box)
    return track_ids, box


def joint_motion(
    video: VideoAnnotations,
    track_ids: np.ndarray,
    box_size: np.ndarray,
    max_gap: int | None = DEFAULT_MAX_GAP,
) -> np.ndarray:
    """(N, 15) GT joint movement per frame in box sizes (module docstring); NaN where undefined."""
    people = video.people
    n = len(people.frame)
    order = np.lexsort((people.frame, track_ids))  # by track, then frame
    first, second = order[:-1], order[1:]
    same_track = track_ids[first] == track_ids[second]
    gap = people.frame[second] - people.frame[first]
    if np.any(same_track & (gap == 0)):
        k = int(np.flatnonzero(same_track & (gap == 0))[0])
        raise PoseTrackFormatError(
            f"{video.path}: track {int(track_ids[first[k]])} has two GT people on frame "
            f"{int(people.frame[first[k]])}"
        )
    linked = same_track & (gap <= max_gap) if max_gap is not None else same_track
    first, second, gap = first[linked], second[linked], gap[linked]
    both = people.present[first] & people.present[second]
    step = (
        np.sqrt(pm._squared_norm(people.xy[second] - people.xy[first])) / gap[:, None]
    )  # px / frame
    total, count = np.zeros((n, NUM_JOINTS)), np.zeros((n, NUM_JOINTS))
    for rows in (first, second):
        np.add.at(total, rows, np.where(both, step, 0.0))
        np.add.at(count, rows, both)
    with np.errstate(invalid="ignore", divide="ignore"):
        motion = total / count / box_size[:, None]
    return np.where((count > 0) & people.present, motion, np.nan)


def read_videos(
    gt_dir: str | Path, pred_dir: str | Path | None, mode: str = "poseval", require_all: bool = True
) -> tuple[list[VideoAnnotations], list[VideoAnnotations | None], int]:
    """Parsed GT files (sorted by name) and their prediction files (None where absent), and
    the number of prediction files without a GT file; ``pred_dir=None`` reads GT only."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"GT directory {gt_dir} does not exist")
    gt_files = pm._json_files(gt_dir)
    if not gt_files:
        raise FileNotFoundError(f"GT directory {gt_dir} holds no *.json files")
    gt_videos = [pm.read_video_file(p, "gt", mode) for p in gt_files]
    if pred_dir is None:
        return gt_videos, [None] * len(gt_videos), 0
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction directory {pred_dir} does not exist")
    missing = [p.name for p in gt_files if not (pred_dir / p.name).is_file()]
    if missing and require_all:
        raise FileNotFoundError(
            f"{len(missing)} of {len(gt_files)} GT videos have no prediction file in {pred_dir}, "
            f"e.g. {missing[:3]}"
        )
    pred_videos = [
        None if p.name in missing else pm.read_video_file(pred_dir / p.name, "pred", mode)
        for p in gt_files
    ]
    unused = len({p.name for p in pm._json_files(pred_dir)} - {p.name for p in gt_files})
    return gt_videos, pred_videos, unused


# --- the matched detection table -------------------------------------------------------------


@dataclass
class MatchTable:
    """Evaluated people after poseval's frame selection and ignore regions, pooled over videos.

    ``gt``/``pred`` are :class:`PeopleArrays` whose ``frame`` is the pooled frame number;
    ``labels`` are poseval's true positives, ``assigned`` the GT row each predicted person was
    matched to (-1: none).
    """

    mode: str
    frame_video: np.ndarray  # (F,) pooled frame -> video index
    frame_index: np.ndarray  # (F,) pooled frame -> frame within its video
    gt: PeopleArrays
    gt_track: np.ndarray  # (Ng,)
    gt_motion: np.ndarray  # (Ng, 15) NaN: undefined or joint absent
    pred: PeopleArrays
    pred_track: np.ndarray  # (Np,) the prediction file's track ids (-1: none)
    labels: np.ndarray  # (Np, 15) bool
    assigned: np.ndarray  # (Np,) int64
    overall: PoseTrackResult

    def assigned_gt_joint(self) -> np.ndarray:
        """(Np, 15) bool: the detection sits on a GT joint (matched person that has the joint)."""
        g = np.maximum(self.assigned, 0)
        return (self.assigned >= 0)[:, None] & self.gt.present[g] & self.pred.present


def _assignment(
    gt: PeopleArrays, pred: PeopleArrays, labels: np.ndarray, n_frames: int
) -> np.ndarray:
    """(Np,) GT row each prediction was matched to by poseval's two arg-max steps, -1 if none.

    The evaluator returns labels only. Its own ``_match_labels``, run on every (prediction, GT)
    pair of a frame in isolation (each pair gets a private copy of its GT row, so nothing
    competes), gives each pair's joint matches; step 1 of the matching sends a prediction to
    its first-best PCKh GT, and the full run's labels say whether it kept it (a kept match has
    PCKh > 0, i.e. a true positive). The labels of every matched prediction are checked
    against its pair, so a drift of the evaluator cannot go unnoticed.
    """
    assigned = np.full(len(pred.frame), -1, dtype=np.int64)
    gt_starts = np.searchsorted(gt.frame, np.arange(n_frames + 1))
    gt_count = np.diff(gt_starts)[pred.frame]
    rows = np.flatnonzero(labels.any(axis=1))  # matched predictions: a kept match has a TP
    if not len(rows):
        return assigned
    counts = gt_count[rows]
    pair_pred = np.repeat(rows, counts)
    pair_start = np.cumsum(counts) - counts
    pair_gt = np.repeat(gt_starts[pred.frame[rows]] - pair_start, counts) + np.arange(
        int(counts.sum())
    )
    private = PeopleArrays(
        *(getattr(gt, name)[pair_gt] for name in PeopleArrays.__dataclass_fields__)
    )
    match = np.zeros((len(pair_gt), NUM_JOINTS), dtype=bool)
    for lo in range(0, len(pair_gt), pm._PAIRS_PER_CHUNK):
        hi = min(lo + pm._PAIRS_PER_CHUNK, len(pair_gt))
        match[lo:hi] = pm._match_labels(
            private, pred, pair_pred[lo:hi], np.arange(lo, hi), np.ones(hi - lo, dtype=np.int64)
        )
    pckh = match.sum(axis=1) / np.maximum(gt.present[pair_gt].sum(axis=1), 1)
    best = pm._segment_first_argmax(pckh, pair_start)
    if not np.array_equal(match[best], labels[rows]):
        raise RuntimeError(
            "motion analysis: the matched GT of a prediction does not reproduce its poseval labels"
        )
    assigned[rows] = pair_gt[best]
    return assigned


def build_match_table(
    gt_videos: Sequence[VideoAnnotations],
    pred_videos: Sequence[VideoAnnotations | None],
    mode: str = "poseval",
    max_gap: int | None = DEFAULT_MAX_GAP,
    prediction_files_unused: int = 0,
) -> MatchTable:
    """Evaluate once with :func:`posetrack_map.evaluate_videos` (which checks every input), then
    rebuild its evaluated people with the evaluator's helpers, label and assign every detection."""
    overall = pm.evaluate_videos(gt_videos, pred_videos, mode, prediction_files_unused)
    gt_parts, pr_parts, gt_tracks, gt_motions, pr_tracks, where = [], [], [], [], [], []
    frame_video, frame_index = [], []
    n_frames = 0
    for v, (gt, pred) in enumerate(zip(gt_videos, pred_videos)):
        tracks, sizes = read_people_fields(gt.path, gt, "gt")
        motion = joint_motion(gt, tracks, sizes, max_gap)
        keep = pm._selected_frames(gt, mode)
        gt_rows = np.flatnonzero(keep[gt.people.frame] & gt.people.usable)
        gt_sel = pm._select(gt.people, gt_rows, n_frames)
        if pred is not None:
            pr_rows = np.flatnonzero(keep[pred.people.frame] & pred.people.usable)
            pr_sel = pm._select(pred.people, pr_rows, n_frames)
            pr_tracks.append(read_people_fields(pred.path, pred, "pred")[0][pr_rows])
        else:
            pr_sel = pm._empty_people()
            pr_tracks.append(np.zeros(0, dtype=np.int64))
        frames = np.arange(n_frames, n_frames + gt.n_frames + 1)
        gt_starts, pr_starts = (
            np.searchsorted(gt_sel.frame, frames),
            np.searchsorted(pr_sel.frame, frames),
        )
        for f, polygons in sorted(gt.ignore_regions.items()):
            if keep[f]:
                pm._remove_ignored(
                    [
                        (gt_sel, slice(gt_starts[f], gt_starts[f + 1])),
                        (pr_sel, slice(pr_starts[f], pr_starts[f + 1])),
                    ],
                    polygons,
                )
        gt_parts.append(gt_sel)
        pr_parts.append(pr_sel)
        gt_tracks.append(tracks[gt_rows])
        gt_motions.append(motion[gt_rows])
        where.extend((gt, f) for f in range(gt.n_frames))
        frame_video.append(np.full(gt.n_frames, v))
        frame_index.append(np.arange(gt.n_frames))
        n_frames += gt.n_frames
    gt_all, pr_all = pm._concat(gt_parts), pm._concat(pr_parts)
    labels = pm._label_all(gt_all, pr_all, n_frames, where)
    return MatchTable(
        mode=mode,
        frame_video=np.concatenate(frame_video),
        frame_index=np.concatenate(frame_index),
        gt=gt_all,
        gt_track=np.concatenate(gt_tracks),
        gt_motion=np.concatenate(gt_motions).reshape(-1, NUM_JOINTS),
        pred=pr_all,
        pred_track=np.concatenate(pr_tracks),
        labels=labels,
        assigned=_assignment(gt_all, pr_all, labels, n_frames),
        overall=overall,
    )


def subset_ap(
    table: MatchTable, gt_joints: np.ndarray, detections: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint AP ``(15,)`` (0-100) of the kept detections ``(Np, 15)`` against the kept GT
    joints ``(Ng, 15)`` (poseval's ranking and VOC AP), and the GT count per joint ``(15,)``.

    A joint without kept GT has AP NaN.
    """
    n_gt = (gt_joints & table.gt.present).sum(axis=0)
    ap = np.full(NUM_JOINTS, np.nan)
    for j in range(NUM_JOINTS):
        if n_gt[j] == 0:
            continue
        keep = detections[:, j] & table.pred.present[:, j]
        ap[j] = pm._joint_ap(
            table.pred.score[keep, j], table.labels[keep, j], int(n_gt[j]), table.mode
        )[0]
    return ap, n_gt


# --- bins --------------------------------------------------------------------------------------


def bin_edges(spec: str | Sequence[float], motion: np.ndarray | None = None) -> np.ndarray:
    """Increasing bin edges from ``"quantiles:N"`` (N equal-count bins of the defined ``motion``
    values, first edge 0, last ``inf``), from ``"e0,e1,..."`` or from a sequence of numbers."""
    if isinstance(spec, str) and spec.startswith("quantiles:"):
        n = int(spec.split(":", 1)[1])
        if n < 1:
            raise ValueError(f"bins {spec!r}: the number of quantile bins must be >= 1")
        values = np.asarray(motion, dtype=np.float64) if motion is not None else np.zeros(0)
        values = values[np.isfinite(values)]
        if not len(values):
            raise ValueError(
                f"bins {spec!r}: no GT joint has a defined motion to take quantiles of"
            )
        inner = np.unique(np.quantile(values, np.arange(1, n) / n))
        edges = np.concatenate([[0.0], inner[inner > 0], [np.inf]])
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        try:
            edges = np.asarray([float(p) for p in parts], dtype=np.float64)
        except ValueError:
            raise ValueError(
                f"bins {spec!r}: expected 'quantiles:N' or comma-separated numbers"
            ) from None
    if len(edges) < 2 or np.any(np.diff(edges) <= 0) or np.isnan(edges).any() or edges[0] < 0:
        raise ValueError(
            f"bins {spec!r}: need at least two increasing, non-negative edges, got {edges.tolist()}"
        )
    return edges


def _bin_index(motion: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each motion value; ``len(edges) - 1`` for NaN, -2 outside the edges."""
    index = np.searchsorted(edges, motion, side="right") - 1
    index = np.where((index < 0) | (index >= len(edges) - 1), -2, index)
    return np.where(np.isnan(motion), len(edges) - 1, index)


# --- results -----------------------------------------------------------------------------------


def _columns(ap: np.ndarray) -> dict[str, float]:
    """Group means and Total over the joints with a value (NaN-skipping)."""

    def mean(ids: Sequence[int]) -> float:
        values = ap[list(ids)]
        values = values[~np.isnan(values)]
        return float(values.mean()) if len(values) else math.nan

    out = {name: mean(ids) for name, ids in POSEVAL.groups.items()}
    out["Total"] = mean(range(NUM_JOINTS))
    return out


def _json(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _clean(value: Any) -> Any:
    """The record with NaN floats as None, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass
class MotionBin:
    """AP of one motion bin (or of the GT joints without motion)."""

    label: str
    low: float
    high: float
    mean_motion: float  # mean motion of the bin's GT joints (NaN for "no motion")
    n_gt: np.ndarray  # (15,)
    n_detections: np.ndarray  # (15,) detections kept (assigned to the bin, plus unassigned)
    ap_per_joint: np.ndarray  # (15,) 0-100, NaN where the bin has no GT of a joint

    @property
    def columns(self) -> dict[str, float]:
        """Head .. Ankle and Total (means over the joints with GT in the bin)."""
        return _columns(self.ap_per_joint)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; NaN and inf become None."""
        return {
            "label": self.label,
            "low": _json(self.low),
            "high": _json(self.high),
            "mean_motion": _json(self.mean_motion),
            "n_gt": [int(v) for v in self.n_gt],
            "n_detections": [int(v) for v in self.n_detections],
            "ap_per_joint": [_json(float(v)) for v in self.ap_per_joint],
            "columns": {k: _json(v) for k, v in self.columns.items()},
        }


@dataclass
class MotionAnalysis:
    """AP per motion bin of one prediction set, the bins' edges and what was counted."""

    edges: np.ndarray
    bins: list[MotionBin]  # one per interval of edges
    no_motion: MotionBin
    overall: PoseTrackResult
    unassigned: str
    unassigned_detections: int
    total_detections: int

    def rows(self) -> list[MotionBin]:
        """The motion bins followed by the no-motion row."""
        return [*self.bins, self.no_motion]

    def table(self) -> str:
        """Text table: one line per bin with nGT, Total and the group columns."""
        names = list(GROUP_COLUMNS)
        head = f"{'motion (box/frame)':<20}{'mean':>8}{'nGT':>8} " + " ".join(
            f"{n[:5]:>6}" for n in names
        )
        lines = [head]
        for row in self.rows():
            cols = row.columns
            mean = "" if math.isnan(row.mean_motion) else f"{row.mean_motion:.4f}"
            lines.append(
                f"{row.label:<20}{mean:>8}{int(row.n_gt.sum()):>8} "
                + " ".join(f"{cols[n]:>6.1f}" for n in names)
            )
        overall = self.overall.columns
        lines.append(
            f"{'all (poseval)':<20}{'':>8}{self.overall.counts.gt_joints:>8} "
            + " ".join(f"{overall[c]:>6.1f}" for c in pm.COLUMNS)
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict of the bins, the overall poseval result and the counts."""
        return {
            "edges": [_json(float(e)) if math.isfinite(e) else "inf" for e in self.edges],
            "unassigned": self.unassigned,
            "unassigned_detections": self.unassigned_detections,
            "total_detections": self.total_detections,
            "joint_names": list(pm.OUTPUT_JOINT_NAMES),
            "bins": [b.to_json() for b in self.bins],
            "no_motion": self.no_motion.to_json(),
            "overall": self.overall.to_json(),
        }


def _label(low: float, high: float) -> str:
    return f"[{low:.4g}, {high:.4g})" if math.isfinite(high) else f">= {low:.4g}"


def ap_by_motion(table: MatchTable, edges: np.ndarray, unassigned: str = "fp") -> MotionAnalysis:
    """AP per motion bin (module docstring) for the bins ``edges`` plus the no-motion row."""
    if unassigned not in UNASSIGNED:
        raise ValueError(f"unassigned: expected one of {UNASSIGNED}, got {unassigned!r}")
    edges = np.asarray(edges, dtype=np.float64)
    gt_bin = _bin_index(table.gt_motion, edges)
    outside = table.gt.present & (gt_bin == -2)
    if outside.any():
        value = float(table.gt_motion[outside][0])
        raise ValueError(
            f"GT joint motion {value:.4g} lies outside the bin edges {edges.tolist()}; "
            "the edges must cover [0, inf)"
        )
    on_gt = table.assigned_gt_joint()
    g = np.maximum(table.assigned, 0)
    det_bin = np.where(on_gt, gt_bin[g], -1)
    free = table.pred.present & ~on_gt
    rows = []
    for b in range(len(edges)):
        in_bin = table.gt.present & (gt_bin == b)
        detections = (det_bin == b) | (free if unassigned == "fp" else False)
        ap, n_gt = subset_ap(table, in_bin, detections)
        motion = table.gt_motion[in_bin]
        mean = float(motion.mean()) if b < len(edges) - 1 and len(motion) else math.nan
        if b < len(edges) - 1:
            low, high, label = float(edges[b]), float(edges[b + 1]), _label(edges[b], edges[b + 1])
        else:
            low, high, label = math.nan, math.nan, NO_MOTION
        n_det = (detections & table.pred.present).sum(axis=0)
        rows.append(MotionBin(label, low, high, mean, n_gt, n_det, ap))
    return MotionAnalysis(
        edges=edges,
        bins=rows[:-1],
        no_motion=rows[-1],
        overall=table.overall,
        unassigned=unassigned,
        unassigned_detections=int(free.sum()),
        total_detections=int(table.pred.present.sum()),
    )


def gain_json(a: MotionAnalysis, b: MotionAnalysis) -> list[dict[str, Any]]:
    """Per row (bins, then no motion): ``b - a`` for every column and joint."""
    out = []
    for row_a, row_b in zip(a.rows(), b.rows()):
        cols_a, cols_b = row_a.columns, row_b.columns
        out.append(
            {
                "label": row_a.label,
                "mean_motion": _json(row_a.mean_motion),
                "columns": {k: _json(cols_b[k] - cols_a[k]) for k in cols_a},
                "ap_per_joint": [_json(float(v)) for v in row_b.ap_per_joint - row_a.ap_per_joint],
            }
        )
    return out


# --- videos and the motion subset --------------------------------------------------------------


def video_motion(
    gt_videos: Sequence[VideoAnnotations], max_gap: int | None = DEFAULT_MAX_GAP
) -> list[dict[str, Any]]:
    """Per GT video: name, mean motion of its GT joints (NaN if none defined) and their count."""
    out = []
    for gt in gt_videos:
        tracks, sizes = read_people_fields(gt.path, gt, "gt")
        motion = joint_motion(gt, tracks, sizes, max_gap)
        defined = motion[np.isfinite(motion)]
        out.append(
            {
                "video": gt.path.name,
                "mean_motion": float(defined.mean()) if len(defined) else math.nan,
                "joints_with_motion": len(defined),
            }
        )
    return out


def select_motion_subset(
    gt_videos: Sequence[VideoAnnotations],
    k: int,
    out_dir: str | Path,
    max_gap: int | None = DEFAULT_MAX_GAP,
) -> list[dict[str, Any]]:
    """Copy the GT files of the ``k`` videos with the largest mean joint motion into ``out_dir``.

    Videos without a defined motion are never chosen; fewer than ``k`` are copied when fewer
    have one. Returns the ranking of all videos (``rank`` from 1, ``selected``).
    """
    if k < 1:
        raise ValueError(f"motion subset: k must be >= 1, got {k}")
    ranking = video_motion(gt_videos, max_gap)
    ranked = sorted(
        (r for r in ranking if not math.isnan(r["mean_motion"])),
        key=lambda r: (-r["mean_motion"], r["video"]),
    )
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.glob("*.json")):
        raise FileExistsError(
            f"motion subset directory {out_dir} already holds JSON files; choose an empty one"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = {r["video"] for r in ranked[:k]}
    source = {gt.path.name: gt.path for gt in gt_videos}
    for name in sorted(chosen):
        shutil.copyfile(source[name], out_dir / name)
    rank = {r["video"]: i + 1 for i, r in enumerate(ranked)}
    return [
        {**r, "rank": rank.get(r["video"]), "selected": r["video"] in chosen}
        for r in sorted(ranking, key=lambda r: (rank.get(r["video"], len(ranking) + 1), r["video"]))
    ]


# --- plots -------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "the motion plots need matplotlib (pip install 'vidpose[viz]'); "
            "--no-plots / plots=False skips them"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bin_ticks(analysis: MotionAnalysis) -> list[str]:
    return [
        f"{b.label}\nmean {b.mean_motion:.3g}" if not math.isnan(b.mean_motion) else b.label
        for b in analysis.bins
    ]


def plot_motion_histogram(motion: np.ndarray, edges: np.ndarray, path: str | Path) -> Path:
    """Histogram of the defined GT joint motions with the bin edges as vertical lines; PNG."""
    plt = _pyplot()
    values = np.asarray(motion, dtype=np.float64)
    values = values[np.isfinite(values)]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    top = float(np.quantile(values, 0.99)) if len(values) else 1.0
    ax.hist(np.clip(values, 0, top), bins=50, color="#4c72b0")
    for e in edges[1:-1]:
        ax.axvline(e, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_xlabel("GT joint motion (box sizes per frame, clipped at the 99th percentile)")
    ax.set_ylabel("GT joints")
    ax.set_title(f"{len(values)} GT joints with a defined motion")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_ap_by_motion(analyses: Mapping[str, MotionAnalysis], path: str | Path) -> Path:
    """Total AP per motion bin for each prediction set, with the bins' GT joint counts; PNG."""
    plt = _pyplot()
    first = next(iter(analyses.values()))
    x = np.arange(len(first.bins))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    counts = ax.twinx()
    counts.bar(x, [int(b.n_gt.sum()) for b in first.bins], color="#dddddd", width=0.6, zorder=0)
    counts.set_ylabel("GT joints in the bin")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    for name, analysis in analyses.items():
        ax.plot(
            x,
            [b.columns["Total"] for b in analysis.bins],
            marker="o",
            label=f"{name} (all: {analysis.overall.total:.1f})",
        )
    ax.set_xticks(x, _bin_ticks(first), fontsize=7)
    ax.set_xlabel("GT joint motion (box sizes per frame)")
    ax.set_ylabel("AP (Total)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_groups_by_motion(analyses: Mapping[str, MotionAnalysis], path: str | Path) -> Path:
    """AP of every joint group per motion bin (one line per group, a line style per set); PNG."""
    plt = _pyplot()
    first = next(iter(analyses.values()))
    x = np.arange(len(first.bins))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = (("-", "solid"), ("--", "dashed"), (":", "dotted"), ("-.", "dash-dot"))
    for s, analysis in enumerate(analyses.values()):
        for g, group in enumerate(POSEVAL.groups):
            ax.plot(
                x,
                [b.columns[group] for b in analysis.bins],
                linestyle=styles[s % len(styles)][0],
                marker="o",
                markersize=3,
                color=colours[g % len(colours)],
                label=group if s == 0 else None,
            )
    ax.set_xticks(x, _bin_ticks(first), fontsize=7)
    ax.set_xlabel("GT joint motion (box sizes per frame)")
    ax.set_ylabel("AP")
    ax.set_title(
        ", ".join(f"{styles[s % len(styles)][1]}: {n}" for s, n in enumerate(analyses)), fontsize=9
    )
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_ap_gain(
    a: MotionAnalysis, b: MotionAnalysis, names: tuple[str, str], path: str | Path
) -> Path:
    """MTPose-style AP gain (``b - a``, Total as bars, groups as lines) vs mean joint movement; PNG."""
    plt = _pyplot()
    x = np.arange(len(a.bins))
    gain = [rb.columns["Total"] - ra.columns["Total"] for ra, rb in zip(a.bins, b.bins)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.bar(
        x, gain, color=["#55a868" if g >= 0 else "#c44e52" for g in gain], width=0.6, label="Total"
    )
    for group in ("Wrist", "Ankle", "Elbow", "Knee"):
        ax.plot(
            x,
            [rb.columns[group] - ra.columns[group] for ra, rb in zip(a.bins, b.bins)],
            marker="o",
            markersize=3,
            linewidth=1,
            label=group,
        )
    ax.axhline(
        b.overall.total - a.overall.total,
        color="black",
        linestyle="--",
        linewidth=1,
        label="all joints",
    )
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xticks(x, _bin_ticks(a), fontsize=7)
    ax.set_xlabel("average joint movement (box sizes per frame)")
    ax.set_ylabel(f"AP gain ({names[1]} - {names[0]})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# --- the whole analysis ------------------------------------------------------------------------


def run_motion_analysis(
    gt_dir: str | Path,
    pred_dir: str | Path,
    out_dir: str | Path,
    pred_b: str | Path | None = None,
    bins: str | Sequence[float] = DEFAULT_BINS,
    motion_subset: int | None = None,
    max_gap: int | None = DEFAULT_MAX_GAP,
    mode: str = "poseval",
    unassigned: str = "fp",
    names: tuple[str, str] = ("A", "B"),
    plots: bool = True,
) -> dict[str, Any]:
    """Motion-stratified AP of one (or two) prediction directories; writes JSON, table and plots
    into ``out_dir`` and returns the JSON record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_videos, pred_videos, unused = read_videos(gt_dir, pred_dir, mode)
    table = build_match_table(gt_videos, pred_videos, mode, max_gap, unused)
    edges = bin_edges(bins, table.gt_motion[table.gt.present])
    analyses = {names[0]: ap_by_motion(table, edges, unassigned)}
    if pred_b is not None:
        _, pred_b_videos, unused_b = read_videos(gt_dir, pred_b, mode)
        table_b = build_match_table(gt_videos, pred_b_videos, mode, max_gap, unused_b)
        analyses[names[1]] = ap_by_motion(table_b, edges, unassigned)
    motion = table.gt_motion[table.gt.present]
    record: dict[str, Any] = {
        "gt_dir": str(gt_dir),
        "predictions": {
            names[0]: str(pred_dir),
            **({names[1]: str(pred_b)} if pred_b is not None else {}),
        },
        "bins_spec": bins if isinstance(bins, str) else [float(v) for v in bins],
        "max_gap": max_gap,
        "mode": mode,
        "gt_joints": int(table.gt.present.sum()),
        "gt_joints_with_motion": int(np.isfinite(motion).sum()),
        "analyses": {name: a.to_json() for name, a in analyses.items()},
    }
    if pred_b is not None:
        record["gain"] = gain_json(analyses[names[0]], analyses[names[1]])
    text = [
        f"{name}: {pred}\n{analysis.table()}\n"
        for (name, analysis), pred in zip(analyses.items(), (pred_dir, pred_b))
    ]
    if motion_subset is not None:
        record["motion_subset"] = {
            "dir": str(out_dir / "motion_subset"),
            "requested": motion_subset,
            "videos": select_motion_subset(
                gt_videos, motion_subset, out_dir / "motion_subset", max_gap
            ),
        }
        chosen = [v for v in record["motion_subset"]["videos"] if v["selected"]]
        text.append(
            f"motion subset: {len(chosen)} of {motion_subset} requested videos in {out_dir / 'motion_subset'}"
        )
        with open(out_dir / "motion_subset_videos.json", "w", encoding="utf-8") as fh:
            json.dump(_clean(record["motion_subset"]), fh, indent=1)
    if plots:
        files = [
            plot_motion_histogram(motion, edges, out_dir / "motion_histogram.png"),
            plot_ap_by_motion(analyses, out_dir / "ap_by_motion.png"),
            plot_groups_by_motion(analyses, out_dir / "ap_by_motion_groups.png"),
        ]
        if pred_b is not None:
            files.append(
                plot_ap_gain(
                    analyses[names[0]], analyses[names[1]], names, out_dir / "ap_gain_vs_motion.png"
                )
            )
        record["plots"] = [str(p) for p in files]
    with open(out_dir / "motion_analysis.json", "w", encoding="utf-8") as fh:
        json.dump(_clean(record), fh, indent=1)
    (out_dir / "motion_ap.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    record["_analyses"] = analyses
    record["_text"] = "\n".join(text)
    return record


def analyse_evaluation(
    analysis: str,
    evaluator: Any,
    predictions: Sequence[Any],
    metrics: Mapping[str, Any],
    out_dir: str | Path,
) -> dict[str, float]:
    """``tools/eval.py analysis=motion``: motion-stratified AP (PoseTrack) and smoothness, written
    under ``out_dir``; returns the summary metrics to report next to mAP / PCK."""
    from vidpose.evaluation import smoothness

    if analysis != "motion":
        raise ValueError(f"analysis: expected null or 'motion', got {analysis!r}")
    out_dir = Path(out_dir)
    out: dict[str, float] = {}
    if evaluator.benchmark == "posetrack":
        record = run_motion_analysis(evaluator.gt_dir(), metrics["predictions_dir"], out_dir)
        for b, row in enumerate(record["analyses"]["A"]["bins"]):
            total = row["columns"]["Total"]
            out[f"motion/AP/bin{b}"] = math.nan if total is None else float(total)
        # GT boxes carry the GT track ids into the prediction files: link by them
        gt_boxes = all(inst.person >= 0 for inst in evaluator.instances)
        result = smoothness.smoothness_from_dirs(
            evaluator.gt_dir(), metrics["predictions_dir"], link="track_id" if gt_boxes else "match"
        )
    else:
        result = smoothness.smoothness_from_index(evaluator.index, predictions)
    smoothness.write_result(result, out_dir / "smoothness.json")
    out.update(result.summary())
    return out


# --- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the per-bin AP tables and write JSON, table and plots to ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m vidpose.evaluation.motion_analysis",
        description="PoseTrack AP per GT joint-motion bin (poseval matching), AP gain vs motion, motion subset.",
    )
    parser.add_argument("--gt", required=True, help="directory of GT per-video JSON files")
    parser.add_argument("--pred", required=True, help="prediction directory (set A)")
    parser.add_argument(
        "--pred-b", default=None, help="second prediction directory (set B) for the AP gain"
    )
    parser.add_argument(
        "--names", nargs=2, default=("A", "B"), help="labels of the two sets in tables and plots"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--bins",
        default=DEFAULT_BINS,
        help="'quantiles:N' (equal-count bins of GT motion) or edges 'e0,e1,...,inf'",
    )
    parser.add_argument(
        "--max-gap",
        type=int,
        default=DEFAULT_MAX_GAP,
        help="largest frame gap to an annotated neighbour",
    )
    parser.add_argument(
        "--motion-subset", type=int, default=None, metavar="K", help="copy the K fastest GT videos"
    )
    parser.add_argument("--mode", choices=pm.MODES, default="poseval")
    parser.add_argument(
        "--unassigned",
        choices=UNASSIGNED,
        default="fp",
        help="detections on no GT joint: false positives in every bin (fp) or left out (ignore)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    try:
        record = run_motion_analysis(
            args.gt,
            args.pred,
            args.out,
            pred_b=args.pred_b,
            bins=args.bins,
            motion_subset=args.motion_subset,
            max_gap=args.max_gap,
            mode=args.mode,
            unassigned=args.unassigned,
            names=tuple(args.names),
            plots=not args.no_plots,
        )
    except (PoseTrackFormatError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(record["_text"])
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
