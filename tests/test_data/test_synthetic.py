"""Synthetic data generator: determinism, cache, written formats, occlusion, blur, read-back."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from vidpose.data import synthetic as syn
from vidpose.data.keypoints import JHMDB, POSETRACK
from vidpose.registry import DATASETS

TINY = syn.PRESETS["tiny"]
# poseval's parser: <anything>/<NNNNNN>_<mpii|bonn|mpiinew>[_suffix]/<FFFFFF>.jpg, frame < 10000.
POSEVAL_NAME = re.compile(r"^images/(train|val)/(\d{6})_(mpii|bonn|mpiinew)(_[^/]+)?/(\d{6})\.jpg$")
# A small custom config for tests that generate more than once.
MICRO = dataclasses.replace(
    TINY,
    num_train_videos=1,
    num_val_videos=1,
    num_frames=4,
    jhmdb_clips_per_class=1,
    jhmdb_num_frames=4,
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate("tiny", tmp_path_factory.mktemp("cache"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _pt_files(root: Path, split: str) -> list[Path]:
    return sorted((root / "posetrack18" / "annotations" / split).glob("*.json"))


def _triplets(annotation: dict) -> np.ndarray:
    return np.asarray(annotation["keypoints"], dtype=np.float64).reshape(17, 3)


# ------------------------------------------------------------------------------------------
# Config, cache and determinism
# ------------------------------------------------------------------------------------------


def test_presets_have_the_specified_sizes() -> None:
    assert (
        TINY.num_train_videos,
        TINY.num_val_videos,
        TINY.num_frames,
        TINY.width,
        TINY.height,
    ) == (6, 2, 12, 160, 120)
    default = syn.PRESETS["default"]
    assert (default.num_train_videos, default.num_val_videos, default.num_frames) == (40, 10, 24)
    assert (default.width, default.height, default.val_label_every) == (320, 240, 4)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="max_people"):
        syn.SyntheticConfig(min_people=3, max_people=2)
    with pytest.raises(ValueError, match="num_frames"):
        syn.SyntheticConfig(num_frames=10000)
    with pytest.raises(ValueError, match="exposure"):
        syn.SyntheticConfig(exposure=1.5)
    with pytest.raises(KeyError, match="unknown synthetic preset 'huge'"):
        syn.generate("huge", "/nonexistent")


def test_cache_folder_is_named_by_preset_and_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert syn.dataset_dir("tiny", tmp_path) == tmp_path / "synthetic" / f"tiny-{TINY.digest()}"
    assert syn.dataset_dir(MICRO, tmp_path).name == f"custom-{MICRO.digest()}"
    assert (
        syn.dataset_dir("tiny", tmp_path, seed=1).name
        == f"tiny-{dataclasses.replace(TINY, seed=1).digest()}"
    )
    assert TINY.digest() != dataclasses.replace(TINY, seed=1).digest()
    monkeypatch.setenv("VIDPOSE_CACHE", str(tmp_path / "env"))
    assert syn.dataset_dir("tiny").parent == tmp_path / "env" / "synthetic"


def test_second_call_reuses_the_cache_and_force_rebuilds(tmp_path: Path) -> None:
    root = syn.generate(MICRO, tmp_path)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    (root / "sentinel").write_text("kept while the cache is reused")
    assert syn.generate(MICRO, tmp_path) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    assert (root / "sentinel").exists()
    assert syn.generate(MICRO, tmp_path, force=True) == root
    assert not (root / "sentinel").exists()  # a fresh copy replaced the old one
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]  # no temp or trash left


def test_interrupted_generation_leaves_no_complete_looking_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(syn, "_write_jhmdb", crash)
    with pytest.raises(RuntimeError, match="interrupted"):
        syn.generate(MICRO, tmp_path)
    assert list((tmp_path / "synthetic").iterdir()) == []


def test_same_seed_gives_identical_files(tiny_root: Path, tmp_path: Path) -> None:
    again = syn.generate("tiny", tmp_path)
    for split in ("train", "val"):
        for a, b in zip(_pt_files(tiny_root, split), _pt_files(again, split), strict=True):
            assert a.read_bytes() == b.read_bytes(), a.name
    for a in sorted((tiny_root / "posetrack18" / "images").rglob("*.jpg")):
        assert a.read_bytes() == (again / a.relative_to(tiny_root)).read_bytes(), a
    assert syn.detections_path(tiny_root).read_bytes() == syn.detections_path(again).read_bytes()
    for a in sorted((tiny_root / "jhmdb").rglob("*.mat")):
        # .mat headers carry a creation time, so compare the arrays, not the bytes.
        ma, mb = scipy.io.loadmat(a), scipy.io.loadmat(again / a.relative_to(tiny_root))
        for key in (k for k in ma if not k.startswith("__")):
            np.testing.assert_array_equal(ma[key], mb[key])
    for a in sorted((tiny_root / "jhmdb").rglob("*.png")):
        assert a.read_bytes() == (again / a.relative_to(tiny_root)).read_bytes(), a


def test_different_seed_gives_different_data(tiny_root: Path, tmp_path: Path) -> None:
    other = syn.generate("tiny", tmp_path, seed=1)
    assert other.name != tiny_root.name
    ours, theirs = _pt_files(tiny_root, "val")[0], _pt_files(other, "val")[0]
    assert theirs.name == ours.name  # same video names ...
    assert theirs.read_bytes() != ours.read_bytes()  # ... different content
    frame = Path("posetrack18/images/val") / ours.stem / "000000.jpg"
    a, b = cv2.imread(str(tiny_root / frame)), cv2.imread(str(other / frame))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10


# ------------------------------------------------------------------------------------------
# PoseTrack18 files
# ------------------------------------------------------------------------------------------


def test_posetrack_json_has_the_pt18_fields_and_types(tiny_root: Path) -> None:
    pt = tiny_root / "posetrack18"
    numbers = {
        "train": range(1, 7),
        "val": range(7, 9),
    }  # 6 train then 2 val videos, numbered from 1
    for split in ("train", "val"):
        files = _pt_files(tiny_root, split)
        assert [f.stem for f in files] == [f"{n:06d}_mpii_synthetic" for n in numbers[split]]
        for path, number in zip(files, numbers[split], strict=True):
            data = _load(path)
            assert set(data) == {"images", "annotations", "categories"}
            (category,) = data["categories"]
            assert category["name"] == "person" and category["id"] == 1
            assert category["keypoints"] == list(POSETRACK.joint_names)
            assert len(data["images"]) == 12
            ids = set()
            for frame, image in enumerate(data["images"]):
                assert image["id"] == image["frame_id"] == 10_000_000_000 + number * 10_000 + frame
                assert image["vid_id"] == f"{number:06d}" and image["nframes"] == 12
                assert image["file_name"] == f"images/{split}/{path.stem}/{frame:06d}.jpg"
                assert POSEVAL_NAME.match(image["file_name"])
                assert (image["width"], image["height"]) == (160, 120)
                assert image["ignore_regions_x"] == [] and image["ignore_regions_y"] == []
                assert image["is_labeled"] is (split == "train" or frame % 4 == 0)
                assert cv2.imread(str(pt / image["file_name"])).shape == (120, 160, 3)
                ids.add(image["id"])
            per_frame: dict[int, list[dict]] = {}
            for ann in data["annotations"]:
                assert ann["image_id"] in ids
                per_frame.setdefault(ann["image_id"], []).append(ann)
            labeled = {im["id"] for im in data["images"] if im["is_labeled"]}
            assert set(per_frame) <= labeled  # unlabeled frames carry no people
            for image_id, anns in per_frame.items():
                tracks = [a["track_id"] for a in anns]
                assert len(set(tracks)) == len(tracks) and all(0 <= t < 10000 for t in tracks)
                assert [a["id"] for a in anns] == [image_id * 100 + k for k in range(len(anns))]
                for ann in anns:
                    _check_person(ann)


def _check_person(ann: dict) -> None:
    assert ann["category_id"] == 1 and ann["scores"] == [] and ann["iscrowd"] is False
    assert len(ann["keypoints"]) == 51
    kps = _triplets(ann)
    assert np.all(kps[[3, 4]] == 0)  # ears never annotated
    present = kps[:, 2] == 1
    assert np.all(kps[~present] == 0)  # everything else is exactly (0, 0, 0)
    assert ann["num_keypoints"] == int(present.sum()) >= 1
    xy = kps[present, :2]
    assert np.all((xy >= 0) & (xy <= [159, 119]))
    x, y, w, h = ann["bbox"]
    assert w > 0 and h > 0
    assert np.all(xy >= [x, y]) and np.all(xy <= [x + w, y + h])
    head = ann["bbox_head"]
    assert all(isinstance(v, int) for v in head) and head[2] > 0 and head[3] > 0


def test_val_labels_every_fourth_frame(tiny_root: Path) -> None:
    for path in _pt_files(tiny_root, "val"):
        data = _load(path)
        labeled = [int(im["file_name"][-10:-4]) for im in data["images"] if im["is_labeled"]]
        assert labeled == [0, 4, 8]
        with_people = {a["image_id"] % 10_000 for a in data["annotations"]}
        assert with_people == {0, 4, 8}


def test_annotations_are_the_rendered_joints(tiny_root: Path) -> None:
    path = _pt_files(tiny_root, "val")[1]
    data = _load(path)
    scene = syn.sample_posetrack_scene(TINY, "val", 1)
    joints = scene.image_joints(np.arange(12))  # (P, T, 17, 2)
    order = {p.track_id: i for i, p in enumerate(scene.people)}
    checked = 0
    for ann in data["annotations"]:
        frame = ann["image_id"] % 10_000
        kps = _triplets(ann)
        present = kps[:, 2] == 1
        expected = joints[order[ann["track_id"]], frame][present]
        np.testing.assert_allclose(
            kps[present, :2], expected, atol=0.006
        )  # written with 2 decimals
        checked += int(present.sum())
    assert checked > 0


def test_joints_under_occluders_or_outside_are_not_annotated(tiny_root: Path) -> None:
    hidden, seen_next_to_hidden = 0, 0
    for index, path in enumerate(_pt_files(tiny_root, "train")):
        scene = syn.sample_posetrack_scene(TINY, "train", index)
        occluded, outside = scene.visibility()
        data = _load(path)
        by_key = {
            (a["image_id"] % 10_000, a["track_id"]): _triplets(a) for a in data["annotations"]
        }
        for p, person in enumerate(scene.people):
            for frame in range(scene.num_frames):
                kps = by_key.get((frame, person.track_id))
                for joint in np.flatnonzero(occluded[p, frame] | outside[p, frame]):
                    if kps is not None:
                        assert np.all(kps[joint] == 0), (path.name, frame, person.track_id, joint)
                    if occluded[p, frame, joint] and joint not in (3, 4):
                        hidden += 1
                        neighbours = [
                            by_key.get((f, person.track_id)) for f in (frame - 1, frame + 1)
                        ]
                        seen_next_to_hidden += any(
                            n is not None and n[joint, 2] == 1 for n in neighbours
                        )
    # The tiny preset (seed 0) hides joints under occluders, and most of them are visible in a
    # neighbouring frame: that is what a temporal model can exploit.
    assert hidden >= 5
    assert seen_next_to_hidden >= hidden // 2


def test_head_box_of_an_upright_head() -> None:
    pose = np.zeros((17, 2))
    pose[1] = (10.0, 20.0)  # head_bottom
    pose[2] = (10.0, 10.0)  # head_top
    # Head length 10: half length 5 vertically, half width 0.38 * 10 = 3.8 horizontally.
    np.testing.assert_allclose(syn.head_box_xyxy(pose), [6.2, 10.0, 13.8, 20.0])


def test_detections_cover_every_val_frame(tiny_root: Path) -> None:
    dets = _load(syn.detections_path(tiny_root))
    assert dets and all(set(d) == {"image_id", "bbox", "score", "category_id"} for d in dets)
    val_images, gt_boxes = {}, {}
    for path in _pt_files(tiny_root, "val"):
        data = _load(path)
        val_images.update({im["id"]: im for im in data["images"]})
        for a in data["annotations"]:
            if a["num_keypoints"] >= 5:
                gt_boxes.setdefault(a["image_id"], []).append(a["bbox"])
    assert {d["image_id"] for d in dets} <= set(val_images)
    # Every val frame shows at least one person, labeled or not, so every frame has a box.
    assert {d["image_id"] for d in dets} == set(val_images)
    for d in dets:
        x, y, w, h = d["bbox"]
        assert d["category_id"] == 1 and 0 < d["score"] <= 1
        assert x >= 0 and y >= 0 and x + w <= 159 + 1e-6 and y + h <= 119 + 1e-6
    hits = sum(
        max(_iou(box, d["bbox"]) for d in dets if d["image_id"] == image_id) >= 0.3
        for image_id, boxes in gt_boxes.items()
        for box in boxes
    )
    assert hits >= 0.8 * sum(len(b) for b in gt_boxes.values())  # jittered GT, few misses


def _iou(a: list[float], b: list[float]) -> float:
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# ------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------


def _gradient_energy(image: np.ndarray, centre: np.ndarray, radius: int) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    x, y = np.round(centre).astype(int)
    return float((gx**2 + gy**2)[y - radius : y + radius + 1, x - radius : x + radius + 1].mean())


def test_fast_joints_are_motion_blurred() -> None:
    # Each fast person alone on a flat, noise-free background: averaging sub-frame renders can
    # only lower the squared-gradient energy (Jensen), and clearly so where a limb really moves.
    flat = dataclasses.replace(TINY, image_noise=0.0)
    threshold = TINY.blur_threshold * TINY.height
    ratios = []
    for index in range(TINY.num_train_videos):
        scene = syn.sample_posetrack_scene(TINY, "train", index)
        speed = scene.joint_speed()  # (P, T, 17)
        joints = scene.image_joints(np.arange(scene.num_frames))
        for p, person in enumerate(scene.people):
            alone = dataclasses.replace(
                scene,
                people=[person],
                occluders=[],
                config=flat,
                texture=np.full_like(scene.texture, 128.0),
            )
            radius = max(4, int(0.12 * person.body_size))
            for frame in range(0, scene.num_frames, 3):
                joint = int(np.argmax(speed[p, frame]))
                xy = joints[p, frame, joint]
                inside = np.all((xy >= radius + 1) & (xy <= [159 - radius - 1, 119 - radius - 1]))
                if speed[p, frame, joint] < 4 * threshold or not inside:
                    continue
                sharp = _gradient_energy(
                    syn.render_frame(alone, frame, motion_blur=False), xy, radius
                )
                blurred = _gradient_energy(syn.render_frame(alone, frame), xy, radius)
                ratios.append(blurred / sharp)
    assert len(ratios) >= 5
    assert max(ratios) < 0.8, ratios


def test_frames_without_fast_motion_are_not_blurred() -> None:
    checked = 0
    for index in range(TINY.num_train_videos):
        scene = syn.sample_posetrack_scene(TINY, "train", index)
        slow = np.flatnonzero(
            (scene.joint_speed() <= TINY.blur_threshold * TINY.height).all(axis=(0, 2))
        )
        for frame in slow[:2]:
            np.testing.assert_array_equal(
                syn.render_frame(scene, int(frame)),
                syn.render_frame(scene, int(frame), motion_blur=False),
            )
            checked += 1
    assert checked >= 2


def test_left_and_right_limbs_have_different_shades() -> None:
    scene = syn.sample_posetrack_scene(TINY, "train", 0)
    person = scene.people[-1]  # drawn last: nothing in front of it
    frame = 0
    image = syn.render_frame(scene, frame, motion_blur=False).astype(np.float32)
    pose = scene.image_joints(np.array([float(frame)]))[-1, 0]
    # Midpoints of the thighs (left = slots 11->13, right = 12->14): left is brighter.
    left = image[tuple(np.round((pose[11] + pose[13]) / 2)[::-1].astype(int))].mean()
    right = image[tuple(np.round((pose[12] + pose[14]) / 2)[::-1].astype(int))].mean()
    assert left > right + 15, (left, right, person.style.pants)


# ------------------------------------------------------------------------------------------
# Sub-JHMDB twin
# ------------------------------------------------------------------------------------------


def test_posetrack_to_jhmdb_mapping() -> None:
    joints = np.arange(34, dtype=np.float64).reshape(17, 2)  # slot k sits at (2k, 2k + 1)
    out = syn.posetrack_to_jhmdb(joints)
    assert out.shape == (15, 2)
    np.testing.assert_array_equal(out[JHMDB.index("neck")], joints[1])  # head_bottom
    np.testing.assert_array_equal(out[JHMDB.index("face")], joints[0])  # nose
    mid_hip, mid_shoulder = (joints[11] + joints[12]) / 2, (joints[5] + joints[6]) / 2
    np.testing.assert_allclose(out[JHMDB.index("belly")], 0.75 * mid_hip + 0.25 * mid_shoulder)
    for name in (
        "right_shoulder",
        "left_hip",
        "right_elbow",
        "left_knee",
        "right_wrist",
        "left_ankle",
    ):
        np.testing.assert_array_equal(out[JHMDB.index(name)], joints[POSETRACK.index(name)])


def _clips(root: Path) -> list[tuple[str, str]]:
    return [(c.parent.name, c.name) for c in sorted((root / "jhmdb" / "Rename_Images").glob("*/*"))]


def test_jhmdb_raw_layout(tiny_root: Path) -> None:
    jh = tiny_root / "jhmdb"
    clips = _clips(tiny_root)
    assert len(clips) == 3 * 3  # 3 classes x 3 clips in the tiny preset
    for class_name, clip in clips:
        frames = sorted((jh / "Rename_Images" / class_name / clip).glob("*.png"))
        assert [f.name for f in frames] == [f"{i:05d}.png" for i in range(1, 13)]
        assert cv2.imread(str(frames[0])).shape == (120, 160, 3)
        mat = scipy.io.loadmat(jh / "joint_positions" / class_name / clip / "joint_positions.mat")
        pos = mat["pos_img"]
        assert pos.shape == (2, 15, 12) and mat["pos_world"].shape == (2, 15, 12)
        assert mat["scale"].shape == (1, 12) and str(mat["viewpoint"][0]) in syn._VIEWPOINTS
        # 1-based Matlab pixels, every joint inside the 160x120 frame (Sub-JHMDB's definition).
        assert pos.min() >= 1 and pos[0].max() <= 160 and pos[1].max() <= 120
        scale = mat["scale"][0]
        np.testing.assert_allclose(mat["pos_world"][0], (pos[0] / 160 - 0.5) * (160 / 120) / scale)
        np.testing.assert_allclose(mat["pos_world"][1], (pos[1] / 120 - 0.5) / scale)
        mask = scipy.io.loadmat(jh / "puppet_mask" / class_name / clip / "puppet_mask.mat")[
            "part_mask"
        ]
        assert (
            mask.shape == (120, 160, 12)
            and mask.dtype == np.uint8
            and set(np.unique(mask)) == {0, 1}
        )
        # The silhouette covers the neck (0-based pixel = pos_img - 1) on every frame.
        neck = np.round(pos[:, 0, :] - 1).astype(int)
        assert all(mask[neck[1, t], neck[0, t], t] == 1 for t in range(12))


def test_jhmdb_joints_are_the_scene_joints(tiny_root: Path) -> None:
    scene = syn.sample_jhmdb_scene(TINY, "synth_kick", 1)
    mat = scipy.io.loadmat(
        tiny_root / "jhmdb/joint_positions/synth_kick/synth_kick_clip01/joint_positions.mat"
    )
    expected = (
        syn.posetrack_to_jhmdb(scene.image_joints(np.arange(12))[0]) + 1
    )  # (T, 15, 2), 1-based
    np.testing.assert_allclose(mat["pos_img"], expected.transpose(2, 1, 0))
    assert scene.people[0].fast_limbs == ("legs",)


def test_jhmdb_split_files(tiny_root: Path) -> None:
    splits = tiny_root / "jhmdb" / "sub_splits"
    by_class: dict[str, list[str]] = {}
    for class_name, clip in _clips(tiny_root):
        by_class.setdefault(class_name, []).append(clip)
    assert sorted(p.name for p in splits.iterdir()) == sorted(
        f"{c}_test_split_{k}.txt" for c in by_class for k in (1, 2, 3)
    )
    for class_name, clips in by_class.items():
        tests = []
        for k in (1, 2, 3):
            lines = (splits / f"{class_name}_test_split_{k}.txt").read_text().splitlines()
            entries = dict(line.split(" ") for line in lines)
            assert sorted(entries) == sorted(f"{c}.avi" for c in clips)  # every clip in every split
            assert set(entries.values()) == {"1", "2"}
            tests.append({c for c, flag in entries.items() if flag == "2"})
        assert len({frozenset(t) for t in tests}) == 3  # different test clips per split
        assert sorted(c for t in tests for c in t) == sorted(
            f"{c}.avi" for c in clips
        )  # each tested once


def test_manifest_reports_counts_and_quality(tiny_root: Path) -> None:
    manifest = syn.load_manifest(tiny_root)
    stats = manifest["stats"]
    assert (
        manifest["config"] == json.loads(json.dumps(TINY.as_dict()))
        and manifest["preset"] == "tiny"
    )
    assert (
        stats["train_videos"],
        stats["val_videos"],
        stats["train_frames"],
        stats["val_frames"],
    ) == (6, 2, 72, 24)
    assert stats["jhmdb_clips"] == 9 and stats["jhmdb_frames"] == 108
    assert stats["mean_displacement_fast_px"] > 2 * stats["mean_displacement_slow_px"]
    assert 0 < stats["occluded_fraction"] < stats["invisible_fraction"] < 0.3
    meta = _load(tiny_root / "meta.json")
    assert len(meta["posetrack18"]["train"]) == 6 and len(meta["jhmdb"]) == 9


# ------------------------------------------------------------------------------------------
# Read-back through the real readers
# ------------------------------------------------------------------------------------------


def test_posetrack18_reader_loads_the_val_set(tiny_root: Path) -> None:
    index = DATASETS.get("posetrack18")(
        root=str(tiny_root / "posetrack18"), split="val", check_images=True
    )
    assert len(index.videos) == 2 and index.num_frames() == 24 and index.num_labeled_frames() == 6
    assert index.skipped.total() == 0, index.skipped.summary()
    assert index.layout.num_joints == 17
    files = {p.stem: _load(p) for p in _pt_files(tiny_root, "val")}
    for video in index.videos:
        data = files[Path(video.frames[0].file_name).parent.name]
        assert [f.image_id for f in video.frames] == [im["id"] for im in data["images"]]
        for frame in video.frames:
            assert (Path(index.image_root) / frame.file_name).is_file()
            anns = [a for a in data["annotations"] if a["image_id"] == frame.image_id]
            assert len(frame.people) == len(anns)
            for person, ann in zip(
                sorted(frame.people, key=lambda p: p.track_id),
                sorted(anns, key=lambda a: a["track_id"]),
                strict=True,
            ):
                kps = _triplets(ann)
                np.testing.assert_array_equal(person.visible, (kps[:, 2] > 0).astype(np.float32))
                np.testing.assert_allclose(
                    person.keypoints[kps[:, 2] > 0], kps[kps[:, 2] > 0, :2], atol=1e-4
                )
                np.testing.assert_allclose(person.bbox_xywh, ann["bbox"], atol=1e-4)
                x, y, w, h = ann["bbox_head"]
                np.testing.assert_allclose(person.head_box_xyxy, [x, y, x + w, y + h])


def test_synthetic_factory_delegates_to_the_posetrack18_reader(tiny_root: Path) -> None:
    cache_root = tiny_root.parent.parent
    index = DATASETS.get("synthetic")(
        split="train", preset="tiny", cache_root=str(cache_root), check_images=True
    )
    assert len(index.videos) == 6 and index.num_labeled_frames() == 72
    assert index.skipped.total() == 0, index.skipped.summary()
    assert Path(index.image_root).resolve().is_relative_to(tiny_root.resolve())


def test_detection_file_loads_for_the_val_index(tiny_root: Path) -> None:
    from vidpose.data.detections import detection_instances, load_detections

    index = DATASETS.get("synthetic")(
        split="val", preset="tiny", cache_root=str(tiny_root.parent.parent)
    )
    boxes = load_detections(syn.detections_path(tiny_root), index)
    assert set(boxes) == {f.image_id for v in index.videos for f in v.frames}  # labeled or not
    assert len(detection_instances(index, boxes)) == len(_load(syn.detections_path(tiny_root)))


def test_jhmdb_reader_loads_the_raw_layout(tiny_root: Path) -> None:
    test = DATASETS.get("jhmdb")(
        root=str(tiny_root / "jhmdb"), split="test", protocol="split1", layout_format="raw"
    )
    train = DATASETS.get("jhmdb")(
        root=str(tiny_root / "jhmdb"), split="train", protocol="split1", layout_format="raw"
    )
    # split 1 tests clip00 of each class (index % 3 == 0), the other two clips train.
    assert sorted(v.video_id for v in test.videos) != sorted(v.video_id for v in train.videos)
    assert len(test.videos) == 3 and len(train.videos) == 6
    assert test.skipped.total() == 0 and train.skipped.total() == 0, test.skipped.summary()
    assert test.layout.num_joints == 15
    video = next(v for v in test.videos if "synth_wave_clip00" in v.video_id)
    mat = scipy.io.loadmat(
        tiny_root / "jhmdb/joint_positions/synth_wave/synth_wave_clip00/joint_positions.mat"
    )
    assert len(video.frames) == 12
    for t, frame in enumerate(video.frames):
        (person,) = frame.people
        np.testing.assert_allclose(
            person.keypoints, mat["pos_img"][:, :, t].T - 1, atol=1e-4
        )  # 0-based


def test_synthetic_jhmdb_factory_delegates_to_the_jhmdb_reader(tiny_root: Path) -> None:
    cache_root = tiny_root.parent.parent
    index = DATASETS.get("synthetic_jhmdb")(split="test", preset="tiny", cache_root=str(cache_root))
    assert len(index.videos) == 3 and index.num_frames() == 36


def test_a_data_set_finished_by_another_process_meanwhile_is_kept(tmp_path, monkeypatch):
    # two runs started together both build the set; the second to finish must not replace (and
    # so delete) the copy the first is already reading
    real_build = syn._build_temp
    final = syn.dataset_dir(MICRO, tmp_path)

    def build_while_another_process_finishes(final_dir, label, cfg):
        tmp = real_build(final_dir, label, cfg)
        monkeypatch.setattr(syn, "_build_temp", real_build)
        syn.generate(MICRO, tmp_path)  # the other process
        (final / "in_use.txt").write_text("reading")
        return tmp

    monkeypatch.setattr(syn, "_build_temp", build_while_another_process_finishes)
    assert syn.generate(MICRO, tmp_path) == final
    assert (final / "in_use.txt").read_text() == "reading"
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # no leftover temporary copy
