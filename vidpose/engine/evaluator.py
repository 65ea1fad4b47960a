"""Run a model over validation boxes, decode to image pixels and score with the benchmark's protocol.

PoseTrack: predictions are written as PoseTrack18 files mirroring the GT files (so the official
poseval can score them too) and scored by :mod:`vidpose.evaluation.posetrack_map`.
Sub-JHMDB: predictions are grouped per video and scored by :mod:`vidpose.evaluation.jhmdb_pck`.
Where the videos have degraded-joint sidecars (synthetic ``degraded`` presets), the degraded and
clean joints are also scored on their own (:mod:`vidpose.evaluation.degraded_subset`).
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
from vidpose.data.degraded import posetrack_sidecar_dir, sidecars_for_index
from vidpose.data.index import Instance, VideoPoseIndex
from vidpose.data.keypoints import KeypointLayout
from vidpose.data.loader import collate, keep_freed_memory, to_device, worker_init_fn
from vidpose.engine.distributed import DistInfo, ShardSampler, all_gather_objects
from vidpose.evaluation import jhmdb_pck, posetrack_map
from vidpose.evaluation.degraded_subset import EmptySubsetError, score_degraded_jhmdb, score_degraded_subset
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions
from vidpose.heatmaps.geometry import apply_affine, invert_affine
from vidpose.models.flow.cache import FlowCache

__all__ = ["Evaluator", "predict_heatmaps", "BENCHMARKS"]

BENCHMARKS = ("posetrack", "jhmdb")
log = logging.getLogger(__name__)


def predict_heatmaps(
    model: torch.nn.Module, frames: torch.Tensor, batch: dict, layout: KeypointLayout, geometry: hm.Geometry, flip_test: bool
) -> torch.Tensor:
    """Key-frame heatmaps ``(B, K, h, w)``, averaged with the flipped clip's when ``flip_test``."""
    heatmaps = model(frames, batch)["heatmaps"].float()
    if flip_test:
        keys = batch.get("flow_cache_keys")
        if keys is not None:  # mirrored crops have other flows
            batch = {**batch, "flow_cache_keys": [(paths, box, not flipped) for paths, box, flipped in keys]}
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
        flow_cache_mb: float = 0.0,
        require_coverage: bool = True,
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
        self.require_coverage = require_coverage
        self.coverage = self._check_coverage()
        self.sidecars = sidecars_for_index(index)  # None unless the data set marks degraded joints
        self.flow_cache: FlowCache | None = None
        if flow_cache_mb < 0:
            raise ValueError(f"evaluation.flow_cache_mb must be >= 0, got {flow_cache_mb}")
        if flow_cache_mb > 0:
            transform = getattr(dataset, "transform", None)
            if transform is None or transform.train:
                raise ValueError("evaluation.flow_cache_mb needs a validation dataset without augmentation")
            self.flow_cache = FlowCache(int(flow_cache_mb * 2**20))
        self._persistent_loader: DataLoader | None = None

    def _loader(self) -> DataLoader:
        # Kept between validations when it has workers: they (and their frame caches) survive,
        # so each validation skips worker start-up. Pinned memory lets to_device copy
        # asynchronously on CUDA.
        if self._persistent_loader is not None:
            return self._persistent_loader
        if self.num_workers == 0:
            keep_freed_memory()  # this process decodes: as in a worker (vidpose.data.loader.keep_freed_memory)
        sampler = ShardSampler(len(self.dataset), self.info.rank, self.info.world_size)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.info.device.type == "cuda",
            persistent_workers=self.num_workers > 0,
            worker_init_fn=worker_init_fn,
        )
        if self.num_workers > 0:
            self._persistent_loader = loader
        return loader

    def _flow_cache_keys(self, batch: dict) -> list[tuple]:
        """Per sample ``(frame paths (T,), box (cx, cy, w, h), flipped)``: what fixes an evaluation crop."""
        keys = []
        for i, video_index in enumerate(batch["video_index"].tolist()):
            frames = self.index.videos[video_index].frames
            paths = tuple(frames[p].file_name for p in batch["frame_indices"][i].tolist())
            box = (*batch["center"][i].tolist(), *batch["scale"][i].tolist())
            keys.append((paths, box, bool(batch["flipped"][i])))
        return keys

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, amp_dtype: torch.dtype | None = None) -> list[PosePrediction]:
        """Predictions for all instances, gathered (in instance order) on every rank."""
        was_training = model.training
        model.eval()
        core = getattr(model, "module", model)  # the PoseModel under a DDP wrapper
        use_cache = self.flow_cache is not None and getattr(core, "flow", None) is not None
        previous_cache = getattr(core, "flow_cache", None)
        if use_cache:
            core.flow_cache = self.flow_cache
        try:
            local = self._predict_local(model, amp_dtype, use_cache)
        finally:
            if use_cache:
                core.flow_cache = previous_cache
        model.train(was_training)
        gathered = [item for part in all_gather_objects(local) for item in part]
        gathered.sort(key=lambda item: item[0])
        if len(gathered) != len(self.instances):
            raise RuntimeError(f"evaluation gathered {len(gathered)} predictions for {len(self.instances)} instances")
        return [p for _, p in gathered]

    def _predict_local(
        self, model: torch.nn.Module, amp_dtype: torch.dtype | None, use_cache: bool
    ) -> list[tuple[int, PosePrediction]]:
        """(instance index, prediction) for this rank's shard, in shard order."""
        device = self.info.device
        local: list[tuple[int, PosePrediction]] = []
        shard = ShardSampler(len(self.dataset), self.info.rank, self.info.world_size).indices
        position = 0
        for batch in self._loader():
            if use_cache:
                batch["flow_cache_keys"] = self._flow_cache_keys(batch)
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
        return local

    def _not_covered(self, what: str) -> None:
        message = (
            f"{self.index.name}: {what}; the score would count them as misses. Set "
            "evaluation.require_coverage=false to evaluate a subset on purpose (trainer.val_max_instances does too)"
        )
        if self.require_coverage:
            raise ValueError(message)
        log.warning("%s (evaluating a subset: evaluation.require_coverage is off)", message.split("; the score")[0])

    def _check_coverage(self) -> dict[str, int]:
        """Counts of the GT set and of the validation boxes; fails when GT people or videos have no box."""
        people = [
            (vi, fi, pi)
            for vi, video in enumerate(self.index.videos)
            for fi, frame in enumerate(video.frames)
            for pi in range(len(frame.people))
        ]
        boxed_videos = {inst.video for inst in self.instances}
        gt_boxes = {(inst.video, inst.frame, inst.person) for inst in self.instances if inst.person >= 0}
        counts = {
            "n_videos": len(self.index.videos),
            "n_frames": self.index.num_frames(),
            "n_gt_people": len(people),
            "n_predictions": len(self.instances),
        }
        if self.instances and len(gt_boxes) == len(self.instances):
            # GT boxes: every GT person must get a prediction
            missing = [p for p in people if p not in gt_boxes]
            if missing:
                vi, fi, _ = missing[0]
                video = self.index.videos[vi]
                self._not_covered(
                    f"{len(missing)} of {len(people)} GT people have no validation box, e.g. in video "
                    f"{video.video_id} frame {video.frames[fi].frame_index}"
                )
        else:
            # detector boxes: a frame without boxes is a detector miss, a video without any is not
            missing_videos = [
                v.video_id for vi, v in enumerate(self.index.videos)
                if vi not in boxed_videos and any(f.people for f in v.frames)
            ]
            if missing_videos:
                self._not_covered(
                    f"{len(missing_videos)} of {len(self.index.videos)} videos with GT people have no detector box "
                    f"(e.g. {missing_videos[:3]})"
                )
        return counts

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
        c = result.counts
        if c.videos != len(self.index.videos):
            # the GT folder holds videos the index left out: they would be scored without predictions
            self._not_covered(
                f"the scorer reads {c.videos} GT files in {gt_dir} but the index has {len(self.index.videos)} videos"
            )
        log.info("%s: %s", self.index.name, result.describe())
        metrics = {f"AP/{k}": float(v) for k, v in result.columns.items()}
        metrics["mAP"] = float(result.columns["Total"])
        metrics.update(self.coverage)
        metrics.update(
            n_videos_evaluated=int(c.videos - c.videos_without_predictions),
            n_frames_evaluated=int(result.n_frames_evaluated),
            n_gt_people_evaluated=int(c.gt_people),
            n_predictions_evaluated=int(c.pred_people),
        )
        metrics["predictions_dir"] = str(pred_dir)
        if self.sidecars is not None:
            if any(p.track_id is None for p in predictions):
                log.info("%s: degraded subset not scored: detector-box predictions carry no GT track id",
                         self.index.name)
            else:
                subsets_dir = pred_dir.parent / f"{pred_dir.name}_subsets"
                metrics.update(score_degraded_subset(gt_dir, pred_dir, posetrack_sidecar_dir(gt_dir), subsets_dir))
        return metrics

    def _score_jhmdb(self, predictions: Sequence[PosePrediction]) -> dict[str, Any]:
        by_image = {p.image_id: p for p in predictions}
        videos = []
        unpredicted = []
        rows: dict[str, list[int]] = {}  # video id -> frame indices of its scored rows
        for video in self.index.videos:
            gt, pred, boxes = [], [], []
            for frame in video.frames:
                if not frame.people:
                    continue
                person = frame.people[0]
                if frame.image_id not in by_image:
                    unpredicted.append(f"{video.video_id} frame {frame.frame_index} (image {frame.image_id})")
                    continue
                x, y, w, h = (float(v) for v in person.bbox_xywh)
                gt.append(person.keypoints)
                pred.append(by_image[frame.image_id].keypoints[:, :2])
                boxes.append([x, y, x + w, y + h])
                rows.setdefault(video.video_id, []).append(frame.frame_index)
            if gt:
                videos.append({"name": video.video_id, "gt": np.stack(gt), "pred": np.stack(pred), "bbox": np.array(boxes)})
        if unpredicted:
            self._not_covered(f"{len(unpredicted)} frames with a GT person have no prediction, e.g. {unpredicted[:3]}")
        result = jhmdb_pck.evaluate(videos)
        scored = sum(len(v["gt"]) for v in videos)
        metrics: dict[str, Any] = {
            **self.coverage,
            "n_videos_evaluated": len(videos),
            "n_frames_evaluated": scored,
            "n_gt_people_evaluated": scored,  # Sub-JHMDB: one person per frame
            "n_predictions_evaluated": scored,
        }
        for threshold in jhmdb_pck.THRESHOLDS:
            for name, value in result.groups(threshold).items():
                metrics[f"PCK@{threshold:g}/{name}"] = 100.0 * float(value)
        metrics["protocol"] = result.protocol_text
        if self.sidecars is not None:
            try:
                metrics.update(score_degraded_jhmdb(videos, self.sidecars, [v["name"] for v in videos],
                                                    [rows[v["name"]] for v in videos]))
            except EmptySubsetError as err:
                log.warning("%s: degraded subset not scored: %s", self.index.name, err)
        return metrics

    def evaluate(self, model: torch.nn.Module, tag: str, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Predict on every rank, score on rank 0 (other ranks return an empty dict)."""
        predictions = self.predict(model, amp_dtype)
        if not self.info.is_main:
            return {}
        metrics = self.score_predictions(predictions, tag)
        metrics["_predictions"] = predictions
        return metrics
