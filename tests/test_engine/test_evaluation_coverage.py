"""Evaluation drops nothing silently: counts of what was read and evaluated, and a failure when the
validation boxes (GT or detector) or the GT folder do not cover the index, unless waived."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.data.detections import detection_instances, load_detections
from vidpose.data.synthetic import detections_path
from vidpose.engine import builders
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluate_run import build_evaluator
from vidpose.engine.evaluator import Evaluator
from vidpose.evaluation.writers import PosePrediction
from vidpose.registry import DATASETS

TINY = (
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.val_batch_size=32",
    "codec.flip_test=false",
)


def _evaluator(index, instances, benchmark="posetrack", require_coverage=True, out=Path("/nonexistent")) -> Evaluator:
    # scoring needs no dataset, model or loader: predictions are given directly
    return Evaluator(index, instances, None, None, None, benchmark, out, DistInfo(), require_coverage=require_coverage)


def _gt_predictions(index, instances) -> list[PosePrediction]:
    out = []
    for inst in instances:
        frame = index.videos[inst.video].frames[inst.frame]
        kp = frame.people[inst.person].keypoints
        scored = np.concatenate([kp, np.full((len(kp), 1), 0.9)], axis=1)
        out.append(PosePrediction(frame.image_id, scored, 1.0, inst.track_id))
    return out


@pytest.fixture(scope="module")
def pt_val(synthetic_cache):
    return DATASETS.build({"name": "synthetic", "preset": "tiny", "cache_root": str(synthetic_cache)}, split="val")


def test_report_counts_videos_frames_and_people_read_and_evaluated(compose_exp, tmp_path):
    cfg = compose_exp("baseline_synthetic", *TINY)
    evaluator = build_evaluator(cfg, DistInfo(), tmp_path / "pred")
    model = builders.build_model(cfg, evaluator.layout, evaluator.geometry)
    torch.manual_seed(0)
    metrics = evaluator.evaluate(model, tag="t")
    counts = {k: v for k, v in metrics.items() if k.startswith("n_")}
    # tiny val: 2 videos of 12 frames, 3 labeled frames each, 18 people, all on labeled frames
    assert counts == {
        "n_videos": 2, "n_videos_evaluated": 2,
        "n_frames": 24, "n_frames_evaluated": 6,
        "n_gt_people": 18, "n_gt_people_evaluated": 18,
        "n_predictions": 18, "n_predictions_evaluated": 18,
    }


def test_val_max_instances_waives_coverage_and_the_counts_show_the_subset(compose_exp, tmp_path):
    cfg = compose_exp("baseline_synthetic", *TINY, "trainer.val_max_instances=7")
    evaluator = build_evaluator(cfg, DistInfo(), tmp_path / "pred")
    assert evaluator.require_coverage is False
    metrics = evaluator.evaluate(builders.build_model(cfg, evaluator.layout, evaluator.geometry), tag="t")
    assert (metrics["n_gt_people"], metrics["n_predictions"], metrics["n_predictions_evaluated"]) == (18, 7, 7)


def test_gt_people_without_a_box_fail_unless_waived(pt_val, caplog, monkeypatch):
    instances = pt_val.gt_instances(min_visible=0)
    assert len(instances) == 18
    with pytest.raises(ValueError, match=r"posetrack18/val: 11 of 18 GT people have no validation box, e\.g\. in video "
                                         r"\S+ frame \d+; .*evaluation\.require_coverage=false"):
        _evaluator(pt_val, instances[:7])
    monkeypatch.setattr(logging.getLogger("vidpose"), "propagate", True)  # run logging may have cut it
    with caplog.at_level(logging.WARNING, logger="vidpose.engine.evaluator"):
        _evaluator(pt_val, instances[:7], require_coverage=False)
    assert "11 of 18 GT people have no validation box" in caplog.text


def test_videos_without_any_detector_box_fail(pt_val):
    detections = load_detections(detections_path(Path(pt_val.image_root).parent), pt_val)
    # detector misses on single frames are part of the score; a whole video without boxes is not
    labeled = [f.image_id for v in pt_val.videos for f in v.frames if f.people]
    _evaluator(pt_val, detection_instances(pt_val, {k: v for k, v in detections.items() if k != labeled[0]}))
    first_video = {f.image_id for f in pt_val.videos[0].frames}
    instances = detection_instances(pt_val, {k: v for k, v in detections.items() if k in first_video})
    missing = rf"1 of 2 videos with GT people have no detector box \(e\.g\. \['{pt_val.videos[1].video_id}'\]\)"
    with pytest.raises(ValueError, match=missing):
        _evaluator(pt_val, instances)


def test_gt_folder_with_videos_the_index_lacks_fails(pt_val, tmp_path):
    pt_val = copy.deepcopy(pt_val)
    gt_dir = tmp_path / "gt"
    shutil.copytree(Path(pt_val.videos[0].source_file).parent, gt_dir)
    # a third video in the GT folder that the index never read (another copy of the first one)
    extra = json.loads((gt_dir / Path(pt_val.videos[0].source_file).name).read_text())
    for entry in extra["images"]:
        entry["id"] += 10**9
        if "frame_id" in entry:
            entry["frame_id"] += 10**9
    for entry in extra["annotations"]:
        entry["image_id"] += 10**9
    (gt_dir / "999999_extra.json").write_text(json.dumps(extra))
    for video in pt_val.videos:
        video.source_file = str(gt_dir / Path(video.source_file).name)
    instances = pt_val.gt_instances(min_visible=0)
    evaluator = _evaluator(pt_val, instances, out=tmp_path / "pred")
    with pytest.raises(ValueError, match=r"the scorer reads 3 GT files in \S+gt but the index has 2 videos"):
        evaluator.score_predictions(_gt_predictions(pt_val, instances), "t")
    waived = _evaluator(pt_val, instances, require_coverage=False, out=tmp_path / "pred")
    metrics = waived.score_predictions(_gt_predictions(pt_val, instances), "t2")
    # the extra video is scored with no predictions: visible in the counts and in the AP
    assert (metrics["n_videos"], metrics["n_videos_evaluated"], metrics["n_frames_evaluated"]) == (2, 3, 9)
    assert metrics["mAP"] < 100.0


def test_jhmdb_frames_without_prediction_fail_or_are_counted(synthetic_cache):
    node = {"name": "synthetic_jhmdb", "preset": "tiny", "cache_root": str(synthetic_cache)}
    index = DATASETS.build(node, split="test")
    instances = index.gt_instances(min_visible=0)
    predictions = _gt_predictions(index, instances)[1:]
    with pytest.raises(ValueError, match=r"1 frames with a GT person have no prediction, e\.g\. \[.*frame 0"):
        _evaluator(index, instances, "jhmdb").score_predictions(predictions, "t")
    metrics = _evaluator(index, instances, "jhmdb", require_coverage=False).score_predictions(predictions, "t")
    assert (metrics["n_frames"], metrics["n_frames_evaluated"], metrics["n_videos_evaluated"]) == (36, 35, 3)
    assert metrics["PCK@0.2/Avg"] == pytest.approx(100.0)
