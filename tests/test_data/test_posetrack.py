"""PoseTrack17/18/21 readers: real PT18 sample values, format conversion, every bad-input case."""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from vidpose.data.index import SkipLog
from vidpose.data.posetrack import (
    SKIP_BAD_BOX,
    SKIP_BAD_HEAD_BOX,
    SKIP_FAR_OUTSIDE,
    SKIP_NO_BOX,
    SKIP_SMALL_IGNORE_REGION,
    SKIP_UNLABELLED_JOINT,
    box_from_keypoints,
    load_posetrack,
    posetrack17,
    posetrack18,
    posetrack21,
    read_posetrack_file,
)

# PoseTrack18's category keypoint list, copied from the real files.
PT18_NAMES = [
    "nose",
    "head_bottom",
    "head_top",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]


def _triplets(joints: dict[str, tuple[float, float, float]]) -> list[float]:
    out = []
    for name in PT18_NAMES:
        out.extend(joints.get(name, (0, 0, 0)))
    return out


def pt18_data() -> dict:
    """A valid two-frame PT18 video with one person on frame 0."""
    return {
        "categories": [{"id": 1, "name": "person", "keypoints": list(PT18_NAMES)}],
        "images": [
            {
                "id": 10000010000 + i,
                "frame_id": 10000010000 + i,
                "file_name": f"images/val/000001_mpii_test/{i:06d}.jpg",
                "is_labeled": i == 0,
                "width": 1920,
                "height": 1080,
                "ignore_regions_x": [[0, 10, 10]] if i == 0 else [],
                "ignore_regions_y": [[0, 0, 10]] if i == 0 else [],
            }
            for i in range(2)
        ],
        "annotations": [
            {
                "id": 7,
                "image_id": 10000010000,
                "track_id": 3,
                "keypoints": _triplets(
                    {
                        "nose": (100, 50, 1),
                        "head_bottom": (100, 80, 1),
                        "head_top": (100, 20, 1),
                        "left_shoulder": (120, 100, 1),
                        "right_shoulder": (80, 100, 1),
                    }
                ),
                "bbox": [60, 10, 80, 110],
                "bbox_head": [90, 15, 20, 70],
            }
        ],
    }


