"""The neighbour oracle of the single-frame ceiling check: each GT joint predicted from its neighbours' GT.

For every GT person in frame ``t`` of a PoseTrack18 GT file, each annotated joint is predicted
as the mean of the same person's (same ``track_id``) joint in frames ``t - 1`` and ``t + 1``
(positions in the file's ``images`` list), score 1; where either neighbour lacks that joint
(first/last frame, person or joint not annotated there) the joint of frame ``t`` itself is
used. It shows what perfect temporal information gives on a degraded key frame: on the degraded
subset it scores near 100, where a single-frame model cannot (docs/data.md, "The degraded preset").
Joints not annotated in frame ``t`` are not predicted.

Command line: ``python -m vidpose.evaluation.neighbour_oracle --gt GT_DIR --out PRED_DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidpose.data.keypoints import POSETRACK
from vidpose.evaluation.posetrack_map import PoseTrackFormatError, read_json
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions

__all__ = ["main", "neighbour_oracle_predictions", "write_neighbour_oracle"]


def _people(path: Path) -> tuple[list, dict[tuple[int, int], np.ndarray]]:
    """The image ids of a PT18 GT file in order and ``(frame position, track_id) -> (17, 3)`` triplets."""
    data = read_json(path)
    if "images" not in data or "annotations" not in data:
        raise PoseTrackFormatError(f"{path}: expected a PoseTrack18 file with 'images' and 'annotations'")
    ids = [image["id"] for image in data["images"]]
    frame_of = {image_id: f for f, image_id in enumerate(ids)}
    people = {}
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if ann.get("image_id") not in frame_of:
            raise PoseTrackFormatError(
                f"{where}.image_id: {ann.get('image_id')!r} is not the id of any entry of images"
            )
        track = ann.get("track_id")
        if isinstance(track, bool) or not isinstance(track, int):
            raise PoseTrackFormatError(f"{where}.track_id: expected an integer, got {track!r}")
        key = (frame_of[ann["image_id"]], track)
        if key in people:
            raise PoseTrackFormatError(f"{where}: track_id {track} occurs twice in image {ann['image_id']}")
        keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if keypoints.shape != (3 * POSETRACK.num_joints,):
            raise PoseTrackFormatError(f"{where}.keypoints: expected {3 * POSETRACK.num_joints} values")
        people[key] = keypoints.reshape(-1, 3)
    return ids, people


def neighbour_oracle_predictions(gt_dir: str | Path) -> list[PosePrediction]:
    """One prediction per GT person of every ``*.json`` in ``gt_dir`` (module docstring), GT track ids kept."""
    files = sorted(p for p in Path(gt_dir).glob("*.json") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"GT directory {gt_dir} holds no *.json files")
    out = []
    for path in files:
        ids, people = _people(path)
        for (frame, track), own in sorted(people.items()):
            annotated = own.any(axis=1)  # PT18: (0, 0, 0) is "no joint"
            xy = own[:, :2].copy()
            before, after = people.get((frame - 1, track)), people.get((frame + 1, track))
            if before is not None and after is not None:
                both = annotated & before.any(axis=1) & after.any(axis=1)
                xy[both] = 0.5 * (before[both, :2] + after[both, :2])
            keypoints = np.zeros((POSETRACK.num_joints, 3))
            keypoints[annotated] = np.concatenate([xy[annotated], np.ones((int(annotated.sum()), 1))], axis=1)
            out.append(PosePrediction(ids[frame], keypoints, 1.0, track))
    return out


def write_neighbour_oracle(gt_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the oracle's PoseTrack18 prediction files (one per GT file) to ``out_dir``; their paths."""
    return write_posetrack18_predictions(neighbour_oracle_predictions(gt_dir), gt_dir, out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the oracle's predictions for a GT folder."""
    parser = argparse.ArgumentParser(prog="python -m vidpose.evaluation.neighbour_oracle",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="GT folder, one PoseTrack18 file per video")
    parser.add_argument("--out", required=True, help="folder for the prediction files")
    args = parser.parse_args(argv)
    paths = write_neighbour_oracle(args.gt, args.out)
    print(f"wrote {len(paths)} oracle prediction files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
