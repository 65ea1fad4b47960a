"""Scores on the degraded joints only (and on the rest), through the existing evaluators.

The synthetic ``degraded`` presets write a sidecar per video naming the (frame, person, joint)
triples a single-frame degradation hides (:mod:`vidpose.data.degraded`). This module keeps
only those triples (``subset="degraded"``, optionally of some kinds) or only the others
(``subset="clean"``) on BOTH sides and hands the result to the unchanged evaluators:

- PoseTrack: the GT and prediction files are rewritten as PoseTrack18 files whose other joints
  are ``(0, 0, 0)`` (absent) and whose people without a kept joint are dropped, then scored by
  :func:`vidpose.evaluation.posetrack_map.evaluate_dirs` (or by the official poseval: the
  filtered folders are ordinary PoseTrack18 folders). Predictions are tied to GT people by
  their ``track_id``, so the subset needs GT-box predictions, which carry the GT track id;
  detector-box predictions carry none and are refused (``docs/data.md``, "Scoring the
  degraded subset", argues why this AP is well-defined only then).
- Sub-JHMDB: :func:`vidpose.evaluation.jhmdb_pck.evaluate` with the subset as ``visible`` and
  ``mask_invisible=True`` (PCK over the kept joints).

Joints the subset does not contain at all have no AP: ``mAP`` and the columns average the
per-joint APs of joints with at least one kept GT joint (poseval would count a joint without
detections as 0). When every joint occurs, the numbers are exactly ``evaluate_dirs``' columns.

Command line: ``python -m vidpose.evaluation.degraded_subset --gt GT_DIR --pred PRED_DIR
[--sidecar DIR] [--out DIR] [--json OUT.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.data.degraded import KINDS, DegradedVideo, posetrack_sidecar_dir, read_degraded_file
from vidpose.data.keypoints import JHMDB, POSETRACK, POSEVAL
from vidpose.evaluation import jhmdb_pck, posetrack_map
from vidpose.evaluation.posetrack_map import PoseTrackFormatError

__all__ = [
    "SUBSETS",
    "EmptySubsetError",
    "filter_posetrack_dirs",
    "jhmdb_subset_pck",
    "main",
    "posetrack_subset_map",
    "score_degraded_jhmdb",
    "score_degraded_subset",
]

SUBSETS = ("degraded", "clean")
_COLUMN_GROUPS = dict(zip(posetrack_map.COLUMNS, POSEVAL.groups.values()))  # "Head" -> poseval ids


class EmptySubsetError(ValueError):
    """A Sub-JHMDB subset that lacks some joint entirely, so its PCK (and Avg) is undefined."""


def _check_subset(subset: str, kinds: Collection[str] | None) -> tuple[str, ...]:
    if subset not in SUBSETS:
        raise ValueError(f"subset: expected one of {SUBSETS}, got {subset!r}")
    kinds = tuple(KINDS if kinds is None else kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds: unknown degradation kinds {unknown}; known: {list(KINDS)}")
    if subset == "clean" and kinds != KINDS:
        raise ValueError("subset 'clean' keeps the joints no degradation covers; it takes no kinds")
    return kinds


def _keep_mask(masks: Mapping[tuple[int, int], np.ndarray], key: tuple[int, int], subset: str) -> np.ndarray:
    degraded = masks.get(key)
    if subset == "degraded":
        return degraded if degraded is not None else np.zeros(POSETRACK.num_joints, dtype=bool)
    return ~degraded if degraded is not None else np.ones(POSETRACK.num_joints, dtype=bool)


def _check_pt18(data: dict, path: Path) -> list[dict]:
    """The ``annotations`` of a PoseTrack18 file whose keypoints are in PoseTrack slot order."""
    if "images" not in data or "annotations" not in data:
        raise PoseTrackFormatError(
            f"{path}: the degraded subset is written as PoseTrack18 files; expected 'images' and 'annotations'"
        )
    categories = data.get("categories") or [{}]
    names = categories[0].get("keypoints") if isinstance(categories[0], dict) else None
    if names is not None and list(names) != list(POSETRACK.joint_names):
        raise PoseTrackFormatError(
            f"{path}: categories[0].keypoints is {names}; the sidecar's joint slots are PoseTrack's "
            f"{list(POSETRACK.joint_names)}"
        )
    return data["annotations"]


def _frame_keys(sidecar: DegradedVideo, images: list[dict], gt_path: Path) -> dict[Any, int]:
    """image id -> frame position; checks the sidecar's frames against the GT's images."""
    ids = [image.get("id") for image in images]
    if sidecar.num_frames != len(ids):
        raise ValueError(f"{sidecar.path}: num_frames is {sidecar.num_frames} but {gt_path} has {len(ids)} images")
    if sidecar.layout != POSETRACK.name:
        raise ValueError(f"{sidecar.path}: layout: expected 'posetrack' for PoseTrack files, got {sidecar.layout!r}")
    for i, e in enumerate(sidecar.entries):
        if ids[e.frame_index] != e.image_id:
            raise ValueError(
                f"{sidecar.path}: degraded[{i}]: image_id {e.image_id} but images[{e.frame_index}].id of "
                f"{gt_path} is {ids[e.frame_index]!r}"
            )
    return {image_id: f for f, image_id in enumerate(ids)}


def _filtered(annotations: list[dict], path: Path, frame_of: Mapping[Any, int],
              masks: Mapping[tuple[int, int], np.ndarray], subset: str, role: str) -> list[dict]:
    """The annotations with the joints outside the subset set to (0, 0, 0); people left empty dropped."""
    out = []
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        track = ann.get("track_id")
        if isinstance(track, bool) or not isinstance(track, int):
            hint = " (detector-box predictions carry no GT track id; score GT-box predictions)"
            hint = hint if role == "pred" else ""
            raise PoseTrackFormatError(f"{where}.track_id: expected an integer, got {track!r}{hint}")
        if ann.get("image_id") not in frame_of:
            raise PoseTrackFormatError(
                f"{where}.image_id: {ann.get('image_id')!r} is not the id of any entry of images"
            )
        keypoints = ann.get("keypoints")
        if not isinstance(keypoints, list) or len(keypoints) != 3 * POSETRACK.num_joints:
            raise PoseTrackFormatError(f"{where}.keypoints: expected {3 * POSETRACK.num_joints} values")
        triplets = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
        keep = _keep_mask(masks, (frame_of[ann["image_id"]], track), subset) & triplets.any(axis=1)
        if not keep.any():
            continue
        triplets[~keep] = 0.0
        ann = {**ann, "keypoints": [float(v) for v in triplets.reshape(-1)]}
        if role == "gt":
            ann["num_keypoints"] = int(keep.sum())
        out.append(ann)
    return out


def filter_posetrack_dirs(
    gt_dir: str | Path,
    pred_dir: str | Path,
    sidecar_dir: str | Path,
    out_dir: str | Path,
    subset: str = "degraded",
    kinds: Collection[str] | None = None,
) -> tuple[Path, Path]:
    """Write the subset of every GT file and its prediction file to ``out_dir/gt`` and ``out_dir/pred``.

    ``sidecar_dir`` holds one sidecar per GT file, same name; ``kinds`` (degraded subset only)
    keeps the joints of some degradation kinds. Returns the two folders.
    """
    kinds = _check_subset(subset, kinds)
    gt_dir, pred_dir, sidecar_dir, out_dir = Path(gt_dir), Path(pred_dir), Path(sidecar_dir), Path(out_dir)
    gt_files = sorted(p for p in gt_dir.glob("*.json") if not p.name.startswith("."))
    if not gt_files:
        raise FileNotFoundError(f"GT directory {gt_dir} holds no *.json files")
    gt_out, pred_out = out_dir / "gt", out_dir / "pred"
    for folder in (gt_out, pred_out):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.json"):
            stale.unlink()
    for gt_path in gt_files:
        pred_path = pred_dir / gt_path.name
        if not pred_path.is_file():
            raise FileNotFoundError(f"{pred_path}: no prediction file for GT file {gt_path}")
        sidecar = read_degraded_file(sidecar_dir / gt_path.name)
        gt = posetrack_map.read_json(gt_path)
        pred = posetrack_map.read_json(pred_path)
        gt_annotations, pred_annotations = _check_pt18(gt, gt_path), _check_pt18(pred, pred_path)
        frame_of = _frame_keys(sidecar, gt["images"], gt_path)
        masks = sidecar.masks(kinds)
        for data, annotations, path, role, folder in (
            (gt, gt_annotations, gt_path, "gt", gt_out),
            (pred, pred_annotations, pred_path, "pred", pred_out),
        ):
            kept = _filtered(annotations, path, frame_of, masks, subset, role)
            (folder / gt_path.name).write_text(json.dumps({**data, "annotations": kept}))
    return gt_out, pred_out


def _gt_joint_counts(gt_dir: Path) -> np.ndarray:
    """(15,) GT joints per poseval joint that the evaluator counts (evaluated frames, ignore regions applied)."""
    counts = np.zeros(POSEVAL.num_joints, dtype=np.int64)
    for path in sorted(gt_dir.glob("*.json")):
        video = posetrack_map.read_video_file(path, "gt")
        people = video.people
        present = people.present & people.usable[:, None]
        for frame, polygons in video.ignore_regions.items():
            rows = np.flatnonzero(people.frame == frame)
            inside = posetrack_map.points_strictly_inside(people.xy[rows].reshape(-1, 2), polygons)
            present[rows] &= ~inside.reshape(len(rows), -1)
        counts += present.sum(axis=0)
    return counts


def _mean_present(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else math.nan


def posetrack_subset_map(
    gt_dir: str | Path,
    pred_dir: str | Path,
    sidecar_dir: str | Path,
    out_dir: str | Path,
    subset: str = "degraded",
    kinds: Collection[str] | None = None,
) -> dict[str, float]:
    """``mAP``, ``AP/<column>`` and counts of one subset (module docstring); filtered files under ``out_dir``."""
    gt_out, pred_out = filter_posetrack_dirs(gt_dir, pred_dir, sidecar_dir, out_dir, subset, kinds)
    result = posetrack_map.evaluate_dirs(gt_out, pred_out)
    n_gt = _gt_joint_counts(gt_out)
    ap = np.where(n_gt > 0, result.ap_per_joint, np.nan)
    metrics = {f"AP/{name}": _mean_present(ap[list(ids)]) for name, ids in _COLUMN_GROUPS.items()}
    metrics["mAP"] = _mean_present(ap)
    metrics.update(n_gt_joints=int(n_gt.sum()), n_gt_people=int(result.counts.gt_people),
                   n_frames_evaluated=int(result.n_frames_evaluated))
    return metrics


def _sidecar_kinds(sidecar_dir: Path) -> list[str]:
    """The kinds that occur in a folder of sidecars, in ``KINDS`` order."""
    seen = {e.kind for path in sorted(sidecar_dir.glob("*.json")) for e in read_degraded_file(path).entries}
    return [k for k in KINDS if k in seen]


def score_degraded_subset(
    gt_dir: str | Path, pred_dir: str | Path, sidecar_dir: str | Path | None = None, out_dir: str | Path | None = None
) -> dict[str, float]:
    """PoseTrack mAP of the degraded joints, of each kind's and of the clean joints.

    Keys ``degraded/mAP``, ``degraded/AP/<column>``, ``degraded/<kind>/mAP``, ``clean/mAP``,
    ``clean/AP/<column>`` and counts ``<subset>/n_gt_joints``, ``n_gt_people``,
    ``n_frames_evaluated``. ``sidecar_dir`` defaults to ``<root>/degraded/<split>`` for
    ``gt_dir = <root>/annotations/<split>``; the filtered files go to ``out_dir/<subset>/``
    (a temporary folder when None).
    """
    sidecar_dir = Path(sidecar_dir) if sidecar_dir is not None else posetrack_sidecar_dir(gt_dir)
    if not sidecar_dir.is_dir():
        raise FileNotFoundError(f"degraded-joint sidecar folder {sidecar_dir} does not exist")
    with contextlib.ExitStack() as stack:
        root = Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        metrics: dict[str, float] = {}
        for key, value in posetrack_subset_map(gt_dir, pred_dir, sidecar_dir, root / "degraded").items():
            metrics[f"degraded/{key}"] = value
        for kind in _sidecar_kinds(sidecar_dir):
            part = posetrack_subset_map(gt_dir, pred_dir, sidecar_dir, root / f"degraded_{kind}", kinds=[kind])
            metrics[f"degraded/{kind}/mAP"] = part["mAP"]
        for key, value in posetrack_subset_map(gt_dir, pred_dir, sidecar_dir, root / "clean", "clean").items():
            metrics[f"clean/{key}"] = value
    return metrics


def jhmdb_subset_pck(
    videos: Sequence[Mapping], masks: Sequence[np.ndarray], split: str = "unspecified"
) -> dict[str, float]:
    """Sub-JHMDB PCK over the joints ``masks[i] (F_i, 15) bool`` of ``videos[i]`` ({name, gt, pred, bbox}).

    Keys ``PCK@<t>/<group>`` (percent) and ``n_joints``. A joint the subset never contains has no
    PCK, and the official ``Avg`` needs all 15: that case is an error naming the joints.
    """
    if len(videos) != len(masks):
        raise ValueError(f"{len(videos)} videos but {len(masks)} joint masks")
    masked = []
    for video, mask in zip(videos, masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(video["gt"]), JHMDB.num_joints):
            raise ValueError(
                f"video {video.get('name')!r}: joint mask of shape {mask.shape}, expected ({len(video['gt'])}, {JHMDB.num_joints})"
            )
        masked.append({**video, "visible": mask.astype(np.float64)})
    per_joint = np.sum([m["visible"].sum(axis=0) for m in masked], axis=0) if masked else np.zeros(JHMDB.num_joints)
    if not np.all(per_joint > 0):
        absent = [JHMDB.joint_names[j] for j in np.flatnonzero(per_joint == 0)]
        raise EmptySubsetError(f"the subset contains no {absent} joint in any frame; their PCK (and Avg) is undefined")
    result = jhmdb_pck.evaluate(masked, split=split, mask_invisible=True)
    metrics = {
        f"PCK@{t:g}/{group}": 100.0 * value for t in jhmdb_pck.THRESHOLDS for group, value in result.groups(t).items()
    }
    metrics["n_joints"] = int(per_joint.sum())
    return metrics


def score_degraded_jhmdb(
    videos: Sequence[Mapping],
    sidecars: Mapping[str, DegradedVideo],
    video_ids: Sequence[str],
    frame_indices: Sequence[Sequence[int]],
    track_ids: Sequence[int] | None = None,
    split: str = "unspecified",
) -> dict[str, float]:
    """``degraded/...`` and ``clean/...`` Sub-JHMDB PCK of ``videos`` whose rows are ``frame_indices`` of ``video_ids``.

    ``track_ids`` default to 0 (one person per Sub-JHMDB clip).
    """
    degraded_masks = []
    for i, (video_id, frames) in enumerate(zip(video_ids, frame_indices, strict=True)):
        if video_id not in sidecars:
            raise KeyError(f"no degraded-joint sidecar for video {video_id!r}")
        masks = sidecars[video_id].masks()
        track = 0 if track_ids is None else int(track_ids[i])
        empty = np.zeros(JHMDB.num_joints, dtype=bool)
        degraded_masks.append(np.stack([masks.get((int(f), track), empty) for f in frames]))
    metrics = {f"degraded/{k}": v for k, v in jhmdb_subset_pck(videos, degraded_masks, split).items()}
    clean = jhmdb_subset_pck(videos, [~m for m in degraded_masks], split)
    metrics.update({f"clean/{k}": v for k, v in clean.items()})
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: PoseTrack mAP of the degraded subset, each kind and the clean joints."""
    parser = argparse.ArgumentParser(
        prog="python -m vidpose.evaluation.degraded_subset", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--gt", required=True, help="GT folder, one PoseTrack18 file per video")
    parser.add_argument("--pred", required=True, help="prediction folder (GT-box predictions with GT track ids)")
    parser.add_argument("--sidecar", default=None, help="sidecar folder (default: <root>/degraded/<split>)")
    parser.add_argument("--out", default=None, help="keep the filtered PoseTrack18 folders here")
    parser.add_argument("--json", default=None, help="write the metrics to this JSON file")
    args = parser.parse_args(argv)
    metrics = score_degraded_subset(args.gt, args.pred, args.sidecar, args.out)
    for key, value in metrics.items():
        print(f"{key:<32}{value:10.2f}" if isinstance(value, float) else f"{key:<32}{value:10d}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