def write(tmp_path: Path, data, name: str = "000001_mpii_test.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def read(tmp_path: Path, data) -> tuple:
    skipped = SkipLog()
    video = read_posetrack_file(write(tmp_path, data), skipped)
    return video, skipped


# --- the real PoseTrack18 sample ---------------------------------------------------------------


def test_real_sample_index_counts(posetrack18_mini):
    index = load_posetrack(
        posetrack18_mini / "annotations/val", posetrack18_mini, "pt18", check_images=True
    )
    assert [v.video_id for v in index.videos] == [
        "003418_mpii_test",
        "009473_mpii_test",
        "012834_mpii_test",
    ]
    assert [len(v.frames[0].people) for v in index.videos] == [1, 2, 11]
    assert (index.num_frames(), index.num_labeled_frames(), index.num_people()) == (3, 3, 14)
    assert index.skipped.total() == 0
    assert (
        index.describe()
        == "pt18: 3 videos, 3 frames (3 labeled), 14 people; skipped: nothing skipped"
    )


def test_real_sample_person_values(posetrack18_mini):
    video = read_posetrack_file(posetrack18_mini / "annotations/val/003418_mpii_test.json")
    frame = video.frames[0]
    assert (frame.image_id, frame.file_name) == (
        10034180000,
        "images/val/003418_mpii_test/000000.jpg",
    )
    assert (frame.frame_index, frame.is_labeled, frame.width, frame.height) == (0, True, 1920, 1080)
    # 9 ignore polygons; the second has 13 vertices starting at (341, 94)
    assert len(frame.ignore_regions) == 9
    assert frame.ignore_regions[1].shape == (13, 2)
    assert frame.ignore_regions[1][0].tolist() == [341, 94]
    (person,) = frame.people
    assert person.track_id == 0 and person.annotation_id == 1003418000000
    # file triplets: nose (621, 471, 1), head_bottom (542.2835693, 599.2855835, 1),
    # left_wrist (0, 0, 0), right_ankle (0, 0, 0); num_keypoints = 11
    np.testing.assert_allclose(person.keypoints[0], [621, 471])
    np.testing.assert_allclose(person.keypoints[1], [542.2835693, 599.2855835], rtol=1e-6)
    assert person.visible.sum() == 11
    assert person.visible[[3, 4, 9, 13, 15, 16]].tolist() == [0, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(person.bbox_xywh, [214.25, 15.0, 1358.5, 1092.0])
    # bbox_head [346, 337, 296, 237] -> corners (346, 337), (346 + 296, 337 + 237)
    np.testing.assert_allclose(person.head_box_xyxy, [346, 337, 642, 574])


def test_real_sample_joints_slightly_outside_frame_are_kept(posetrack18_mini):
    video = read_posetrack_file(posetrack18_mini / "annotations/val/012834_mpii_test.json")
    person = video.frames[0].people[10]
    # head_top of track 10 is annotated at y = -24.93852425, above the frame; its box starts at y<0
    assert person.track_id == 10
    np.testing.assert_allclose(person.keypoints[2], [424.0380249, -24.93852425], rtol=1e-6)
    assert person.visible[0] == 0 and person.visible.sum() == 14
    assert person.bbox_xywh[1] == pytest.approx(-54.6293029)


def test_box_from_keypoints_reproduces_the_official_pt18_boxes(posetrack18_mini):
    # PoseTrack18 ships boxes; recomputing them from the visible joints must give the same numbers
    for path in sorted((posetrack18_mini / "annotations/val").glob("*.json")):
        for person in read_posetrack_file(path).frames[0].people:
            np.testing.assert_allclose(
                box_from_keypoints(person.keypoints, person.visible), person.bbox_xywh, atol=1e-3
            )


def test_missing_bbox_is_derived_like_the_official_box(posetrack18_mini, tmp_path):
    data = json.loads((posetrack18_mini / "annotations/val/009473_mpii_test.json").read_text())
    for ann in data["annotations"]:
        del ann["bbox"]
    video, _ = read(tmp_path, data)
    np.testing.assert_allclose(
        video.frames[0].people[0].bbox_xywh, [631.5, 167.7714676, 351.0, 751.4322540], rtol=1e-6
    )


def test_factories_use_the_documented_layouts(posetrack18_mini, tmp_path):
    assert posetrack18(str(posetrack18_mini), "val").num_people() == 14
    pt21_root = tmp_path / "pt21"
    (pt21_root / "posetrack_data/val").mkdir(parents=True)
    write(pt21_root / "posetrack_data/val", pt18_data())
    index = posetrack21(str(pt21_root), "val")
    assert index.name == "posetrack21/val" and index.image_root == str(pt21_root)
    pt17_root = tmp_path / "pt17"
    (pt17_root / "posetrack_data/annotations/val").mkdir(parents=True)
    write(pt17_root / "posetrack_data/annotations/val", pt17_data(), "000342_mpii.json")
    index = posetrack17(str(pt17_root), "val")
    assert index.image_root == str(pt17_root / "posetrack_data") and index.num_people() == 1


def test_registered_in_datasets(posetrack18_mini):
    pytest.importorskip(
        "vidpose.data.synthetic", reason="DATASETS imports every built-in data module"
    )
    from vidpose.registry import DATASETS

    index = DATASETS.build({"name": "posetrack18", "root": str(posetrack18_mini), "split": "val"})
    assert index.num_people() == 14
    assert {"posetrack17", "posetrack18", "posetrack21"} <= set(DATASETS.names())


def test_check_images_reports_missing_frames(posetrack18_mini, tmp_path):
    ann_dir = tmp_path / "val"
    ann_dir.mkdir()
    shutil.copy(posetrack18_mini / "annotations/val/003418_mpii_test.json", ann_dir)
    with pytest.raises(
        FileNotFoundError, match=r"1 of 1 frames are missing.*003418_mpii_test/000000.jpg"
    ):
        load_posetrack(ann_dir, tmp_path, "pt18", check_images=True)
    assert load_posetrack(ann_dir, tmp_path, "pt18").num_frames() == 1  # off by default


# --- conversions on hand-written files ---------------------------------------------------------


def test_pt18_video_frames_and_people(tmp_path):
    video, skipped = read(tmp_path, pt18_data())
    assert video.video_id == "000001_mpii_test" and len(video) == 2
    assert [f.frame_index for f in video.frames] == [0, 1]
    assert [f.is_labeled for f in video.frames] == [True, False]
    assert [len(f.people) for f in video.frames] == [1, 0]
    person = video.frames[0].people[0]
    assert person.keypoints[6].tolist() == [80, 100]  # right_shoulder
    assert person.visible.tolist() == [1, 1, 1, 0, 0, 1, 1] + [0] * 10
    assert person.head_box_xyxy.tolist() == [90, 15, 110, 85]
    assert skipped.total() == 0


def test_keypoints_are_mapped_by_name_not_position(tmp_path):
    data = pt18_data()
    order = list(reversed(PT18_NAMES))
    data["categories"][0]["keypoints"] = order
    data["annotations"][0]["keypoints"] = [0, 0, 0] * 16 + [5, 6, 1]  # last name of `order` is nose
    video, _ = read(tmp_path, data)
    person = video.frames[0].people[0]
    assert person.keypoints[0].tolist() == [5, 6] and person.visible.sum() == 1


def test_fifteen_name_category_leaves_ears_empty(tmp_path):
    data = pt18_data()
    names = [n for n in PT18_NAMES if not n.endswith("_ear")]
    data["categories"][0]["keypoints"] = names
    data["annotations"][0]["keypoints"] = [10, 20, 1] * 15
    person = read(tmp_path, data)[0].frames[0].people[0]
    assert person.visible.tolist() == [1, 1, 1, 0, 0] + [1] * 12


def test_visibility_zero_with_coordinates_is_not_a_training_joint(tmp_path):
    data = pt18_data()
    kp = data["annotations"][0]["keypoints"]
    kp[9 * 3 : 9 * 3 + 3] = [130, 140, 0]  # left_wrist annotated position, visibility 0
    video, skipped = read(tmp_path, data)
    person = video.frames[0].people[0]
    assert person.visible[9] == 0 and person.keypoints[9].tolist() == [0, 0]
    assert skipped.counts[SKIP_UNLABELLED_JOINT] == 1


def test_pt21_box_only_person_on_unlabeled_frame_is_kept_without_joints(tmp_path):
    data = pt18_data()
    data["annotations"].append(
        {"image_id": 10000010001, "track_id": 5, "keypoints": [0] * 51, "bbox": [10, 20, 30, 40]}
    )
    video, skipped = read(tmp_path, data)
    frame = video.frames[1]
    assert not frame.is_labeled and len(frame.people) == 1
    assert frame.people[0].visible.sum() == 0 and frame.people[0].bbox_xywh.tolist() == [
        10,
        20,
        30,
        40,
    ]
    assert skipped.total() == 0
    ann_dir = tmp_path
    index = load_posetrack(ann_dir, tmp_path, "pt21")
    assert (
        len(index.gt_instances(min_visible=1)) == 1 and len(index.gt_instances(min_visible=0)) == 2
    )


def test_missing_is_labeled_means_frame_has_people(tmp_path):
    data = pt18_data()
    for image in data["images"]:
        del image["is_labeled"]
    video, _ = read(tmp_path, data)
    assert [f.is_labeled for f in video.frames] == [True, False]


def test_temporal_order_from_file_names_without_frame_id(tmp_path):
    data = pt18_data()
    for image in data["images"]:
        del image["frame_id"]
    data["images"].reverse()
    with pytest.raises(
        ValueError, match=r"not in temporal order: frame number 1 \(.*000001.jpg\) is followed by 0"
    ):
        read(tmp_path, data)


def test_read_without_skiplog_warns(tmp_path, caplog):
    data = pt18_data()
    data["annotations"][0]["bbox"] = [0, 0, 0, 10]
    with caplog.at_level(logging.WARNING, logger="vidpose.data.posetrack"):
        read_posetrack_file(write(tmp_path, data))
    assert SKIP_BAD_BOX in caplog.text


# --- PoseTrack17 -------------------------------------------------------------------------------


def _pt17_point(pid: int, x: float, y: float) -> dict:
    return {"id": [pid], "x": [x], "y": [y], "is_visible": [1]}


def pt17_data() -> dict:
    """Two PT17 annolist frames; one person with nose (13), right_ankle (0), left_shoulder (9)."""
    return {
        "annolist": [
            {
                "image": [{"name": "images/bonn_5sec/000342_mpii/00000001.jpg"}],
                "imgnum": [1],
                "is_labeled": [1],
                "ignore_regions": [
                    {"point": [{"x": [0], "y": [0]}, {"x": [50], "y": [0]}, {"x": [50], "y": [40]}]}
                ],
                "annorect": [
                    {
                        "track_id": [4],
                        "x1": [90],
                        "y1": [30],
                        "x2": [110],
                        "y2": [60],
                        "annopoints": [
                            {
                                "point": [
                                    _pt17_point(13, 100, 40),
                                    _pt17_point(0, 90, 240),
                                    _pt17_point(9, 120, 80),
                                ]
                            }
                        ],
                    }
                ],
            },
            {
                "image": [{"name": "images/bonn_5sec/000342_mpii/00000002.jpg"}],
                "imgnum": [2],
                "is_labeled": [0],
                "annorect": [],
            },
        ]
    }


def test_pt17_conversion(tmp_path):
    video, skipped = read(tmp_path, pt17_data())
    assert len(video) == 2 and skipped.total() == 0
    first, second = video.frames
    # poseval's id scheme: 1 (mpii) * 1e10 + 342 * 1e4 + frame number 1
    assert (first.image_id, second.image_id) == (10003420001, 10003420002)
    assert (first.is_labeled, second.is_labeled) == (True, False)
    assert first.ignore_regions[0].tolist() == [[0, 0], [50, 0], [50, 40]]
    (person,) = first.people
    assert person.track_id == 4
    assert person.keypoints[0].tolist() == [100, 40]  # poseval 13 nose -> slot 0
    assert person.keypoints[16].tolist() == [90, 240]  # poseval 0 right_ankle -> slot 16
    assert person.keypoints[5].tolist() == [120, 80]  # poseval 9 left_shoulder -> slot 5
    assert person.visible.sum() == 3 and person.visible[3] == 0 and person.visible[4] == 0
    assert person.head_box_xyxy.tolist() == [90, 30, 110, 60]
    # no PT17 person box: joint extent x 90..120, y 40..240, x1.3 about centre (105, 140): 39 x 260
    np.testing.assert_allclose(person.bbox_xywh, [85.5, 10, 39, 260])


def _pt17_point_list(data: dict) -> list:
    return data["annolist"][0]["annorect"][0]["annopoints"][0]["point"]


PT17_ERRORS = [
    (
        "unknown joint id",
        lambda d: _pt17_point_list(d).append(_pt17_point(15, 1, 1)),
        r"unknown PoseTrack17 joint id 15",
    ),
    (
        "duplicate joint",
        lambda d: _pt17_point_list(d).append(_pt17_point(13, 1, 1)),
        r"joint id 13 appears twice",
    ),
    (
        "nan joint",
        lambda d: _pt17_point_list(d)[0].update(x=[math.nan]),
        r"'nose' is marked visible but has non-finite",
    ),
    (
        "bad folder",
        lambda d: d["annolist"][0]["image"][0].update(name="images/clipA/00000001.jpg"),
        r"cannot derive an image id from folder 'clipA'",
    ),
    (
        "partial head box",
        lambda d: d["annolist"][0]["annorect"][0].pop("y2"),
        r"head box needs all of x1, y1, x2, y2",
    ),
    (
        "missing track id",
        lambda d: d["annolist"][0]["annorect"][0].pop("track_id"),
        r"annorect\[0\]: missing required field 'track_id'",
    ),
    (
        "two-valued scalar",
        lambda d: d["annolist"][0]["annorect"][0].update(track_id=[1, 2]),
        r"expected one value",
    ),
    ("order", lambda d: d["annolist"].reverse(), r"not in temporal order: image id 10003420002"),
    ("empty", lambda d: d.update(annolist=[]), r"'annolist' is empty"),
]


@pytest.mark.parametrize("case,mutate,message", PT17_ERRORS, ids=[c[0] for c in PT17_ERRORS])
def test_pt17_bad_input_raises(tmp_path, case, mutate, message):
    data = pt17_data()
    mutate(data)
    with pytest.raises(ValueError, match=message) as info:
        read(tmp_path, data)
    assert "000001_mpii_test.json" in str(info.value)  # the file is named


# --- PoseTrack18 bad input ---------------------------------------------------------------------


def _kp(d: dict) -> list:
    return d["annotations"][0]["keypoints"]


WHOLE_FILE_ERRORS = [
    ("corrupt json", "{not json", r"not valid JSON .*corrupt or truncated"),
    ("top-level list", [pt18_data()], r"expected a JSON object with 'annolist'"),
    ("unknown format", {"frames": []}, r"neither 'annolist' \(PoseTrack17\) nor 'images'"),
]


@pytest.mark.parametrize(
    "case,content,message", WHOLE_FILE_ERRORS, ids=[c[0] for c in WHOLE_FILE_ERRORS]
)
def test_unreadable_file_raises(tmp_path, case, content, message):
    with pytest.raises(ValueError, match=message) as info:
        read(tmp_path, content)
    assert "000001_mpii_test.json" in str(info.value)


PT18_ERRORS = [
    ("missing images", lambda d: d.pop("images"), r"missing required field 'images'"),
    ("missing categories", lambda d: d.pop("categories"), r"missing required field 'categories'"),
    (
        "images not a list",
        lambda d: d.update(images={"id": 1}),
        r"images: expected a list, got dict",
    ),
    (
        "missing image id",
        lambda d: d["images"][0].pop("id"),
        r"images\[0\]: missing required field 'id'",
    ),
    (
        "image id string",
        lambda d: d["images"][0].update(id="10000010000"),
        r"images\[0\]\.id: expected an integer, got str",
    ),
    (
        "missing file name",
        lambda d: d["images"][1].pop("file_name"),
        r"images\[1\]: missing required field 'file_name'",
    ),
    (
        "is_labeled string",
        lambda d: d["images"][0].update(is_labeled="yes"),
        r"images\[0\]\.is_labeled: expected true/false",
    ),
    (
        "negative width",
        lambda d: d["images"][0].update(width=-5),
        r"images\[0\]\.width: expected a positive integer",
    ),
    (
        "missing keypoints",
        lambda d: d["annotations"][0].pop("keypoints"),
        r"annotations\[0\]: missing required field 'keypoints'",
    ),
    (
        "missing track id",
        lambda d: d["annotations"][0].pop("track_id"),
        r"annotations\[0\]: missing required field 'track_id'",
    ),
    (
        "short keypoints",
        lambda d: _kp(d).pop(),
        r"annotations\[0\]\.keypoints: expected 51 numbers, got 50",
    ),
    (
        "keypoint string",
        lambda d: _kp(d).__setitem__(4, "80"),
        r"annotations\[0\]\.keypoints\[4\]: expected a number, got str",
    ),
    (
        "keypoints null",
        lambda d: d["annotations"][0].update(keypoints=None),
        r"keypoints: expected a list, got NoneType",
    ),
    (
        "nan visible joint",
        lambda d: _kp(d).__setitem__(0, math.nan),
        r"joint 'nose' is marked visible but has non-finite",
    ),
    (
        "nan visibility",
        lambda d: _kp(d).__setitem__(2, math.nan),
        r"visibility values must be finite",
    ),
    (
        "bbox length",
        lambda d: d["annotations"][0].update(bbox=[1, 2, 3]),
        r"annotations\[0\]\.bbox: expected 4 numbers, got 3",
    ),
    (
        "bbox string",
        lambda d: d["annotations"][0].update(bbox="60 10 80 110"),
        r"annotations\[0\]\.bbox: expected a list",
    ),
    (
        "duplicate image id",
        lambda d: d["images"][1].update(id=10000010000),
        r"images\[1\]: duplicate image id 10000010000",
    ),
    (
        "unknown image id",
        lambda d: d["annotations"][0].update(image_id=123),
        r"1 annotations reference image ids not listed in 'images' \(e.g. \[123\]\)",
    ),
    ("empty video", lambda d: d.update(images=[], annotations=[]), r"'images' is empty"),
    (
        "frame ids decrease",
        lambda d: d["images"][1].update(frame_id=10000009999),
        r"not in temporal order: frame_id 10000010000",
    ),
    (
        "two folders",
        lambda d: d["images"][1].update(file_name="images/val/000002_mpii_test/000001.jpg"),
        r"one file must hold one video",
    ),
    (
        "unknown joint name",
        lambda d: d["categories"][0]["keypoints"].__setitem__(3, "left_eye"),
        r"unknown joint names \['left_eye'\]",
    ),
    (
        "missing poseval joint",
        lambda d: d["categories"][0]["keypoints"].remove("head_top"),
        r"joints \['head_top'\] are missing",
    ),
    (
        "no person category",
        lambda d: d["categories"][0].update(name="human"),
        r"exactly one category named 'person', found 0",
    ),
    (
        "ignore regions mismatch",
        lambda d: d["images"][0]["ignore_regions_y"].append([1, 2, 3]),
        r"1 ignore_regions_x polygons but 2 ignore_regions_y",
    ),
    (
        "ignore polygon mismatch",
        lambda d: d["images"][0]["ignore_regions_y"][0].pop(),
        r"ignore_regions_y\[0\]: expected 3 numbers, got 2",
    ),
]


@pytest.mark.parametrize("case,mutate,message", PT18_ERRORS, ids=[c[0] for c in PT18_ERRORS])
def test_pt18_bad_input_raises(tmp_path, case, mutate, message):
    data = pt18_data()
    mutate(data)
    with pytest.raises(ValueError, match=message) as info:
        read(tmp_path, data)
    assert "000001_mpii_test.json" in str(info.value)


def test_truncated_real_file_raises(posetrack18_mini, tmp_path):
    text = (posetrack18_mini / "annotations/val/009473_mpii_test.json").read_text()
    with pytest.raises(ValueError, match=r"009473_mpii_test.json: not valid JSON"):
        read_posetrack_file(write(tmp_path, text[: len(text) // 2], "009473_mpii_test.json"))


PT18_SKIPS = [
    ("nan bbox", lambda d: d["annotations"][0].update(bbox=[math.nan, 10, 80, 110]), SKIP_BAD_BOX),
    ("zero-width bbox", lambda d: d["annotations"][0].update(bbox=[60, 10, 0, 110]), SKIP_BAD_BOX),
    (
        "negative-height bbox",
        lambda d: d["annotations"][0].update(bbox=[60, 10, 80, -1]),
        SKIP_BAD_BOX,
    ),
    (
        "no bbox, one joint",
        lambda d: (
            d["annotations"][0].pop("bbox"),
            d["annotations"][0].update(keypoints=_triplets({"nose": (5, 5, 1)})),
        ),
        SKIP_NO_BOX,
    ),
    (
        "no bbox, no joints",
        lambda d: (d["annotations"][0].pop("bbox"), d["annotations"][0].update(keypoints=[0] * 51)),
        SKIP_NO_BOX,
    ),
    ("joint far right", lambda d: _kp(d).__setitem__(0, 1920 * 1.5 + 1), SKIP_FAR_OUTSIDE),
    ("joint far above", lambda d: _kp(d).__setitem__(1, -1080 * 0.5 - 1), SKIP_FAR_OUTSIDE),
]


@pytest.mark.parametrize("case,mutate,reason", PT18_SKIPS, ids=[c[0] for c in PT18_SKIPS])
def test_pt18_documented_skips_are_counted(tmp_path, case, mutate, reason):
    data = pt18_data()
    mutate(data)
    video, skipped = read(tmp_path, data)
    assert video.frames[0].people == []
    assert skipped.counts == {reason: 1}
    assert "image 10000010000 track 3" in skipped.examples[reason][0]


def test_joint_just_inside_the_margin_is_kept(tmp_path):
    data = pt18_data()
    _kp(data)[0] = 1920 * 1.5  # exactly on the allowed limit
    video, skipped = read(tmp_path, data)
    assert len(video.frames[0].people) == 1 and skipped.total() == 0


def test_bad_head_box_is_dropped_and_counted(tmp_path):
    data = pt18_data()
    data["annotations"][0]["bbox_head"] = [90, 15, 0, 70]
    video, skipped = read(tmp_path, data)
    assert video.frames[0].people[0].head_box_xyxy is None
    assert skipped.counts == {SKIP_BAD_HEAD_BOX: 1}


def test_small_ignore_region_is_skipped_and_counted(tmp_path):
    data = pt18_data()
    data["images"][0]["ignore_regions_x"].append([1, 2])
    data["images"][0]["ignore_regions_y"].append([1, 2])
    video, skipped = read(tmp_path, data)
    assert len(video.frames[0].ignore_regions) == 1
    assert skipped.counts == {SKIP_SMALL_IGNORE_REGION: 1}


# --- directories -------------------------------------------------------------------------------


def test_load_posetrack_needs_json_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no \*\.json annotation files in"):
        load_posetrack(tmp_path, tmp_path, "pt18")
    with pytest.raises(FileNotFoundError, match=r"annotation folder .*absent.* does not exist"):
        load_posetrack(tmp_path / "absent", tmp_path, "pt18")


def test_duplicate_image_ids_across_files_raise(tmp_path):
    write(tmp_path, pt18_data(), "a.json")
    write(tmp_path, copy.deepcopy(pt18_data()), "b.json")
    with pytest.raises(
        ValueError, match=r"image id 10000010000 appears in both .*a.json and .*b.json"
    ):
        load_posetrack(tmp_path, tmp_path, "pt18")


def test_files_are_read_in_name_order(tmp_path):
    second = pt18_data()
    for i, image in enumerate(second["images"]):
        image["id"] = image["frame_id"] = 10000020000 + i
    second["annotations"][0]["image_id"] = 10000020000
    write(tmp_path, second, "b.json")
    write(tmp_path, pt18_data(), "a.json")
    index = load_posetrack(tmp_path, tmp_path, "pt18")
    assert [v.video_id for v in index.videos] == ["a", "b"]
    assert index.videos[1].frames[0].image_id == 10000020000
