"""PoseTrack mAP (poseval Task 1): every quirk of specs/posetrack_map.md sections 9-10 and 12.

Expected numbers are derived by hand in the comments. Cases use a head box [0, 0, 5, 0]:
head size = 0.6 * 5 = 3.0 exactly in binary floating point, so an offset of 1.5 px is exactly
0.5 head sizes (the inclusive threshold).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK, POSEVAL
from vidpose.evaluation import posetrack_map as pm
from vidpose.evaluation.posetrack_map import (
    PoseTrackFormatError,
    evaluate_dirs,
    points_strictly_inside,
)
from vidpose.evaluation.writers import (
    PosePrediction,
    write_posetrack17_predictions,
    write_posetrack18_predictions,
)

VIDEO = "000001_mpii_test.json"
HEAD = [0, 0, 5, 0]  # head size 3.0


def jid(name: str) -> int:
    """poseval id of a joint name (head_bottom is poseval's 'neck')."""
    return POSEVAL.joint_names.index(name)


def image(i: int, **extra) -> dict:
    return {"id": 100 + i, "file_name": f"images/val/000001_mpii_test/{i:06d}.jpg", **extra}


def person(
    frame: int,
    joints: dict,
    scores: dict | None = None,
    head: list | None = HEAD,
    track: int = 0,
    **extra,
) -> dict:
    """A PT18 annotation: ``joints`` name -> (x, y, v); unlisted joints are (0, 0, 0)."""
    kp = np.zeros((17, 3))
    for name, xyv in joints.items():
        kp[POSETRACK.index(name)] = xyv
    ann = {
        "image_id": 100 + frame,
        "track_id": track,
        "keypoints": kp.reshape(-1).tolist(),
        **extra,
    }
    if head is not None:
        ann["bbox_head"] = head
    if scores is not None:
        s = np.zeros(17)
        for name, value in scores.items():
            s[POSETRACK.index(name)] = value
        ann["scores"] = s.tolist()
    return ann


def pred(frame: int, joints: dict, track: int = 0, **extra) -> dict:
    """A PT18 prediction: ``joints`` name -> (x, y, score); the score is in ``scores`` and v."""
    return person(
        frame,
        {n: (x, y, s) for n, (x, y, s) in joints.items()},
        {n: s for n, (_, _, s) in joints.items()},
        head=None,
        track=track,
        **extra,
    )


def pt18(images: list, annotations: list, names: list | None = None) -> dict:
    return {
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "keypoints": names or list(POSETRACK.joint_names)}
        ],
    }


