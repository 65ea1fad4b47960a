"""Sub-JHMDB readers: a raw layout built here, the real MMPose COCO-style sample, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from vidpose.data.jhmdb import (
    SKIP_EMPTY_MASK,
    SKIP_INCOMPLETE_VIDEO,
    SKIP_NO_MASK,
    jhmdb,
    load_jhmdb_coco,
    load_jhmdb_raw,
    read_split_file,
)
from vidpose.data.posetrack import SKIP_BAD_BOX

W, H = 40, 30  # tiny frames


def pos_img_for(num_frames: int) -> np.ndarray:
    """(2, 15, T) 1-based: joint j of frame t at x = 6 + j + t, y = 4 + j."""
    j = np.arange(15)[:, None]
    t = np.arange(num_frames)[None, :]
    return np.stack([6.0 + j + t, np.broadcast_to(4.0 + j, (15, num_frames))]).astype(np.float64)


def write_clip(
    root: Path,
    class_name: str,
    clip: str,
    num_frames: int,
    masks: np.ndarray | None = None,
    pos_img: np.ndarray | None = None,
) -> None:
    joints_dir = root / "joint_positions" / class_name / clip
    joints_dir.mkdir(parents=True)
    scipy.io.savemat(
        joints_dir / "joint_positions.mat",
        {"pos_img": pos_img if pos_img is not None else pos_img_for(num_frames)},
    )
    frames_dir = root / "Rename_Images" / class_name / clip
    frames_dir.mkdir(parents=True)
    for n in range(1, num_frames + 1):
        cv2.imwrite(str(frames_dir / f"{n:05d}.png"), np.zeros((H, W, 3), np.uint8))
    if masks is not None:
        mask_dir = root / "puppet_mask" / class_name / clip
        mask_dir.mkdir(parents=True)
        scipy.io.savemat(mask_dir / "puppet_mask.mat", {"part_mask": masks})


def clip_a_masks() -> np.ndarray:
    """Frame t (0, 1) covers rows 2..20 and columns 3+t..25; frame 2 is empty."""
    masks = np.zeros((H, W, 3), np.uint8)
    for t in range(2):
        masks[2:21, 3 + t : 26, t] = 1
    return masks


@pytest.fixture
def raw_root(tmp_path: Path) -> Path:
    """catch/clipA (3 frames, mask), kick_ball/clipB (2 frames, no mask); three split files each."""
    root = tmp_path / "jhmdb"
    write_clip(root, "catch", "clipA", 3, clip_a_masks())
    write_clip(root, "kick_ball", "clipB", 2)
    splits = root / "sub_splits"
    splits.mkdir()
    for k, (flag_a, flag_b) in enumerate([(2, 1), (1, 2), (2, 2)], start=1):
        (splits / f"catch_test_split_{k}.txt").write_text(f"clipA.avi {flag_a}\n")
        (splits / f"kick_ball_test_split_{k}.txt").write_text(f"clipB.avi {flag_b}\n\n")
    return root


# --- raw layout --------------------------------------------------------------------------------


def test_raw_split1_test_values(raw_root):
    index = load_jhmdb_raw(raw_root, "test", "split1")
    assert index.name == "jhmdb/split1/test" and index.layout.name == "jhmdb"
    assert index.image_root == str(raw_root / "Rename_Images")
    (video,) = index.videos
    assert video.video_id == "clipA" and len(video) == 3
    frame = video.frames[1]
    assert (frame.image_id, frame.file_name, frame.frame_index) == (
        10002,
        "catch/clipA/00002.png",
        1,
    )
    assert (frame.width, frame.height, frame.is_labeled) == (W, H, True)
    (person,) = frame.people
    # 1-based (6 + j + t, 4 + j) -> 0-based (5 + j + t, 3 + j); t = 1
    assert person.keypoints[0].tolist() == [6, 3] and person.keypoints[14].tolist() == [20, 17]
    assert person.visible.tolist() == [1] * 15 and person.track_id == 0
    # mask columns 4..25, rows 2..20 -> [x1, y1, x2 - x1, y2 - y1]
    assert person.bbox_xywh.tolist() == [4, 2, 21, 18]
    # frame 2 has an empty mask: joints x 7..21, y 3..17, margin 0.1 * 14 = 1.4 on each side
    np.testing.assert_allclose(
        video.frames[2].people[0].bbox_xywh, [5.6, 1.6, 16.8, 16.8], rtol=1e-6
    )
    assert index.skipped.counts == {SKIP_EMPTY_MASK: 1}


def test_raw_train_list_and_missing_mask(raw_root):
    index = load_jhmdb_raw(raw_root, "train", "split1")
    (video,) = index.videos
    assert video.video_id == "clipB" and len(video) == 2
    # no mask: frame 0 joints x 5..19, y 3..17 (0-based), margin 1.4
    np.testing.assert_allclose(
        video.frames[0].people[0].bbox_xywh, [3.6, 1.6, 16.8, 16.8], rtol=1e-6
    )
    assert index.skipped.counts == {SKIP_NO_MASK: 1}


def test_val_is_the_test_list(raw_root):
    assert [v.video_id for v in load_jhmdb_raw(raw_root, "val", "split2").videos] == ["clipB"]


def test_union_counts_a_clip_once_per_split(raw_root):
    index = load_jhmdb_raw(raw_root, "test", "union")
    # test lists: split1 {clipA}, split2 {clipB}, split3 {clipA, clipB}
    assert [v.video_id for v in index.videos] == [
        "clipA@split1",
        "clipB@split2",
        "clipA@split3",
        "clipB@split3",
    ]
    ids = [f.image_id for v in index.videos for f in v.frames]
    assert len(set(ids)) == len(ids) == 3 + 2 + 3 + 2
    assert index.videos[2].frames[0].image_id == 30001  # third video, frame 1
    np.testing.assert_array_equal(
        index.videos[0].frames[0].people[0].keypoints, index.videos[2].frames[0].people[0].keypoints
    )


def test_one_frame_clip(tmp_path):
    root = tmp_path / "jhmdb"
    write_clip(root, "pick", "solo", 1)
    (root / "sub_splits").mkdir()
    (root / "sub_splits" / "pick_test_split_1.txt").write_text("solo.avi 2\n")
    index = load_jhmdb_raw(root, "test", "split1")
    assert index.num_frames() == 1
    assert index.videos[0].frames[0].people[0].keypoints[3].tolist() == [8, 6]  # (6 + 3, 4 + 3) - 1


def test_raw_factory_and_registry(raw_root):
    assert jhmdb(str(raw_root), "test").videos[0].video_id == "clipA"
    pytest.importorskip(
        "vidpose.data.synthetic", reason="DATASETS imports every built-in data module"
    )
    from vidpose.registry import DATASETS

    index = DATASETS.build(
        {"name": "jhmdb", "root": str(raw_root), "split": "test", "protocol": "union"}
    )
    assert len(index.videos) == 4


def _break_png_count(root: Path) -> None:
    (root / "Rename_Images/catch/clipA/00003.png").unlink()


def _break_shape(root: Path) -> None:
    scipy.io.savemat(
        root / "joint_positions/catch/clipA/joint_positions.mat", {"pos_img": np.ones((2, 14, 3))}
    )


def _break_empty(root: Path) -> None:
    scipy.io.savemat(
        root / "joint_positions/catch/clipA/joint_positions.mat", {"pos_img": np.ones((2, 15, 0))}
    )


def _break_nan(root: Path) -> None:
    pos = pos_img_for(3)
    pos[1, 4, 2] = math.nan
    scipy.io.savemat(root / "joint_positions/catch/clipA/joint_positions.mat", {"pos_img": pos})


def _break_variable(root: Path) -> None:
    scipy.io.savemat(
        root / "joint_positions/catch/clipA/joint_positions.mat", {"pos_world": pos_img_for(3)}
    )


def _break_mat(root: Path) -> None:
    (root / "joint_positions/catch/clipA/joint_positions.mat").write_bytes(b"not a mat file at all")


def _break_mask(root: Path) -> None:
    scipy.io.savemat(
        root / "puppet_mask/catch/clipA/puppet_mask.mat",
        {"part_mask": np.ones((H, W, 2), np.uint8)},
    )


def _break_split_line(root: Path) -> None:
    (root / "sub_splits/catch_test_split_1.txt").write_text("clipA.avi 2\nclipC 1\n")


def _break_split_flag(root: Path) -> None:
    (root / "sub_splits/catch_test_split_1.txt").write_text("clipA.avi 3\n")


def _break_split_duplicate(root: Path) -> None:
    (root / "sub_splits/catch_test_split_1.txt").write_text("clipA.avi 2\nclipA.avi 1\n")


def _break_unknown_clip(root: Path) -> None:
    (root / "sub_splits/catch_test_split_1.txt").write_text("clipA.avi 2\nclipZ.avi 2\n")


RAW_ERRORS = [
    (
        "png count",
        _break_png_count,
        ValueError,
        r"clip 'clipA': .* holds 2 PNGs but pos_img has 3 frames",
    ),
    (
        "pos_img shape",
        _break_shape,
        ValueError,
        r"joint_positions.mat: pos_img must be 2 x 15 x T, got shape \(2, 14, 3\)",
    ),
    (
        "empty video",
        _break_empty,
        ValueError,
        r"clipA/joint_positions.mat: pos_img must be 2 x 15 x T",
    ),
    (
        "pos_img nan",
        _break_nan,
        ValueError,
        r"non-finite values, e.g. joint 'left_shoulder' of frame 3",
    ),
    (
        "no pos_img",
        _break_variable,
        ValueError,
        r"variable 'pos_img' not found; variables: \['pos_world'\]",
    ),
    (
        "corrupt mat",
        _break_mat,
        ValueError,
        r"joint_positions.mat: cannot read as a MATLAB v5 file",
    ),
    ("mask frames", _break_mask, ValueError, r"part_mask must be 30 x 40 x 3 .*got \(30, 40, 2\)"),
    (
        "split line",
        _break_split_line,
        ValueError,
        r"catch_test_split_1.txt:2: expected '<clip>.avi <flag>', got 'clipC 1'",
    ),
    (
        "split flag",
        _break_split_flag,
        ValueError,
        r"catch_test_split_1.txt:1: flag must be 1 \(train\) or 2 \(test\), got 3",
    ),
    ("split duplicate", _break_split_duplicate, ValueError, r"clip 'clipA' is listed twice"),
    (
        "clip without joints",
        _break_unknown_clip,
        FileNotFoundError,
        r"catch/clipZ/joint_positions.mat: file not found",
    ),
]


@pytest.mark.parametrize("case,breaker,error,message", RAW_ERRORS, ids=[c[0] for c in RAW_ERRORS])
def test_raw_bad_input_raises(raw_root, case, breaker, error, message):
    breaker(raw_root)
    with pytest.raises(error, match=message):
        load_jhmdb_raw(raw_root, "test", "split1")


def test_missing_split_files_raise(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no '<class>_test_split_2.txt' files in .*sub_splits"
    ):
        load_jhmdb_raw(tmp_path, "test", "split2")


def test_read_split_file(tmp_path):
    path = tmp_path / "walk_test_split_1.txt"
    path.write_text("a_b_c.avi 1\n\nd.avi 2\n")
    assert read_split_file(path) == [("a_b_c", 1), ("d", 2)]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"split": "dev"}, r"unknown split 'dev'"),
        ({"split": "test", "protocol": "split4"}, r"unknown protocol 'split4'"),
        ({"split": "test", "layout_format": "npz"}, r"unknown layout_format 'npz'"),
        (
            {"split": "test", "protocol": "union", "layout_format": "coco"},
            r"union protocol needs layout_format='raw'",
        ),
        ({"split": "test", "ann_file": "x.json"}, r"apply to layout_format='coco' only"),
    ],
)
def test_factory_rejects_bad_options(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        jhmdb(str(tmp_path), **kwargs)


# --- MMPose COCO-style JSON --------------------------------------------------------------------


def test_coco_real_sample_values(jhmdb_mini):
    index = load_jhmdb_coco(
        jhmdb_mini / "test_jhmdb_sub1.json", jhmdb_mini, "jhmdb/split1/test", check_images=True
    )
    assert [v.video_id for v in index.videos] == [
        "Frisbee_catch_f_cm_np1_ri_med_0",
        "Frisbee_catch_f_cm_np1_ri_med_1",
        "Goalkeeper_Training_Day_@_7_catch_f_cm_np1_ri_med_0",
    ]
    assert (index.num_frames(), index.num_labeled_frames(), index.num_people()) == (3, 3, 3)
    frame = index.videos[0].frames[0]
    assert (frame.image_id, frame.file_name, frame.frame_index) == (
        2280001,
        "Frisbee_catch_f_cm_np1_ri_med_0/00001.png",
        0,
    )
    assert (frame.width, frame.height) == (320, 240)
    person = frame.people[0]
    # file: neck (98.851746, 92.59851), head (100.914365, 79.770933),
    # left_ankle (87.838304, 191.933582); each minus 1
    np.testing.assert_allclose(person.keypoints[0], [97.851746, 91.59851], rtol=1e-6)
    np.testing.assert_allclose(person.keypoints[2], [99.914365, 78.770933], rtol=1e-6)
    np.testing.assert_allclose(person.keypoints[14], [86.838304, 190.933582], rtol=1e-6)
    assert person.visible.sum() == 15
    # bbox [79, 62, 54, 159] -> corner minus 1
    assert person.bbox_xywh.tolist() == [78, 61, 54, 159]
    assert person.annotation_id == 1000002280001
    # each clip has nframes 37, 40, 30 but only frame 1 is in the file
    assert index.skipped.counts == {SKIP_INCOMPLETE_VIDEO: 3}


def test_coco_factory_defaults(jhmdb_mini, tmp_path):
    ann_dir = tmp_path / "annotations"
    ann_dir.mkdir()
    (ann_dir / "Sub2_train.json").write_text((jhmdb_mini / "test_jhmdb_sub1.json").read_text())
    index = jhmdb(str(tmp_path), "train", protocol="split2", layout_format="coco")
    assert (
        index.name == "jhmdb/split2/train"
        and index.image_root == str(tmp_path)
        and index.num_people() == 3
    )
    index = jhmdb(
        str(tmp_path),
        "test",
        layout_format="coco",
        ann_file=str(ann_dir / "Sub2_train.json"),
        image_root=str(jhmdb_mini),
        check_images=True,
    )
    assert index.num_frames() == 3


def coco_data(jhmdb_mini: Path) -> dict:
    """The real sample turned into one three-frame video (frames 1, 2, 3 of vid 00228)."""
    data = json.loads((jhmdb_mini / "test_jhmdb_sub1.json").read_text())
    for n, (image, ann) in enumerate(zip(data["images"], data["annotations"]), start=1):
        image.update(
            id=2280000 + n,
            frame_id=2280000 + n,
            vid_id="00228",
            nframes=3,
            file_name=f"clip/{n:05d}.png",
        )
        ann["image_id"] = 2280000 + n
    return data


def read_coco(tmp_path: Path, data: dict):
    path = tmp_path / "Sub1_test.json"
    path.write_text(json.dumps(data))
    return load_jhmdb_coco(path, tmp_path, "jhmdb")


def test_coco_frames_are_sorted_by_frame_number(jhmdb_mini, tmp_path):
    data = coco_data(jhmdb_mini)
    data["images"].reverse()
    index = read_coco(tmp_path, data)
    (video,) = index.videos
    assert video.video_id == "clip"
    assert [f.image_id for f in video.frames] == [2280001, 2280002, 2280003]
    assert [f.frame_index for f in video.frames] == [0, 1, 2]
    assert index.skipped.total() == 0  # all nframes present


def test_coco_missing_bbox_uses_joint_box(jhmdb_mini, tmp_path):
    data = coco_data(jhmdb_mini)
    del data["annotations"][0]["bbox"]
    person = read_coco(tmp_path, data).videos[0].frames[0].people[0]
    # joints (0-based) span x 85.888258..124.372119, y 70.796419..205.18226; margin 0.1 * 134.385841
    np.testing.assert_allclose(
        person.bbox_xywh, [72.4496739, 57.3578349, 65.3610292, 161.2630092], rtol=1e-6
    )


def _ann(d: dict) -> dict:
    return d["annotations"][0]


COCO_ERRORS = [
    (
        "frame gap",
        lambda d: d["images"][1].update(file_name="clip/00004.png"),
        r"frame numbers \[1, 3, 4\], which are not consecutive",
    ),
    (
        "duplicate image id",
        lambda d: d["images"][1].update(id=2280001),
        r"images\[1\]: duplicate image id 2280001",
    ),
    (
        "unknown image id",
        lambda d: _ann(d).update(image_id=5),
        r"1 annotations reference image ids not listed in 'images' \(e.g. \[5\]\)",
    ),
    (
        "keypoints length",
        lambda d: _ann(d).update(keypoints=[1.0] * 44),
        r"annotations\[0\]\.keypoints: expected 45 numbers, got 44",
    ),
    (
        "nan joint",
        lambda d: _ann(d)["keypoints"].__setitem__(3, math.nan),
        r"joint 'belly' is visible but has non-finite",
    ),
    (
        "unknown name",
        lambda d: d["categories"][0]["keypoints"].__setitem__(2, "nose"),
        r"unknown joint names \['nose'\]",
    ),
    (
        "too many frames",
        lambda d: [im.update(nframes=2) for im in d["images"]],
        r"lists 3 frames but nframes is 2",
    ),
    (
        "missing vid_id",
        lambda d: d["images"][0].pop("vid_id"),
        r"images\[0\]: missing required field 'vid_id'",
    ),
    (
        "two folders",
        lambda d: d["images"][2].update(file_name="other/00003.png"),
        r"vid_id 00228 spans folders",
    ),
    ("empty video", lambda d: d.update(images=[], annotations=[]), r"'images' is empty"),
    (
        "file name",
        lambda d: d["images"][0].update(file_name="clip/first.png"),
        r"cannot read a frame number from file name 'clip/first.png'",
    ),
]


@pytest.mark.parametrize("case,mutate,message", COCO_ERRORS, ids=[c[0] for c in COCO_ERRORS])
def test_coco_bad_input_raises(jhmdb_mini, tmp_path, case, mutate, message):
    data = coco_data(jhmdb_mini)
    mutate(data)
    with pytest.raises(ValueError, match=message) as info:
        read_coco(tmp_path, data)
    assert "Sub1_test.json" in str(info.value)


def test_coco_corrupt_json_raises(tmp_path):
    path = tmp_path / "Sub1_test.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"Sub1_test.json: not valid JSON"):
        load_jhmdb_coco(path, tmp_path, "jhmdb")


def test_coco_bad_bbox_is_a_counted_skip(jhmdb_mini, tmp_path):
    data = coco_data(jhmdb_mini)
    _ann(data)["bbox"] = [79, 62, 0, 159]
    index = read_coco(tmp_path, data)
    assert index.num_people() == 2 and index.skipped.counts == {SKIP_BAD_BOX: 1}
