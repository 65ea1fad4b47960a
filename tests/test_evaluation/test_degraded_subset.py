"""Degraded-subset scoring goes through the existing evaluators: an all-joints sidecar gives the full
evaluation, hand-built cases give the AP worked out by hand, bad input names the file; the neighbour
oracle is exact on linear motion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidpose.data.degraded import DegradedEntry, DegradedVideo, write_degraded_file
from vidpose.data.keypoints import POSETRACK
from vidpose.evaluation import jhmdb_pck, posetrack_map
from vidpose.evaluation.degraded_subset import (
    EmptySubsetError,
    filter_posetrack_dirs,
    jhmdb_subset_pck,
    score_degraded_jhmdb,
    score_degraded_subset,
)
from vidpose.evaluation.neighbour_oracle import neighbour_oracle_predictions, write_neighbour_oracle
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions

L_WRIST = POSETRACK.index("left_wrist")


def _image_id(video: int, frame: int) -> int:
    return 10_000_000_000 + video * 10_000 + frame


def _write_gt(gt_dir: Path, video: int, poses: np.ndarray, annotated: np.ndarray) -> str:
    """A PT18 GT file of poses ``(F, P, 17, 2)`` (track id = person index) with joints ``annotated (F, P, 17)``."""
    name = f"{video:06d}_mpii_test"
    images, annotations = [], []
    for f in range(poses.shape[0]):
        images.append({"id": _image_id(video, f), "file_name": f"images/val/{name}/{f:06d}.jpg", "is_labeled": True,
                       "nframes": poses.shape[0]})
        for p in range(poses.shape[1]):
            triplets = np.zeros((17, 3))
            shown = annotated[f, p]
            triplets[shown] = np.concatenate([poses[f, p][shown], np.ones((shown.sum(), 1))], 1)
            head = poses[f, p, POSETRACK.index("head_top")]
            annotations.append({"image_id": _image_id(video, f), "track_id": p, "id": len(annotations),
                                "keypoints": triplets.reshape(-1).tolist(),
                                "bbox_head": [*(head - 15).tolist(), 30, 30]})
    gt_dir.mkdir(parents=True, exist_ok=True)
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(POSETRACK.joint_names)}]}
    (gt_dir / f"{name}.json").write_text(json.dumps(data))
    return name


def _predictions(video: int, poses: np.ndarray, scores: np.ndarray) -> list[PosePrediction]:
    """One GT-box prediction per person: poses ``(F, P, 17, 2)``, scores ``(F, P, 17)``."""
    return [
        PosePrediction(_image_id(video, f), np.concatenate([poses[f, p], scores[f, p][:, None]], 1), 1.0, p)
        for f in range(poses.shape[0]) for p in range(poses.shape[1])
    ]


def _random_set(tmp_path: Path, seed: int = 0) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Two videos of 4 frames x 3 people with random poses, some joints unannotated, noisy predictions."""
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir, predictions, annotated_by_video = tmp_path / "gt", tmp_path / "pred", [], {}
    for video in (1, 2):
        poses = rng.uniform(20, 300, (4, 3, 17, 2))
        annotated = rng.random((4, 3, 17)) > 0.15
        annotated[..., list(POSETRACK.never_annotated)] = False
        name = _write_gt(gt_dir, video, poses, annotated)
        noisy = poses + rng.normal(0, 6, poses.shape) + (rng.random(poses.shape[:3]) < 0.1)[..., None] * 40
        predictions += _predictions(video, noisy, rng.random((4, 3, 17)))
        annotated_by_video[name] = annotated
    write_posetrack18_predictions(predictions, gt_dir, pred_dir)
    return gt_dir, pred_dir, annotated_by_video


def _write_sidecars(sidecar_dir: Path, entries_by_video: dict[str, list[DegradedEntry]], num_frames: int) -> None:
    for name, entries in entries_by_video.items():
        write_degraded_file(sidecar_dir / f"{name}.json", name, "posetrack", num_frames, entries)


