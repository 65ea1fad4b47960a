"""PoseTrack mAP (poseval Task 1 AP), a pure-numpy re-implementation with identical numbers.

Reads a GT directory and a prediction directory of per-video JSON files (PoseTrack18
``images``/``annotations``/``categories`` or PoseTrack17 ``annolist``, detected per file) and
computes poseval's per-joint AP, its 7 summary columns and Total, following
``specs/posetrack_map.md``:

- GT files are visited sorted by name by default. poseval visits them in ``glob.glob`` order,
  which is the order the file system lists the folder in (unsorted, and different between file
  systems and copies of a folder); ``file_order="glob"`` (``--file-order glob``) uses that order.
  The order matters only for tied scores across videos. Frames are paired by position.
- A frame is evaluated iff its GT frame has at least one person entry (``is_labeled`` unused).
- PT18 triplets are absent only when ``x == y == v == 0``; missing scores rank as -9999.
- Ignore regions (GT frame only) delete points strictly inside, from GT and predictions.
- Matching is poseval's two arg-max steps (not greedy, not Hungarian), head size 0.6 x the
  head-box diagonal, threshold ``d <= 0.5`` inclusive.
- Each joint's detections are ranked like poseval's ``argsort`` reversed (no tie grouping) and
  scored with VOC all-points AP; Total is the mean of the non-NaN joint APs. Tied scores are
  ordered as numpy's generic introsort orders them (numpy < 1.25, which poseval's and the
  PoseTrack21 kit's published numbers ran with) on every machine, not as the running numpy does
  (newer numpy sorts with SIMD code on AVX2/AVX-512 CPUs and orders ties differently); see
  :mod:`vidpose.evaluation.tie_order`. Where tied scores mix true and false positives the
  result also gives the lowest and highest AP any order of the ties yields (per joint and
  Total) and its description says so.

``mode="pt21"`` applies the differences of the PoseTrack21 kit instead (see :data:`MODES`).

Beyond poseval (which would crash or silently misalign), malformed files raise
:class:`PoseTrackFormatError` naming the file and field (a boolean where a number belongs is
malformed); PT18 image ids must agree between GT and predictions, and where either file is
PoseTrack17 the frame numbers of the image names (``image[0].name``, ``file_name``) must agree
wherever both files name a frame. Predicted track ids are not read (the AP does not use them),
so duplicates within a frame are accepted, as in DCPose's copy of poseval (the official one
rejects them). A GT head box of zero size (compared with predictions on its frame) keeps
poseval's number, where no prediction can match that person, and warns with
:class:`ZeroHeadBoxWarning`: real annotations may contain such boxes, and refusing them would
make the official set unscorable. A missing head box remains an error (poseval crashes).

Command line: ``python -m vidpose.evaluation.posetrack_map --gt GT_DIR --pred PRED_DIR
[--json OUT.json] [--mode poseval|pt21] [--file-order sorted|glob] [--allow-missing]``; the
folder of ``--json`` is created before evaluating. Entries of the GT directory that are not
files (e.g. a folder named ``x.json``) are skipped.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.data.keypoints import POSETRACK, POSETRACK_TO_POSEVAL, POSEVAL
from vidpose.evaluation.output import prepare_output_file, write_json_file
from vidpose.evaluation.tie_order import introsort_argsort

__all__ = [
    "COLUMNS",
    "DIST_THRESHOLD",
    "FILE_ORDERS",
    "MIN_SCORE",
    "MODES",
    "OUTPUT_JOINT_NAMES",
    "AnnotationCounts",
    "PeopleArrays",
    "PoseTrackFormatError",
    "PoseTrackResult",
    "VideoAnnotations",
    "ZeroHeadBoxWarning",
    "evaluate_dirs",
    "evaluate_videos",
    "format_table",
    "main",
    "points_strictly_inside",
    "read_json",
    "read_video_file",
]

# poseval: the official rules. pt21: the PoseTrack21 kit's (PosemAP) rules: frames selected by
# the GT image's is_labeled, a joint exists iff x > 0 and y > 0, ears dropped by slot position
# (category names not read), scores from `scores` or -9999 when the key is missing, recall
# denominator max(nGT, 1) (so AP 0 instead of NaN), PT18-format files only.
MODES = ("poseval", "pt21")
# GT file orders: sorted by name (default, reproducible) or poseval's glob.glob order
FILE_ORDERS = ("sorted", "glob")
TIE_ORDER = "ties in numpy's generic introsort order, as numpy < 1.25 ranks them"
MIN_SCORE = -9999.0
DIST_THRESHOLD = 0.5
HEAD_SIZE_FACTOR = 0.6
NUM_JOINTS = POSEVAL.num_joints
# poseval prints joint 12 (PoseTrack18's head_bottom) as "neck".
OUTPUT_JOINT_NAMES = tuple("neck" if n == "head_bottom" else n for n in POSEVAL.joint_names)
COLUMNS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")
# poseval's column groups (ids of POSEVAL), in its summation order.
_COLUMN_JOINTS = {
    "Head": (14, 12, 13),
    "Shou": (8, 9),
    "Elb": (7, 10),
    "Wri": (6, 11),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankl": (0, 5),
}
# The PT21 kit keeps its joints in PoseTrack slot order minus the ears; its Total averages in
# that order (the summation order changes the last bits of the mean).
_PT21_JOINT_ORDER = np.array([int(p) for p in POSETRACK_TO_POSEVAL if p >= 0])
_SLOT_OF_POSEVAL_ID = np.array(
    [int(np.flatnonzero(POSETRACK_TO_POSEVAL == j)[0]) for j in range(NUM_JOINTS)]
)
# Shewchuk's error bound for the floating-point 2-D orientation determinant.
_ORIENT_ERRBOUND = (3.0 + 16.0 * 2.0**-53) * 2.0**-53
_PAIRS_PER_CHUNK = 50_000


class PoseTrackFormatError(ValueError):
    """A GT or prediction file that cannot be evaluated; the message names the file and field."""


class ZeroHeadBoxWarning(UserWarning):
    """GT people with a zero-size head box on frames with predictions: nothing can match them."""


@dataclass
class PeopleArrays:
    """One file's people in poseval's 15-joint order, by frame (file order within a frame)."""

    frame: np.ndarray  # (N,) int64 frame index within the video
    xy: np.ndarray  # (N, 15, 2) float64 image pixels
    # (N, 15) bool: the joint exists (poseval: a listed point; pt21: x > 0 and y > 0)
    present: np.ndarray
    score: np.ndarray  # (N, 15) float64 joint scores, MIN_SCORE where the file gives none
    head_size: np.ndarray  # (N,) float64 0.6 x head-box diagonal; NaN without a head box
    usable: np.ndarray  # (N,) bool: has a point list (PT17 entries without one are dropped)


@dataclass
class VideoAnnotations:
    """One parsed per-video file: frames in file order and its people as arrays."""

    path: Path
    file_format: str  # "pt18" or "pt17"
    n_frames: int
    image_ids: list[Any] | None  # PT18 images[].id in order; None for PT17
    is_labeled: list[bool | None]  # (F,) the frame's is_labeled flag; None where absent
    person_entries: np.ndarray  # (F,) int64 person entries per frame, before any filtering
    people: PeopleArrays
    # GT only: frame -> its ignore regions, each a (V, 2) polygon
    ignore_regions: dict[int, list[np.ndarray]] = field(default_factory=dict)
    # (F,) the frame's image path (PT18 file_name, PT17 image[0].name); None where absent
    image_names: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class AnnotationCounts:
    """What was read and what was evaluated, so nothing is dropped silently."""

    videos: int  # GT files read
    # GT files without a prediction file (require_all=False: counted as no predictions)
    videos_without_predictions: int
    prediction_files_unused: int  # prediction files with no GT file of that name (ignored)
    frames: int  # GT frames read
    frames_evaluated: int  # frames selected for evaluation
    labeled_frames_skipped: int  # flagged is_labeled but not evaluated (poseval: no GT person)
    unlabeled_frames_evaluated: int  # flagged not labeled but evaluated (poseval: GT people)
    gt_people: int  # GT person entries on evaluated frames
    # GT people with joints whose head box has size 0, on frames with predictions (never matched)
    gt_people_zero_head_box: int
    gt_joints: int  # GT joints counted (sum of nGT over the 15 joints), after ignore regions
    gt_joints_ignored: int  # GT joints removed by ignore regions
    pred_people: int  # predicted person entries on evaluated frames
    pred_people_skipped: int  # predicted person entries on frames that are not evaluated
    pred_joints: int  # ranked detections (all joints)
    pred_joints_ignored: int  # predicted joints removed by ignore regions


@dataclass
class PoseTrackResult:
    """Per-joint AP/precision/recall (poseval joint order, 0-100), summary columns and counts."""

    mode: str
    ap_per_joint: np.ndarray  # (15,) NaN where a joint has detections but no GT (poseval mode)
    precision_per_joint: np.ndarray  # (15,) precision over all detections x 100
    recall_per_joint: np.ndarray  # (15,) recall over all detections x 100
    precision_total: float
    recall_total: float
    columns: dict[str, float]  # Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total
    counts: AnnotationCounts
    ties_mixed: np.ndarray  # (15,) bool: some tied score is shared by a true and a false positive
    # (15, 2) lowest and highest AP over all orders of tied scores (both the AP where not mixed)
    ap_tie_range: np.ndarray
    total_tie_range: tuple[float, float]  # the same for Total
    joint_names: tuple[str, ...] = OUTPUT_JOINT_NAMES

    @property
    def n_frames_evaluated(self) -> int:
        """Number of evaluated frames."""
        return self.counts.frames_evaluated

    @property
    def total(self) -> float:
        """Total AP: mean over the 15 joints, NaN joints left out."""
        return self.columns["Total"]

    def table(self) -> str:
        """poseval's two-line summary table (header and ``&``-separated row)."""
        return format_table(self.columns)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; NaN becomes None."""
        return {
            "mode": self.mode,
            "joint_names": list(self.joint_names),
            "ap_per_joint": _json_floats(self.ap_per_joint),
            "precision_per_joint": _json_floats(self.precision_per_joint),
            "recall_per_joint": _json_floats(self.recall_per_joint),
            "precision_total": _json_float(self.precision_total),
            "recall_total": _json_float(self.recall_total),
            "columns": {k: _json_float(v) for k, v in self.columns.items()},
            "n_frames_evaluated": self.n_frames_evaluated,
            "counts": asdict(self.counts),
            "ties": {
                "order": TIE_ORDER,
                "mixed_per_joint": self.ties_mixed.tolist(),
                "ap_min_per_joint": _json_floats(self.ap_tie_range[:, 0]),
                "ap_max_per_joint": _json_floats(self.ap_tie_range[:, 1]),
                "total_min": _json_float(self.total_tie_range[0]),
                "total_max": _json_float(self.total_tie_range[1]),
            },
        }

    def describe(self) -> str:
        """One paragraph: the annotation set read and evaluated."""
        c = self.counts
        missing = (
            f", {c.videos_without_predictions} without predictions"
            if c.videos_without_predictions
            else ""
        )
        unused = (
            f"; {c.prediction_files_unused} prediction files without GT ignored"
            if c.prediction_files_unused
            else ""
        )
        zero_boxes = (
            f" ({c.gt_people_zero_head_box} with a zero-size head box, never matched)"
            if c.gt_people_zero_head_box
            else ""
        )
        text = (
            f"annotation set: {c.videos} videos{missing}, "
            f"{c.frames_evaluated} of {c.frames} frames evaluated "
            f"({c.labeled_frames_skipped} flagged labeled but skipped, "
            f"{c.unlabeled_frames_evaluated} unflagged but evaluated), "
            f"{c.gt_people} GT people{zero_boxes}, {c.gt_joints} GT joints "
            f"({c.gt_joints_ignored} in ignore regions); "
            f"{c.pred_people} predicted people evaluated "
            f"({c.pred_people_skipped} on skipped frames), "
            f"{c.pred_joints} predicted joints ({c.pred_joints_ignored} in ignore regions){unused}"
        )
        note = self.tie_note()
        return f"{text}. {note}" if note else text

    def tie_note(self) -> str:
        """A sentence on tied scores that mix true and false positives; empty when none do."""
        if not self.ties_mixed.any():
            return ""
        joints = ", ".join(
            f"{self.joint_names[j]} {self.ap_tie_range[j, 0]:.2f}-{self.ap_tie_range[j, 1]:.2f}"
            for j in np.flatnonzero(self.ties_mixed)
        )
        low, high = self.total_tie_range
        n = int(self.ties_mixed.sum())
        return (
            f"tied scores mix true and false positives on {n} joint{'s' if n > 1 else ''}, "
            f"so the AP depends on the order of the ties; AP over all tie orders: {joints}; "
            f"Total {low:.2f}-{high:.2f} (reported: {self.total:.2f}, {TIE_ORDER})"
        )


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [_json_float(float(v)) for v in values]


def format_table(columns: dict[str, float]) -> str:
    """poseval's printed table: header line and a row of 8 values (``%1.1f`` right-aligned in 5)."""
    header = "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\"
    cells = [f"{columns[name]:>5.1f}" for name in COLUMNS]
    row = "&" + "".join(f"{c} &" for c in cells[:-1]) + f"{cells[-1]} \\\\"
    return header + "\n" + row


