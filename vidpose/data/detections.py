"""Detector person boxes (COCO results format) -> per-frame boxes and validation instances.

A detection file is a JSON list of ``{"image_id": int, "bbox": [x, y, w, h], "score": float,
"category_id": int (optional)}`` in 0-based image pixels, the format of the box files DCPose and
mmpose ship for PoseTrack. Image ids must be those of the annotation files the index was read
from; an id the index does not know is an error (never a silently empty frame).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vidpose.data.index import Instance, SkipLog, VideoPoseIndex
from vidpose.data.posetrack import as_int, as_list, as_number, as_numbers, get_field, load_json_file

__all__ = [
    "SKIP_BAD_DETECTION_BOX",
    "SKIP_NAN_SCORE",
    "SKIP_NOT_PERSON",
    "detection_instances",
    "load_detections",
    "skip_below_threshold",
]

logger = logging.getLogger(__name__)

PERSON_CATEGORY_ID = 1
SKIP_BAD_DETECTION_BOX = "detection box NaN or with non-positive width/height"
SKIP_NAN_SCORE = "detection score NaN"
SKIP_NOT_PERSON = "detection category_id is not 1 (person)"


def skip_below_threshold(score_threshold: float) -> str:
    """The SkipLog reason under which boxes scored below ``score_threshold`` are counted."""
    return f"detection score below threshold {score_threshold:g}"


def load_detections(
    path: str | Path,
    index: VideoPoseIndex,
    score_threshold: float = 0.0,
    skipped: SkipLog | None = None,
) -> dict[int, list[tuple[np.ndarray, float]]]:
    """COCO-results box file -> image id: ``[(bbox_xywh (4,) float32, score), ...]`` in file order.

    A box is kept iff its score is ``>= score_threshold``. Boxes with NaN or non-positive size,
    NaN scores or a category other than person are counted skips; the counts (and the number
    dropped by the threshold) go to ``skipped`` and to the log. An image id absent from
    ``index`` raises ValueError naming examples and how many boxes have such ids.
    """
    path = Path(path)
    log = skipped if skipped is not None else SkipLog()
    entries = as_list(load_json_file(path), f"{path}: top level (a list of detections)")
    known_ids = {frame.image_id for video in index.videos for frame in video.frames}
    below = skip_below_threshold(score_threshold)
    num_below = 0
    unknown: list[int] = []
    boxes: dict[int, list[tuple[np.ndarray, float]]] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: [{i}]"
        image_id = as_int(get_field(entry, "image_id", where), f"{where}.image_id")
        bbox = as_numbers(get_field(entry, "bbox", where), f"{where}.bbox", 4)
        score = as_number(get_field(entry, "score", where), f"{where}.score")
        if image_id not in known_ids:
            unknown.append(image_id)
            continue
        label = f"image {image_id} box {i}"
        category = entry.get("category_id")
        if category is not None and as_int(category, f"{where}.category_id") != PERSON_CATEGORY_ID:
            log.add(SKIP_NOT_PERSON, label)
        elif not np.isfinite(bbox).all() or bbox[2] <= 0 or bbox[3] <= 0:
            log.add(SKIP_BAD_DETECTION_BOX, label)
        elif np.isnan(score):
            log.add(SKIP_NAN_SCORE, label)
        elif score < score_threshold:
            log.add(below, label)
            num_below += 1
        else:
            boxes.setdefault(image_id, []).append((bbox.astype(np.float32), score))
    if unknown:
        raise ValueError(
            f"{path}: {len(unknown)} of {len(entries)} boxes have image ids that index "
            f"{index.name!r} does not contain (e.g. {sorted(set(unknown))[:3]}; the index's ids "
            f"look like {sorted(known_ids)[:3]}); the box file belongs to another split or uses "
            "another image id scheme"
        )
    kept = sum(len(v) for v in boxes.values())
    logger.info(
        "%s: kept %d of %d boxes on %d frames (%d below score %g); skipped so far: %s",
        path,
        kept,
        len(entries),
        len(boxes),
        num_below,
        score_threshold,
        log.summary(),
    )
    return boxes


def detection_instances(
    index: VideoPoseIndex, detections: dict[int, list[tuple[np.ndarray, float]]]
) -> list[Instance]:
    """One Instance per detector box, ordered by video and frame; ``track_id``, ``person`` -1."""
    location = {
        frame.image_id: (vi, fi)
        for vi, video in enumerate(index.videos)
        for fi, frame in enumerate(video.frames)
    }
    unknown = sorted(set(detections) - set(location))
    if unknown:
        raise ValueError(
            f"detections for {len(unknown)} image ids absent from index {index.name!r} "
            f"(e.g. {unknown[:3]})"
        )
    instances = []
    for image_id in sorted(detections, key=location.__getitem__):
        vi, fi = location[image_id]
        for bbox, score in detections[image_id]:
            instances.append(Instance(video=vi, frame=fi, bbox_xywh=bbox, box_score=float(score)))
    return instances