def test_all_joints_sidecar_gives_the_full_evaluation(tmp_path: Path) -> None:
    gt_dir, pred_dir, annotated = _random_set(tmp_path)
    every = {name: [DegradedEntry(f, p, "defocus", tuple(range(17)), _image_id(int(name[:6]), f))
                    for f in range(4) for p in range(3)] for name in annotated}
    _write_sidecars(tmp_path / "all", every, 4)
    _write_sidecars(tmp_path / "none", {name: [] for name in annotated}, 4)
    full = posetrack_map.evaluate_dirs(gt_dir, pred_dir)
    assert 20 < full.total < 95
    degraded = score_degraded_subset(gt_dir, pred_dir, tmp_path / "all")
    clean = score_degraded_subset(gt_dir, pred_dir, tmp_path / "none")
    for name, value in full.columns.items():
        key = "mAP" if name == "Total" else f"AP/{name}"
        assert degraded[f"degraded/{key}"] == value and clean[f"clean/{key}"] == value, name
    assert degraded["degraded/n_gt_joints"] == full.counts.gt_joints == clean["clean/n_gt_joints"]
    assert degraded["degraded/defocus/mAP"] == full.total
    assert np.isnan(clean["degraded/mAP"]) and clean["degraded/n_gt_joints"] == 0


def _two_people(tmp_path: Path) -> tuple[Path, Path, Path]:
    """One video, 2 frames, people 0 and 1; the left wrist of person 0 in frame 0 and of person 1 in
    frame 1 are degraded; every prediction is exact except person 1's left wrist in frame 1 (100 px off)."""
    poses = np.zeros((2, 2, 17, 2))
    poses[..., 0] = np.linspace(100, 180, 17)
    poses[..., 1] = np.linspace(50, 250, 17)
    poses[:, 1, :, 0] += 200
    annotated = np.ones((2, 2, 17), dtype=bool)
    annotated[..., list(POSETRACK.never_annotated)] = False
    name = _write_gt(tmp_path / "gt", 1, poses, annotated)
    predicted = poses.copy()
    predicted[1, 1, L_WRIST] += 100
    scores = np.full((2, 2, 17), 0.5)
    scores[0, 0, L_WRIST], scores[1, 1, L_WRIST] = 0.9, 0.8
    write_posetrack18_predictions(_predictions(1, predicted, scores), tmp_path / "gt", tmp_path / "pred")
    entries = [DegradedEntry(0, 0, "occluder", (L_WRIST,), _image_id(1, 0)),
               DegradedEntry(1, 1, "noise", (L_WRIST,), _image_id(1, 1))]
    _write_sidecars(tmp_path / "sidecars", {name: entries}, 2)
    return tmp_path / "gt", tmp_path / "pred", tmp_path / "sidecars"


def test_hand_built_subset_has_the_ap_worked_out_by_hand(tmp_path: Path) -> None:
    gt_dir, pred_dir, sidecars = _two_people(tmp_path)
    metrics = score_degraded_subset(gt_dir, pred_dir, sidecars, tmp_path / "subsets")
    # left wrist: detections 0.9 (hit), 0.8 (miss) of 2 GT joints -> precision 1 up to recall 0.5 -> AP 50
    assert metrics["degraded/mAP"] == 50.0 and metrics["degraded/AP/Wri"] == 50.0
    assert np.isnan(metrics["degraded/AP/Head"])  # no degraded head joint: no AP, not 0
    counts = [metrics[f"degraded/{k}"] for k in ("n_gt_joints", "n_gt_people", "n_frames_evaluated")]
    assert counts == [2, 2, 2]
    assert metrics["degraded/occluder/mAP"] == 100.0 and metrics["degraded/noise/mAP"] == 0.0
    assert "degraded/defocus/mAP" not in metrics
    assert metrics["clean/mAP"] == 100.0 and metrics["clean/n_gt_joints"] == 2 * 2 * 15 - 2
    assert posetrack_map.evaluate_dirs(gt_dir, pred_dir).total < 100.0
    # the filtered folders are ordinary PT18 files: one person with one joint per frame
    gt = json.loads(next((tmp_path / "subsets" / "degraded" / "gt").glob("*.json")).read_text())
    kept = [(a["track_id"], np.flatnonzero(np.reshape(a["keypoints"], (17, 3)).any(axis=1)).tolist())
            for a in gt["annotations"]]
    assert kept == [(0, [L_WRIST]), (1, [L_WRIST])]
    subset = tmp_path / "subsets" / "degraded"
    again = posetrack_map.evaluate_dirs(subset / "gt", subset / "pred")
    assert again.ap_per_joint[posetrack_map.OUTPUT_JOINT_NAMES.index("left_wrist")] == 50.0


