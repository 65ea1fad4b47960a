"""Run a model over validation boxes, decode to image pixels and score with the benchmark's protocol.

PoseTrack: predictions are written as PoseTrack18 files mirroring the GT files (so the official
poseval can score them too) and scored by :mod:`vidpose.evaluation.posetrack_map`.
Sub-JHMDB: predictions are grouped per video and scored by :mod:`vidpose.evaluation.jhmdb_pck`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidpose import heatmaps as hm
from vidpose.data.clip import ClipDataset
from vidpose.data.index import Instance, VideoPoseIndex
from vidpose.data.keypoints import KeypointLayout
from vidpose.data.loader import collate, to_device
from vidpose.engine.distributed import DistInfo, ShardSampler, all_gather_objects
from vidpose.evaluation import jhmdb_pck, posetrack_map
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions
from vidpose.heatmaps.geometry import apply_affine, invert_affine

__all__ = ["Evaluator", "predict_heatmaps", "BENCHMARKS"]

BENCHMARKS = ("posetrack", "jhmdb")
log = logging.getLogger(__name__)


def predict_heatmaps(
    model: torch.nn.Module, frames: torch.Tensor, batch: dict, layout: KeypointLayout, geometry: hm.Geometry, flip_test: bool
) -> torch.Tensor:
    """Key-frame heatmaps ``(B, K, h, w)``, averaged with the flipped clip's when ``flip_test``."""
    heatmaps = model(frames, batch)["heatmaps"].float()
    if flip_test:
        flipped = model(frames.flip(-1), batch)["heatmaps"].float()
        heatmaps = hm.merge_flip(heatmaps, hm.flip_back(flipped, layout.flip_pairs, geometry))
    return heatmaps