# --- reading files ---------------------------------------------------------------------------


def read_json(path: str | Path) -> dict[str, Any]:
    """Load a JSON object from ``path``; a truncated or corrupt file raises PoseTrackFormatError."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as err:
        raise PoseTrackFormatError(
            f"{path}: not valid JSON (truncated or corrupt?): {err}"
        ) from None
    except UnicodeDecodeError as err:
        raise PoseTrackFormatError(f"{path}: not UTF-8 text: {err}") from None
    if not isinstance(data, dict):
        raise PoseTrackFormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise PoseTrackFormatError(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise PoseTrackFormatError(f"{where}: missing field {key!r}")
    return obj[key]


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise PoseTrackFormatError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, where: str) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise PoseTrackFormatError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _one_number(value: Any, where: str) -> float:
    """PT17 stores every scalar as a one-element list."""
    if not isinstance(value, list) or len(value) != 1:
        raise PoseTrackFormatError(f"{where}: expected a one-element list [number], got {value!r}")
    return _number(value[0], where)


def _numbers(rows: list, where: list[str], width: int) -> np.ndarray:
    """(N, width) float64 from N equal-length lists of finite numbers; errors name the bad row."""
    arr = np.asarray(rows) if rows else np.zeros((0, width))
    if arr.dtype.kind not in "iuf" or arr.ndim != 2 or _holds_bool(rows):
        for i, row in enumerate(rows):
            for k, value in enumerate(row):
                if not _is_number(value):
                    raise PoseTrackFormatError(f"{where[i]}[{k}]: expected a number, got {value!r}")
        raise PoseTrackFormatError(f"{where[0] if where else '?'}: numbers expected")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise PoseTrackFormatError(f"{where[i]}[{k}]: expected a finite number, got {rows[i][k]!r}")
    return arr


def _holds_bool(rows: list) -> bool:
    """Whether any value of the lists ``rows`` is a JSON boolean (numpy would read it as 0/1)."""
    return bool in set(map(type, chain.from_iterable(rows)))


def _head_size(boxes_xyxy: np.ndarray) -> np.ndarray:
    """(N,) 0.6 x ||(x2, y2) - (x1, y1)|| of (N, 4) corner boxes, computed as poseval does."""
    diff = boxes_xyxy[:, 2:4] - boxes_xyxy[:, 0:2]
    return HEAD_SIZE_FACTOR * np.sqrt(_squared_norm(diff))


def _squared_norm(vectors: np.ndarray) -> np.ndarray:
    """(...) squared length of (..., 2) vectors via BLAS ddot, as ``np.linalg.norm`` of one vector.

    poseval calls ``np.linalg.norm`` per pair, i.e. ``sqrt(v.dot(v))``; OpenBLAS's ddot may
    fuse the multiply-add, which plain ``x*x + y*y`` does not, so the last bit can differ.
    ``vecdot``/``matmul`` reach the same ddot kernel for every vector.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    if hasattr(np, "vecdot"):
        return np.vecdot(vectors, vectors)
    return np.matmul(vectors[..., None, :], vectors[..., :, None])[..., 0, 0]


