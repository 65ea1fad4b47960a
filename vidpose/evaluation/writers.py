"""Prediction records and the PoseTrack per-video prediction files poseval (and our evaluator) read.

- :func:`write_posetrack18_predictions`: one PoseTrack18-format file per GT file (mmpose style):
  the GT's images (ids and file names) in GT order, 17 PoseTrack keypoint names, per person
  ``keypoints`` triplets (x, y, score), ``scores``, ``score`` (the box score), ``track_id``.
- :func:`write_posetrack17_predictions`: one PoseTrack17 ``annolist`` file per GT file (DCPose
  style): one entry per GT frame, up to 15 points per person with poseval joint ids and scores.

GT files may be PoseTrack18 (image ids read from ``images``) or PoseTrack17 (image ids derived
from the image names by :func:`vidpose.data.posetrack.read_posetrack_file`, the ids the data
index gives its frames). Frames are paired with the GT by position, so every GT frame gets an
entry, with or without predictions.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.data.keypoints import POSETRACK, POSETRACK_TO_POSEVAL
from vidpose.evaluation.posetrack_map import PoseTrackFormatError, read_json

__all__ = ["PosePrediction", "write_posetrack17_predictions", "write_posetrack18_predictions"]


@dataclass
class PosePrediction:
    """One predicted person: ``keypoints (K, 3)`` = (x, y, score) in original image pixels."""

    image_id: Any
    keypoints: np.ndarray
    box_score: float = 1.0
    track_id: int | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 3:
            raise ValueError(
                f"prediction for image {self.image_id!r}: keypoints must be (K, 3) (x, y, score), "
                f"got {self.keypoints.shape}"
            )
        if not np.isfinite(self.keypoints).all():
            raise ValueError(
                f"prediction for image {self.image_id!r}: keypoints contain NaN or inf"
            )
        if not math.isfinite(float(self.box_score)):
            raise ValueError(
                f"prediction for image {self.image_id!r}: box_score {self.box_score!r} "
                "is not finite"
            )


@dataclass
class _GtVideo:
    path: Path
    image_ids: list[Any]
    file_names: list[str]


def _read_gt_videos(gt_dir: Path) -> list[_GtVideo]:
    """The frames (image id, file name) of every GT file in ``gt_dir``, files sorted by name."""
    files = sorted(p for p in Path(gt_dir).glob("*.json") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"GT directory {gt_dir} holds no *.json files")
    videos = []
    for path in files:
        data = read_json(path)
        if "annolist" in data:
            # PT17 frames have no ids in the file; use the ones the data index gives them
            from vidpose.data.posetrack import read_posetrack_file

            record = read_posetrack_file(path)
            if len(record.frames) != len(data["annolist"]):
                raise PoseTrackFormatError(
                    f"{path}: the reader returned {len(record.frames)} frames for "
                    f"{len(data['annolist'])} annolist entries"
                )
            names = [entry["image"][0]["name"] for entry in data["annolist"]]
            videos.append(_GtVideo(path, [f.image_id for f in record.frames], names))
            continue
        images = data.get("images")
        if not isinstance(images, list):
            raise PoseTrackFormatError(
                f"{path}: neither 'images' (PoseTrack18) nor 'annolist' (PoseTrack17)"
            )
        ids, names = [], []
        for i, image in enumerate(images):
            if not isinstance(image, dict) or "id" not in image:
                raise PoseTrackFormatError(f"{path}: images[{i}]: missing field 'id'")
            ids.append(image["id"])
            names.append(image.get("file_name", ""))
        videos.append(_GtVideo(path, ids, names))
    return videos


def _group_by_frame(
    predictions: Iterable[PosePrediction], videos: list[_GtVideo], num_joints: int
) -> dict[Any, list[PosePrediction]]:
    """Predictions per image id (input order kept); unknown image ids raise naming examples."""
    known = {image_id for v in videos for image_id in v.image_ids}
    by_image: dict[Any, list[PosePrediction]] = defaultdict(list)
    unknown = []
    for p in predictions:
        if p.keypoints.shape[0] != num_joints:
            raise ValueError(
                f"prediction for image {p.image_id!r}: expected {num_joints} PoseTrack keypoints, "
                f"got {p.keypoints.shape[0]}"
            )
        if p.image_id not in known:
            unknown.append(p.image_id)
        by_image[p.image_id].append(p)
    if unknown:
        raise ValueError(
            f"{len(unknown)} predictions have image ids that no GT file lists, "
            f"e.g. {sorted(set(unknown), key=str)[:5]}"
        )
    return by_image


def _track_ids(people: Sequence[PosePrediction], image_id: Any) -> list[int]:
    """Given track ids kept (duplicates raise); missing ones get the smallest unused ints."""
    given = [int(p.track_id) for p in people if p.track_id is not None]
    if len(set(given)) != len(given):
        raise ValueError(
            f"image {image_id!r}: duplicate track ids {sorted(given)}; "
            "poseval requires unique track ids within a frame"
        )
    used, free, out = set(given), 0, []
    for p in people:
        if p.track_id is not None:
            out.append(int(p.track_id))
            continue
        while free in used:
            free += 1
        out.append(free)
        used.add(free)
    return out


def _write_json(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
    tmp.replace(path)


def write_posetrack18_predictions(
    predictions: Iterable[PosePrediction], gt_dir: str | Path, out_dir: str | Path
) -> list[Path]:
    """Write one PoseTrack18 prediction file per GT file of ``gt_dir`` into ``out_dir``; paths.

    Each file lists the GT's images (id, file_name) in GT order and, per prediction with 17
    PoseTrack keypoints (K=17, (x, y, score)), ``keypoints`` (51 values), ``scores`` (17),
    ``score`` = box score, ``track_id`` (given, else the smallest unused index in the frame).
    """
    videos = _read_gt_videos(Path(gt_dir))
    by_image = _group_by_frame(predictions, videos, POSETRACK.num_joints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(POSETRACK.joint_names),
    }
    paths = []
    for video in videos:
        images, annotations = [], []
        for image_id, file_name in zip(video.image_ids, video.file_names):
            images.append({"id": image_id, "file_name": file_name})
            people = by_image.get(image_id, [])
            for person, track_id in zip(people, _track_ids(people, image_id)):
                kp = person.keypoints
                annotations.append(
                    {
                        "id": len(annotations),
                        "image_id": image_id,
                        "category_id": 1,
                        "track_id": track_id,
                        "keypoints": [float(v) for v in kp.reshape(-1)],
                        "scores": [float(v) for v in kp[:, 2]],
                        "score": float(person.box_score),
                    }
                )
        path = out_dir / video.path.name
        _write_json({"images": images, "annotations": annotations, "categories": [category]}, path)
        paths.append(path)
    return paths


def write_posetrack17_predictions(
    predictions: Iterable[PosePrediction], gt_dir: str | Path, out_dir: str | Path
) -> list[Path]:
    """Write one PoseTrack17 ``annolist`` prediction file per GT file (DCPose style); paths.

    One entry per GT frame (``image.name`` = the GT file name, ``imgnum`` = 1-based position);
    per person up to 15 points with poseval ids, x, y and score, ``score`` = box score and
    ``track_id``. A keypoint (0, 0, 0) is left out, as it means "no joint" in PoseTrack18 files,
    so both writers give the evaluator the same content.
    """
    videos = _read_gt_videos(Path(gt_dir))
    by_image = _group_by_frame(predictions, videos, POSETRACK.num_joints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slots = [(slot, int(pid)) for slot, pid in enumerate(POSETRACK_TO_POSEVAL) if pid >= 0]
    slots.sort(key=lambda item: item[1])
    paths = []
    for video in videos:
        annolist = []
        for frame, (image_id, file_name) in enumerate(zip(video.image_ids, video.file_names)):
            people = by_image.get(image_id, [])
            rects = []
            for person, track_id in zip(people, _track_ids(people, image_id)):
                kp = person.keypoints
                points = [
                    {
                        "id": [pid],
                        "x": [float(kp[s, 0])],
                        "y": [float(kp[s, 1])],
                        "score": [float(kp[s, 2])],
                    }
                    for s, pid in slots
                    if kp[
                        s
                    ].any()  # (0, 0, 0) is PoseTrack18's "no joint"; PT17 lists only present points
                ]
                rects.append(
                    {
                        "track_id": [track_id],
                        "score": [float(person.box_score)],
                        "annopoints": [{"point": points}],
                    }
                )
            annolist.append(
                {"image": [{"name": file_name}], "imgnum": [frame + 1], "annorect": rects}
            )
        path = out_dir / video.path.name
        _write_json({"annolist": annolist}, path)
        paths.append(path)
    return paths
