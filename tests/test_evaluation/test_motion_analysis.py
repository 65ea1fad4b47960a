"""Motion-stratified AP: joint motion, matching reuse, per-bin APs by hand, motion subset, plots, CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK
from vidpose.evaluation import motion_analysis as ma
from vidpose.evaluation import posetrack_map as pm

SLOT = {name: i for i, name in enumerate(POSETRACK.joint_names)}
# poseval ids of the joints the toy uses
NOSE, HEAD_TOP, L_WRIST, R_ANKLE = 13, 14, 11, 0
CATEGORY = [{"id": 1, "name": "person", "keypoints": list(POSETRACK.joint_names)}]


def _keypoints(
    joints: dict[str, tuple[float, float]], scores: dict[str, float] | None = None
) -> list[float]:
    values = np.zeros((17, 3))
    for name, (x, y) in joints.items():
        values[SLOT[name]] = (x, y, 1.0 if scores is None else scores[name])
    return values.reshape(-1).tolist()


def _gt_person(frame: int, track: int, joints: dict, bbox: list, head: list) -> dict:
    return {
        "image_id": frame,
        "track_id": track,
        "keypoints": _keypoints(joints),
        "bbox": bbox,
        "bbox_head": head,
    }


def _pred_person(frame: int, joints: dict[str, tuple[float, float, float]]) -> dict:
    xy = {k: v[:2] for k, v in joints.items()}
    scores = {k: v[2] for k, v in joints.items()}
    kp = _keypoints(xy, scores)
    return {"image_id": frame, "track_id": 0, "keypoints": kp, "scores": kp[2::3]}


def _write(path: Path, n_frames: int, annotations: list[dict]) -> None:
    images = [
        {"id": f, "file_name": f"images/val/000001_mpii_test/{f:06d}.jpg"} for f in range(n_frames)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": CATEGORY})
    )


# Person A (track 0): box 100x100 (size 100), head box 30x40 (head size 0.6 * 50 = 30, match
# radius 15 px); nose still at (50, 20) on frames 0-2; left wrist moving 20 px/frame; head top
# on frames 0 and 2 only. Person B (track 1): box 50x200 (size sqrt(50*200) = 100), on frames 0
# and 2; nose and right ankle move 40 px over the gap of 2 frames (20 px/frame).
A_BOX, A_HEAD = [0, 0, 100, 100], [0, 0, 30, 40]
B_BOX, B_HEAD = [200, 0, 50, 200], [210, 0, 30, 40]
GT = [
    _gt_person(
        0, 0, {"nose": (50, 20), "left_wrist": (10, 60), "head_top": (50, 5)}, A_BOX, A_HEAD
    ),
    _gt_person(0, 1, {"nose": (225, 20), "right_ankle": (210, 180)}, B_BOX, B_HEAD),
    _gt_person(1, 0, {"nose": (50, 20), "left_wrist": (30, 60)}, A_BOX, A_HEAD),
    _gt_person(
        2, 0, {"nose": (50, 20), "left_wrist": (50, 60), "head_top": (50, 5)}, A_BOX, A_HEAD
    ),
    _gt_person(2, 1, {"nose": (265, 20), "right_ankle": (250, 180)}, B_BOX, B_HEAD),
]
PRED = [
    _pred_person(
        0, {"nose": (50, 20, 0.9), "left_wrist": (10, 60, 0.8), "head_top": (50, 5, 0.6)}
    ),  # -> A
    _pred_person(0, {"nose": (225, 20, 0.85), "right_ankle": (210, 180, 0.7)}),  # -> B
    _pred_person(
        0, {"nose": (1000, 500, 0.95), "left_wrist": (1000, 600, 0.95)}
    ),  # matched to nobody
    _pred_person(1, {"nose": (150, 20, 0.5), "left_wrist": (30, 60, 0.4)}),  # -> A, nose 100 px off
    _pred_person(
        2, {"nose": (50, 20, 0.3), "left_wrist": (150, 60, 0.35), "head_top": (150, 5, 0.2)}
    ),  # -> A
]


@pytest.fixture
def toy(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    _write(gt_dir / "000001_mpii_test.json", 3, GT)
    _write(pred_dir / "000001_mpii_test.json", 3, PRED)
    return gt_dir, pred_dir


def _table(gt_dir, pred_dir, max_gap=ma.DEFAULT_MAX_GAP):
    gt_videos, pred_videos, unused = ma.read_videos(gt_dir, pred_dir)
    return ma.build_match_table(gt_videos, pred_videos, "poseval", max_gap, unused)


def test_joint_motion_by_hand(toy):
    gt_dir, _ = toy
    video = pm.read_video_file(gt_dir / "000001_mpii_test.json", "gt")
    tracks, sizes = ma.read_people_fields(video.path, video, "gt")
    # rows are by frame, file order within a frame: A0, B0, A1, A2, B2
    assert tracks.tolist() == [0, 1, 0, 0, 1]
    np.testing.assert_allclose(sizes, 100.0)
    motion = ma.joint_motion(video, tracks, sizes, max_gap=8)
    np.testing.assert_allclose(motion[[0, 2, 3], NOSE], 0.0)
    # wrist: 20 px per frame / size 100 on both sides of frame 1, one side at frames 0 and 2
    np.testing.assert_allclose(motion[[0, 2, 3], L_WRIST], 0.2)
    # B: 40 px over a gap of 2 frames = 20 px/frame, / 100
    np.testing.assert_allclose(motion[[1, 4], NOSE], 0.2)
    np.testing.assert_allclose(motion[[1, 4], R_ANKLE], 0.2)
    # head top: A's adjacent annotated frame (1) lacks it, so no motion on frames 0 and 2
    assert np.isnan(motion[[0, 3], HEAD_TOP]).all()
    assert np.isnan(motion[:, 5]).all()  # a joint nobody has
    # B's neighbours are 2 frames away: beyond max_gap=1 they are not adjacent
    short = ma.joint_motion(video, tracks, sizes, max_gap=1)
    assert np.isnan(short[[1, 4]][:, [NOSE, R_ANKLE]]).all()
    np.testing.assert_allclose(short[[0, 2, 3], L_WRIST], 0.2)


def test_motion_of_a_pt17_file_uses_the_joint_extent_as_size(tmp_path):
    # no person box in PoseTrack17: size = sqrt(30 * 40) of the two joints' extent
    def rect(x):
        return {
            "track_id": [3],
            "x1": [0],
            "y1": [0],
            "x2": [30],
            "y2": [40],
            "annopoints": [
                {"point": [{"id": [13], "x": [x], "y": [0]}, {"id": [0], "x": [x + 30], "y": [40]}]}
            ],
        }

    path = tmp_path / "v.json"
    path.write_text(json.dumps({"annolist": [{"annorect": [rect(10.0 * f)]} for f in range(2)]}))
    video = pm.read_video_file(path, "gt")
    tracks, sizes = ma.read_people_fields(path, video, "gt")
    assert tracks.tolist() == [3, 3]
    np.testing.assert_allclose(sizes, math.sqrt(1200.0))
    motion = ma.joint_motion(video, tracks, sizes)
    np.testing.assert_allclose(motion[:, 13], 10.0 / math.sqrt(1200.0))


def test_gt_without_track_ids_is_an_error(tmp_path):
    people = [dict(p) for p in GT]
    del people[2]["track_id"]
    _write(tmp_path / "v.json", 3, people)
    video = pm.read_video_file(tmp_path / "v.json", "gt")
    with pytest.raises(pm.PoseTrackFormatError, match="track_id"):
        ma.read_people_fields(tmp_path / "v.json", video, "gt")


def test_assignment_follows_poseval_matching(toy):
    table = _table(*toy)
    # predictions in file order; GT rows A0, B0, A1, A2, B2
    assert table.assigned.tolist() == [0, 1, -1, 2, 3]
    assert table.gt_track.tolist() == [0, 1, 0, 0, 1]
    # the pooled table reproduces the evaluator's per-joint AP exactly; joints without GT are
    # NaN (poseval: 0 without detections)
    ap, n_gt = ma.subset_ap(table, np.ones_like(table.gt.present), np.ones_like(table.labels))
    overall = pm.evaluate_dirs(*toy)
    has = n_gt > 0
    np.testing.assert_array_equal(ap[has], overall.ap_per_joint[has])
    assert has.sum() == 4 and np.isnan(ap[~has]).all()
    # nose overall: 5 GT; ranked .95 FP, .9 TP, .85 TP, .5 FP, .3 TP -> (.2 + .2) * 2/3 + .2 * .6
    assert overall.ap_per_joint[NOSE] == pytest.approx(100 * (0.4 * 2 / 3 + 0.2 * 0.6))
    assert n_gt[NOSE] == 5


def test_ap_per_motion_bin_by_hand(toy):
    table = _table(*toy)
    result = ma.ap_by_motion(table, np.array([0.0, 0.1, np.inf]))
    still, moving = result.bins
    # still bin: A's nose (3 GT); B's nose detection (.85) sits on a moving joint: ignored.
    # ranked .95 FP (unassigned), .9 TP, .5 FP, .3 TP -> 1/3 * 1/2 + 1/3 * 1/2
    assert still.ap_per_joint[NOSE] == pytest.approx(100 / 3)
    assert still.n_gt[NOSE] == 3 and still.n_detections[NOSE] == 4
    assert np.isnan(still.ap_per_joint[[L_WRIST, R_ANKLE, HEAD_TOP]]).all()
    # moving bin, nose: B's 2 GT; .95 FP (unassigned), .85 TP -> 1/2 * 1/2
    assert moving.ap_per_joint[NOSE] == pytest.approx(25.0)
    # wrist (3 GT): .95 FP, .8 TP, .4 TP, .35 FP -> (1/3 + 1/3) * 2/3
    assert moving.ap_per_joint[L_WRIST] == pytest.approx(400 / 9)
    # ankle (2 GT): one TP at .7
    assert moving.ap_per_joint[R_ANKLE] == pytest.approx(50.0)
    # head top has no motion: its own row, .6 TP and .2 FP over 2 GT
    assert result.no_motion.ap_per_joint[HEAD_TOP] == pytest.approx(50.0)
    assert int(result.no_motion.n_gt.sum()) == 2
    cols = moving.columns
    assert cols["Head"] == pytest.approx(25.0) and cols["Wrist"] == pytest.approx(400 / 9)
    assert cols["Total"] == pytest.approx((25 + 400 / 9 + 50) / 3)
    assert math.isnan(cols["Hip"])
    assert still.mean_motion == pytest.approx(0.0) and moving.mean_motion == pytest.approx(0.2)
    assert result.unassigned_detections == 2 and result.total_detections == 12


def test_unassigned_detections_can_be_left_out(toy):
    result = ma.ap_by_motion(_table(*toy), np.array([0.0, 0.1, np.inf]), unassigned="ignore")
    still, moving = result.bins
    # still nose: .9 TP, .5 FP, .3 TP over 3 -> 1/3 * 1 + 1/3 * 2/3
    assert still.ap_per_joint[NOSE] == pytest.approx(100 * (1 / 3 + 2 / 9))
    assert moving.ap_per_joint[NOSE] == pytest.approx(50.0)
    assert moving.ap_per_joint[L_WRIST] == pytest.approx(200 / 3)


def test_single_bin_equals_the_evaluator_on_real_and_synthetic_files(
    tmp_path, posetrack18_mini, synthetic_root
):
    # predictions = GT moved by a few pixels with scores; real files carry ignore regions
    rng = np.random.default_rng(0)
    for name, gt_dir in (
        ("real", posetrack18_mini / "annotations" / "val"),
        ("synthetic", synthetic_root / "posetrack18" / "annotations" / "val"),
    ):
        pred_dir = tmp_path / name
        pred_dir.mkdir()
        for path in sorted(gt_dir.glob("*.json")):
            data = json.loads(path.read_text())
            for ann in data["annotations"]:
                kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
                absent = (kp == 0).all(axis=1)
                kp[:, :2] += rng.normal(0, 6, (len(kp), 2))
                kp[:, 2] = rng.random(len(kp))
                kp[absent] = 0
                ann["keypoints"], ann["scores"] = kp.reshape(-1).tolist(), kp[:, 2].tolist()
            (pred_dir / path.name).write_text(json.dumps(data))
        table = _table(gt_dir, pred_dir)
        expected = pm.evaluate_dirs(gt_dir, pred_dir)
        ap, n_gt = ma.subset_ap(table, table.gt.present, table.pred.present)
        has = n_gt > 0
        np.testing.assert_array_equal(ap[has], expected.ap_per_joint[has])
        assert np.isnan(ap[~has]).all() and has.sum() >= 14
        # one bin plus the no-motion row partition the GT joints
        result = ma.ap_by_motion(table, np.array([0.0, np.inf]))
        assert (
            int(result.bins[0].n_gt.sum() + result.no_motion.n_gt.sum())
            == expected.counts.gt_joints
        )


def test_motion_subset_is_an_evaluable_gt_directory(toy, tmp_path):
    gt_dir, pred_dir = toy
    still = [dict(p, keypoints=_keypoints({"nose": (50, 20)})) for p in GT]
    _write(gt_dir / "000002_mpii_test.json", 3, still)
    shutil.copyfile(pred_dir / "000001_mpii_test.json", pred_dir / "000002_mpii_test.json")
    gt_videos, _, _ = ma.read_videos(gt_dir, None)
    ranking = ma.select_motion_subset(gt_videos, 1, tmp_path / "subset")
    assert [p.name for p in (tmp_path / "subset").iterdir()] == ["000001_mpii_test.json"]
    assert ranking[0]["video"] == "000001_mpii_test.json" and ranking[0]["selected"]
    assert ranking[1]["mean_motion"] == pytest.approx(0.0) and not ranking[1]["selected"]
    # the toy's mean motion: 7 joints at 0.2, 3 at 0 (head top has none) -> 0.14
    assert ranking[0]["mean_motion"] == pytest.approx(0.14)
    subset = pm.evaluate_dirs(tmp_path / "subset", pred_dir)
    assert subset.counts.videos == 1 and subset.counts.prediction_files_unused == 1
    with pytest.raises(FileExistsError):
        ma.select_motion_subset(gt_videos, 1, tmp_path / "subset")


def test_bin_edges():
    np.testing.assert_array_equal(ma.bin_edges("0,0.1,inf"), [0.0, 0.1, np.inf])
    np.testing.assert_allclose(
        ma.bin_edges("quantiles:2", np.array([0.1, 0.2, 0.3, np.nan])), [0.0, 0.2, np.inf]
    )
    for bad in ("0.1,0.05", "0", "a,b", "quantiles:0"):
        with pytest.raises(ValueError):
            ma.bin_edges(bad, np.array([0.1]))


def _png_ok(path: Path, size: tuple[int, int]) -> None:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[:2] == size
    assert (
        len(np.unique(image.reshape(-1, 3), axis=0)) > 20
    )  # lines, text and bars, not a blank canvas


def test_cli_writes_tables_json_plots_and_subset(toy, tmp_path, capsys):
    gt_dir, pred_dir = toy
    out = tmp_path / "out"
    code = ma.main(
        [
            "--gt",
            str(gt_dir),
            "--pred",
            str(pred_dir),
            "--pred-b",
            str(pred_dir),
            "--out",
            str(out),
            "--bins",
            "0,0.1,inf",
            "--motion-subset",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "no motion" in printed and "all (poseval)" in printed
    record = json.loads((out / "motion_analysis.json").read_text())
    assert record["analyses"]["A"]["bins"][1]["ap_per_joint"][L_WRIST] == pytest.approx(400 / 9)
    assert record["gain"][1]["columns"]["Total"] == pytest.approx(0.0)  # B = A
    assert record["analyses"]["A"]["edges"] == [0.0, 0.1, "inf"]
    for name in (
        "motion_histogram.png",
        "ap_by_motion.png",
        "ap_by_motion_groups.png",
        "ap_gain_vs_motion.png",
    ):
        _png_ok(out / name, (350, 600) if name == "motion_histogram.png" else (400, 700))
    assert (out / "motion_subset" / "000001_mpii_test.json").is_file()
    assert json.loads((out / "motion_subset_videos.json").read_text())["videos"][0]["selected"]
    assert (
        ma.main(["--gt", str(tmp_path / "missing"), "--pred", str(pred_dir), "--out", str(out)])
        == 2
    )


def test_module_imports_no_torch():
    code = textwrap.dedent(
        """
        import sys
        import vidpose.evaluation.motion_analysis, vidpose.evaluation.smoothness
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _random_checkpoint(tmp_path: Path, cache_root: Path) -> Path:
    """A randomly initialised baseline_synthetic model (T=3, tiny preset) in the trainer's format."""
    import torch
    from hydra import compose, initialize_config_dir

    from vidpose import __version__
    from vidpose.engine import builders
    from vidpose.engine.checkpoint import save_checkpoint
    from vidpose.registry import to_plain

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "+exp=baseline_synthetic",
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.cache_root={cache_root}",
                "data.dataset.preset=tiny",
                "data.clip.offsets=[-1,0,1]",
            ],
        )
    torch.manual_seed(0)
    model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    state = {
        "config": to_plain(cfg),
        "model": model.state_dict(),
        "vidpose_version": __version__,
        "step": 0,
    }
    return save_checkpoint(state, tmp_path / "random.pt")


