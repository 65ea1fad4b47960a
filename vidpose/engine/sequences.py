"""Two-stage runs: export a stage-1 model's sequences, load a refiner's sequences, score input vs refined.

- :func:`export_sequences` (``tools/eval.py ... save_sequences=true|<file.npz>``): the stage-1
  predictions the evaluator just made on the GT boxes of a split, grouped into sequences
  (:mod:`vidpose.data.sequences`) and written as one ``.npz``.
- :func:`load_split_sequences`: the sequences a refiner run trains or validates on, from
  ``refiner.sequences.{train,val}`` (a ``.npz``, a PoseTrack18 prediction directory or a
  Sub-JHMDB ``IN.json``) or made from jittered GT (``source: jittered_gt``).
- :class:`SequenceEvaluator`: refines the validation windows, stitches them per sequence and
  scores the stage-1 input and the refined output with the benchmark's protocol: Sub-JHMDB PCK
  under the refiners' window protocol (``jhmdb_pck.SlidingWindows``) and over all frames;
  PoseTrack mAP of both prediction sets written with the PoseTrack18 writer. Where the videos
  have degraded-joint sidecars, both sets are also scored on the degraded and the clean joints
  (``<label>/degraded/...``, ``<label>/clean/...``; Sub-JHMDB over all frames).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidpose.data.degraded import posetrack_sidecar_dir, sidecars_for_index
from vidpose.data.index import Instance, VideoPoseIndex
from vidpose.data.loader import collate
from vidpose.data.sequences import (
    PoseSequence,
    SequenceSet,
    SequenceWindowDataset,
    jittered_gt_sequences,
    read_sequence_source,
    sequences_from_predictions,
    stitch_windows,
)
from vidpose.engine.distributed import DistInfo, ShardSampler, all_gather_objects
from vidpose.evaluation import jhmdb_pck, posetrack_map
from vidpose.evaluation.degraded_subset import EmptySubsetError, score_degraded_jhmdb, score_degraded_subset
from vidpose.evaluation.smoothness import smoothness_of_sequences
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions
from vidpose.heatmaps import Geometry

__all__ = ["SequenceEvaluator", "export_sequences", "format_comparison", "load_split_sequences"]

log = logging.getLogger(__name__)


def export_sequences(
    path: str | Path,
    index: VideoPoseIndex,
    instances: Sequence[Instance],
    predictions: Sequence[PosePrediction],
    geometry: Geometry,
    enlarge: float,
    source: str,
) -> Path:
    """Write the sequences of ``predictions`` (one per GT instance, in order) to ``path``; returns it."""
    sequences = sequences_from_predictions(index, instances, predictions, geometry.aspect_ratio, enlarge)
    out = SequenceSet(sequences, index.layout.name, index.name, source).save(path)
    log.info("wrote %d sequences (%d frames) of %s to %s", len(sequences), sum(map(len, sequences)), index.name, out)
    return out


def load_split_sequences(
    sequences_cfg: Mapping[str, Any], split: str, index: VideoPoseIndex | None, geometry: Geometry, enlarge: float
) -> SequenceSet:
    """The ``train`` or ``val`` sequences named by ``refiner.sequences`` (see the module docstring)."""
    source = sequences_cfg.get("source", "files")
    if source == "jittered_gt":
        if index is None:
            raise ValueError("refiner.sequences.source=jittered_gt needs the split's annotation index")
        jitter = dict(sequences_cfg.get("jitter") or {})
        seed = int(jitter.pop("seed", 0)) + (0 if split == "train" else 1)
        copies = int(jitter.pop("train_copies", 1))
        if split != "train":
            copies = 1
        return jittered_gt_sequences(index, geometry.aspect_ratio, enlarge, seed=seed, copies=copies, **jitter)
    if source != "files":
        raise ValueError(f"refiner.sequences.source: expected files or jittered_gt, got {source!r}")
    path = sequences_cfg.get(split)
    if not path:
        raise ValueError(
            f"refiner.sequences.{split} is not set: export stage-1 sequences with "
            f"`tools/eval.py ckpt=<stage-1 checkpoint> save_sequences=<file.npz> data.val.split=<split>` "
            f"and pass refiner.sequences.{split}=<file.npz> (or a prediction directory / Sub-JHMDB IN.json)"
        )
    if index is None:
        loaded = SequenceSet.load(path)
        log.info("%s sequences: %d from %s (%s)", split, len(loaded.sequences), path, loaded.source)
        return loaded
    loaded = read_sequence_source(path, index, geometry.aspect_ratio, enlarge)
    log.info("%s sequences: %d from %s (%s)", split, len(loaded.sequences), path, loaded.source)
    return loaded


def _gt_dir(index: VideoPoseIndex) -> Path:
    dirs = {Path(v.source_file).parent for v in index.videos if v.source_file}
    if len(dirs) != 1:
        raise ValueError(f"{index.name}: GT files come from {len(dirs)} directories; expected one")
    return dirs.pop()


def _error_px(sequences: Sequence[PoseSequence]) -> float:
    """Mean Euclidean distance (image pixels) between prediction and GT over annotated joints."""
    dist = np.concatenate([np.linalg.norm(s.pred - s.gt, axis=-1)[s.visible > 0] for s in sequences])
    return float(dist.mean()) if dist.size else float("nan")


def _accel_error_px(sequences: Sequence[PoseSequence]) -> float:
    """Acceleration error (image pixels) of the predictions over runs of consecutive frames."""
    pieces = []
    for s in sequences:
        breaks = np.flatnonzero(np.diff(s.frame_index) != 1) + 1
        for rows in np.split(np.arange(len(s)), breaks):
            pieces.append({
                "pred": s.pred[rows], "pred_valid": np.ones(s.pred[rows].shape[:2], dtype=bool),
                "gt": s.gt[rows], "gt_valid": s.visible[rows] > 0,
            })
    return smoothness_of_sequences(pieces).accel_error


class SequenceEvaluator:
    """Refines validation windows and scores input vs refined (module docstring)."""

    def __init__(
        self,
        sequences: SequenceSet,
        windows: SequenceWindowDataset,
        index: VideoPoseIndex,
        benchmark: str,
        out_dir: str | Path,
        info: DistInfo,
        batch_size: int = 64,
        num_workers: int = 0,
        split_label: str = "unspecified",
    ) -> None:
        if benchmark not in ("jhmdb", "posetrack"):
            raise ValueError(f"data.benchmark: expected jhmdb or posetrack, got {benchmark!r}")
        if windows.train:
            raise ValueError("SequenceEvaluator needs test windows (train=False)")
        self.sequences, self.windows, self.index, self.benchmark = sequences, windows, index, benchmark
        self.out_dir, self.info = Path(out_dir), info
        self.batch_size, self.num_workers = batch_size, num_workers
        self.split_label = split_label if split_label in jhmdb_pck.SPLIT_LABELS else "unspecified"
        self.primary_metric = "refined/PCK@0.2/Avg" if benchmark == "jhmdb" else "refined/mAP"
        n = windows.sample_interval
        self.protocol = jhmdb_pck.SlidingWindows(n=n, q=(windows.window - 1) // n, step=windows.stride // n)
        # people are written in the GT's order, as the stage-1 evaluator writes them: poseval breaks
        # score ties by order, and the input's mAP must equal the stage-1 model's
        people = [(f.image_id, p.track_id) for video in index.videos for f in video.frames for p in f.people]
        self._gt_order = {key: rank for rank, key in enumerate(people)}
        self.sidecars = sidecars_for_index(index)  # None unless the data set marks degraded joints

    @torch.no_grad()
    def refine(self, model: torch.nn.Module, amp_dtype: torch.dtype | None = None) -> list[PoseSequence]:
        """The validation sequences with refined predictions (image pixels), on every rank."""
        was_training = model.training
        model.eval()
        device = self.info.device
        sampler = ShardSampler(len(self.windows), self.info.rank, self.info.world_size)
        # a private generator: validation must not draw from the global RNG (exact resume)
        loader = DataLoader(self.windows, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                            collate_fn=collate, generator=torch.Generator())
        local: list[tuple[int, np.ndarray]] = []
        position = 0
        for batch in loader:
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                refined = model(batch["input"].to(device))["refined"]
            scale, origin = batch["scale"].numpy()[:, :, None], batch["origin"].numpy()[:, :, None]
            image_xy = refined.float().cpu().numpy() * scale + origin
            for out in image_xy:
                local.append((sampler.indices[position], out.astype(np.float64)))
                position += 1
        model.train(was_training)
        outputs = dict(item for part in all_gather_objects(local) for item in part)
        if len(outputs) != len(self.windows):
            raise RuntimeError(f"refined {len(outputs)} of {len(self.windows)} windows")
        per_sequence: dict[int, list[int]] = {}
        for i, win in enumerate(self.windows.windows):
            per_sequence.setdefault(win.sequence, []).append(i)
        refined_sequences = []
        for s, seq in enumerate(self.sequences.sequences):
            ids = per_sequence[s]
            stitched = stitch_windows(len(seq), [self.windows.windows[i] for i in ids], [outputs[i] for i in ids])
            refined_sequences.append(seq.with_pred(stitched))
        return refined_sequences

    def score(self, refined: Sequence[PoseSequence], tag: str) -> dict[str, Any]:
        """Metrics of the stage-1 input and of ``refined`` side by side (``input/...``, ``refined/...``)."""
        sets = {"input": self.sequences.sequences, "refined": list(refined)}
        metrics: dict[str, Any] = {}
        if self.benchmark == "jhmdb":
            for label, seqs in sets.items():
                metrics.update(self._score_jhmdb(seqs, label))
        else:
            for label, seqs in sets.items():
                metrics.update(self._score_posetrack(seqs, label, self.out_dir / tag / label))
        for label, seqs in sets.items():
            metrics[f"{label}/error_px"] = _error_px(seqs)
            metrics[f"{label}/accel_error_px"] = _accel_error_px(seqs)
        return metrics

    def _score_jhmdb(self, sequences: Sequence[PoseSequence], label: str) -> dict[str, Any]:
        videos = [
            {"name": s.name, "gt": s.gt, "pred": s.pred,
             "bbox": np.concatenate([s.box[:, :2], s.box[:, :2] + s.box[:, 2:]], axis=1)}
            for s in sequences
        ]
        metrics: dict[str, Any] = {}
        windows = jhmdb_pck.evaluate(videos, frames="windows", window=self.protocol, split=self.split_label)
        every = jhmdb_pck.evaluate(videos, split=self.split_label)
        for t in jhmdb_pck.THRESHOLDS:
            for group, value in windows.groups(t).items():
                metrics[f"{label}/PCK@{t:g}/{group}"] = 100.0 * value
            metrics[f"{label}_all_frames/PCK@{t:g}/Avg"] = 100.0 * every.groups(t)["Avg"]
        metrics["protocol"] = windows.protocol_text
        metrics["protocol_all_frames"] = every.protocol_text
        if self.sidecars is not None:
            try:
                subsets = score_degraded_jhmdb(videos, self.sidecars, [s.video_id for s in sequences],
                                               [s.frame_index for s in sequences], [s.track_id for s in sequences],
                                               split=self.split_label)
            except EmptySubsetError as err:
                log.warning("%s: degraded subset not scored: %s", self.index.name, err)
            else:
                metrics.update({f"{label}/{k}": v for k, v in subsets.items()})
        return metrics

    def _score_posetrack(self, sequences: Sequence[PoseSequence], label: str, pred_dir: Path) -> dict[str, Any]:
        predictions = [
            PosePrediction(int(s.image_id[r]), np.concatenate([s.pred[r], s.score[r][:, None]], axis=1),
                           float(s.box_score[r]), int(s.track_id))
            for s in sequences
            for r in range(len(s))
        ]
        predictions.sort(key=lambda p: self._gt_order.get((p.image_id, p.track_id), len(self._gt_order)))
        gt_dir = _gt_dir(self.index)
        write_posetrack18_predictions(predictions, gt_dir, pred_dir)
        result = posetrack_map.evaluate_dirs(gt_dir, pred_dir)
        metrics: dict[str, Any] = {f"{label}/AP/{k}": float(v) for k, v in result.columns.items()}
        metrics[f"{label}/mAP"] = float(result.columns["Total"])
        metrics["n_frames_evaluated"] = int(result.n_frames_evaluated)
        metrics[f"{label}/predictions_dir"] = str(pred_dir)
        if self.sidecars is not None:
            subsets = score_degraded_subset(gt_dir, pred_dir, posetrack_sidecar_dir(gt_dir),
                                            pred_dir.parent / f"{pred_dir.name}_subsets")
            metrics.update({f"{label}/{k}": v for k, v in subsets.items()})
        return metrics

    def evaluate(self, model: torch.nn.Module, tag: str, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Refine on every rank, score on rank 0 (others: ``{}``); ``_predictions`` = the refined sequences."""
        refined = self.refine(model, amp_dtype)
        if not self.info.is_main:
            return {}
        metrics = self.score(refined, tag)
        metrics["_predictions"] = refined
        return metrics