def write(directory: Path, files: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_text(json.dumps(data))
    return directory


def evaluate(tmp_path: Path, gt: dict, pr: dict, mode: str = "poseval") -> pm.PoseTrackResult:
    gt_dir = write(tmp_path / "gt", {VIDEO: gt})
    pred_dir = write(tmp_path / "pred", {VIDEO: pr})
    return evaluate_dirs(gt_dir, pred_dir, mode=mode)


def pt18_to_pt17(data: dict, role: str) -> dict:
    """The same content as a PoseTrack17 annolist (points for every triplet but (0, 0, 0))."""
    names = data["categories"][0]["keypoints"]
    annolist = []
    for img in data["images"]:
        entry = {"image": [{"name": img["file_name"]}], "annorect": []}
        if img.get("ignore_regions_x"):
            entry["ignore_regions"] = [
                {"point": [{"x": [x], "y": [y]} for x, y in zip(xs, ys)]}
                for xs, ys in zip(img["ignore_regions_x"], img["ignore_regions_y"])
            ]
        for ann in data["annotations"]:
            if ann["image_id"] != img["id"]:
                continue
            points = []
            for slot, name in enumerate(names):
                x, y, v = ann["keypoints"][3 * slot : 3 * slot + 3]
                if name in POSEVAL.joint_names and (x, y, v) != (0, 0, 0):
                    point = {"id": [jid(name)], "x": [x], "y": [y]}
                    if ann.get("scores"):
                        point["score"] = [ann["scores"][slot]]
                    points.append(point)
            rect = {"track_id": [ann["track_id"]], "annopoints": [{"point": points}]}
            if role == "gt":
                x, y, w, h = ann["bbox_head"]
                rect.update(x1=[x], y1=[y], x2=[x + w], y2=[y + h])
            entry["annorect"].append(rect)
        annolist.append(entry)
    return {"annolist": annolist}


# --- section 10 quirks, one by one -----------------------------------------------------------


def test_frames_selected_by_gt_people_not_is_labeled(tmp_path):
    # frame 0: is_labeled false but a GT nose, hit exactly (score 1). frame 1: is_labeled true,
    # no GT person, a prediction scored 2. If frame 1 were evaluated its prediction would rank
    # first as a false positive: precision [0, 1/2] -> AP 50. Skipped, the nose AP is 100.
    gt = pt18(
        [image(0, is_labeled=False), image(1, is_labeled=True)], [person(0, {"nose": (10, 10, 1)})]
    )
    pr = pt18(
        [image(0), image(1)], [pred(0, {"nose": (10, 10, 1.0)}), pred(1, {"nose": (50, 50, 2.0)})]
    )
    result = evaluate(tmp_path, gt, pr)
    assert result.ap_per_joint[jid("nose")] == 100.0
    c = result.counts
    assert (
        c.frames,
        c.frames_evaluated,
        c.labeled_frames_skipped,
        c.unlabeled_frames_evaluated,
    ) == (2, 1, 1, 1)
    assert (c.pred_people, c.pred_people_skipped, c.gt_people, c.gt_joints) == (1, 1, 1, 1)


def _pt17_nose_frames(names: list[str | None], noses: list[tuple[float, float]]) -> dict:
    """A PT17 prediction file: one person per frame with a nose (score 0.5), named frames."""
    annolist = []
    for name, (x, y) in zip(names, noses):
        point = {"id": [13], "x": [x], "y": [y], "score": [0.5]}
        entry = {"annorect": [{"track_id": [0], "annopoints": [{"point": [point]}]}]}
        if name is not None:
            entry["image"] = [{"name": name}]
        annolist.append(entry)
    return {"annolist": annolist}


def test_frames_paired_by_position_not_by_name(tmp_path):
    # frame i of the predictions is compared with GT frame i: both noses hit -> AP 100. The
    # image paths may differ in their folders (DCPose writes shorter ones) or be absent.
    gt = pt18(
        [image(0), image(1)], [person(0, {"nose": (10, 10, 1)}), person(1, {"nose": (200, 200, 1)})]
    )
    noses = [(10, 10), (200, 200)]
    short = _pt17_nose_frames(["000001_mpii_test/000000.jpg", "000001.jpg"], noses)
    assert evaluate(tmp_path / "a", gt, short).ap_per_joint[jid("nose")] == 100.0
    unnamed = _pt17_nose_frames([None, None], noses)
    assert evaluate(tmp_path / "b", gt, unnamed).ap_per_joint[jid("nose")] == 100.0


def test_pt17_predictions_in_another_frame_order_are_an_error(tmp_path):
    # PT18 predictions have their image ids checked; PT17 ones the frame numbers of their image
    # names: swapped frames would compare the wrong frames (poseval: AP 100 here, by position)
    gt = pt18(
        [image(0), image(1)], [person(0, {"nose": (10, 10, 1)}), person(1, {"nose": (200, 200, 1)})]
    )
    swapped = _pt17_nose_frames(["000001.jpg", "000000.jpg"], [(10, 10), (200, 200)])
    with pytest.raises(
        PoseTrackFormatError,
        match=r"pred/000001_mpii_test.json: annolist\[0\]\.image\[0\]\.name is '000001.jpg' "
        r"but the GT file .*gt/000001_mpii_test.json has "
        r"'images/val/000001_mpii_test/000000.jpg' \(images\[0\]\.file_name\) there",
    ):
        evaluate(tmp_path / "a", gt, swapped)
    # PT17 GT as well: its image names are compared the same way
    gt17 = pt18_to_pt17(gt, "gt")
    with pytest.raises(PoseTrackFormatError, match=r"annolist\[0\]\.image\[0\]\.name"):
        evaluate(tmp_path / "b", gt17, swapped)
    assert evaluate(tmp_path / "c", gt17, _pt17_nose_frames(
        ["000000.jpg", "000001.jpg"], [(10, 10), (200, 200)]
    )).ap_per_joint[jid("nose")] == 100.0


def test_pt18_zero_triplet_is_the_only_absent_joint(tmp_path):
    # GT: head_top (0,0,0) absent; head_bottom (0,0,1) present at the origin; right_ankle (20,20,0)
    # present although v = 0; nose (10,10,1). Predictions: head_bottom at (0,0) with score 0.8
    # (present, hits the origin joint), head_top written (0,0,0) (absent: no detection),
    # right_ankle hit, nose hit with score 0 (present with score 0).
    gt = pt18(
        [image(0)],
        [
            person(
                0,
                {
                    "nose": (10, 10, 1),
                    "head_top": (0, 0, 0),
                    "head_bottom": (0, 0, 1),
                    "right_ankle": (20, 20, 0),
                },
            )
        ],
    )
    pr = pt18(
        [image(0)],
        [
            pred(
                0,
                {
                    "nose": (10, 10, 0.0),
                    "head_top": (0, 0, 0),
                    "head_bottom": (0, 0, 0.8),
                    "right_ankle": (20, 20, 0.5),
                },
            )
        ],
    )
    result = evaluate(tmp_path, gt, pr)
    ap = result.ap_per_joint
    assert ap[jid("nose")] == ap[jid("head_bottom")] == ap[jid("right_ankle")] == 100.0
    assert ap[jid("head_top")] == 0.0  # no GT, no detection: AP 0, kept in Total
    assert result.counts.gt_joints == 3 and result.counts.pred_joints == 3
    assert result.total == pytest.approx(300 / 15, abs=1e-12)  # 3 joints at 100, 12 at 0


def test_head_size_and_inclusive_threshold(tmp_path):
    # frame 0: head box 5x0 -> head size 3.0; nose off by 1.5 px -> d = 0.5 exactly: match.
    # frame 1: head box 3x4 -> diagonal 5, head size 3.0; off by (0, 1.5): match.
    # frame 2: head box 3x4; off by 1.6 px -> d = 0.533: miss. Scores 0.9, 0.8, 0.7, nGT 3:
    # precision 1, 1, 2/3 at recall 1/3, 2/3, 2/3 -> AP = 2/3 (an exclusive threshold gives 0;
    # a head size of the plain diagonal, 5, would make frame 2 match too -> 100).
    gt = pt18(
        [image(0), image(1), image(2)],
        [
            person(0, {"nose": (10, 10, 1)}),
            person(1, {"nose": (10, 10, 1)}, head=[7, 7, 3, 4]),
            person(2, {"nose": (10, 10, 1)}, head=[0, 0, 3, 4]),
        ],
    )
    pr = pt18(
        [image(0), image(1), image(2)],
        [
            pred(0, {"nose": (11.5, 10, 0.9)}),
            pred(1, {"nose": (10, 11.5, 0.8)}),
            pred(2, {"nose": (11.6, 10, 0.7)}),
        ],
    )
    assert evaluate(tmp_path, gt, pr).ap_per_joint[jid("nose")] == pytest.approx(200 / 3, abs=1e-12)


def _two_step_case(gt_order: tuple[str, str]) -> tuple[dict, dict]:
    people = {
        "A": {"nose": (10, 10, 1), "head_top": (10, 20, 1)},
        "B": {"nose": (50, 10, 1), "head_top": (50, 20, 1)},
    }
    gt = pt18([image(0)], [person(0, people[name], track=t) for t, name in enumerate(gt_order)])
    # P1 hits both joints of A (PCKh 1 to A). P2 hits A's nose and B's head_top (PCKh 1/2 to both).
    pr = pt18(
        [image(0)],
        [
            pred(0, {"nose": (10, 10, 0.9), "head_top": (10, 20, 0.9)}, 0),
            pred(0, {"nose": (10, 10, 0.8), "head_top": (50, 20, 0.8)}, 1),
        ],
    )
    return gt, pr


def test_two_step_matching_leaves_the_loser_unmatched(tmp_path):
    # GT order A, B: P2 ties 1/2 vs 1/2 and keeps A (lowest index); A prefers P1 (1 > 1/2); B's
    # column holds only zeros -> P2 stays unmatched although it could take B. Both of P2's joints
    # are false positives: nose and head_top rank TP(0.9), FP(0.8) with nGT 2 -> AP 50 each.
    # A greedy or Hungarian assignment would give P2 to B: head_top 100.
    gt, pr = _two_step_case(("A", "B"))
    ap = evaluate(tmp_path, gt, pr).ap_per_joint
    assert ap[jid("nose")] == 50.0 and ap[jid("head_top")] == 50.0


def test_two_step_matching_ties_go_to_the_lowest_gt_index(tmp_path):
    # GT order B, A: P2's tie now picks B (index 0), B takes P2, A takes P1. P2's head_top hits
    # B's (TP) but its nose (10,10) misses B's nose (50,10): head_top 100, nose 50.
    gt, pr = _two_step_case(("B", "A"))
    ap = evaluate(tmp_path, gt, pr).ap_per_joint
    assert ap[jid("head_top")] == 100.0 and ap[jid("nose")] == 50.0


def test_ignore_regions_remove_strictly_inside_points_from_gt_and_predictions(tmp_path):
    square = {"ignore_regions_x": [[0, 10, 10, 0]], "ignore_regions_y": [[0, 0, 10, 10]]}
    gt = pt18(
        [image(0, **square)],
        # nose strictly inside (removed); head_top on the right edge, head_bottom on a vertex (kept)
        [person(0, {"nose": (5, 5, 1), "head_top": (10, 5, 1), "head_bottom": (0, 0, 1)})],
    )
    pr = pt18(
        # a region in the prediction file is never read
        [
            image(
                0,
                ignore_regions_x=[[-100, 100, 100, -100]],
                ignore_regions_y=[[-100, -100, 100, 100]],
            )
        ],
        [
            pred(0, {"nose": (5, 5, 0.9), "head_top": (10, 5, 0.5), "head_bottom": (0, 0, 0.5)}, 0),
            # inside the region: a head_top false positive scored above the TP, and a left_wrist
            pred(0, {"head_top": (3, 3, 1.0), "left_wrist": (2, 2, 1.0)}, 1),
        ],
    )
    result = evaluate(tmp_path, gt, pr)
    ap = result.ap_per_joint
    # nose: GT and prediction removed -> no detection -> 0 (GT only removed: NaN; none removed: 100)
    assert ap[jid("nose")] == 0.0
    # head_top: the inside false positive is gone -> 100 (it would rank first: 50)
    assert ap[jid("head_top")] == 100.0 and ap[jid("head_bottom")] == 100.0
    assert ap[jid("left_wrist")] == 0.0  # removed: no detection (else NaN: detection without GT)
    assert (result.counts.gt_joints_ignored, result.counts.pred_joints_ignored) == (1, 3)
    assert result.counts.gt_joints == 2


def test_missing_scores_rank_at_minus_9999(tmp_path):
    # GT noses A (10,10) and B (50,10), nGT 2. The prediction hitting A has no score (-9999); a
    # false positive far away has score s. s = -9998 ranks first: precision [0, 1/2] at recall
    # [0, 1/2] -> AP 25. s = -10000 ranks last: precision [1, 1/2] at recall [1/2, 1/2] -> AP 50.
    # So the fallback lies strictly between -10000 and -9998.
    for s, expected in ((-9998.0, 25.0), (-10000.0, 50.0)):
        for no_score in ({}, {"scores": []}):
            gt = pt18(
                [image(0)],
                [
                    person(0, {"nose": (10, 10, 1)}, track=0),
                    person(0, {"nose": (50, 10, 1)}, track=1),
                ],
            )
            hit = {**person(0, {"nose": (10, 10, 1)}, head=None), **no_score}
            pr = pt18([image(0)], [hit, pred(0, {"nose": (300, 300, s)}, 1)])
            assert (
                evaluate(tmp_path / f"{s}{no_score}", gt, pr).ap_per_joint[jid("nose")] == expected
            )


def test_pt17_point_without_score_ranks_at_minus_9999(tmp_path):
    # as above in PT17: the scoreless hit ranks below the false positive scored -9998 -> 25
    gt = pt18(
        [image(0)],
        [person(0, {"nose": (10, 10, 1)}, track=0), person(0, {"nose": (50, 10, 1)}, track=1)],
    )
    pr = {
        "annolist": [
            {
                "annorect": [
                    {
                        "track_id": [0],
                        "annopoints": [{"point": [{"id": [13], "x": [10], "y": [10]}]}],
                    },
                    {
                        "track_id": [1],
                        "annopoints": [
                            {"point": [{"id": [13], "x": [300], "y": [300], "score": [-9998]}]}
                        ],
                    },
                ]
            }
        ]
    }
    assert evaluate(tmp_path, gt, pr).ap_per_joint[jid("nose")] == 25.0


def test_ap_zero_without_detections_nan_without_gt_and_total_skips_nan(tmp_path, capsys):
    # nose: GT and hit -> 100. left_wrist: detected, never annotated -> NaN (recall 0/0).
    # Every other joint: no GT, no detection -> 0. Total = mean of the 14 non-NaN = 100/14;
    # the Wrist column is a plain mean and becomes NaN; Head = (0 + 0 + 100)/3.
    gt = pt18([image(0)], [person(0, {"nose": (10, 10, 1)})])
    pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.9), "left_wrist": (30, 30, 0.4)})])
    result = evaluate(tmp_path, gt, pr)
    assert math.isnan(result.ap_per_joint[jid("left_wrist")])
    assert result.precision_per_joint[jid("left_wrist")] == 0.0 and math.isnan(
        result.recall_per_joint[jid("left_wrist")]
    )
    assert result.ap_per_joint[jid("right_wrist")] == 0.0
    assert result.total == pytest.approx(100 / 14, abs=1e-12)
    assert math.isnan(result.columns["Wri"])
    assert result.columns["Head"] == pytest.approx(100 / 3, abs=1e-12)
    # each value "%1.1f" right-aligned in 5 characters and followed by " &" (the last by " \\\\")
    assert (
        result.table().splitlines()[1]
        == "& 33.3 &  0.0 &  0.0 &  nan &  0.0 &  0.0 &  0.0 &  7.1 \\\\"
    )