def _region_polygons(xs: Any, ys: Any, where: str) -> list[np.ndarray]:
    """PT18 ``ignore_regions_x``/``_y`` -> list of (V, 2) polygons."""
    xs, ys = _list(xs, f"{where}.ignore_regions_x"), _list(ys, f"{where}.ignore_regions_y")
    if len(xs) != len(ys):
        raise PoseTrackFormatError(
            f"{where}: ignore_regions_x has {len(xs)} polygons, ignore_regions_y {len(ys)}"
        )
    polygons = []
    for r, (px, py) in enumerate(zip(xs, ys)):
        px, py = (
            _list(px, f"{where}.ignore_regions_x[{r}]"),
            _list(py, f"{where}.ignore_regions_y[{r}]"),
        )
        if len(px) != len(py):
            raise PoseTrackFormatError(
                f"{where}: ignore region {r} has {len(px)} x and {len(py)} y values"
            )
        verts = [
            (
                _number(x, f"{where}.ignore_regions_x[{r}]"),
                _number(y, f"{where}.ignore_regions_y[{r}]"),
            )
            for x, y in zip(px, py)
        ]
        polygons.append(np.asarray(verts, dtype=np.float64).reshape(-1, 2))
    return polygons


def _category_columns(data: dict, path: Path) -> tuple[np.ndarray, int]:
    """Slot of each poseval joint in the file's keypoint list (by name), and the number of slots."""
    categories = _list(_field(data, "categories", str(path)), f"{path}: categories")
    if len(categories) != 1:
        raise PoseTrackFormatError(
            f"{path}: categories: expected exactly one category, got {len(categories)}"
        )
    where = f"{path}: categories[0]"
    if _field(categories[0], "name", where) != "person":
        raise PoseTrackFormatError(
            f"{where}.name: expected 'person', got {categories[0]['name']!r}"
        )
    names = _list(_field(categories[0], "keypoints", where), f"{where}.keypoints")
    if len(names) not in (15, 17):
        raise PoseTrackFormatError(f"{where}.keypoints: expected 15 or 17 names, got {len(names)}")
    if len(set(map(str, names))) != len(names):
        raise PoseTrackFormatError(f"{where}.keypoints: duplicate joint names {names}")
    missing = [n for n in POSEVAL.joint_names if n not in names]
    if missing:
        raise PoseTrackFormatError(
            f"{where}.keypoints: poseval joints {missing} missing "
            f"(names are PoseTrack18's, e.g. 'head_bottom'); got {names}"
        )
    return np.array([names.index(n) for n in POSEVAL.joint_names]), len(names)


def _video_folders(file_names: list[str]) -> set[str]:
    """poseval's video key of each image: the first '_' token of the image's folder name."""
    return {os.path.basename(os.path.dirname(n)).split("_")[0] for n in file_names}


def _parse_pt18(data: dict, path: Path, role: str, mode: str) -> VideoAnnotations:
    images = _list(_field(data, "images", str(path)), f"{path}: images")
    annotations = _list(_field(data, "annotations", str(path)), f"{path}: annotations")
    if mode == "poseval":
        columns, n_slots = _category_columns(data, path)
    else:  # the PT21 kit takes the 17 PoseTrack slots by position and never reads the names
        columns, n_slots = _SLOT_OF_POSEVAL_ID, POSETRACK.num_joints
    if not images:
        raise PoseTrackFormatError(f"{path}: images is empty; a video needs at least one frame")

    frame_of_id: dict[Any, int] = {}
    image_ids, is_labeled, file_names, image_names = [], [], [], []
    ignore_regions: dict[int, list[np.ndarray]] = {}
    for f, image in enumerate(images):
        where = f"{path}: images[{f}]"
        image_id = _field(image, "id", where)
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            raise PoseTrackFormatError(
                f"{where}.id: expected an integer or string, got {image_id!r}"
            )
        if image_id in frame_of_id:
            raise PoseTrackFormatError(
                f"{where}: duplicate image id {image_id!r} (also images[{frame_of_id[image_id]}])"
            )
        frame_of_id[image_id] = f
        image_ids.append(image_id)
        labeled = image.get("is_labeled")
        if labeled is not None and not isinstance(labeled, (bool, int)):
            raise PoseTrackFormatError(f"{where}.is_labeled: expected a boolean, got {labeled!r}")
        is_labeled.append(None if labeled is None else bool(labeled))
        name = image.get("file_name")
        if name is not None:
            if not isinstance(name, str):
                raise PoseTrackFormatError(f"{where}.file_name: expected a string, got {name!r}")
            file_names.append(name)
        image_names.append(name)
        if role == "gt":
            has_x, has_y = "ignore_regions_x" in image, "ignore_regions_y" in image
            if has_x != has_y:
                raise PoseTrackFormatError(
                    f"{where}: has {'ignore_regions_x' if has_x else 'ignore_regions_y'} "
                    "without its partner"
                )
            if has_x:
                polygons = _region_polygons(
                    image["ignore_regions_x"], image["ignore_regions_y"], where
                )
                if polygons:
                    ignore_regions[f] = polygons
    if len(file_names) == len(images) and len(_video_folders(file_names)) > 1:
        raise PoseTrackFormatError(
            f"{path}: images belong to several video folders {sorted(_video_folders(file_names))}; "
            "poseval would evaluate only the first one, so a per-video file must hold one video"
        )

    frames, keypoints, kp_where, scores, integral, boxes, box_rows = [], [], [], [], [], [], []
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        image_id = _field(ann, "image_id", where)
        frame = (
            frame_of_id.get(image_id)
            if isinstance(image_id, (int, str)) and not isinstance(image_id, bool)
            else None
        )
        if frame is None:
            raise PoseTrackFormatError(
                f"{where}.image_id: {image_id!r} is not the id of any entry of images"
            )
        kp = _list(_field(ann, "keypoints", where), f"{where}.keypoints")
        if len(kp) != 3 * n_slots:
            raise PoseTrackFormatError(
                f"{where}.keypoints: expected {3 * n_slots} values "
                f"({n_slots} joints x (x, y, v)), got {len(kp)}"
            )
        frames.append(frame)
        keypoints.append(kp)
        kp_where.append(f"{where}.keypoints")
        if role == "pred":
            person_scores = _person_scores(ann, where, n_slots, mode)
            scores.append(person_scores if person_scores is not None else [MIN_SCORE] * n_slots)
            if mode == "pt21":
                integral.append(all(isinstance(v, int) for v in kp))
        elif ann.get("bbox_head") is not None:
            box = _list(ann["bbox_head"], f"{where}.bbox_head")
            if len(box) != 4:
                raise PoseTrackFormatError(f"{where}.bbox_head: expected [x, y, w, h], got {box!r}")
            boxes.append(box)
            box_rows.append(i)

    n = len(frames)
    kp3 = _numbers(keypoints, kp_where, 3 * n_slots).reshape(n, n_slots, 3)[:, columns, :]
    xy = np.ascontiguousarray(kp3[:, :, :2])
    if mode == "poseval":
        present = ~((kp3[:, :, 0] == 0) & (kp3[:, :, 1] == 0) & (kp3[:, :, 2] == 0))
    else:
        present = (kp3[:, :, 0] > 0) & (kp3[:, :, 1] > 0)
    if role == "pred":
        score = _numbers(scores, [f"{path}: annotations[{i}].scores" for i in range(n)], n_slots)[
            :, columns
        ]
        if mode == "pt21":
            score = _pt21_truncate_scores(
                score, np.asarray(frames, dtype=np.int64), np.asarray(integral, dtype=bool)
            )
        head_size = np.full(n, np.nan)
    else:
        score = np.full((n, NUM_JOINTS), MIN_SCORE)
        head_size = np.full(n, np.nan)
        xywh = _numbers(boxes, [f"{path}: annotations[{i}].bbox_head" for i in box_rows], 4)
        head_size[box_rows] = _head_size(
            np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        )
    people = PeopleArrays(
        frame=np.asarray(frames, dtype=np.int64).reshape(n),
        xy=xy,
        present=present,
        score=np.ascontiguousarray(score),
        head_size=head_size,
        usable=np.ones(n, dtype=bool),
    )
    return VideoAnnotations(
        path=path,
        file_format="pt18",
        n_frames=len(images),
        image_ids=image_ids,
        is_labeled=is_labeled,
        person_entries=np.bincount(people.frame, minlength=len(images)).astype(np.int64),
        people=_sorted_by_frame(people),
        ignore_regions=ignore_regions,
        image_names=image_names,
    )


