"""The synthetic ``degraded`` preset: determinism, sidecars, degradations confined to the person, joints
kept annotated, the sidecar reader's errors, and unchanged output of the presets without degradations."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from vidpose.data import degraded as dg
from vidpose.data import synthetic as syn
from vidpose.data.degradations import DegradationConfig, MotionBurst
from vidpose.data.keypoints import JHMDB, POSETRACK
from vidpose.registry import DATASETS

# One short video per split and one clip per JHMDB class; without degradations this is the
# configuration whose output is pinned below.
MICRO = dataclasses.replace(
    syn.PRESETS["tiny"], num_train_videos=1, num_val_videos=1, num_frames=4, jhmdb_clips_per_class=1,
    jhmdb_num_frames=4,
)
# Degrade often, so four frames hold every kind.
MICRO_DEGRADED = dataclasses.replace(
    MICRO, num_frames=6, jhmdb_num_frames=6, occluder_probability=0.0, val_label_every=1,
    degradation=DegradationConfig(probability=0.6),
)


def _content_digest(root: Path) -> str:
    """SHA-256 of every file's path and bytes (``.mat``: the arrays, since their header holds a time)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        if path.suffix == ".mat":
            arrays = scipy.io.loadmat(path)
            for key in sorted(k for k in arrays if not k.startswith("__")):
                a = np.asarray(arrays[key])
                h.update(key.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def micro_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate(MICRO_DEGRADED, tmp_path_factory.mktemp("cache"))


def test_presets_without_degradations_are_unchanged(tmp_path: Path) -> None:
    # Pinned before the degraded preset existed: the opt-in path leaves other data and cache keys alone.
    assert syn.PRESETS["tiny"].digest() == "f7740e1410d9"
    assert syn.PRESETS["default"].digest() == "a2d80aabcb47"
    assert MICRO.digest() == "d143c4acaf03"
    root = syn.generate(MICRO, tmp_path)
    assert "degradation" not in syn.load_manifest(root)["config"]
    assert not (root / "posetrack18" / "degraded").exists() and not (root / "jhmdb" / "degraded").exists()
    # JPEG/PNG bytes depend on the OpenCV build: after an OpenCV or numpy upgrade, check that the
    # generator is unchanged (git) and re-record this digest.
    assert _content_digest(root) == "1f0bb6e2f857fdb9a69914886280d8b81fd3acb4cc2786773d3a1af3f593cf0f"


def test_degraded_presets() -> None:
    for name, base in (("degraded", "default"), ("degraded_tiny", "tiny")):
        preset = syn.PRESETS[name]
        assert preset.degradation == DegradationConfig() and preset.occluder_probability == 0.0
        assert preset.val_label_every == 1
        same_size = dataclasses.replace(preset, degradation=None, occluder_probability=0.15, val_label_every=4)
        assert same_size == syn.PRESETS[base]


def test_generation_is_deterministic_and_writes_a_sidecar_per_video(micro_root: Path, tmp_path: Path) -> None:
    again = syn.generate(MICRO_DEGRADED, tmp_path)
    assert _content_digest(again) == _content_digest(micro_root)
    pt = micro_root / "posetrack18"
    for split in ("train", "val"):
        videos = sorted(p.name for p in (pt / "annotations" / split).glob("*.json"))
        assert sorted(p.name for p in (pt / "degraded" / split).glob("*.json")) == videos
    clips = sorted(p.parent.name for p in (micro_root / "jhmdb" / "joint_positions").rglob("*.mat"))
    assert sorted(p.stem for p in (micro_root / "jhmdb" / "degraded").rglob("*.json")) == clips
    kinds = {e.kind for p in micro_root.rglob("degraded/**/*.json") for e in dg.read_degraded_file(p).entries}
    assert kinds == set(dg.KINDS)
    assert syn.load_manifest(micro_root)["stats"]["degraded_joint_fraction"] > 0.3


def test_degradations_do_not_change_the_annotations(micro_root: Path, tmp_path: Path) -> None:
    clean = syn.generate(dataclasses.replace(MICRO_DEGRADED, degradation=None), tmp_path)
    for a in sorted((micro_root / "posetrack18" / "annotations").rglob("*.json")):
        assert a.read_bytes() == (clean / a.relative_to(micro_root)).read_bytes()
    for a in sorted((micro_root / "jhmdb" / "joint_positions").rglob("*.mat")):
        other = clean / a.relative_to(micro_root)
        assert np.array_equal(scipy.io.loadmat(a)["pos_img"], scipy.io.loadmat(other)["pos_img"])


def test_degraded_joints_stay_annotated_where_the_scene_puts_them(micro_root: Path) -> None:
    pt = micro_root / "posetrack18"
    checked = 0
    for split in ("train", "val"):
        for index, path in enumerate(sorted((pt / "annotations" / split).glob("*.json"))):
            scene = syn.sample_posetrack_scene(MICRO_DEGRADED, split, index)
            joints = scene.image_joints(np.arange(scene.num_frames))
            gt = json.loads(path.read_text())
            by_key = {(a["image_id"], a["track_id"]): np.reshape(a["keypoints"], (17, 3)) for a in gt["annotations"]}
            for e in dg.read_degraded_file(pt / "degraded" / split / path.name).entries:
                triplets = by_key[(e.image_id, e.track_id)]
                assert np.all(triplets[list(e.joints), 2] == 1)
                person = next(p for p, q in enumerate(scene.people) if q.track_id == e.track_id)
                where = joints[person, e.frame_index, list(e.joints)]
                np.testing.assert_allclose(triplets[list(e.joints), :2], where, atol=0.006)
                # the sidecar lists exactly the annotated joints some degradation of that kind covers
                covered = np.zeros(17, dtype=bool)
                for d in scene.degradations:
                    if d.frame == e.frame_index and d.kind == e.kind:
                        covered |= d.covers(joints[person, e.frame_index])
                assert np.flatnonzero(covered & (triplets[:, 2] == 1)).tolist() == list(e.joints)
                checked += 1
    assert checked > 10


def test_a_degradation_changes_only_pixels_inside_its_box_around_the_person() -> None:
    scene = syn.sample_posetrack_scene(MICRO_DEGRADED, "train", 0)
    clean = dataclasses.replace(scene, degradations=[])
    joints = scene.image_joints(np.arange(scene.num_frames))
    for d in scene.degradations:
        one = dataclasses.replace(scene, degradations=[d])
        diff = syn.render_frame(one, d.frame).astype(int) - syn.render_frame(clean, d.frame).astype(int)
        diff = np.abs(diff).max(axis=-1)
        x0, y0, x1, y1 = d.box
        inside = np.zeros_like(diff, dtype=bool)
        inside[max(0, math.ceil(y0)) : math.floor(y1) + 1, max(0, math.ceil(x0)) : math.floor(x1) + 1] = True
        assert diff[~inside].max(initial=0) == 0, d.kind
        assert diff[inside].mean() > 10, d.kind  # strong, not a faint change
        # the person's joints in the frame are covered: all of them, or some for the occluder
        pts = joints[d.person, d.frame, [k for k in range(17) if k not in POSETRACK.never_annotated]]
        in_frame = np.all((pts >= 0) & (pts <= [scene.width - 1, scene.height - 1]), axis=-1)
        covered = d.covers(pts)[in_frame]
        assert covered.any() if d.kind == "occluder" else covered.all(), d.kind


def test_degradations_are_independent_per_frame_and_person() -> None:
    cfg = dataclasses.replace(syn.PRESETS["degraded_tiny"], num_frames=200)
    scene = syn.sample_posetrack_scene(cfg, "train", 0)
    joints = scene.image_joints(np.arange(scene.num_frames))
    seen = np.all((joints >= 0) & (joints <= [cfg.width - 1, cfg.height - 1]), axis=-1).any(axis=-1)  # (P, T)
    hit = np.zeros_like(seen)
    for d in scene.degradations:
        hit[d.person, d.frame] = True
    assert not (hit & ~seen).any()  # a person out of the frame is never degraded
    assert 0.18 < hit[seen].mean() < 0.32
    # a degraded frame's neighbour is degraded about as often as any frame (independence), not more
    pairs = seen[:, 1:] & seen[:, :-1] & hit[:, 1:]
    assert (hit[:, :-1] & pairs).sum() / pairs.sum() < 0.35


def test_motion_burst_kernel_does_not_centre_on_the_true_point() -> None:
    burst = MotionBurst(length=20.0, angle=0.0, offset=0.9)
    kernel = burst.kernel()
    r = burst.margin()
    assert kernel.sum() == pytest.approx(1.0)
    ys, xs = np.mgrid[0 : kernel.shape[0], 0 : kernel.shape[1]]
    centroid = np.array([(kernel * xs).sum(), (kernel * ys).sum()]) - r
    # the streak runs from +offset*L to -(1-offset)*L (correlation), centred at (offset - 0.5) * L
    assert centroid == pytest.approx([(0.9 - 0.5) * 20.0, 0.0], abs=0.3)


def test_jhmdb_twin_frames_are_degraded_and_listed(micro_root: Path) -> None:
    sidecar = dg.read_degraded_file(micro_root / "jhmdb" / "degraded" / "synth_wave" / "synth_wave_clip00.json")
    assert sidecar.layout == "jhmdb" and sidecar.num_frames == 6 and sidecar.entries
    scene = syn.sample_jhmdb_scene(MICRO_DEGRADED, "synth_wave", 0)
    joints = syn.posetrack_to_jhmdb(scene.image_joints(np.arange(6))[0])
    clean = dataclasses.replace(scene, degradations=[])
    for e in sidecar.entries:
        assert e.track_id == 0 and e.image_id is None and max(e.joints) < JHMDB.num_joints
        covered = np.zeros(JHMDB.num_joints, dtype=bool)
        for d in scene.degradations:
            if d.frame == e.frame_index and d.kind == e.kind:
                covered |= d.covers(joints[e.frame_index])
        assert np.flatnonzero(covered).tolist() == list(e.joints)
        png = micro_root / "jhmdb" / "Rename_Images" / "synth_wave" / "synth_wave_clip00"
        png = png / f"{e.frame_index + 1:05d}.png"
        assert np.abs(cv2.imread(str(png)).astype(int) - syn.render_frame(clean, e.frame_index)).max() > 50


def test_sidecars_for_index_find_and_check_the_files(micro_root: Path, tmp_path: Path) -> None:
    val = DATASETS.get("posetrack18")(root=str(micro_root / "posetrack18"), split="val")
    sidecars = dg.sidecars_for_index(val)
    assert sidecars is not None and set(sidecars) == {v.video_id for v in val.videos}
    test = DATASETS.get("jhmdb")(root=str(micro_root / "jhmdb"), split="test", protocol="union")
    assert set(dg.sidecars_for_index(test)) == {v.video_id for v in test.videos}
    clean_root = syn.generate(MICRO, tmp_path / "clean")
    assert dg.sidecars_for_index(DATASETS.get("posetrack18")(root=str(clean_root / "posetrack18"), split="val")) is None

    copy = tmp_path / "copy"
    shutil.copytree(micro_root / "posetrack18", copy)
    for extra in range(2):  # a second val video without a sidecar
        src = sorted((copy / "annotations" / "val").glob("*.json"))[0]
        data = json.loads(src.read_text())
        for image in data["images"]:
            image["id"] += 1000 * (extra + 1)
        for ann in data["annotations"]:
            ann["image_id"] += 1000 * (extra + 1)
        (copy / "annotations" / "val" / f"zz{extra}_{src.name}").write_text(json.dumps(data))
    index = DATASETS.get("posetrack18")(root=str(copy), split="val")
    with pytest.raises(FileNotFoundError, match="2 do not"):
        dg.sidecars_for_index(index)


def _sidecar(tmp_path: Path, **changes) -> Path:
    row = {"frame_index": 1, "image_id": 7, "track_id": 0, "kind": "defocus", "joints": [0, 5]}
    payload = {"format": dg.FORMAT, "video": "v", "layout": "posetrack", "num_frames": 3, "degraded": [row]}
    for key, value in changes.items():
        if key in row:
            row[key] = value
        elif value is None:
            del payload[key]
        else:
            payload[key] = value
    path = tmp_path / "v.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other/1"}, r"format: expected 'vidpose.degraded/1'"),
        ({"num_frames": None}, r"missing field 'num_frames'"),
        ({"layout": "coco"}, r"layout: expected 'posetrack' or 'jhmdb'"),
        ({"kind": "rain"}, r"degraded\[0\].kind: expected one of"),
        ({"joints": [0, 17]}, r"degraded\[0\].joints\[1\]: expected an integer in \[0, 17\)"),
        ({"joints": [3, 3]}, r"degraded\[0\].joints: duplicate"),
        ({"joints": []}, r"degraded\[0\].joints: expected a non-empty list"),
        ({"frame_index": 3}, r"degraded\[0\].frame_index: expected an integer in \[0, 3\)"),
        ({"track_id": "a"}, r"degraded\[0\].track_id: expected an integer >= 0"),
        ({"image_id": None}, r"degraded\[0\].image_id: expected an integer"),
        ({"degraded": {}}, r"degraded: expected a list"),
    ],
)
def test_bad_sidecars_name_the_file_and_field(tmp_path: Path, changes: dict, message: str) -> None:
    path = _sidecar(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as err:
        dg.read_degraded_file(path)
    assert str(path) in str(err.value)


def test_posetrack_sidecars_need_image_ids(tmp_path: Path) -> None:
    path = _sidecar(tmp_path)
    data = json.loads(path.read_text())
    del data["degraded"][0]["image_id"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"degraded\[0\]: missing field 'image_id'"):
        dg.read_degraded_file(path)
    data["layout"] = "jhmdb"
    path.write_text(json.dumps(data))
    assert dg.read_degraded_file(path).entries[0].image_id is None


def test_unreadable_sidecars_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        dg.read_degraded_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        dg.read_degraded_file(bad)


def test_degradation_config_and_overrides_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kinds"):
        DegradationConfig(kinds=("defocus", "rain"))
    with pytest.raises(ValueError, match="probability"):
        DegradationConfig(probability=1.5)
    with pytest.raises(ValueError, match="defocus_sigma"):
        DegradationConfig(defocus_sigma=(0.2, 0.1))
    ablation = syn.dataset_dir("degraded_tiny", tmp_path, degradation={"kinds": ["defocus"]})
    assert ablation.name.startswith("custom-") and ablation != syn.dataset_dir("degraded_tiny", tmp_path)
    with pytest.raises(ValueError, match=r"unknown parameters \['blur'\]"):
        syn.dataset_dir("degraded_tiny", tmp_path, degradation={"blur": 1})