def test_voc_all_points_ap_on_a_hand_ranking(tmp_path):
    # One nose per frame 0..3 (nGT 4); detections by score: 0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP,
    # 0.5 TP (the frame-3 nose is missed). precision 1, 1/2, 2/3, 1/2, 3/5 at recall
    # 1/4, 1/4, 1/2, 1/2, 3/4; envelope 1, 1, 2/3, 2/3, 3/5; recall steps of 1/4 at
    # precisions 1, 2/3, 3/5 (and 0 for the jump to recall 1): AP = (1 + 2/3 + 3/5)/4.
    far = (500, 500)
    gt = pt18([image(f) for f in range(4)], [person(f, {"nose": (10, 10, 1)}) for f in range(4)])
    pr = pt18(
        [image(f) for f in range(4)],
        [
            pred(0, {"nose": (10, 10, 0.9)}, 0),
            pred(0, {"nose": (*far, 0.8)}, 1),
            pred(1, {"nose": (10, 10, 0.7)}, 0),
            pred(1, {"nose": (*far, 0.6)}, 1),
            pred(2, {"nose": (10, 10, 0.5)}, 0),
        ],
    )
    result = evaluate(tmp_path, gt, pr)
    n = jid("nose")
    assert result.ap_per_joint[n] == pytest.approx(100 * (1 + 2 / 3 + 3 / 5) / 4, abs=1e-12)
    assert result.precision_per_joint[n] == pytest.approx(60.0) and result.recall_per_joint[
        n
    ] == pytest.approx(75.0)


def test_head_column_is_three_joint_mean_and_total_is_joint_mean(tmp_path):
    # nose and head_top hit, head_bottom annotated but not predicted (AP 0), right_shoulder hit:
    # Head = (100 + 0 + 100)/3, Shou = (100 + 0)/2, Total = 300/15 = 20 (the mean of the
    # seven columns would be (66.7 + 50)/7 = 16.7).
    gt = pt18(
        [image(0)],
        [
            person(
                0,
                {
                    "nose": (10, 10, 1),
                    "head_top": (10, 0, 1),
                    "head_bottom": (10, 20, 1),
                    "right_shoulder": (0, 30, 1),
                },
            )
        ],
    )
    pr = pt18(
        [image(0)],
        [
            pred(
                0, {"nose": (10, 10, 0.9), "head_top": (10, 0, 0.9), "right_shoulder": (0, 30, 0.9)}
            )
        ],
    )
    columns = evaluate(tmp_path, gt, pr).columns
    assert columns["Head"] == pytest.approx(200 / 3, abs=1e-12)
    assert columns["Shou"] == 50.0 and columns["Total"] == pytest.approx(20.0, abs=1e-12)
    assert list(columns) == ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]