def test_predictions_without_track_ids_are_refused(tmp_path: Path) -> None:
    gt_dir, pred_dir, sidecars = _two_people(tmp_path)
    path = next(pred_dir.glob("*.json"))
    data = json.loads(path.read_text())
    del data["annotations"][0]["track_id"]
    path.write_text(json.dumps(data))
    with pytest.raises(posetrack_map.PoseTrackFormatError, match=r"annotations\[0\].track_id.*GT-box") as err:
        score_degraded_subset(gt_dir, pred_dir, sidecars)
    assert str(path) in str(err.value)


def test_sidecars_that_do_not_match_the_gt_are_errors_naming_the_file(tmp_path: Path) -> None:
    gt_dir, pred_dir, sidecars = _two_people(tmp_path)
    path = next(sidecars.glob("*.json"))
    data = json.loads(path.read_text())
    data["degraded"][1]["image_id"] += 5
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"degraded\[1\]: image_id .* but images\[1\].id") as err:
        filter_posetrack_dirs(gt_dir, pred_dir, sidecars, tmp_path / "out")
    assert str(path) in str(err.value)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=str(path)):
        score_degraded_subset(gt_dir, pred_dir, sidecars)
    with pytest.raises(FileNotFoundError, match="sidecar folder"):
        score_degraded_subset(gt_dir, pred_dir, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="subset 'clean'.*no kinds"):
        filter_posetrack_dirs(gt_dir, pred_dir, sidecars, tmp_path / "out", "clean", ["noise"])


def _jhmdb_videos(rng: np.random.Generator) -> list[dict]:
    videos = []
    for name in ("a", "b"):
        gt = rng.uniform(20, 200, (5, 15, 2))
        bbox = np.tile([10.0, 10.0, 210.0, 210.0], (5, 1))  # size 200: PCK@0.1 is 20 px
        pred = gt + rng.normal(0, 15, gt.shape)
        videos.append({"name": name, "gt": gt, "pred": pred, "bbox": bbox})
    return videos


def test_jhmdb_subset_pck_is_jhmdb_pck_on_the_kept_joints() -> None:
    videos = _jhmdb_videos(np.random.default_rng(0))
    every = jhmdb_subset_pck(videos, [np.ones((5, 15), bool)] * 2)
    official = jhmdb_pck.evaluate(videos)
    assert every["PCK@0.1/Avg"] == pytest.approx(100 * official.groups(0.1)["Avg"], abs=1e-12)
    assert every["n_joints"] == 150
    # only frame 2 of video "a": per joint a hit (100) or a miss (0); Avg is their mean
    mask_a = np.zeros((5, 15), bool)
    mask_a[2] = True
    only = jhmdb_subset_pck(videos[:1], [mask_a])
    hits = np.linalg.norm(videos[0]["pred"][2] - videos[0]["gt"][2], axis=-1) <= 20
    assert only["PCK@0.1/Avg"] == pytest.approx(100 * hits.mean())
    mask_a[2, 4] = False
    with pytest.raises(EmptySubsetError, match="left_shoulder"):
        jhmdb_subset_pck(videos[:1], [mask_a])