def _person_scores(ann: dict, where: str, n_slots: int, mode: str) -> list | None:
    """The person's per-slot scores, or None when the file gives none (-> MIN_SCORE)."""
    if "scores" not in ann:
        return None
    scores = ann["scores"]
    if mode == "poseval" and (scores is None or scores == []):
        return None  # poseval: an empty or null list means "no score"
    scores = _list(scores, f"{where}.scores")
    if len(scores) != n_slots:
        hint = (
            " (the PoseTrack21 kit cannot read an empty list; omit the key instead)"
            if mode == "pt21" and not scores
            else ""
        )
        raise PoseTrackFormatError(
            f"{where}.scores: expected {n_slots} values (one per keypoint name), "
            f"got {len(scores)}{hint}"
        )
    return scores


def _pt21_truncate_scores(
    score: np.ndarray, frames: np.ndarray, integral: np.ndarray
) -> np.ndarray:
    """The PT21 kit writes scores into each frame's keypoint array; when every keypoint value of
    the frame is a JSON integer that array is int64, so the scores are truncated towards 0."""
    if not integral.any():
        return score
    frame_all_integral = np.ones(frames.max() + 1, dtype=bool)
    np.logical_and.at(frame_all_integral, frames, integral)
    rows = frame_all_integral[frames]
    score = score.copy()
    score[rows] = np.trunc(score[rows])
    return score


def _parse_pt17(data: dict, path: Path, role: str) -> VideoAnnotations:
    annolist = _list(data["annolist"], f"{path}: annolist")
    if not annolist:
        raise PoseTrackFormatError(f"{path}: annolist is empty; a video needs at least one frame")
    frames, xy, present, score, boxes, usable = [], [], [], [], [], []
    entries, is_labeled, image_names = [], [], []
    ignore_regions: dict[int, list[np.ndarray]] = {}
    for f, entry in enumerate(annolist):
        where = f"{path}: annolist[{f}]"
        rects = _list(_field(entry, "annorect", where), f"{where}.annorect")
        entries.append(len(rects))
        labeled = entry.get("is_labeled")
        if isinstance(labeled, list) and len(labeled) == 1:
            labeled = labeled[0]
        is_labeled.append(None if labeled is None else bool(labeled))
        image_names.append(_pt17_image_name(entry, where))
        if role == "gt" and entry.get("ignore_regions"):
            ignore_regions[f] = _pt17_regions(entry["ignore_regions"], where)
        for r, rect in enumerate(rects):
            rwhere = f"{where}.annorect[{r}]"
            points = _pt17_points(rect, rwhere)
            pxy, ppresent, pscore = (
                np.zeros((NUM_JOINTS, 2)),
                np.zeros(NUM_JOINTS, dtype=bool),
                np.full(NUM_JOINTS, MIN_SCORE),
            )
            for k, point in enumerate(points or []):
                pwhere = f"{rwhere}.annopoints[0].point[{k}]"
                joint = _pt17_joint_id(point, pwhere)
                if joint is None or ppresent[joint]:
                    continue  # ids outside 0-14 are no joints; the first of a repeated id counts
                pxy[joint] = (
                    _one_number(_field(point, "x", pwhere), f"{pwhere}.x"),
                    _one_number(_field(point, "y", pwhere), f"{pwhere}.y"),
                )
                if "score" in point:
                    pscore[joint] = _one_number(point["score"], f"{pwhere}.score")
                ppresent[joint] = True
            frames.append(f)
            xy.append(pxy)
            present.append(ppresent)
            score.append(pscore)
            usable.append(points is not None)
            boxes.append(_pt17_head_box(rect, rwhere) if role == "gt" else [math.nan] * 4)
    n = len(frames)
    people = PeopleArrays(
        frame=np.asarray(frames, dtype=np.int64).reshape(n),
        xy=np.asarray(xy, dtype=np.float64).reshape(n, NUM_JOINTS, 2),
        present=np.asarray(present, dtype=bool).reshape(n, NUM_JOINTS),
        score=np.asarray(score, dtype=np.float64).reshape(n, NUM_JOINTS),
        head_size=_head_size(np.asarray(boxes, dtype=np.float64).reshape(n, 4)),
        usable=np.asarray(usable, dtype=bool).reshape(n),
    )
    return VideoAnnotations(
        path=path,
        file_format="pt17",
        n_frames=len(annolist),
        image_ids=None,
        is_labeled=is_labeled,
        person_entries=np.asarray(entries, dtype=np.int64),
        people=people,
        ignore_regions=ignore_regions,
        image_names=image_names,
    )


def _pt17_image_name(entry: dict, where: str) -> str | None:
    """The frame's ``image[0].name`` (``image`` may also be a plain object); None without one."""
    image = entry.get("image")
    if isinstance(image, list) and len(image) == 1:
        image = image[0]
    if image is None:
        return None
    name = image.get("name") if isinstance(image, dict) else None
    if isinstance(name, list) and len(name) == 1:
        name = name[0]
    if not isinstance(name, str):
        raise PoseTrackFormatError(
            f"{where}.image: expected [{{'name': <image path>}}], got {image!r}"
        )
    return name