def test_gt_person_without_joints_is_inert_and_frame_without_predictions_counts_misses(tmp_path):
    # frame 0: a GT person with no joints (and no head box) next to a hit nose; frame 1: a GT nose
    # with no prediction on the frame (a miss). nose: TP at recall 1/2 -> AP 50.
    gt = pt18(
        [image(0), image(1)],
        [
            person(0, {}, head=None, track=1),
            person(0, {"nose": (10, 10, 1)}),
            person(1, {"nose": (10, 10, 1)}),
        ],
    )
    pr = pt18([image(0), image(1)], [pred(0, {"nose": (10, 10, 0.9)})])
    result = evaluate(tmp_path, gt, pr)
    assert result.ap_per_joint[jid("nose")] == 50.0
    assert result.counts.gt_people == 3 and result.counts.gt_joints == 2


def test_predicted_joint_where_matched_gt_lacks_it_is_a_false_positive(tmp_path):
    # the prediction matches the GT person by its nose; its left_knee has no GT counterpart:
    # left_knee has a detection and no GT anywhere -> NaN (a false positive, recall 0/0).
    gt = pt18([image(0)], [person(0, {"nose": (10, 10, 1), "right_knee": (10, 60, 1)})])
    pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.9), "left_knee": (10, 60, 0.9)})])
    ap = evaluate(tmp_path, gt, pr).ap_per_joint
    assert math.isnan(ap[jid("left_knee")]) and ap[jid("right_knee")] == 0.0


def test_duplicate_predicted_track_ids_are_accepted(tmp_path):
    # the AP never reads track ids (poseval's official loader would reject this file)
    gt = pt18(
        [image(0)],
        [person(0, {"nose": (10, 10, 1)}, track=0), person(0, {"nose": (50, 10, 1)}, track=1)],
    )
    pr = pt18(
        [image(0)], [pred(0, {"nose": (10, 10, 0.9)}, 7), pred(0, {"nose": (50, 10, 0.9)}, 7)]
    )
    assert evaluate(tmp_path, gt, pr).ap_per_joint[jid("nose")] == 100.0


def test_category_order_maps_joints_by_name(tmp_path):
    # a 15-name category list in poseval order: triplet k is poseval joint k
    names = list(POSEVAL.joint_names)
    kp = np.zeros((15, 3))
    kp[jid("left_hip")] = (40, 40, 1)
    gt = pt18(
        [image(0)],
        [{"image_id": 100, "track_id": 0, "keypoints": kp.reshape(-1).tolist(), "bbox_head": HEAD}],
        names,
    )
    pr = pt18([image(0)], [pred(0, {"left_hip": (40, 40, 0.5)})])
    ap = evaluate(tmp_path, gt, pr).ap_per_joint
    assert ap[jid("left_hip")] == 100.0 and ap[jid("right_hip")] == 0.0


def test_pt17_first_occurrence_of_a_repeated_joint_id(tmp_path):
    # nose listed twice: the first (a miss at (300, 300)) counts, the second (a hit) is ignored;
    # an id outside 0-14 is not a joint
    gt = pt18([image(0)], [person(0, {"nose": (10, 10, 1)})])
    points = [
        {"id": [13], "x": [300], "y": [300], "score": [0.9]},
        {"id": [13], "x": [10], "y": [10], "score": [0.9]},
        {"id": [15], "x": [1], "y": [1]},
    ]
    pr = {"annolist": [{"annorect": [{"track_id": [0], "annopoints": [{"point": points}]}]}]}
    result = evaluate(tmp_path, gt, pr)
    assert result.ap_per_joint[jid("nose")] == 0.0 and result.counts.pred_joints == 1


# --- ignore-region geometry ------------------------------------------------------------------


