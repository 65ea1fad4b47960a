"""Prediction writers: PoseTrack18 (mmpose style) and PoseTrack17 annolist (DCPose style) files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK, POSEVAL
from vidpose.evaluation.posetrack_map import evaluate_dirs
from vidpose.evaluation.writers import (
    PosePrediction,
    write_posetrack17_predictions,
    write_posetrack18_predictions,
)

CATEGORY = [{"id": 1, "name": "person", "keypoints": list(POSETRACK.joint_names)}]


def gt_video(video: int, n_frames: int) -> dict:
    """A PT18 GT file: one nose per frame at (10 + f, 20) with a 5x0 head box (head size 3)."""
    images = [
        {
            "id": video * 100 + f,
            "file_name": f"images/val/{video:06d}_mpii_test/{f:06d}.jpg",
            "is_labeled": True,
        }
        for f in range(n_frames)
    ]
    anns = []
    for f in range(n_frames):
        kp = np.zeros((17, 3))
        kp[POSETRACK.index("nose")] = (10 + f, 20, 1)
        anns.append(
            {
                "image_id": video * 100 + f,
                "track_id": 0,
                "keypoints": kp.reshape(-1).tolist(),
                "bbox_head": [0, 0, 5, 0],
            }
        )
    return {"images": images, "annotations": anns, "categories": CATEGORY}


@pytest.fixture()
def gt_dir(tmp_path: Path) -> Path:
    d = tmp_path / "gt"
    d.mkdir()
    for video, n in ((1, 2), (2, 3)):
        (d / f"{video:06d}_mpii_test.json").write_text(json.dumps(gt_video(video, n)))
    return d


def nose_prediction(
    image_id: int, x: float, score: float, track_id: int | None = None, box_score: float = 0.8
) -> PosePrediction:
    kp = np.zeros((17, 3))
    kp[POSETRACK.index("nose")] = (x, 20, score)
    kp[POSETRACK.index("left_hip")] = (x, 80, 0.25)
    return PosePrediction(image_id=image_id, keypoints=kp, box_score=box_score, track_id=track_id)


def test_pt18_files_mirror_the_gt_images_and_carry_the_fields(gt_dir, tmp_path):
    preds = [
        nose_prediction(101, 11, 0.9, track_id=4),
        nose_prediction(101, 300, 0.5),
        nose_prediction(200, 10, 0.7),
    ]
    paths = write_posetrack18_predictions(preds, gt_dir, tmp_path / "pred")
    assert [p.name for p in paths] == ["000001_mpii_test.json", "000002_mpii_test.json"]
    first = json.loads(paths[0].read_text())
    gt_first = gt_video(1, 2)
    assert first["images"] == [
        {"id": i["id"], "file_name": i["file_name"]} for i in gt_first["images"]
    ]
    assert first["categories"][0]["keypoints"] == list(POSETRACK.joint_names)
    a, b = first["annotations"]
    # the given track id is kept; the missing one becomes the smallest unused index
    assert (a["image_id"], a["track_id"], b["track_id"]) == (101, 4, 0)
    assert len(a["keypoints"]) == 51 and a["keypoints"][0:3] == [11.0, 20.0, 0.9]
    assert (
        len(a["scores"]) == 17
        and a["scores"][POSETRACK.index("left_hip")] == 0.25
        and a["score"] == 0.8
    )
    second = json.loads(paths[1].read_text())
    assert len(second["images"]) == 3 and [x["image_id"] for x in second["annotations"]] == [200]


def test_written_predictions_evaluate_as_expected(gt_dir, tmp_path):
    # 5 GT noses; hits on images 100 (0.9) and 201 (0.6), a false positive on 100 (0.8) far away:
    # ranking TP, FP, TP with nGT 5 -> precision 1, 1/2, 2/3 at recall 1/5, 1/5, 2/5
    # -> AP = (1/5 * 1 + 1/5 * 2/3) * 100. left_hip is predicted but never annotated -> NaN.
    preds = [
        nose_prediction(100, 10, 0.9),
        nose_prediction(100, 400, 0.8),
        nose_prediction(201, 11, 0.6),
    ]
    write_posetrack18_predictions(preds, gt_dir, tmp_path / "pred")
    result = evaluate_dirs(gt_dir, tmp_path / "pred")
    nose = POSEVAL.joint_names.index("nose")
    assert result.ap_per_joint[nose] == pytest.approx(100 * (1 / 5 + 2 / 15), abs=1e-12)
    assert np.isnan(result.ap_per_joint[POSEVAL.joint_names.index("left_hip")])


def test_pt17_files_hold_poseval_points_and_score_like_pt18(gt_dir, tmp_path):
    preds = [
        nose_prediction(100, 10, 0.9),
        nose_prediction(100, 400, 0.8),
        nose_prediction(201, 11, 0.6, track_id=3),
    ]
    paths = write_posetrack17_predictions(preds, gt_dir, tmp_path / "pred17")
    data = json.loads(paths[0].read_text())
    assert len(data["annolist"]) == 2 and data["annolist"][1]["annorect"] == []
    assert data["annolist"][0]["image"][0]["name"] == "images/val/000001_mpii_test/000000.jpg"
    rect = data["annolist"][0]["annorect"][0]
    # only the two non-(0, 0, 0) joints, with poseval ids (nose 13, left_hip 3)
    assert [(p["id"], p["x"], p["score"]) for p in rect["annopoints"][0]["point"]] == [
        ([3], [10.0], [0.25]),
        ([13], [10.0], [0.9]),
    ]
    assert rect["track_id"] == [0] and rect["score"] == [0.8]
    assert json.loads(paths[1].read_text())["annolist"][1]["annorect"][0]["track_id"] == [3]
    write_posetrack18_predictions(preds, gt_dir, tmp_path / "pred18")
    r17, r18 = (
        evaluate_dirs(gt_dir, tmp_path / "pred17"),
        evaluate_dirs(gt_dir, tmp_path / "pred18"),
    )
    np.testing.assert_array_equal(r17.ap_per_joint, r18.ap_per_joint)
    np.testing.assert_array_equal(r17.precision_per_joint, r18.precision_per_joint)


def test_pt17_gt_frames_get_the_data_index_image_ids(tmp_path):
    # poseval's id scheme for PT17 frames: type 1 (mpii) * 1e10 + sequence 1 * 1e4 + frame number
    gt = {
        "annolist": [
            {
                "image": [{"name": f"images/val/000001_mpii_test/{f:08d}.jpg"}],
                "annorect": [],
                "is_labeled": [0],
            }
            for f in range(1, 3)
        ]
    }
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "000001_mpii_test.json").write_text(json.dumps(gt))
    paths = write_posetrack18_predictions(
        [nose_prediction(10_000_010_002, 10, 0.9)], tmp_path / "gt", tmp_path / "pred"
    )
    data = json.loads(paths[0].read_text())
    assert [i["id"] for i in data["images"]] == [10_000_010_001, 10_000_010_002]
    assert [a["image_id"] for a in data["annotations"]] == [10_000_010_002]


def test_unknown_image_ids_are_an_error_naming_examples(gt_dir, tmp_path):
    with pytest.raises(
        ValueError, match=r"2 predictions have image ids that no GT file lists, e.g. \[777, 999\]"
    ):
        write_posetrack18_predictions(
            [nose_prediction(999, 1, 1), nose_prediction(777, 1, 1), nose_prediction(100, 1, 1)],
            gt_dir,
            tmp_path / "p",
        )


def test_track_ids_unique_within_a_frame(gt_dir, tmp_path):
    preds = [
        nose_prediction(100, 1, 1, track_id=0),
        nose_prediction(100, 2, 1),
        nose_prediction(100, 3, 1, track_id=2),
        nose_prediction(100, 4, 1),
    ]
    paths = write_posetrack18_predictions(preds, gt_dir, tmp_path / "p")
    assert [a["track_id"] for a in json.loads(paths[0].read_text())["annotations"]] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"image 100: duplicate track ids \[5, 5\]"):
        write_posetrack18_predictions(
            [nose_prediction(100, 1, 1, track_id=5), nose_prediction(100, 2, 1, track_id=5)],
            gt_dir,
            tmp_path / "q",
        )


def test_bad_predictions_and_gt_dirs(gt_dir, tmp_path):
    with pytest.raises(ValueError, match=r"keypoints must be \(K, 3\)"):
        PosePrediction(image_id=1, keypoints=np.zeros((17, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        PosePrediction(image_id=1, keypoints=np.full((17, 3), np.nan))
    with pytest.raises(ValueError, match="expected 17 PoseTrack keypoints, got 15"):
        write_posetrack18_predictions(
            [PosePrediction(image_id=100, keypoints=np.zeros((15, 3)))], gt_dir, tmp_path / "p"
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no"):
        write_posetrack18_predictions([], tmp_path / "empty", tmp_path / "p")
