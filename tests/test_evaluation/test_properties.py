"""Property-based invariances of the PoseTrack evaluator (Reliability issue).

Scenes keep people far apart and scores distinct, so the matching and the ranking have no ties:
then permuting people within a frame, renaming the video files, or adding a prediction inside an
ignore region cannot change the score.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidpose.data.keypoints import POSETRACK
from vidpose.evaluation.posetrack_map import evaluate_dirs

CELL = 300  # people live in separate 300 px cells; joints stay within +-40 px of the cell centre


@st.composite
def scenes(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    n_videos = draw(st.integers(1, 3))
    n_frames = draw(st.integers(1, 3))
    n_people = draw(st.integers(1, 3))
    return seed, n_videos, n_frames, n_people


def _video_json(vid: int, frames: list[list[dict]], regions=None) -> dict:
    images, annotations = [], []
    for f, people in enumerate(frames):
        image_id = 10000000000 + vid * 10000 + f
        image = {"id": image_id, "file_name": f"images/val/{vid:06d}_mpii_test/{f:06d}.jpg"}
        if regions:
            image["ignore_regions_x"] = [[r[0] for r in regions]]
            image["ignore_regions_y"] = [[r[1] for r in regions]]
        images.append(image)
        for i, person in enumerate(people):
            annotations.append({"image_id": image_id, "track_id": i, **person})
    return {"images": images, "annotations": annotations,
            "categories": [{"name": "person", "keypoints": list(POSETRACK.joint_names)}]}


def _build(seed, n_videos, n_frames, n_people):
    rng = np.random.default_rng(seed)
    gt, pred = {}, {}
    for v in range(n_videos):
        gt_frames, pred_frames = [], []
        for _ in range(n_frames):
            gt_people, pred_people = [], []
            for p in range(n_people):
                centre = np.array([CELL * (p + 0.5), CELL * 0.5])
                joints = centre + rng.uniform(-40, 40, size=(17, 2))
                vis = (rng.random(17) > 0.2).astype(float)
                vis[[3, 4]] = 0
                kp = np.concatenate([joints * vis[:, None], vis[:, None]], 1)
                gt_people.append({"keypoints": kp.ravel().tolist(),
                                  "bbox_head": [float(centre[0] - 20), float(centre[1] - 60), 40.0, 40.0]})
                noisy = joints + rng.normal(0, 8, size=(17, 2))
                scores = rng.random(17)
                pkp = np.concatenate([noisy, scores[:, None]], 1)
                pkp[[3, 4]] = 0
                pred_people.append({"keypoints": pkp.ravel().tolist(), "scores": pkp[:, 2].tolist()})
            # a false positive in an empty cell, far from everyone
            fp = np.array([CELL * (n_people + 1.5), CELL * 0.5]) + rng.uniform(-40, 40, size=(17, 2))
            fps = rng.random(17) * 0.5
            pred_people.append({"keypoints": np.concatenate([fp, fps[:, None]], 1).ravel().tolist(),
                                "scores": fps.tolist()})
            gt_frames.append(gt_people)
            pred_frames.append(pred_people)
        gt[v], pred[v] = gt_frames, pred_frames
    return gt, pred, rng


def _write(root: Path, videos: dict, names: dict, regions=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for v, frames in videos.items():
        (root / f"{names[v]}.json").write_text(json.dumps(_video_json(v, frames, regions)))
    return root


def _score(tmp: Path, gt, pred, names, perm_rng=None, regions=None):
    if tmp.exists():
        shutil.rmtree(tmp)
    if perm_rng is not None:
        gt = {v: [[people[i] for i in perm_rng.permutation(len(people))] for people in frames] for v, frames in gt.items()}
        pred = {v: [[people[i] for i in perm_rng.permutation(len(people))] for people in frames] for v, frames in pred.items()}
    result = evaluate_dirs(_write(tmp / "gt", gt, names, regions), _write(tmp / "pred", pred, names))
    return result.ap_per_joint


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scene=scenes())
def test_evaluator_invariances(scene, tmp_path):
    gt, pred, rng = _build(*scene)
    names = {v: f"{v:06d}_mpii_test" for v in gt}
    reference = _score(tmp_path / "a", gt, pred, names)
    assert np.isfinite(reference[np.isfinite(reference)]).all()

    permuted = _score(tmp_path / "b", gt, pred, names, perm_rng=np.random.default_rng(scene[0] + 1))
    np.testing.assert_array_equal(permuted, reference)

    renamed = {v: f"{(97 - v):06d}_mpii_renamed" for v in gt}  # reverses the file order
    np.testing.assert_array_equal(_score(tmp_path / "c", gt, pred, renamed), reference)

    # an ignore region in an empty cell, with one extra prediction strictly inside it
    x0 = CELL * (scene[3] + 3)
    region = [(x0, 100), (x0 + 200, 100), (x0 + 200, 200), (x0, 200)]
    extra = {"keypoints": np.tile([x0 + 100, 150, 0.99], 17).tolist(), "scores": [0.99] * 17}
    with_extra = {v: [people + [extra] for people in frames] for v, frames in pred.items()}
    np.testing.assert_array_equal(_score(tmp_path / "d", gt, with_extra, names, regions=region), reference)