def test_points_strictly_inside_square_edges_and_vertices():
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], dtype=float)
    points = [(2, 2), (4, 2), (0, 0), (2, 4), (5, 5), (-1, 2), (2, 4 - 2**-40)]
    assert points_strictly_inside(points, [square]).tolist() == [
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_points_strictly_inside_uses_even_odd_for_self_intersecting_polygons():
    # bowtie (0,0)-(4,4)-(4,0)-(0,4): two lobes left and right of x = 2; the crossing point (2,2)
    # lies on edges; (2,1) is in the bottom notch (outside). Pentagram: the centre is covered
    # twice -> outside under even-odd (shapely/GEOS agree), a tip is inside.
    bowtie = np.array([[0, 0], [4, 4], [4, 0], [0, 4]], dtype=float)
    assert points_strictly_inside([(1, 2), (3, 2), (2, 2), (2, 1)], [bowtie]).tolist() == [
        True,
        True,
        False,
        False,
    ]
    star = np.array(
        [
            (
                10 * math.cos(math.pi / 2 + k * 4 * math.pi / 5),
                10 * math.sin(math.pi / 2 + k * 4 * math.pi / 5),
            )
            for k in range(5)
        ]
    )
    assert points_strictly_inside([(0, 0), (0, 8)], [star]).tolist() == [False, True]


def test_points_strictly_inside_orientation_is_exact():
    # point (0.1, fl(0.1/3)) against the edge (3,1) -> (0,0) of the triangle (0,0), (3,-1), (3,1):
    # in floating point 3*y - x rounds to 0 (the point would sit on the edge), exactly it is < 0,
    # i.e. just below the line y = x/3 and strictly inside the triangle.
    x, y = 0.1, 0.1 / 3
    assert 3 * y - x == 0.0 and 3 * Fraction(y) - Fraction(x) < 0
    triangle = np.array([[0, 0], [3, -1], [3, 1]], dtype=float)
    assert points_strictly_inside([(x, y)], [triangle]).tolist() == [True]


def test_region_with_fewer_than_three_vertices(tmp_path):
    two = {"ignore_regions_x": [[0, 10]], "ignore_regions_y": [[0, 10]]}
    empty = {"ignore_regions_x": [[]], "ignore_regions_y": [[]]}
    pr = pt18([image(0), image(1)], [pred(0, {"nose": (10, 10, 0.9)})])
    # on an evaluated frame: clear error naming file, frame and region (poseval crashes in shapely)
    gt = pt18([image(0, **two), image(1)], [person(0, {"nose": (10, 10, 1)})])
    with pytest.raises(
        PoseTrackFormatError,
        match=r"000001_mpii_test.json: frame 0 \(image 100\): ignore region 0 has 2 vertices",
    ):
        evaluate(tmp_path / "a", gt, pr)
    # on a skipped frame poseval never looks at it; an empty region (0 vertices) is an empty polygon
    gt = pt18([image(0, **empty), image(1, **two)], [person(0, {"nose": (10, 10, 1)})])
    assert evaluate(tmp_path / "b", gt, pr).ap_per_joint[jid("nose")] == 100.0


# --- real data and formats -------------------------------------------------------------------


def _gt_copy_predictions(gt_dir: Path, jitter: float = 0.0, seed: int = 0) -> list[PosePrediction]:
    """Predictions = the GT people (score 1 per annotated joint, (0, 0, 0) elsewhere)."""
    rng = np.random.default_rng(seed)
    out = []
    for path in sorted(gt_dir.glob("*.json")):
        for ann in json.loads(path.read_text())["annotations"]:
            kp = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
            absent = (kp == 0).all(axis=1)
            kp[:, 2] = 1.0 if jitter == 0 else rng.uniform(0.1, 1.0, 17)
            kp[:, :2] += rng.normal(0, jitter, (17, 2))
            kp[absent] = 0.0
            out.append(
                PosePrediction(
                    image_id=ann["image_id"], keypoints=kp, box_score=1.0, track_id=ann["track_id"]
                )
            )
    return out


def test_real_posetrack18_gt_as_predictions_scores_100(posetrack18_mini, tmp_path):
    gt_dir = posetrack18_mini / "annotations" / "val"
    write_posetrack18_predictions(_gt_copy_predictions(gt_dir), gt_dir, tmp_path / "pred")
    result = evaluate_dirs(gt_dir, tmp_path / "pred")
    assert result.total == 100.0 and all(v == 100.0 for v in result.columns.values())
    c = result.counts
    # 3 files with one labeled frame each; 14 GT people (data README)
    assert (c.videos, c.frames, c.frames_evaluated, c.gt_people, c.pred_people) == (3, 3, 3, 14, 14)
    assert c.gt_joints == c.pred_joints and c.gt_joints_ignored == c.pred_joints_ignored


def test_real_data_pt17_and_pt18_files_give_identical_results(posetrack18_mini, tmp_path):
    gt18 = posetrack18_mini / "annotations" / "val"
    gt17 = write(
        tmp_path / "gt17",
        {p.name: pt18_to_pt17(json.loads(p.read_text()), "gt") for p in gt18.glob("*.json")},
    )
    predictions = _gt_copy_predictions(gt18, jitter=25.0)
    write_posetrack18_predictions(predictions, gt18, tmp_path / "pred18")
    write_posetrack17_predictions(predictions, gt18, tmp_path / "pred17")
    results = [
        evaluate_dirs(g, p)
        for g in (gt18, gt17)
        for p in (tmp_path / "pred18", tmp_path / "pred17")
    ]
    first = results[0]
    assert 0 < first.total < 100  # the jitter makes a non-trivial case
    for other in results[1:]:
        for name in ("ap_per_joint", "precision_per_joint", "recall_per_joint"):
            np.testing.assert_array_equal(getattr(other, name), getattr(first, name))
        assert other.counts.gt_joints == first.counts.gt_joints


# --- errors ----------------------------------------------------------------------------------


def _simple() -> tuple[dict, dict]:
    return pt18([image(0), image(1)], [person(0, {"nose": (10, 10, 1)})]), pt18(
        [image(0), image(1)], [pred(0, {"nose": (10, 10, 0.9)})]
    )


def test_missing_prediction_file(tmp_path):
    gt, pr = _simple()
    gt_dir = write(tmp_path / "gt", {VIDEO: gt, "000002_mpii_test.json": gt})
    pred_dir = write(tmp_path / "pred", {VIDEO: pr, "000099_mpii_test.json": pr})
    with pytest.raises(
        FileNotFoundError, match=r"1 of 2 GT videos have no prediction file .*000002_mpii_test.json"
    ):
        evaluate_dirs(gt_dir, pred_dir)
    result = evaluate_dirs(gt_dir, pred_dir, require_all=False)
    # the missing video's nose is a miss: TP at recall 1/2 -> AP 50
    assert result.ap_per_joint[jid("nose")] == 50.0
    assert (
        result.counts.videos,
        result.counts.videos_without_predictions,
        result.counts.prediction_files_unused,
    ) == (2, 1, 1)


def test_frame_count_mismatch(tmp_path):
    gt, _ = _simple()
    pr = pt18([image(0)], [])
    with pytest.raises(PoseTrackFormatError, match=r"1 prediction frames but the GT file .* has 2"):
        evaluate(tmp_path, gt, pr)


def test_image_id_mismatch(tmp_path):
    gt, pr = _simple()
    pr["images"] = [pr["images"][1], pr["images"][0]]
    with pytest.raises(
        PoseTrackFormatError,
        match=r"images\[0\]\.id is 101 but the GT file .* has 100 there.*silently",
    ):
        evaluate(tmp_path, gt, pr)


def test_truncated_json(tmp_path):
    gt, pr = _simple()
    gt_dir = write(tmp_path / "gt", {VIDEO: gt})
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / VIDEO).write_text(json.dumps(pr)[:40])
    with pytest.raises(
        PoseTrackFormatError,
        match=r"pred/000001_mpii_test.json: not valid JSON \(truncated or corrupt\?\)",
    ):
        evaluate_dirs(gt_dir, tmp_path / "pred")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["annotations"][0].update(keypoints=[1.0] * 50),
            r"annotations\[0\]\.keypoints: expected 51 values",
        ),
        (
            lambda d: d["annotations"][0].pop("image_id"),
            r"annotations\[0\]: missing field 'image_id'",
        ),
        (
            lambda d: d["annotations"][0]["keypoints"].__setitem__(4, "x"),
            r"annotations\[0\]\.keypoints\[4\]: expected a number, got 'x'",
        ),
        (
            lambda d: d["annotations"][0]["keypoints"].__setitem__(4, None),
            r"annotations\[0\]\.keypoints\[4\]: expected a number, got None",
        ),
        (
            lambda d: d["annotations"][0].update(image_id=555),
            r"annotations\[0\]\.image_id: 555 is not the id of any entry of images",
        ),
        (
            lambda d: d["annotations"][0].update(scores=[0.5] * 3),
            r"annotations\[0\]\.scores: expected 17 values",
        ),
        (
            lambda d: d["categories"][0]["keypoints"].__setitem__(1, "neck"),
            r"poseval joints \['head_bottom'\] missing",
        ),
        (lambda d: d.pop("images"), r"missing field 'images'"),
        (
            lambda d: d["images"].append(dict(d["images"][0])),
            r"images\[2\]: duplicate image id 100",
        ),
    ],
)
def test_malformed_prediction_fields(tmp_path, mutate, message):
    gt, pr = _simple()
    mutate(pr)
    with pytest.raises(PoseTrackFormatError, match=message):
        evaluate(tmp_path, gt, pr)


def test_malformed_gt_head_box_and_regions(tmp_path):
    gt, pr = _simple()
    gt["annotations"][0]["bbox_head"] = [1, 2, 3]
    with pytest.raises(
        PoseTrackFormatError,
        match=r"gt/000001_mpii_test.json: annotations\[0\]\.bbox_head: expected \[x, y, w, h\]",
    ):
        evaluate(tmp_path / "a", gt, pr)
    gt, pr = _simple()
    gt["images"][0]["ignore_regions_x"] = [[0, 1, 2]]
    with pytest.raises(
        PoseTrackFormatError, match=r"images\[0\]: has ignore_regions_x without its partner"
    ):
        evaluate(tmp_path / "b", gt, pr)


