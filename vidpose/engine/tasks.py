"""What one trainer trains: a task builds the model, the training set and the evaluator, and runs a step's maths.

The :class:`~vidpose.engine.trainer.Trainer` owns everything generic (optimizer, schedule,
AMP, DDP, checkpoints, resume, signals, non-finite policy, logging); a task owns what differs:

- :class:`PoseTask` (``task: pose``): clips -> targets generated on the device ->
  ``PoseModel`` -> the head's loss; scored by :class:`~vidpose.engine.evaluator.Evaluator`.
- :class:`RefinerTask` (``task: refine``): windows of stage-1 keypoint sequences -> a
  coordinate refiner (``REFINERS``, e.g. HANet) -> its loss (``refiner.loss``, ``LOSSES``);
  scored by :class:`~vidpose.engine.sequences.SequenceEvaluator` (input vs refined).

A task provides ``model``, ``train_set``, ``evaluator`` (``evaluate(model, tag, amp_dtype)``,
``primary_metric``), ``val_name``, ``parameter_counts()``, ``prepare(batch, device) ->
(inputs, targets)``, ``forward(model, inputs) -> outputs`` (run under autocast),
``loss(outputs, targets) -> {"loss": ..., <part>: ...}`` and ``picture(predictions)``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpose.data.loader import to_device
from vidpose.data.sequences import SequenceSet, SequenceWindowDataset
from vidpose.engine import builders
from vidpose.engine.distributed import DistInfo
from vidpose.engine.sequences import SequenceEvaluator, format_comparison, load_split_sequences
from vidpose.registry import LOSSES, to_plain

__all__ = ["PoseTask", "RefinerTask", "TASKS", "build_task", "evaluate_refiner"]

log = logging.getLogger(__name__)

TASKS = ("pose", "refine")


class PoseTask:
    """Clip dataset, ``PoseModel``, device-side targets and the head's loss (the heatmap methods)."""

    def __init__(self, cfg: Any, info: DistInfo, run_dir: Path) -> None:
        tcfg = to_plain(cfg.trainer)
        self.layout = builders.build_layout(cfg)
        self.geometry = builders.build_geometry(cfg)
        self.spec = builders.clip_spec(cfg)

        self.train_index = builders.build_index(cfg, str(cfg.data.train.split))
        self.train_instances = builders.build_instances(cfg, self.train_index, True, tcfg.get("train_max_instances"))
        self.train_set = builders.build_dataset(
            cfg, self.train_index, self.train_instances, self.geometry, self.layout, True
        )
        self.val_index = builders.build_index(cfg, str(cfg.data.val.split))
        val_instances = builders.build_instances(cfg, self.val_index, False, tcfg.get("val_max_instances"))
        val_set = builders.build_dataset(cfg, self.val_index, val_instances, self.geometry, self.layout, False)

        self.model = builders.build_model(cfg, self.layout, self.geometry)
        self.target = builders.build_target(cfg, self.geometry)
        missing = set(self.model.head.targets) - set(self.target.outputs)
        if missing:
            raise ValueError(
                f"head {cfg.head.name!r} needs targets {sorted(missing)}, which target {cfg.target.name!r} "
                f"does not produce (it produces {list(self.target.outputs)})"
            )
        self.evaluator = builders.build_clip_evaluator(
            cfg, self.val_index, val_instances, val_set, self.geometry, self.layout, run_dir / "predictions", info
        )

    @property
    def val_name(self) -> str:
        """Name of the validation split."""
        return self.val_index.name

    def parameter_counts(self) -> Mapping[str, int]:
        """Total, trainable, backbone, head and flow parameter counts."""
        return builders.describe_parameters(self.model)

    def prepare(self, batch: dict, device: torch.device) -> tuple[dict, dict]:
        """Batch on the device (frames as float) and the targets the head declares."""
        batch = to_device(batch, device)
        with torch.profiler.record_function("vidpose::targets"):
            targets = self.target(
                batch["keypoints"], batch["visible"], batch["clamped"], self.spec.key_index,
                names=self.model.head.targets, annotated=batch["annotated"],
            )
        return batch, targets

    def forward(self, model: torch.nn.Module, batch: dict) -> dict:
        """Model outputs (``model`` may be the DDP wrapper of :attr:`model`)."""
        return model(batch["frames"], batch)

    def loss(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        """The head's loss terms."""
        return self.model.loss(outputs, targets)

    def picture(self, predictions) -> np.ndarray:
        """Predicted skeletons on the first validation crops."""
        from vidpose.engine.pictures import prediction_picture

        return prediction_picture(self.evaluator, predictions, max_people=8)


class RefinerTask:
    """Windows of stage-1 sequences, a coordinate refiner and its loss; validation scores input vs refined.

    ``with_training=False`` (evaluation only) skips the training sequences.
    """

    def __init__(self, cfg: Any, info: DistInfo, run_dir: Path, with_training: bool = True) -> None:
        tcfg = to_plain(cfg.trainer)
        node = to_plain(cfg.refiner)
        self.layout = builders.build_layout(cfg)
        self.geometry = builders.build_geometry(cfg)
        self.model = builders.build_refiner(cfg, self.layout)
        self.loss_fn = LOSSES.build(node.get("loss") or {}, path="refiner.loss")
        scfg = dict(node.get("sequences") or {})
        enlarge = float(cfg.data.augment.enlarge)
        window_options = {
            "window": self.model.window,
            "sample_interval": self.model.sample_interval,
            "normalize": scfg.get("normalize", "image"),
            "pad": scfg.get("pad", "zeros"),
        }

        self.val_index = builders.build_index(cfg, str(cfg.data.val.split))
        val = load_split_sequences(scfg, "val", self.val_index, self.geometry, enlarge)
        val = self._limited(val, tcfg.get("val_max_instances"))
        if with_training:
            train_path = str(scfg.get("train") or "")
            from_index = scfg.get("source", "files") == "jittered_gt"
            needs_index = from_index or (train_path and not train_path.endswith(".npz"))
            train_index = builders.build_index(cfg, str(cfg.data.train.split)) if needs_index else None
            train = load_split_sequences(scfg, "train", train_index, self.geometry, enlarge)
            train = self._limited(train, tcfg.get("train_max_instances"))
            if train.dataset == val.dataset:
                raise ValueError(f"refiner: training and validation sequences both come from {train.dataset!r}")
            if train.layout != val.layout:
                raise ValueError(f"refiner: training sequences use layout {train.layout!r}, validation {val.layout!r}")
            self.train_set = SequenceWindowDataset(train.sequences, train=True, **window_options)
            log.info("refiner training: %d windows from %d sequences (%s)",
                     len(self.train_set), len(train.sequences), train.source)
        test_step = int(scfg.get("test_step", 1))
        windows = SequenceWindowDataset(val.sequences, train=False, test_step=test_step, **window_options)
        self.evaluator = SequenceEvaluator(
            val,
            windows,
            self.val_index,
            str(cfg.data.benchmark),
            run_dir / "predictions",
            info,
            batch_size=int(tcfg.get("val_batch_size", tcfg["batch_size"])),
            num_workers=int(tcfg.get("num_workers", 0)),
            split_label=str(cfg.data.dataset.get("protocol", "unspecified")),
        )
        self.sampled = self.model.sampled_frames()

    @staticmethod
    def _limited(sequences: SequenceSet, limit: int | None) -> SequenceSet:
        if limit is None:
            return sequences
        return SequenceSet(sequences.sequences[: int(limit)], sequences.layout, sequences.dataset, sequences.source)

    @property
    def val_name(self) -> str:
        """Name of the validation split."""
        return self.val_index.name

    def parameter_counts(self) -> Mapping[str, int]:
        """Total and trainable parameter counts of the refiner."""
        return {
            "total": sum(p.numel() for p in self.model.parameters()),
            "trainable": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
        }

    def prepare(self, batch: dict, device: torch.device) -> tuple[dict, dict]:
        """The window batch on the device, as both inputs and targets."""
        batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch, batch

    def forward(self, model: torch.nn.Module, batch: dict) -> dict:
        """Refiner outputs ``refined`` and ``encoder`` ``(B, W, K, 2)``."""
        return model(batch["input"])

    def loss(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        """``refiner.loss`` of both outputs against the normalised GT."""
        sampled = self.sampled.to(targets["target"].device)
        return self.loss_fn(outputs["refined"], outputs["encoder"], targets["target"], sampled, targets["visible"])

    def picture(self, predictions) -> None:
        """Refiners log no picture."""
        return None


def build_task(cfg: Any, info: DistInfo, run_dir: Path) -> PoseTask | RefinerTask:
    """The task ``cfg.task`` names (``pose`` or ``refine``), checked against the ``refiner`` group."""
    task = str(cfg.get("task", "pose"))
    refiner = str(cfg.refiner.name) if cfg.get("refiner") is not None else "none"
    if task == "pose":
        if refiner != "none":
            raise ValueError(
                f"refiner {refiner!r} is trained as a second stage on exported sequences: set task=refine "
                "(see docs/methods/hanet.md)"
            )
        return PoseTask(cfg, info, run_dir)
    if task == "refine":
        if refiner == "none":
            raise ValueError("task=refine needs a refiner (e.g. refiner=hanet)")
        return RefinerTask(cfg, info, run_dir)
    raise ValueError(f"task: expected one of {TASKS}, got {task!r}")


def evaluate_refiner(cfg: Any, state: Mapping[str, Any] | None, info: DistInfo) -> dict[str, Any]:
    """``tools/eval.py`` for ``task=refine``: input vs refined metrics of a refiner checkpoint, printed and saved."""
    if state is None:
        raise ValueError("task=refine: evaluate a refiner checkpoint with ckpt=<path>")
    run_dir = Path(str(cfg.paths.output_dir))
    task = RefinerTask(cfg, info, run_dir, with_training=False)
    model = task.model.to(info.device)
    model.load_state_dict(state["model"])
    source = f"checkpoint {cfg.ckpt} (step {state.get('step')}, vidpose {state.get('vidpose_version')})"
    log.info("evaluating %s", source)
    metrics = task.evaluator.evaluate(model, tag="eval")
    if not info.is_main:
        return {}
    metrics.pop("_predictions")
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"source": source, "dataset": task.val_name, "config": to_plain(cfg), "metrics": metrics}
    with open(run_dir / "metrics.json", "w") as fh:
        json.dump(record, fh, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))
    benchmark = str(cfg.data.benchmark)
    print(f"{cfg.refiner.name} refiner on {task.val_name}  ({source})")
    print(format_comparison(metrics, benchmark))
    print(f"metrics written to {run_dir / 'metrics.json'}", flush=True)
    return metrics