def _pt17_points(rect: Any, where: str) -> list | None:
    """A person's point list, or None when it has none (poseval removes such entries)."""
    if not isinstance(rect, dict):
        raise PoseTrackFormatError(f"{where}: expected an object, got {type(rect).__name__}")
    annopoints = rect.get("annopoints")
    if annopoints is None and "annopoints" not in rect:
        return None
    annopoints = _list(annopoints, f"{where}.annopoints")
    if not annopoints:
        return None
    first = annopoints[0]
    if not isinstance(first, dict):
        raise PoseTrackFormatError(
            f"{where}.annopoints[0]: expected an object, got {type(first).__name__}"
        )
    if "point" not in first:
        return None
    return _list(first["point"], f"{where}.annopoints[0].point")


def _pt17_joint_id(point: Any, where: str) -> int | None:
    joint = _field(point, "id", where)
    if joint is None:
        return None
    if not (
        isinstance(joint, list)
        and len(joint) == 1
        and _is_number(joint[0])
        and float(joint[0]).is_integer()
    ):
        raise PoseTrackFormatError(
            f"{where}.id: expected a one-element list [integer], got {joint!r}"
        )
    joint = int(joint[0])
    return joint if 0 <= joint < NUM_JOINTS else None


def _pt17_head_box(rect: dict, where: str) -> list[float]:
    if not all(k in rect for k in ("x1", "y1", "x2", "y2")):
        return [math.nan] * 4
    return [_one_number(rect[k], f"{where}.{k}") for k in ("x1", "y1", "x2", "y2")]


def _pt17_regions(regions: Any, where: str) -> list[np.ndarray]:
    polygons = []
    for r, region in enumerate(_list(regions, f"{where}.ignore_regions")):
        rwhere = f"{where}.ignore_regions[{r}]"
        points = _list(_field(region, "point", rwhere), f"{rwhere}.point")
        verts = [
            (
                _one_number(_field(p, "x", f"{rwhere}.point[{k}]"), f"{rwhere}.point[{k}].x"),
                _one_number(_field(p, "y", f"{rwhere}.point[{k}]"), f"{rwhere}.point[{k}].y"),
            )
            for k, p in enumerate(points)
        ]
        polygons.append(np.asarray(verts, dtype=np.float64).reshape(-1, 2))
    return polygons


def _sorted_by_frame(people: PeopleArrays) -> PeopleArrays:
    order = np.argsort(people.frame, kind="stable")  # stable: file order within a frame
    return PeopleArrays(
        *(getattr(people, name)[order] for name in PeopleArrays.__dataclass_fields__)
    )


def read_video_file(path: str | Path, role: str, mode: str = "poseval") -> VideoAnnotations:
    """Parse one GT (``role="gt"``) or prediction (``role="pred"``) per-video file, PT18 or PT17."""
    _check_mode(mode)
    if role not in ("gt", "pred"):
        raise ValueError(f"role: expected 'gt' or 'pred', got {role!r}")
    path = Path(path)
    data = read_json(path)
    if "annolist" in data:
        if mode == "pt21":
            raise PoseTrackFormatError(
                f"{path}: PoseTrack17 'annolist' file; "
                "mode 'pt21' reads PoseTrack18/21-format files only"
            )
        return _parse_pt17(data, path, role)
    if "images" in data or "annotations" in data:
        return _parse_pt18(data, path, role, mode)
    raise PoseTrackFormatError(
        f"{path}: neither PoseTrack18 (images/annotations/categories) nor PoseTrack17 "
        f"(annolist); keys: {sorted(data)}"
    )


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


# --- ignore regions --------------------------------------------------------------------------


