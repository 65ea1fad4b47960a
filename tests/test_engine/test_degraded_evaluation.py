"""The clip and sequence evaluators report degraded/clean subset scores when the data set has sidecars."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.data import synthetic as syn
from vidpose.data.degraded import sidecars_for_index
from vidpose.data.degradations import DegradationConfig
from vidpose.data.sequences import SequenceSet, SequenceWindowDataset, sequences_from_predictions
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluator import Evaluator
from vidpose.engine.sequences import SequenceEvaluator, format_comparison
from vidpose.evaluation.writers import PosePrediction
from vidpose.registry import DATASETS

MICRO_DEGRADED = dataclasses.replace(
    syn.PRESETS["degraded_tiny"], num_train_videos=1, num_val_videos=2, num_frames=6, jhmdb_clips_per_class=1,
    jhmdb_num_frames=6, degradation=DegradationConfig(probability=0.6),
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return syn.generate(MICRO_DEGRADED, tmp_path_factory.mktemp("cache"))


def _predictions(index, instances, degraded_shift=0.0, track_ids=True) -> list[PosePrediction]:
    """GT predictions, shifted by ``degraded_shift`` px on the joints the sidecars mark degraded."""
    masks = {vid: s.masks() for vid, s in (sidecars_for_index(index) or {}).items()}
    out = []
    for inst in instances:
        video = index.videos[inst.video]
        frame = video.frames[inst.frame]
        kp = frame.people[inst.person].keypoints.astype(np.float64).copy()
        hit = masks.get(video.video_id, {}).get((frame.frame_index, inst.track_id))
        if hit is not None:
            kp[hit] += degraded_shift
        scored = np.concatenate([kp, np.full((len(kp), 1), 0.9)], axis=1)
        out.append(PosePrediction(frame.image_id, scored, 1.0, inst.track_id if track_ids else None))
    return out


def test_clip_evaluator_reports_degraded_and_clean_posetrack_map(root: Path, tmp_path: Path) -> None:
    index = DATASETS.get("posetrack18")(root=str(root / "posetrack18"), split="val")
    instances = index.gt_instances(0)
    evaluator = Evaluator(index, instances, None, None, None, "posetrack", tmp_path, DistInfo())
    exact = evaluator.score_predictions(_predictions(index, instances), "exact")
    assert exact["mAP"] == exact["degraded/mAP"] == exact["clean/mAP"] == 100.0
    assert exact["degraded/n_gt_joints"] > 0 and (tmp_path / "exact_subsets" / "degraded" / "gt").is_dir()
    off = evaluator.score_predictions(_predictions(index, instances, degraded_shift=40.0), "off")
    assert off["degraded/mAP"] == 0.0 and off["clean/mAP"] == 100.0 and 0.0 < off["mAP"] < 100.0
    detector_like = evaluator.score_predictions(_predictions(index, instances, track_ids=False), "det")
    assert "mAP" in detector_like and not any(k.startswith(("degraded/", "clean/")) for k in detector_like)


def test_clip_evaluator_reports_degraded_and_clean_jhmdb_pck(root: Path, tmp_path: Path) -> None:
    index = DATASETS.get("jhmdb")(root=str(root / "jhmdb"), split="test", protocol="union")
    instances = index.gt_instances(0)
    evaluator = Evaluator(index, instances, None, None, None, "jhmdb", tmp_path, DistInfo())
    metrics = evaluator.score_predictions(_predictions(index, instances, degraded_shift=60.0), "t")
    assert metrics["degraded/PCK@0.2/Avg"] == 0.0 and metrics["clean/PCK@0.05/Avg"] == 100.0
    assert metrics["degraded/n_joints"] + metrics["clean/n_joints"] == 15 * metrics["n_frames_evaluated"]


class Identity(torch.nn.Module):
    def forward(self, poses):
        return {"refined": poses, "encoder": poses}


def test_sequence_evaluator_reports_the_subsets_of_input_and_refined(root: Path, tmp_path: Path) -> None:
    cases = (
        (DATASETS.get("jhmdb")(root=str(root / "jhmdb"), split="test", protocol="union"), "jhmdb", 5, 1),
        (DATASETS.get("posetrack18")(root=str(root / "posetrack18"), split="val"), "posetrack", 3, 1),
    )
    for index, benchmark, window, n in cases:
        instances = index.gt_instances(0)
        predictions = _predictions(index, instances, degraded_shift=60.0)
        sequences = SequenceSet(sequences_from_predictions(index, instances, predictions, 0.75, 1.25),
                                index.layout.name, index.name, "unit")
        windows = SequenceWindowDataset(sequences.sequences, window, n, train=False, normalize="key_crop", pad="edge")
        metrics = SequenceEvaluator(sequences, windows, index, benchmark, tmp_path / benchmark, DistInfo()).evaluate(
            Identity(), tag="t")
        key = "degraded/PCK@0.2/Avg" if benchmark == "jhmdb" else "degraded/mAP"
        clean = "clean/PCK@0.2/Avg" if benchmark == "jhmdb" else "clean/mAP"
        assert metrics[f"input/{key}"] == metrics[f"refined/{key}"] == pytest.approx(0.0, abs=1e-4), benchmark
        assert metrics[f"input/{clean}"] == pytest.approx(100.0), benchmark
        assert key.replace("/", " ") in format_comparison(metrics, benchmark)