def test_missing_gt_head_box_only_matters_on_frames_with_predictions(tmp_path):
    gt = pt18(
        [image(0), image(1)],
        [person(0, {"nose": (10, 10, 1)}), person(1, {"nose": (10, 10, 1)}, head=None)],
    )
    pr = pt18([image(0), image(1)], [pred(0, {"nose": (10, 10, 0.9)})])
    # frame 1 has no prediction: its head box is never needed (nose: TP at recall 1/2 -> 50)
    assert evaluate(tmp_path / "a", gt, pr).ap_per_joint[jid("nose")] == 50.0
    pr["annotations"].append(pred(1, {"nose": (10, 10, 0.9)}))
    with pytest.raises(
        PoseTrackFormatError,
        match=r"000001_mpii_test.json: frame 1 \(image 101\): GT person 0 .* no head box",
    ):
        evaluate(tmp_path / "b", gt, pr)


def test_images_of_several_videos_in_one_file(tmp_path):
    gt, pr = _simple()
    gt["images"][1]["file_name"] = "images/val/000002_mpii_test/000001.jpg"
    with pytest.raises(PoseTrackFormatError, match=r"several video folders \['000001', '000002'\]"):
        evaluate(tmp_path, gt, pr)


# --- command line ----------------------------------------------------------------------------


def test_command_line_table_and_json(tmp_path, capsys):
    gt = pt18([image(0)], [person(0, {"nose": (10, 10, 1)})])
    pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.9), "left_wrist": (30, 30, 0.4)})])
    gt_dir, pred_dir = write(tmp_path / "gt", {VIDEO: gt}), write(tmp_path / "pred", {VIDEO: pr})
    out_json = tmp_path / "ap.json"
    assert pm.main(["--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out_json)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines.index("& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\")
    # Head (0 + 0 + 100)/3, Wrist NaN, Total 100/14 (see the NaN test above)
    assert lines[header + 1] == "& 33.3 &  0.0 &  0.0 &  nan &  0.0 &  0.0 &  0.0 &  7.1 \\\\"
    assert any(
        line.startswith("annotation set: 1 videos, 1 of 1 frames evaluated")
        and "1 GT joints" in line
        for line in lines
    )
    data = json.loads(out_json.read_text())
    assert {
        "joint_names",
        "ap_per_joint",
        "precision_per_joint",
        "recall_per_joint",
        "columns",
        "n_frames_evaluated",
    } <= set(data)
    assert (
        data["joint_names"][12] == "neck"
        and data["joint_names"][13] == "nose"
        and len(data["joint_names"]) == 15
    )
    assert (
        data["ap_per_joint"][jid("left_wrist")] is None
        and data["ap_per_joint"][jid("nose")] == 100.0
    )
    assert data["columns"]["Wri"] is None and list(data["columns"]) == list(pm.COLUMNS)
    assert (
        data["n_frames_evaluated"] == 1
        and data["counts"]["gt_joints"] == 1
        and data["mode"] == "poseval"
    )


def test_command_line_error_exit(tmp_path, capsys):
    gt, _ = _simple()
    write(tmp_path / "gt", {VIDEO: gt})
    (tmp_path / "pred").mkdir()
    assert pm.main(["--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]) == 2
    assert "no prediction file" in capsys.readouterr().err


# --- PoseTrack21-kit mode --------------------------------------------------------------------


def test_pt21_selects_frames_by_is_labeled_and_counts_predictions_on_empty_labeled_frames(tmp_path):
    # frame 0: labeled, GT nose hit (0.5). frame 1: not labeled, with a GT nose (skipped in pt21).
    # frame 2: labeled, no GT person, a prediction scored 0.9: a false positive ranked first
    # (the PT21 kit would crash here). pt21: FP, TP with nGT 1 -> precision 1/2 at recall 1 -> 50.
    # poseval: frames 0, 1 evaluated, frame 2 skipped: TP at recall 1/2 -> 50 as well, but
    # with the frame counts below.
    gt = pt18(
        [image(0, is_labeled=True), image(1, is_labeled=False), image(2, is_labeled=True)],
        [person(0, {"nose": (10, 10, 1)}), person(1, {"nose": (10, 10, 1)})],
    )
    pr = pt18(
        [image(0), image(1), image(2)],
        [pred(0, {"nose": (10, 10, 0.5)}), pred(2, {"nose": (10, 10, 0.9)})],
    )
    result = evaluate(tmp_path / "a", gt, pr, mode="pt21")
    assert (
        result.ap_per_joint[jid("nose")] == 50.0 and result.precision_per_joint[jid("nose")] == 50.0
    )
    assert (result.n_frames_evaluated, result.counts.gt_joints, result.counts.pred_people) == (
        2,
        1,
        2,
    )
    result = evaluate(tmp_path / "b", gt, pr, mode="poseval")
    assert (
        result.precision_per_joint[jid("nose")] == 100.0
        and result.recall_per_joint[jid("nose")] == 50.0
    )
    gt["images"][0].pop("is_labeled")
    with pytest.raises(PoseTrackFormatError, match=r"images\[0\] has no 'is_labeled'"):
        evaluate(tmp_path / "c", gt, pr, mode="pt21")


def test_pt21_joint_exists_iff_x_and_y_positive(tmp_path):
    # GT: nose (0, 5, 1) absent in pt21 (present in poseval); head_top (5, 5, 0) present in both.
    # Prediction: nose (0, 5) hit in poseval; head_top hit; head_bottom (0, 0, 0.7) absent in
    # pt21, a false positive without GT in poseval (NaN).
    gt = pt18([image(0, is_labeled=True)], [person(0, {"nose": (0, 5, 1), "head_top": (5, 5, 0)})])
    pr = pt18(
        [image(0)],
        [pred(0, {"nose": (0, 5, 0.9), "head_top": (5, 5, 0.9), "head_bottom": (0, 0, 0.7)})],
    )
    pt21 = evaluate(tmp_path / "a", gt, pr, mode="pt21").ap_per_joint
    poseval = evaluate(tmp_path / "b", gt, pr).ap_per_joint
    assert (pt21[jid("nose")], pt21[jid("head_top")], pt21[jid("head_bottom")]) == (0.0, 100.0, 0.0)
    assert (
        poseval[jid("nose")] == 100.0
        and poseval[jid("head_top")] == 100.0
        and math.isnan(poseval[jid("head_bottom")])
    )


def test_pt21_recall_denominator_gives_ap_zero_instead_of_nan(tmp_path):
    gt = pt18([image(0, is_labeled=True)], [person(0, {"nose": (10, 10, 1)})])
    pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.9), "left_wrist": (30, 30, 0.4)})])
    result = evaluate(tmp_path, gt, pr, mode="pt21")
    # left_wrist: recall 0/max(0, 1) = 0 -> AP 0; Total = 100/15 (NaN in poseval mode, Total 100/14)
    assert (
        result.ap_per_joint[jid("left_wrist")] == 0.0
        and result.recall_per_joint[jid("left_wrist")] == 0.0
    )
    assert result.total == pytest.approx(100 / 15, abs=1e-12) and result.columns["Wri"] == 0.0


def test_pt21_reads_slots_by_position_not_by_category_name(tmp_path):
    gt = pt18(
        [image(0, is_labeled=True)],
        [person(0, {"nose": (10, 10, 1)})],
        names=[f"n{i}" for i in range(17)],
    )
    pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.9)})], names=[f"n{i}" for i in range(17)])
    assert evaluate(tmp_path / "a", gt, pr, mode="pt21").ap_per_joint[jid("nose")] == 100.0
    with pytest.raises(PoseTrackFormatError, match="poseval joints"):
        evaluate(tmp_path / "b", gt, pr)