def points_strictly_inside(points: np.ndarray, polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) bool: (N, 2) points strictly inside any (V, 2) polygon (even-odd rule, auto-closed).

    Points on an edge or a vertex of a polygon are not inside it (shapely's ``contains``).
    Orientation signs are exact: a floating-point determinant too close to 0 for its error
    bound is recomputed in rationals. Polygons with fewer than 3 vertices contain nothing.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    polygons = [p for p in polygons if len(p) >= 3]
    if len(points) == 0 or not polygons:
        return np.zeros(len(points), dtype=bool)
    a = np.concatenate(polygons)  # edge e runs from a[e] to b[e]
    b = np.concatenate([np.roll(p, -1, axis=0) for p in polygons])
    first_edge = np.cumsum([0] + [len(p) for p in polygons[:-1]])
    px, py = points[:, 0:1], points[:, 1:2]
    ax, ay, bx, by = a[None, :, 0], a[None, :, 1], b[None, :, 0], b[None, :, 1]
    left, right = (bx - ax) * (py - ay), (by - ay) * (px - ax)
    orient = np.sign(left - right)
    straddle = (ay > py) != (by > py)
    in_box = (
        (px >= np.minimum(ax, bx))
        & (px <= np.maximum(ax, bx))
        & (py >= np.minimum(ay, by))
        & (py <= np.maximum(ay, by))
    )
    unsure = (np.abs(left - right) <= _ORIENT_ERRBOUND * (np.abs(left) + np.abs(right))) & (
        straddle | in_box
    )
    for i, e in zip(*np.nonzero(unsure)):
        exact = (Fraction(b[e, 0]) - Fraction(a[e, 0])) * (
            Fraction(points[i, 1]) - Fraction(a[e, 1])
        ) - (Fraction(b[e, 1]) - Fraction(a[e, 1])) * (Fraction(points[i, 0]) - Fraction(a[e, 0]))
        orient[i, e] = (exact > 0) - (exact < 0)
    crossing = straddle & ((orient > 0) == (by > ay))
    on_edge = (orient == 0) & in_box
    crossings = np.add.reduceat(crossing.astype(np.int64), first_edge, axis=1)  # (N, polygons)
    touches = np.add.reduceat(on_edge.astype(np.int64), first_edge, axis=1)
    return ((crossings % 2 == 1) & (touches == 0)).any(axis=1)


def _remove_ignored(
    people: Sequence[tuple[PeopleArrays, slice]], polygons: list[np.ndarray]
) -> list[int]:
    """Clear ``present`` of points of each ``arrays[rows]`` strictly inside a polygon; counts."""
    hits = [np.argwhere(arrays.present[rows]) for arrays, rows in people]
    points = np.concatenate(
        [arrays.xy[rows][h[:, 0], h[:, 1]] for (arrays, rows), h in zip(people, hits)]
    )
    inside = points_strictly_inside(points, polygons)
    counts, start = [], 0
    for (arrays, rows), h in zip(people, hits):
        gone = h[inside[start : start + len(h)]]
        arrays.present[rows][gone[:, 0], gone[:, 1]] = False
        counts.append(len(gone))
        start += len(h)
    return counts


# --- evaluation ------------------------------------------------------------------------------


def _segment_first_argmax(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the first maximum of each non-empty segment ``values[starts[i]:starts[i + 1]]``."""
    seg_max = np.maximum.reduceat(values, starts)
    lengths = np.diff(np.append(starts, len(values)))
    candidates = np.where(
        values == np.repeat(seg_max, lengths), np.arange(len(values)), len(values)
    )
    return np.minimum.reduceat(candidates, starts)


def _match_labels(
    gt: PeopleArrays,
    pr: PeopleArrays,
    pr_rows: np.ndarray,
    gt_first: np.ndarray,
    gt_count: np.ndarray,
) -> np.ndarray:
    """(len(pr_rows), 15) true-positive labels by poseval's two arg-max steps, all frames at once.

    Prediction ``pr_rows[i]`` is compared with GT rows ``gt_first[i]:gt_first[i] + gt_count[i]``
    (the GT people of its frame, gt_count >= 1). Works on the flat list of (prediction, GT) pairs
    in prediction-major order, i.e. poseval's (P, G, 15) distance tensor of every frame.
    """
    n_pairs = int(gt_count.sum())
    pair_pr = np.repeat(np.arange(len(pr_rows)), gt_count)
    pred_start = np.cumsum(gt_count) - gt_count
    pair_gt = np.repeat(gt_first - pred_start, gt_count) + np.arange(n_pairs)
    pr_present, gt_present = pr.present[pr_rows][pair_pr], gt.present[pair_gt]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = (
            np.sqrt(_squared_norm(gt.xy[pair_gt] - pr.xy[pr_rows][pair_pr]))
            / gt.head_size[pair_gt][:, None]
        )
    match = (dist <= DIST_THRESHOLD) & pr_present & gt_present  # (pairs, 15)
    # PCKh; a GT person without joints matches nothing (PCKh 0)
    pck = match.sum(axis=1) / np.maximum(gt_present.sum(axis=1), 1)
    # step 1: each prediction keeps only its best GT (the lowest GT index on ties)
    best_pair = _segment_first_argmax(pck, pred_start)
    reduced = np.zeros(n_pairs)
    reduced[best_pair] = pck[best_pair]
    # step 2: each GT takes its best prediction (the lowest prediction index on ties), if > 0
    by_gt = np.lexsort((pair_pr, pair_gt))
    gt_segments = np.flatnonzero(np.diff(pair_gt[by_gt], prepend=-1) != 0)
    chosen = by_gt[_segment_first_argmax(reduced[by_gt], gt_segments)]
    chosen = chosen[reduced[chosen] > 0]
    labels = np.zeros((len(pr_rows), NUM_JOINTS), dtype=bool)
    labels[pair_pr[chosen]] = match[chosen]
    return labels


def _joint_ap(
    scores: np.ndarray, labels: np.ndarray, n_gt: int, mode: str
) -> tuple[float, float, float]:
    """(AP, final precision, final recall) x 100 of one joint's detections, VOC all-points."""
    return _joint_ap_and_tie_range(scores, labels, n_gt, mode)[:3]


def _joint_ap_and_tie_range(
    scores: np.ndarray, labels: np.ndarray, n_gt: int, mode: str
) -> tuple[float, float, float, tuple[float, float] | None]:
    """:func:`_joint_ap` and the (lowest, highest) AP over all orders of tied scores; the range
    is None unless some tie mixes true and false positives."""
    if len(scores) == 0:
        return 0.0, 0.0, 0.0, None
    # poseval's argsort reversed, with ties in the order of the numpy its numbers were made with
    ranking = introsort_argsort(scores)[::-1]
    ranked_labels = labels[ranking]
    ap = _ranked_ap(ranked_labels, n_gt, mode)
    return (*ap, _tie_ap_range(scores[ranking], ranked_labels, n_gt, mode))


def _tie_ap_range(
    ranked_scores: np.ndarray, ranked_labels: np.ndarray, n_gt: int, mode: str
) -> tuple[float, float] | None:
    """(lowest, highest) AP over the orders of each run of equal ``ranked_scores``; None unless
    a run mixes true and false positives.

    AP only grows when a true positive moves up, so false positives first within every run gives
    the lowest AP and true positives first the highest.
    """
    n = len(ranked_scores)
    starts = np.flatnonzero(np.concatenate(([True], ranked_scores[1:] != ranked_scores[:-1])))
    run_length = np.diff(np.append(starts, n))
    run_tp = np.add.reduceat(ranked_labels.astype(np.int64), starts)
    if not ((run_tp > 0) & (run_tp < run_length)).any():
        return None
    run = np.repeat(np.arange(len(starts)), run_length)
    position = np.arange(n) - starts[run]  # within the run
    fp_first = position >= (run_length - run_tp)[run]
    tp_first = position < run_tp[run]
    return _ranked_ap(fp_first, n_gt, mode)[0], _ranked_ap(tp_first, n_gt, mode)[0]


def _ranked_ap(labels: np.ndarray, n_gt: int, mode: str) -> tuple[float, float, float]:
    """(AP, final precision, final recall) x 100 of the labels of a ranking, best first."""
    tp = np.cumsum(labels.astype(np.int64))
    denominator = float(n_gt) if mode == "poseval" else float(max(n_gt, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / denominator
    precision = tp / np.arange(1, len(tp) + 1)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.maximum.accumulate(np.concatenate(([0.0], precision, [0.0]))[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    # one numpy (pairwise) sum over the term vector, as poseval: other orders change last bits
    ap = np.sum((mrec[i] - mrec[i - 1]) * mpre[i])
    return float(ap * 100), float(precision[-1] * 100), float(recall[-1] * 100)


def _mean_without_nan(values: np.ndarray) -> float:
    """Mean of the non-NaN entries in the given order, as poseval's ``apAll[idxs, 0].mean()``."""
    col = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    idxs = np.argwhere(~np.isnan(col[:, 0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(col[idxs, 0].mean()) if len(idxs) else math.nan


def _selected_frames(gt: VideoAnnotations, mode: str) -> np.ndarray:
    if mode == "poseval":
        return gt.person_entries > 0
    if any(v is None for v in gt.is_labeled):
        f = gt.is_labeled.index(None)
        raise PoseTrackFormatError(
            f"{gt.path}: images[{f}] has no 'is_labeled'; mode 'pt21' selects frames by it"
        )
    return np.asarray(gt.is_labeled, dtype=bool)


def _check_pair(gt: VideoAnnotations, pred: VideoAnnotations) -> None:
    if pred.n_frames != gt.n_frames:
        raise PoseTrackFormatError(
            f"{pred.path}: {pred.n_frames} prediction frames but the GT file {gt.path} has "
            f"{gt.n_frames}; frames are paired by position"
        )
    if gt.image_ids is not None and pred.image_ids is not None:
        if gt.image_ids != pred.image_ids:
            f = next(i for i, (a, b) in enumerate(zip(gt.image_ids, pred.image_ids)) if a != b)
            raise PoseTrackFormatError(
                f"{pred.path}: images[{f}].id is {pred.image_ids[f]!r} but the GT file {gt.path} "
                f"has {gt.image_ids[f]!r} there; frames are paired by position, so the "
                "prediction images must list the GT images in GT order "
                "(poseval would silently compare the wrong frames)"
            )
    else:
        _check_frame_names(gt, pred)


def _check_frame_names(gt: VideoAnnotations, pred: VideoAnnotations) -> None:
    """Without image ids on both sides (PT17), frames named in both files must be the same."""
    for f, (gt_name, pred_name) in enumerate(zip(gt.image_names, pred.image_names)):
        if gt_name is None or pred_name is None or _frame_key(gt_name) == _frame_key(pred_name):
            continue
        raise PoseTrackFormatError(
            f"{pred.path}: {_image_name_field(pred, f)} is {pred_name!r} but the GT file "
            f"{gt.path} has {gt_name!r} ({_image_name_field(gt, f)}) there; frames are paired "
            "by position, so the prediction frames must follow the GT frames in GT order with "
            "the same frame numbers (poseval would silently compare the wrong frames)"
        )


def _frame_key(image_name: str) -> int | str:
    """A frame's identity in an image path: the number of its base name, else the base name.

    Folders differ legitimately (DCPose writes shorter paths than the GT), so they are ignored.
    """
    base = os.path.basename(image_name)
    stem = os.path.splitext(base)[0]
    return int(stem) if stem.isascii() and stem.isdigit() else base


def _image_name_field(video: VideoAnnotations, frame: int) -> str:
    """Where a frame's image path is in the file, e.g. ``annolist[3].image[0].name``."""
    if video.file_format == "pt17":
        return f"annolist[{frame}].image[0].name"
    return f"images[{frame}].file_name"


def _empty_people() -> PeopleArrays:
    return PeopleArrays(
        frame=np.zeros(0, dtype=np.int64),
        xy=np.zeros((0, NUM_JOINTS, 2)),
        present=np.zeros((0, NUM_JOINTS), dtype=bool),
        score=np.zeros((0, NUM_JOINTS)),
        head_size=np.zeros(0),
        usable=np.zeros(0, dtype=bool),
    )


def _select(people: PeopleArrays, rows: np.ndarray, frame_offset: int) -> PeopleArrays:
    """Copy of the selected rows with the frame index shifted to the pooled frame numbering."""
    return PeopleArrays(
        frame=people.frame[rows] + frame_offset,
        xy=people.xy[rows],
        present=people.present[rows].copy(),
        score=people.score[rows],
        head_size=people.head_size[rows],
        usable=people.usable[rows],
    )


def _concat(parts: list[PeopleArrays]) -> PeopleArrays:
    parts = parts or [_empty_people()]
    return PeopleArrays(
        *(np.concatenate([getattr(p, n) for p in parts]) for n in PeopleArrays.__dataclass_fields__)
    )


def evaluate_videos(
    gt_videos: Sequence[VideoAnnotations],
    pred_videos: Sequence[VideoAnnotations | None],
    mode: str = "poseval",
    prediction_files_unused: int = 0,
) -> PoseTrackResult:
    """Pooled AP over parsed videos; ``pred_videos[i]`` (None: none) pairs with ``gt_videos[i]``.

    Detections of all videos are ranked together in the given video order (poseval's file order).
    """
    _check_mode(mode)
    if len(gt_videos) != len(pred_videos):
        raise ValueError(f"{len(gt_videos)} GT videos but {len(pred_videos)} prediction entries")
    gt_parts, pr_parts, where = [], [], []
    n_frames = n_eval = labeled_skipped = unlabeled_eval = gt_entries = pr_entries = pr_skipped = 0
    gt_ignored = pr_ignored = 0
    for gt, pred in zip(gt_videos, pred_videos):
        if pred is not None:
            _check_pair(gt, pred)
        keep = _selected_frames(gt, mode)
        flags = np.array(
            [v if v is not None else k for v, k in zip(gt.is_labeled, keep)], dtype=bool
        )
        labeled_skipped += int((flags & ~keep).sum())
        unlabeled_eval += int((~flags & keep).sum())
        n_eval += int(keep.sum())
        gt_entries += int(gt.person_entries[keep].sum())
        gt_rows = np.flatnonzero(keep[gt.people.frame] & gt.people.usable)
        gt_sel = _select(gt.people, gt_rows, n_frames)
        if pred is not None:
            pr_keep = keep[pred.people.frame]
            pr_entries += int(pr_keep.sum())
            pr_skipped += int((~pr_keep).sum())
            pr_sel = _select(pred.people, np.flatnonzero(pr_keep & pred.people.usable), n_frames)
        else:
            pr_sel = _empty_people()
        gt_starts = np.searchsorted(gt_sel.frame, np.arange(n_frames, n_frames + gt.n_frames + 1))
        pr_starts = np.searchsorted(pr_sel.frame, np.arange(n_frames, n_frames + gt.n_frames + 1))
        for f, polygons in sorted(gt.ignore_regions.items()):
            if not keep[f]:
                continue
            for r, polygon in enumerate(polygons):
                if 0 < len(polygon) < 3:
                    image = f" (image {gt.image_ids[f]!r})" if gt.image_ids is not None else ""
                    raise PoseTrackFormatError(
                        f"{gt.path}: frame {f}{image}: ignore region {r} has {len(polygon)} "
                        "vertices; a polygon needs at least 3"
                    )
            n_gt_ignored, n_pr_ignored = _remove_ignored(
                [
                    (gt_sel, slice(gt_starts[f], gt_starts[f + 1])),
                    (pr_sel, slice(pr_starts[f], pr_starts[f + 1])),
                ],
                polygons,
            )
            gt_ignored += n_gt_ignored
            pr_ignored += n_pr_ignored
        gt_parts.append(gt_sel)
        pr_parts.append(pr_sel)
        where.extend((gt, f) for f in range(gt.n_frames))
        n_frames += gt.n_frames

    gt_all, pr_all = _concat(gt_parts), _concat(pr_parts)
    labels = _label_all(gt_all, pr_all, n_frames, where)
    zero_head_boxes = _warn_zero_head_boxes(gt_all, _compared_gt_people(gt_all, pr_all), where)
    ap, precision, recall = np.zeros(NUM_JOINTS), np.zeros(NUM_JOINTS), np.zeros(NUM_JOINTS)
    ties_mixed, ap_tie_range = np.zeros(NUM_JOINTS, dtype=bool), np.zeros((NUM_JOINTS, 2))
    n_gt = gt_all.present.sum(axis=0)
    for j in range(NUM_JOINTS):
        has = pr_all.present[:, j]
        ap[j], precision[j], recall[j], tie_range = _joint_ap_and_tie_range(
            pr_all.score[has, j], labels[has, j], int(n_gt[j]), mode
        )
        ties_mixed[j] = tie_range is not None
        ap_tie_range[j] = tie_range if tie_range is not None else (ap[j], ap[j])
    order = _PT21_JOINT_ORDER if mode == "pt21" else np.arange(NUM_JOINTS)
    columns = {name: float(ap[list(ids)].mean()) for name, ids in _COLUMN_JOINTS.items()}
    columns["Total"] = _mean_without_nan(ap[order])
    counts = AnnotationCounts(
        videos=len(gt_videos),
        videos_without_predictions=sum(p is None for p in pred_videos),
        prediction_files_unused=prediction_files_unused,
        frames=n_frames,
        frames_evaluated=n_eval,
        labeled_frames_skipped=labeled_skipped,
        unlabeled_frames_evaluated=unlabeled_eval,
        gt_people=gt_entries,
        gt_people_zero_head_box=zero_head_boxes,
        gt_joints=int(n_gt.sum()),
        gt_joints_ignored=gt_ignored,
        pred_people=pr_entries,
        pred_people_skipped=pr_skipped,
        pred_joints=int(pr_all.present.sum()),
        pred_joints_ignored=pr_ignored,
    )
    return PoseTrackResult(
        mode=mode,
        ap_per_joint=ap,
        precision_per_joint=precision,
        recall_per_joint=recall,
        precision_total=_mean_without_nan(precision[order]),
        recall_total=_mean_without_nan(recall[order]),
        columns=columns,
        counts=counts,
        ties_mixed=ties_mixed,
        ap_tie_range=ap_tie_range,
        total_tie_range=(
            _mean_without_nan(ap_tie_range[order, 0]),
            _mean_without_nan(ap_tie_range[order, 1]),
        ),
    )


def _label_all(gt: PeopleArrays, pr: PeopleArrays, n_frames: int, where: list) -> np.ndarray:
    """(Np, 15) labels of all predictions; 0 (false positive) on frames without GT people."""
    labels = np.zeros(pr.present.shape, dtype=bool)
    gt_starts = np.searchsorted(gt.frame, np.arange(n_frames + 1))
    gt_count = np.diff(gt_starts)[pr.frame]
    rows = np.flatnonzero((gt_count > 0) & pr.present.any(axis=1))
    _check_head_boxes(gt, _compared_gt_people(gt, pr), where)
    # chunks of whole frames (a GT picks among all predictions of its frame) bound the memory
    frames, pairs_end = pr.frame[rows], np.cumsum(gt_count[rows])
    start = 0
    while start < len(rows):
        budget_end = pairs_end[start] - gt_count[rows[start]] + _PAIRS_PER_CHUNK
        stop = max(int(np.searchsorted(pairs_end, budget_end, side="right")), start + 1)
        stop = int(np.searchsorted(frames, frames[stop - 1], side="right"))
        chunk = rows[start:stop]
        labels[chunk] = _match_labels(gt, pr, chunk, gt_starts[pr.frame[chunk]], gt_count[chunk])
        start = stop
    return labels


def _compared_gt_people(gt: PeopleArrays, pr: PeopleArrays) -> np.ndarray:
    """(Ng,) bool: GT people with joints on frames with predicted joints (head box used)."""
    frames = np.unique(pr.frame[pr.present.any(axis=1)])
    return np.isin(gt.frame, frames) & gt.present.any(axis=1)


def _check_head_boxes(gt: PeopleArrays, compared: np.ndarray, where: list) -> None:
    """Compared GT people need a head box (the PCKh reference); poseval crashes without one."""
    missing = compared & np.isnan(gt.head_size)
    if missing.any():
        raise PoseTrackFormatError(
            f"{_gt_person_location(gt, int(np.flatnonzero(missing)[0]), where)} "
            "of the evaluated people has joints but no head box (bbox_head in PoseTrack18, "
            "x1/y1/x2/y2 in PoseTrack17), which the PCKh matching needs"
        )


def _warn_zero_head_boxes(gt: PeopleArrays, compared: np.ndarray, where: list) -> int:
    """Warn about compared GT people whose head box has size 0; their number.

    poseval divides by that size: every distance becomes inf (or NaN), so no prediction matches
    the person and its joints are misses. That number is kept, loudly.
    """
    zero = compared & (gt.head_size == 0)
    if zero.any():
        warnings.warn(
            f"{int(zero.sum())} GT people with joints have a head box of zero size, first "
            f"{_gt_person_location(gt, int(np.flatnonzero(zero)[0]), where)} "
            "(bbox_head w = h = 0 in PoseTrack18, x1 = x2 and y1 = y2 in PoseTrack17); PCKh "
            "divides by the head size, so no prediction can match them and their joints count "
            "as misses (poseval's number, kept)",
            ZeroHeadBoxWarning,
            stacklevel=2,
        )
    return int(zero.sum())


def _gt_person_location(gt: PeopleArrays, row: int, where: list) -> str:
    """'FILE: frame F (image ID): GT person K' of a row of the pooled GT people (frame-sorted)."""
    video, frame = where[gt.frame[row]]
    image = f" (image {video.image_ids[frame]!r})" if video.image_ids is not None else ""
    person = row - int(np.searchsorted(gt.frame, gt.frame[row]))
    return f"{video.path}: frame {frame}{image}: GT person {person}"


def _json_files(directory: Path, file_order: str = "sorted") -> list[Path]:
    """The ``*.json`` files of ``directory``, sorted by name or in ``glob.glob`` order.

    glob.glob is poseval's call: it skips dot-files and lists in the file system's order.
    Entries that are not files (a folder named ``x.json``) are skipped.
    """
    pattern = os.path.join(glob.escape(str(directory)), "*.json")
    files = [Path(p) for p in glob.glob(pattern) if os.path.isfile(p)]
    return files if file_order == "glob" else sorted(files)


def evaluate_dirs(
    gt_dir: str | Path,
    pred_dir: str | Path,
    mode: str = "poseval",
    require_all: bool = True,
    file_order: str = "sorted",
) -> PoseTrackResult:
    """AP of a prediction directory against a GT directory (one ``*.json`` per video, same names).

    GT files are taken sorted by name (``file_order="sorted"``) or in poseval's ``glob.glob``
    order (``"glob"``: the order the file system lists the folder in, not reproducible across
    file systems or copies); the order changes the AP only where scores tie across videos. With
    ``require_all`` a GT file without a prediction file is an error; otherwise it counts as a
    video without predictions (reported in the counts).
    """
    _check_mode(mode)
    if file_order not in FILE_ORDERS:
        raise ValueError(f"file_order: expected one of {FILE_ORDERS}, got {file_order!r}")
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for name, directory in (("GT", gt_dir), ("prediction", pred_dir)):
        if not directory.is_dir():
            raise FileNotFoundError(f"{name} directory {directory} does not exist")
    gt_files = _json_files(gt_dir, file_order)
    if not gt_files:
        raise FileNotFoundError(f"GT directory {gt_dir} holds no *.json files")
    missing = [p.name for p in gt_files if not (pred_dir / p.name).is_file()]
    if missing and require_all:
        raise FileNotFoundError(
            f"{len(missing)} of {len(gt_files)} GT videos have no prediction file in {pred_dir}, "
            f"e.g. {missing[:3]}; "
            "pass require_all=False (--allow-missing) to count them as videos without predictions"
        )
    gt_videos = [read_video_file(p, "gt", mode) for p in gt_files]
    pred_videos = [
        None if p.name in missing else read_video_file(pred_dir / p.name, "pred", mode)
        for p in gt_files
    ]
    unused = len({p.name for p in _json_files(pred_dir)} - {p.name for p in gt_files})
    return evaluate_videos(gt_videos, pred_videos, mode, prediction_files_unused=unused)


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print poseval's AP table and the annotation set; optionally write JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m vidpose.evaluation.posetrack_map",
        description="PoseTrack mAP (poseval Task 1 AP) of predictions against a GT directory.",
    )
    parser.add_argument(
        "--gt",
        required=True,
        help="directory of GT per-video JSON files (PoseTrack18 or 17 format)",
    )
    parser.add_argument(
        "--pred", required=True, help="directory of prediction files with the GT files' names"
    )
    parser.add_argument(
        "--json",
        default=None,
        help="also write the result to this JSON file (NaN as null); its folder is created",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="poseval",
        help="poseval (official) or pt21 (PoseTrack21 kit rules)",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="count GT videos without a prediction file as having no predictions",
    )
    parser.add_argument(
        "--file-order",
        choices=FILE_ORDERS,
        default="sorted",
        help="order of the GT files, which decides tied scores across videos: sorted by name "
        "(default) or poseval's glob order (the file system's listing order, not reproducible)",
    )
    args = parser.parse_args(argv)
    try:
        out_json = prepare_output_file(args.json) if args.json else None
        result = evaluate_dirs(
            args.gt,
            args.pred,
            mode=args.mode,
            require_all=not args.allow_missing,
            file_order=args.file_order,
        )
    except (PoseTrackFormatError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Average Precision (AP) metric, mode {result.mode}:")
    print(result.table())
    print(result.describe())
    if out_json is not None:
        try:
            write_json_file(out_json, result.to_json(), indent=2)
        except OSError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