def test_jhmdb_degraded_and_clean_come_from_the_sidecar(tmp_path: Path) -> None:
    videos = _jhmdb_videos(np.random.default_rng(1))
    every = tuple(range(15))
    entries = {name: (DegradedEntry(1, 0, "defocus", every), DegradedEntry(3, 0, "occluder", every)) for name in "ab"}
    sidecars = {name: DegradedVideo(tmp_path / f"{name}.json", name, "jhmdb", 5, e) for name, e in entries.items()}
    rows = [[0, 1, 2, 3, 4]] * 2
    metrics = score_degraded_jhmdb(videos, sidecars, ["a", "b"], rows)
    degraded_mask = np.zeros((5, 15), bool)
    degraded_mask[[1, 3]] = True
    expected = jhmdb_subset_pck(videos, [degraded_mask] * 2)
    assert metrics["degraded/PCK@0.2/Avg"] == expected["PCK@0.2/Avg"] and metrics["degraded/n_joints"] == 60
    assert metrics["clean/n_joints"] == 90
    with pytest.raises(KeyError, match="'c'"):
        score_degraded_jhmdb(videos, sidecars, ["a", "c"], rows)


def test_neighbour_oracle_is_exact_on_linear_motion(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    start, velocity = rng.uniform(50, 250, (2, 17, 2)), rng.uniform(-4, 4, (2, 17, 2))
    poses = start + velocity * np.arange(6)[:, None, None, None]  # (F, P, 17, 2)
    annotated = np.ones((6, 2, 17), dtype=bool)
    annotated[..., list(POSETRACK.never_annotated)] = False
    annotated[3, 1, L_WRIST] = False  # a neighbour without the joint: frames 2 and 4 use their own
    name = _write_gt(tmp_path / "gt", 1, poses, annotated)
    entries = [DegradedEntry(f, p, "defocus", tuple(np.flatnonzero(annotated[f, p])), _image_id(1, f))
               for f in (1, 2, 4) for p in (0, 1)]
    _write_sidecars(tmp_path / "sidecars", {name: entries}, 6)
    write_neighbour_oracle(tmp_path / "gt", tmp_path / "oracle")
    assert posetrack_map.evaluate_dirs(tmp_path / "gt", tmp_path / "oracle").total == 100.0
    metrics = score_degraded_subset(tmp_path / "gt", tmp_path / "oracle", tmp_path / "sidecars")
    assert metrics["degraded/mAP"] == 100.0 and metrics["degraded/n_gt_joints"] == 3 * 2 * 15
    oracle = {(p.image_id, p.track_id): p.keypoints for p in neighbour_oracle_predictions(tmp_path / "gt")}
    np.testing.assert_allclose(oracle[(_image_id(1, 2), 0)][:, :2][annotated[2, 0]], poses[2, 0][annotated[2, 0]])
    assert not oracle[(_image_id(1, 3), 1)][L_WRIST].any()  # not annotated: not predicted
    np.testing.assert_array_equal(oracle[(_image_id(1, 0), 0)][:, 2][annotated[0, 0]], 1.0)


def test_neighbour_oracle_averages_the_neighbours(tmp_path: Path) -> None:
    poses = np.zeros((3, 1, 17, 2))
    poses[..., 0] = 100 + np.array([0.0, 10.0, 40.0])[:, None, None]  # accelerating: mean of 0 and 40 is 20
    poses[..., 1] = 100 + np.arange(17)[None, None, :] * 5
    annotated = np.ones((3, 1, 17), dtype=bool)
    _write_gt(tmp_path / "gt", 1, poses, annotated)
    oracle = {p.image_id: p.keypoints for p in neighbour_oracle_predictions(tmp_path / "gt")}
    assert np.all(oracle[_image_id(1, 1)][:, 0] == 120.0)
    assert np.all(oracle[_image_id(1, 0)][:, 0] == 100.0)  # first frame: no neighbour before, its own GT