def format_comparison(metrics: Mapping[str, Any], benchmark: str) -> str:
    """The input and refined metrics side by side, with the protocol named."""
    lines = [f"{'':<22}{'input':>9}{'refined':>9}"]

    def row(name: str, key_in: str, key_out: str) -> None:
        lines.append(f"  {name:<20}{metrics.get(key_in, float('nan')):9.2f}{metrics.get(key_out, float('nan')):9.2f}")

    if benchmark == "jhmdb":
        for t in jhmdb_pck.THRESHOLDS:
            row(f"PCK@{t:g} Avg", f"input/PCK@{t:g}/Avg", f"refined/PCK@{t:g}/Avg")
        lines.append(f"  protocol: {metrics.get('protocol', '')}")
        lines.append("all frames (every frame scored; the vidpose default for per-frame models):")
        for t in jhmdb_pck.THRESHOLDS:
            row(f"PCK@{t:g} Avg", f"input_all_frames/PCK@{t:g}/Avg", f"refined_all_frames/PCK@{t:g}/Avg")
    else:
        row("mAP (poseval)", "input/mAP", "refined/mAP")
        for joint in ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl"):
            if f"input/AP/{joint}" in metrics:
                row(f"AP {joint}", f"input/AP/{joint}", f"refined/AP/{joint}")
    subset_key = "degraded/PCK@0.2/Avg" if benchmark == "jhmdb" else "degraded/mAP"
    if f"input/{subset_key}" in metrics:
        row(subset_key.replace("/", " "), f"input/{subset_key}", f"refined/{subset_key}")
    row("mean error (px)", "input/error_px", "refined/error_px")
    return "\n".join(lines)
