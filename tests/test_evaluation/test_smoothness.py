"""Acceleration error and jitter: hand-computed values on toy sequences and PoseTrack-format files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK
from vidpose.evaluation import smoothness as sm

CATEGORY = [{"id": 1, "name": "person", "keypoints": list(POSETRACK.joint_names)}]
NOSE_SLOT = 0


def test_second_difference_and_acceleration_error_by_hand():
    gt = np.zeros((4, 1, 2))
    gt[:, 0, 0] = [0.0, 1.0, 2.0, 3.0]  # constant velocity: zero acceleration
    pred = gt.copy()
    pred[:, 0, 0] = [0.0, 2.0, 2.0, 3.0]  # frame 1 off by +1
    np.testing.assert_allclose(sm.second_difference(gt)[:, 0], 0.0)
    error, gt_norm, ok = sm.acceleration_error_terms(pred, gt, np.ones((4, 1), bool))
    # a_pred = 0 - 4 + 2 = -2 at t=1 and 2 - 4 + 3 = 1 at t=2
    np.testing.assert_allclose(error[:, 0], [2.0, 1.0])
    np.testing.assert_allclose(gt_norm[:, 0], 0.0)
    assert ok.all()
    valid = np.ones((4, 1), bool)
    valid[3] = False  # the second triplet loses its last frame
    _, _, ok = sm.acceleration_error_terms(pred, gt, valid)
    assert ok[:, 0].tolist() == [True, False]


def test_sequences_average_over_entries_and_count_missing_predictions():
    t = np.arange(5, dtype=np.float64)
    gt = np.stack([np.stack([t, t], -1), np.stack([t * t, 0 * t], -1)], axis=1)  # (5, 2, 2)
    pred = gt.copy()
    pred[2, 0] += (3.0, 4.0)  # |offset| = 5 on joint 0, frame 2
    pred_valid = np.ones((5, 2), bool)
    pred_valid[4, 1] = False  # joint 1 unpredicted on the last frame
    result = sm.smoothness_of_sequences(
        [{"pred": pred, "pred_valid": pred_valid, "gt": gt, "gt_valid": np.ones((5, 2), bool)}]
    )
    # joint 0: triplets centred on 1, 2, 3 see the offset with weights 1, -2, 1: errors 5, 10, 5;
    # joint 1: two triplets without error (the third lacks a prediction)
    assert result.accel_entries == 5 and result.accel_entries_unpredicted == 1
    assert result.accel_error == pytest.approx((5 + 10 + 5) / 5)
    # GT acceleration: joint 0 moves at constant speed (0), joint 1 is t^2 (2 per triplet)
    assert result.gt_accel == pytest.approx((0 + 0 + 0 + 2 + 2) / 5)
    assert result.jitter_entries == 0 and math.isnan(result.jitter)


def test_jitter_only_on_unannotated_middle_frames():
    pred = np.zeros((5, 1, 2))
    pred[:, 0, 0] = [0.0, 1.0, 0.0, 1.0, 3.0]
    annotated = np.array([True, False, True, False, True])
    result = sm.smoothness_of_sequences(
        [{"pred": pred, "pred_valid": np.ones((5, 1), bool), "annotated": annotated}]
    )
    # centred on frames 1 and 3: |0 - 2 + 0| = 2 and |0 - 2 + 3| = 1
    assert result.jitter_entries == 2 and result.jitter == pytest.approx(1.5)
    everywhere = sm.smoothness_of_sequences([{"pred": pred, "pred_valid": np.ones((5, 1), bool)}])
    assert everywhere.jitter_entries == 3 and everywhere.jitter == pytest.approx((2 + 2 + 1) / 3)


def _person(frame: int, track: int, x: float, score: bool = False) -> dict:
    kp = np.zeros((17, 3))
    kp[NOSE_SLOT] = (x, 50.0, 1.0)
    kp[1] = (x, 60.0, 1.0)  # head bottom, keeps the person matchable
    person = {
        "image_id": frame,
        "track_id": track,
        "keypoints": kp.reshape(-1).tolist(),
        "bbox": [x - 20, 20, 40, 80],
        "bbox_head": [x - 10, 40, 20, 30],
    }
    if score:
        person["scores"] = [0.9] * 17
    return person


def _write(path: Path, n_frames: int, people: list[dict]) -> None:
    images = [
        {"id": f, "file_name": f"images/val/000001_mpii_test/{f:06d}.jpg"} for f in range(n_frames)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": people, "categories": CATEGORY}))


def test_posetrack_dirs_link_predictions_to_gt_tracks(tmp_path):
    # GT on frames 0-3 (consecutive), track 5 at x = 100 (still); predictions on every frame
    # with track id 1 (so only poseval's matching links them) and a 2 px wobble on frame 1
    gt = [_person(f, 5, 100.0) for f in range(4)]
    pred = [_person(f, 1, 100.0 + (2.0 if f == 1 else 0.0), score=True) for f in range(6)]
    _write(tmp_path / "gt" / "v.json", 6, gt)
    _write(tmp_path / "pred" / "v.json", 6, pred)
    result = sm.smoothness_from_dirs(tmp_path / "gt", tmp_path / "pred")
    # triplets centred on frames 1 and 2, two joints each: |a| = 4 (centre) and 2 (side)
    assert result.accel_entries == 4 and result.accel_error == pytest.approx((4 + 4 + 2 + 2) / 4)
    # frames 4, 5 are not annotated: the triplet (3, 4, 5) is centred on 4, with a = 0
    assert result.jitter_entries == 2 and result.jitter == pytest.approx(0.0)
    # by track id the predictions (track 1) belong to no GT track (5)
    by_track = sm.smoothness_from_dirs(tmp_path / "gt", tmp_path / "pred", link="track_id")
    assert by_track.accel_entries == 0 and by_track.accel_entries_unpredicted == 4
    gt_ids = [dict(p, track_id=5) for p in pred]
    _write(tmp_path / "pred_ids" / "v.json", 6, gt_ids)
    assert sm.smoothness_from_dirs(
        tmp_path / "gt", tmp_path / "pred_ids", link="track_id"
    ).accel_error == pytest.approx(3.0)


def test_duplicate_track_ids_are_dropped_and_counted(tmp_path, capsys):
    pred = [_person(f, 0, 10.0 * f, score=True) for f in range(4)] + [
        _person(2, 0, 300.0, score=True)
    ]
    _write(tmp_path / "pred" / "v.json", 4, pred)
    result = sm.smoothness_from_dirs(None, tmp_path / "pred")
    # frame 2 holds track 0 twice: both dropped, no full triplet is left
    assert result.pred_frames_duplicate_track == 2 and result.jitter_entries == 0
    out = tmp_path / "s.json"
    assert sm.main(["--pred", str(tmp_path / "pred"), "--json", str(out)]) == 0
    assert "jitter" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["jitter"] is None and record["pred_frames_duplicate_track"] == 2


def test_from_index_uses_every_labelled_frame():
    # a JHMDB-like index: one person per frame, all frames labelled
    k = 2
    frames = []
    for f in range(4):
        person = SimpleNamespace(keypoints=np.full((k, 2), 10.0 * f), visible=np.ones(k))
        frames.append(SimpleNamespace(image_id=100 + f, people=[person]))
    index = SimpleNamespace(
        videos=[SimpleNamespace(frames=frames)], layout=SimpleNamespace(num_joints=k)
    )
    predictions = [
        SimpleNamespace(
            image_id=100 + f,
            keypoints=np.concatenate(
                [np.full((k, 2), 10.0 * f + (1.0 if f == 2 else 0.0)), np.ones((k, 1))], axis=1
            ),
        )
        for f in range(4)
    ]
    result = sm.smoothness_from_index(index, predictions)
    # offset (1, 1) on frame 2: |a| = sqrt(2) * {1 (centre 1), 2 (centre 2)} per joint
    assert result.accel_entries == 4
    assert result.accel_error == pytest.approx(math.sqrt(2) * 1.5)
    assert result.summary()["smooth/accel_error_px"] == pytest.approx(result.accel_error)


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="sequence 0"):
        sm.smoothness_of_sequences([{"pred": np.zeros((3, 2)), "pred_valid": np.zeros(3)}])
    with pytest.raises(ValueError, match="link"):
        sm.smoothness_from_dirs(None, "x", link="nearest")