def test_pt21_scores_missing_and_empty(tmp_path):
    # no `scores` key -> -9999 (same ranking argument as the poseval test: FP at -9998 first -> 25)
    gt = pt18(
        [image(0, is_labeled=True)],
        [person(0, {"nose": (10, 10, 1)}, track=0), person(0, {"nose": (50, 10, 1)}, track=1)],
    )
    hit = person(0, {"nose": (10, 10, 0.3)}, head=None)
    pr = pt18([image(0)], [hit, pred(0, {"nose": (300, 300, -9998.0)}, 1)])
    assert evaluate(tmp_path / "a", gt, pr, mode="pt21").ap_per_joint[jid("nose")] == 25.0
    hit["scores"] = []  # poseval: no score; the kit cannot read it -> clear error
    with pytest.raises(
        PoseTrackFormatError, match=r"annotations\[0\]\.scores: expected 17 values .*omit the key"
    ):
        evaluate(tmp_path / "b", gt, pr, mode="pt21")


def test_pt21_truncates_scores_of_all_integer_frames(tmp_path):
    # frame 0: every keypoint value of the frame's predictions is a JSON integer, so the kit's
    # int64 keypoint array truncates the score 0.9 of the hit to 0. frame 1: float keypoints,
    # a false positive scored 0.5. nGT 2. pt21: FP (0.5), TP (0) -> precision 1/2 at recall 1/2
    # -> AP 25. poseval: TP (0.9) first -> AP 50.
    gt = pt18(
        [image(0, is_labeled=True), image(1, is_labeled=True)],
        [person(0, {"nose": (10, 10, 1)}), person(1, {"nose": (10, 10, 1)})],
    )
    int_hit = {"image_id": 100, "track_id": 0, "keypoints": [0] * 51, "scores": [0.9] * 17}
    int_hit["keypoints"][0:3] = [10, 10, 1]
    pr = pt18([image(0), image(1)], [int_hit, pred(1, {"nose": (300.5, 300, 0.5)})])
    assert evaluate(tmp_path / "a", gt, pr, mode="pt21").ap_per_joint[jid("nose")] == 25.0
    assert evaluate(tmp_path / "b", gt, pr).ap_per_joint[jid("nose")] == 50.0


def test_pt21_ignore_regions_and_pt17_rejected(tmp_path):
    # a GT person and a prediction entirely inside the region: both dropped (no joints counted)
    region = {"ignore_regions_x": [[0, 100, 100, 0]], "ignore_regions_y": [[0, 0, 100, 100]]}
    gt = pt18(
        [image(0, is_labeled=True, **region)],
        [person(0, {"nose": (10, 10, 1)}), person(0, {"nose": (200, 10, 1)}, track=1)],
    )
    pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.9)}), pred(0, {"nose": (200, 10, 0.5)}, 1)])
    result = evaluate(tmp_path / "a", gt, pr, mode="pt21")
    assert (
        result.ap_per_joint[jid("nose")] == 100.0
        and result.counts.gt_joints == 1
        and result.counts.pred_joints_ignored == 1
    )
    with pytest.raises(
        PoseTrackFormatError, match="mode 'pt21' reads PoseTrack18/21-format files only"
    ):
        evaluate(tmp_path / "b", gt, pt18_to_pt17(pr, "pred"), mode="pt21")


# --- malformed values, head boxes, tied scores, file order, output -------------------------


@pytest.mark.parametrize(
    "role, mutate, message",
    [
        (
            "pred",
            lambda d: d["annotations"][0]["keypoints"].__setitem__(4, True),
            r"pred/000001_mpii_test.json: annotations\[0\]\.keypoints\[4\]: "
            r"expected a number, got True",
        ),
        (
            "pred",
            lambda d: d["annotations"][0]["scores"].__setitem__(0, False),
            r"pred/000001_mpii_test.json: annotations\[0\]\.scores\[0\]: "
            r"expected a number, got False",
        ),
        (
            "gt",
            lambda d: d["annotations"][0].update(bbox_head=[0, 0, True, 0]),
            r"gt/000001_mpii_test.json: annotations\[0\]\.bbox_head\[2\]: "
            r"expected a number, got True",
        ),
    ],
)
def test_booleans_are_not_numbers(tmp_path, role, mutate, message):
    # numpy reads a JSON true among numbers as 1.0; a boolean there is a malformed file
    gt, pr = _simple()
    mutate(gt if role == "gt" else pr)
    with pytest.raises(PoseTrackFormatError, match=message):
        evaluate(tmp_path, gt, pr)


def test_zero_size_head_box_keeps_poseval_number_and_warns(tmp_path):
    # frame 0: nose hit (head size 3). frame 1: the GT head box [3, 3, 0, 0] has size 0, so the
    # exact prediction's distance is 0/0 = NaN and it is a false positive, as in poseval:
    # ranking 0.9 TP, 0.8 FP with nGT 2 -> AP 50 (a usable box would give 100).
    gt = pt18(
        [image(0), image(1)],
        [person(0, {"nose": (10, 10, 1)}), person(1, {"nose": (10, 10, 1)}, head=[3, 3, 0, 0])],
    )
    pr = pt18(
        [image(0), image(1)], [pred(0, {"nose": (10, 10, 0.9)}), pred(1, {"nose": (10, 10, 0.8)})]
    )
    with pytest.warns(
        pm.ZeroHeadBoxWarning,
        match=r"1 GT people with joints have a head box of zero size, first "
        r".*gt/000001_mpii_test.json: frame 1 \(image 101\): GT person 0 .*poseval's number, kept",
    ):
        result = evaluate(tmp_path / "a", gt, pr)
    assert result.ap_per_joint[jid("nose")] == 50.0
    assert result.counts.gt_people_zero_head_box == 1
    assert "(1 with a zero-size head box, never matched)" in result.describe()
    # without a prediction on its frame the box is never used: no warning, AP 1/2 * 1 = 50
    pr["annotations"].pop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate(tmp_path / "b", gt, pr).ap_per_joint[jid("nose")] == 50.0


def _tied_nose_case(is_labeled: bool) -> tuple[dict, dict]:
    """6 frames, one prediction each: frames 0-2 scored 0.9, frames 3-5 0.1; only frame 2 hits.

    The one GT nose is on frame 2; the other frames have a GT person without joints (evaluated,
    inert), so their predictions are false positives.
    """
    images = [image(f, is_labeled=is_labeled) for f in range(6)]
    gt = pt18(
        images,
        [person(f, {"nose": (10, 10, 1)} if f == 2 else {}) for f in range(6)],
    )
    pr = pt18(
        images,
        [
            pred(f, {"nose": (10, 10, 0.9) if f == 2 else (200, 200, 0.9 if f < 3 else 0.1)})
            for f in range(6)
        ],
    )
    return gt, pr


