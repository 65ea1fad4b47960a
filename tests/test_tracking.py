"""IoU tracker: IoU values by hand, identity across frames, new ids, ageing."""

from __future__ import annotations

import numpy as np
import pytest

from vidpose.tracking import IouTracker, box_iou


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10], [2, 2, 4, 4]])
    iou = box_iou(a, b)
    # row 0: 50 / (100 + 100 - 50); apart; identical; 16 / 100 (the small box inside)
    # row 1: x ranges [0, 4] and [5, 15] do not meet; apart; inside 16 / 100; 4 / (16 + 16 - 4)
    np.testing.assert_allclose(iou, [[1 / 3, 0.0, 1.0, 16 / 100], [0.0, 0.0, 0.16, 1 / 7]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    with pytest.raises(ValueError):
        box_iou([[0, 0, -1, 2]], b)


def test_tracker_keeps_identity_through_swapped_order_and_small_motion():
    tracker = IouTracker(iou_threshold=0.3, max_age=1)
    left, right = np.array([0.0, 0.0, 10, 20]), np.array([50.0, 0.0, 10, 20])
    assert tracker.update(np.stack([left, right])).tolist() == [0, 1]
    # listed the other way round and moved 2 px: IoU 0.67 each
    assert tracker.update(np.stack([right + [2, 0, 0, 0], left + [2, 0, 0, 0]])).tolist() == [1, 0]
    # a box far from both starts track 2; left and right are missed once (age 1, kept)
    assert tracker.update(np.array([[200.0, 200, 10, 20]])).tolist() == [2]
    assert tracker.update(np.stack([left + [2, 0, 0, 0]])).tolist() == [0]
    # right now missed twice (age 2 > max_age): a box at its place gets a new id
    assert tracker.update(np.stack([right + [2, 0, 0, 0]])).tolist() == [3]


def test_tracker_assignment_is_optimal_not_greedy():
    tracker = IouTracker(iou_threshold=0.1)
    tracker.update(np.array([[0.0, 0, 10, 10], [6.0, 0, 10, 10]]))
    # box 0 overlaps track 1 most (IoU 80/120 vs 60/140), and a greedy tracker would give it
    # track 1, leaving box 1 (IoU 10/190 with track 0, below 0.1) a new id; the best total
    # (60/140 + 70/130) keeps both tracks
    ids = tracker.update(np.array([[4.0, 0, 10, 10], [9.0, 0, 10, 10]]))
    assert ids.tolist() == [0, 1]


def test_tracker_rejects_bad_settings_and_handles_empty_frames():
    with pytest.raises(ValueError):
        IouTracker(iou_threshold=0.0)
    with pytest.raises(ValueError):
        IouTracker(max_age=-1)
    tracker = IouTracker()
    assert tracker.update(np.zeros((0, 4))).tolist() == []
    assert tracker.update(np.array([[0.0, 0, 5, 5]])).tolist() == [0]
