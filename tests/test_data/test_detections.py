"""Detector box files: the real PoseTrack18 sample against its annotation index, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vidpose.data.detections import (
    SKIP_BAD_DETECTION_BOX,
    SKIP_NAN_SCORE,
    SKIP_NOT_PERSON,
    detection_instances,
    load_detections,
    skip_below_threshold,
)
from vidpose.data.index import SkipLog
from vidpose.data.posetrack import load_posetrack

DET_FILE = "annotations/test_posetrack18_human_detections.json"


@pytest.fixture(scope="module")
def pt18_index(posetrack18_mini):
    return load_posetrack(posetrack18_mini / "annotations/val", posetrack18_mini, "pt18/val")


def test_real_boxes_match_the_per_video_image_ids(posetrack18_mini, pt18_index):
    # the box file uses the same PT18 ids as the per-video files: 100 + 78 + 100 boxes
    boxes = load_detections(posetrack18_mini / DET_FILE, pt18_index)
    assert {k: len(v) for k, v in boxes.items()} == {
        10034180000: 100,
        10094730000: 78,
        10128340000: 100,
    }
    bbox, score = boxes[10128340000][0]  # the file's first entry
    np.testing.assert_allclose(
        bbox,
        [1475.2755126953125, 2.719658136367798, 96.9671630859375, 252.88242316246033],
        rtol=1e-6,
    )
    assert bbox.dtype == np.float32 and score == pytest.approx(0.9290200471878052)


def test_real_boxes_threshold_is_counted(posetrack18_mini, pt18_index):
    skipped = SkipLog()
    boxes = load_detections(
        posetrack18_mini / DET_FILE, pt18_index, score_threshold=0.2, skipped=skipped
    )
    # 92 of the 278 scores lie below 0.2 (counted by hand with a one-off script over the file)
    assert sum(len(v) for v in boxes.values()) == 278 - 92
    assert skipped.counts == {skip_below_threshold(0.2): 92}
    assert all(score >= 0.2 for v in boxes.values() for _, score in v)


def test_detection_instances(posetrack18_mini, pt18_index):
    boxes = load_detections(posetrack18_mini / DET_FILE, pt18_index, score_threshold=0.5)
    instances = detection_instances(pt18_index, boxes)
    assert len(instances) == sum(len(v) for v in boxes.values())
    # ordered by video: 003418 (video 0), 009473 (1), 012834 (2)
    assert [i.video for i in instances] == sorted(i.video for i in instances)
    assert {i.video for i in instances} == {0, 1, 2}
    first = instances[0]
    assert (first.frame, first.track_id, first.person) == (0, -1, -1)
    assert first.box_score == pytest.approx(boxes[10034180000][0][1])
    np.testing.assert_array_equal(first.bbox_xywh, boxes[10034180000][0][0])


def test_detection_instances_reject_foreign_ids(pt18_index):
    with pytest.raises(
        ValueError, match=r"detections for 1 image ids absent from index 'pt18/val' \(e.g. \[42\]\)"
    ):
        detection_instances(pt18_index, {42: [(np.ones(4, np.float32), 0.9)]})


def write(tmp_path: Path, content) -> Path:
    path = tmp_path / "boxes.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def box(image_id: int = 10034180000, bbox=(10, 20, 30, 40), score: float = 0.9, **extra) -> dict:
    return {"image_id": image_id, "bbox": list(bbox), "score": score, **extra}


def test_foreign_image_ids_are_an_error_naming_examples(tmp_path, pt18_index):
    # e.g. a box file of another split or of a dataset numbered 0..N
    path = write(tmp_path, [box(), box(image_id=1), box(image_id=2), box(image_id=2)])
    with pytest.raises(
        ValueError,
        match=r"3 of 4 boxes have image ids that index 'pt18/val' does not contain "
        r"\(e.g. \[1, 2\]; the index's ids look like \[10034180000",
    ):
        load_detections(path, pt18_index)


SKIPS = [
    ("nan box", box(bbox=(math.nan, 20, 30, 40)), SKIP_BAD_DETECTION_BOX),
    ("zero width", box(bbox=(10, 20, 0, 40)), SKIP_BAD_DETECTION_BOX),
    ("negative height", box(bbox=(10, 20, 30, -4)), SKIP_BAD_DETECTION_BOX),
    ("nan score", box(score=math.nan), SKIP_NAN_SCORE),
    ("other category", box(category_id=3), SKIP_NOT_PERSON),
]


@pytest.mark.parametrize("case,entry,reason", SKIPS, ids=[c[0] for c in SKIPS])
def test_bad_boxes_are_counted_skips(tmp_path, pt18_index, case, entry, reason):
    skipped = SkipLog()
    boxes = load_detections(write(tmp_path, [box(), entry]), pt18_index, skipped=skipped)
    assert len(boxes[10034180000]) == 1
    assert skipped.counts == {reason: 1}


def test_missing_category_means_person(tmp_path, pt18_index):
    boxes = load_detections(write(tmp_path, [box(), box(category_id=1)]), pt18_index)
    assert len(boxes[10034180000]) == 2


ERRORS = [
    ("corrupt", "[{", r"boxes.json: not valid JSON"),
    (
        "not a list",
        {"annotations": []},
        r"boxes.json: top level \(a list of detections\): expected a list, got dict",
    ),
    (
        "missing score",
        [{"image_id": 10034180000, "bbox": [1, 2, 3, 4]}],
        r"boxes.json: \[0\]: missing required field 'score'",
    ),
    ("bbox length", [box(bbox=(1, 2, 3))], r"\[0\]\.bbox: expected 4 numbers, got 3"),
    (
        "image id string",
        [box(image_id="10034180000")],
        r"\[0\]\.image_id: expected an integer, got str",
    ),
    ("score string", [box(score="0.9")], r"\[0\]\.score: expected a number, got str"),
]


@pytest.mark.parametrize("case,content,message", ERRORS, ids=[c[0] for c in ERRORS])
def test_malformed_files_raise(tmp_path, pt18_index, case, content, message):
    with pytest.raises(ValueError, match=message):
        load_detections(write(tmp_path, content), pt18_index)