@pytest.mark.parametrize("mode", ["poseval", "pt21"])
def test_tied_scores_ranked_in_generic_introsort_order(tmp_path, mode):
    # numpy's generic introsort insertion-sorts up to 16 elements (stable); reversed, the later
    # of equal scores ranks first: 0.9-group order frames 2, 1, 0, so the TP is first -> AP 100.
    # (numpy 2.x's AVX2 sort ranks frames 1, 2, 0 here -> AP 50.)
    gt, pr = _tied_nose_case(is_labeled=True)
    result = evaluate(tmp_path, gt, pr, mode=mode)
    assert result.ap_per_joint[jid("nose")] == 100.0
    assert result.total == pytest.approx(100.0 / 15, abs=1e-12)


def test_mixed_ties_report_the_ap_range_over_tie_orders(tmp_path):
    # nose: TP first within the 0.9 tie -> AP 100; last (rank 3) -> 1/3 -> 33.33. Every other
    # joint has no detection (AP 0), so Total ranges over [33.33/15, 100/15].
    gt, pr = _tied_nose_case(is_labeled=True)
    result = evaluate(tmp_path, gt, pr)
    nose = jid("nose")
    assert result.ties_mixed.tolist() == [j == nose for j in range(15)]
    assert result.ap_tie_range[nose].tolist() == pytest.approx([100.0 / 3, 100.0], abs=1e-12)
    assert result.total_tie_range == pytest.approx((100.0 / 45, 100.0 / 15), abs=1e-12)
    assert result.ap_per_joint[nose] == 100.0  # the headline stays the introsort order's
    assert (
        "tied scores mix true and false positives on 1 joint, so the AP depends on the order "
        "of the ties; AP over all tie orders: nose 33.33-100.00; Total 2.22-6.67 "
        "(reported: 6.67, ties in numpy's generic introsort order" in result.describe()
    )
    ties = result.to_json()["ties"]
    assert ties["mixed_per_joint"][nose] and sum(ties["mixed_per_joint"]) == 1
    assert ties["ap_min_per_joint"][nose] == pytest.approx(100.0 / 3, abs=1e-12)
    assert (ties["total_min"], ties["total_max"]) == pytest.approx((100 / 45, 100 / 15))
    # the hit scored apart from the tie: ties only among false positives, no range, no note
    pr["annotations"][2]["scores"][POSETRACK.index("nose")] = 0.95
    untied = evaluate(tmp_path / "b", gt, pr)
    assert not untied.ties_mixed.any() and "tied scores" not in untied.describe()


def _two_video_tie(tmp_path: Path) -> tuple[Path, Path]:
    """Video 000001: a nose hit scored 0.5. Video 000002: a false positive scored 0.5 (its GT
    person has no joints). nGT 1; the file order decides which of the tied detections is first."""
    hit_gt = pt18([image(0)], [person(0, {"nose": (10, 10, 1)})])
    hit_pr = pt18([image(0)], [pred(0, {"nose": (10, 10, 0.5)})])
    miss_images = [{"id": 100, "file_name": "images/val/000002_mpii_test/000000.jpg"}]
    miss_gt = pt18(miss_images, [person(0, {})])
    miss_pr = pt18(miss_images, [pred(0, {"nose": (200, 200, 0.5)})])
    gt_dir = write(tmp_path / "gt", {VIDEO: hit_gt, "000002_mpii_test.json": miss_gt})
    pred_dir = write(tmp_path / "pred", {VIDEO: hit_pr, "000002_mpii_test.json": miss_pr})
    return gt_dir, pred_dir


def test_gt_files_sorted_by_default_or_in_poseval_glob_order(tmp_path, monkeypatch):
    # sorted: detections [hit, miss]; reversed insertion order ranks the miss first -> AP 1/2.
    # A file system listing 000002 first: [miss, hit] -> the hit first -> AP 100.
    gt_dir, pred_dir = _two_video_tie(tmp_path)
    assert evaluate_dirs(gt_dir, pred_dir).ap_per_joint[jid("nose")] == 50.0
    listed = glob.glob
    monkeypatch.setattr(glob, "glob", lambda pattern: sorted(listed(pattern), reverse=True))
    assert evaluate_dirs(gt_dir, pred_dir, file_order="glob").ap_per_joint[jid("nose")] == 100.0
    assert evaluate_dirs(gt_dir, pred_dir, file_order="sorted").ap_per_joint[jid("nose")] == 50.0
    out = tmp_path / "ap.json"
    args = ["--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out)]
    assert pm.main([*args, "--file-order", "glob"]) == 0
    assert json.loads(out.read_text())["ap_per_joint"][jid("nose")] == 100.0
    with pytest.raises(ValueError, match=r"file_order: expected one of \('sorted', 'glob'\)"):
        evaluate_dirs(gt_dir, pred_dir, file_order="name")


def test_glob_order_is_the_file_system_listing(tmp_path):
    gt_dir, _ = _two_video_tie(tmp_path)
    (gt_dir / ".hidden.json").write_text("{}")
    listed = [n for n in os.listdir(gt_dir) if n.endswith(".json") and not n.startswith(".")]
    assert [p.name for p in pm._json_files(gt_dir, "glob")] == listed
    assert [p.name for p in pm._json_files(gt_dir)] == sorted(listed)


def test_folder_named_like_a_json_file_is_skipped(tmp_path, capsys):
    gt, pr = _simple()
    gt_dir, pred_dir = write(tmp_path / "gt", {VIDEO: gt}), write(tmp_path / "pred", {VIDEO: pr})
    (gt_dir / "x.json").mkdir()
    out = tmp_path / "ap.json"
    args = ["--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out)]
    assert pm.main([*args, "--allow-missing"]) == 0
    data = json.loads(out.read_text())
    assert data["counts"]["videos"] == 1 and data["counts"]["videos_without_predictions"] == 0
    assert data["ap_per_joint"][jid("nose")] == 100.0
    assert evaluate_dirs(gt_dir, pred_dir).counts.videos == 1


def test_json_output_folder_is_created_or_the_path_refused_before_evaluating(tmp_path, capsys):
    gt, pr = _simple()
    gt_dir, pred_dir = write(tmp_path / "gt", {VIDEO: gt}), write(tmp_path / "pred", {VIDEO: pr})
    out = tmp_path / "new" / "deeper" / "ap.json"
    assert pm.main(["--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ap_per_joint"][jid("nose")] == 100.0
    capsys.readouterr()
    (tmp_path / "a_file").write_text("")
    bad = tmp_path / "a_file" / "ap.json"
    assert pm.main(["--gt", str(gt_dir), "--pred", str(pred_dir), "--json", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before evaluating, nothing printed
    assert f"cannot create the folder {bad.parent} of the output file {bad}" in captured.err


# --- benchmark -------------------------------------------------------------------------------


def test_benchmark_runs_on_a_tiny_set():
    from vidpose.benchmarks import eval as bench

    rows = bench.run(
        argparse.Namespace(quick=True, videos=2, poseval=None, poseval_python=None, seed=0)
    )
    assert rows[0]["videos"] == 2 and rows[0]["frames"] == 2 * (
        bench.LABELED_FRAMES + bench.UNLABELED_FRAMES
    )
    assert (
        0 < rows[0]["frames_evaluated"] <= 2 * bench.LABELED_FRAMES
        and 0 < rows[0]["total_ap"] < 100
    )