class Evaluator:
    """Predicts keypoints for every validation instance and scores them."""

    def __init__(
        self,
        index: VideoPoseIndex,
        instances: Sequence[Instance],
        dataset: ClipDataset,
        geometry: hm.Geometry,
        layout: KeypointLayout,
        benchmark: str,
        out_dir: str | Path,
        info: DistInfo,
        batch_size: int = 32,
        num_workers: int = 0,
        flip_test: bool = True,
        refine: str = "dark",
        score: str = "heatmap_max_x_box",
        sigma: float | None = None,
    ) -> None:
        if benchmark not in BENCHMARKS:
            raise ValueError(f"data.benchmark: expected one of {BENCHMARKS}, got {benchmark!r}")
        if score not in ("heatmap_max", "heatmap_max_x_box"):
            raise ValueError(f"evaluation.score: expected heatmap_max or heatmap_max_x_box, got {score!r}")
        self.index, self.instances, self.dataset = index, list(instances), dataset
        self.geometry, self.layout, self.benchmark = geometry, layout, benchmark
        self.out_dir, self.info = Path(out_dir), info
        self.batch_size, self.num_workers = batch_size, num_workers
        self.flip_test, self.refine, self.score, self.sigma = flip_test, refine, score, sigma
        # the number model selection and the README report: PoseTrack Total AP, JHMDB PCK@0.2 Avg
        self.primary_metric = "mAP" if benchmark == "posetrack" else "PCK@0.2/Avg"

    def _loader(self) -> DataLoader:
        sampler = ShardSampler(len(self.dataset), self.info.rank, self.info.world_size)
        return DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers, collate_fn=collate
        )

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, amp_dtype: torch.dtype | None = None) -> list[PosePrediction]:
        """Predictions for all instances, gathered (in instance order) on every rank."""
        was_training = model.training
        model.eval()
        device = self.info.device
        local: list[tuple[int, PosePrediction]] = []
        shard = ShardSampler(len(self.dataset), self.info.rank, self.info.world_size).indices
        position = 0
        for batch in self._loader():
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                heatmaps = predict_heatmaps(model, batch["frames"], batch, self.layout, self.geometry, self.flip_test)
            xy, maxval = hm.decode(heatmaps, self.geometry, refine=self.refine, sigma=self.sigma)
            xy, maxval = np.asarray(xy.cpu(), np.float64), np.asarray(maxval.cpu(), np.float64)
            affines = batch["affine"].cpu().numpy()
            for i in range(xy.shape[0]):
                inst_idx = shard[position]
                position += 1
                inst = self.instances[inst_idx]
                image_xy = apply_affine(invert_affine(affines[i]), xy[i])
                scores = maxval[i] * (inst.box_score if self.score == "heatmap_max_x_box" else 1.0)
                frame = self.index.videos[inst.video].frames[inst.frame]
                local.append(
                    (
                        inst_idx,
                        PosePrediction(
                            image_id=frame.image_id,
                            keypoints=np.concatenate([image_xy, scores[:, None]], axis=1),
                            box_score=float(inst.box_score),
                            track_id=int(inst.track_id) if inst.track_id >= 0 else None,
                        ),
                    )
                )
        model.train(was_training)
        gathered = [item for part in all_gather_objects(local) for item in part]
        gathered.sort(key=lambda item: item[0])
        if len(gathered) != len(self.instances):
            raise RuntimeError(f"evaluation gathered {len(gathered)} predictions for {len(self.instances)} instances")
        return [p for _, p in gathered]

    def score_predictions(self, predictions: Sequence[PosePrediction], tag: str) -> dict[str, Any]:
        """Benchmark metrics of a prediction set; PoseTrack files are written under ``out_dir/tag``."""
        if self.benchmark == "posetrack":
            return self._score_posetrack(predictions, self.out_dir / tag)
        return self._score_jhmdb(predictions)

    def gt_dir(self) -> Path:
        """The directory holding the GT files of the evaluated videos."""
        dirs = {Path(v.source_file).parent for v in self.index.videos if v.source_file}
        if len(dirs) != 1:
            raise ValueError(f"{self.index.name}: GT files come from {len(dirs)} directories; expected one")
        return dirs.pop()

    def _score_posetrack(self, predictions: Sequence[PosePrediction], pred_dir: Path) -> dict[str, Any]:
        gt_dir = self.gt_dir()
        write_posetrack18_predictions(predictions, gt_dir, pred_dir)
        result = posetrack_map.evaluate_dirs(gt_dir, pred_dir)
        metrics = {f"AP/{k}": float(v) for k, v in result.columns.items()}
        metrics["mAP"] = float(result.columns["Total"])
        metrics["n_frames_evaluated"] = int(result.n_frames_evaluated)
        metrics["predictions_dir"] = str(pred_dir)
        return metrics

    def _score_jhmdb(self, predictions: Sequence[PosePrediction]) -> dict[str, Any]:
        by_image = {p.image_id: p for p in predictions}
        videos = []
        for video in self.index.videos:
            gt, pred, boxes = [], [], []
            for frame in video.frames:
                if not frame.people:
                    continue
                person = frame.people[0]
                if frame.image_id not in by_image:
                    raise KeyError(f"no prediction for {video.video_id} frame {frame.frame_index} (image {frame.image_id})")
                x, y, w, h = (float(v) for v in person.bbox_xywh)
                gt.append(person.keypoints)
                pred.append(by_image[frame.image_id].keypoints[:, :2])
                boxes.append([x, y, x + w, y + h])
            if gt:
                videos.append({"name": video.video_id, "gt": np.stack(gt), "pred": np.stack(pred), "bbox": np.array(boxes)})
        result = jhmdb_pck.evaluate(videos)
        metrics: dict[str, Any] = {}
        for threshold in jhmdb_pck.THRESHOLDS:
            for name, value in result.groups(threshold).items():
                metrics[f"PCK@{threshold:g}/{name}"] = 100.0 * float(value)
        metrics["protocol"] = result.protocol_text
        return metrics

    def evaluate(self, model: torch.nn.Module, tag: str, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Predict on every rank, score on rank 0 (other ranks return an empty dict)."""
        predictions = self.predict(model, amp_dtype)
        if not self.info.is_main:
            return {}
        metrics = self.score_predictions(predictions, tag)
        metrics["_predictions"] = predictions
        return metrics