@pytest.mark.slow
def test_eval_tool_analysis_motion(tmp_path, synthetic_root):
    """``tools/eval.py analysis=motion``: per-bin AP and smoothness reported next to mAP."""
    from hydra import compose, initialize_config_dir

    from vidpose.engine.distributed import DistInfo
    from vidpose.engine.evaluate_run import run_evaluation

    ckpt = _random_checkpoint(tmp_path, synthetic_root.parent.parent)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="eval",
            overrides=[
                f"ckpt={ckpt}",
                "analysis=motion",
                f"paths.output_dir={tmp_path / 'eval'}",
            ],
        )
    # the train split labels every frame, so the acceleration error has consecutive GT
    overrides = [
        "data.val.split=train",
        "trainer.num_workers=0",
        "codec.flip_test=false",
        "trainer.val_max_instances=60",
    ]
    metrics = run_evaluation(cfg, DistInfo(), overrides=overrides)
    assert "motion/AP/bin0" in metrics and metrics["smooth/accel_error_px"] > 0
    analysis = tmp_path / "eval" / "analysis"
    assert (analysis / "ap_by_motion.png").is_file() and (analysis / "smoothness.json").is_file()
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert record["metrics"]["smooth/accel_error_px"] == pytest.approx(
        metrics["smooth/accel_error_px"]
    )


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from vidpose.data.synthetic import generate

    cache = os.environ.get("VIDPOSE_CACHE") or tmp_path_factory.mktemp("cache")
    return generate("tiny", cache_root=cache)
