"""Turn a resolved config into the objects of one run: geometry, indices, datasets, model, targets."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpose.data.clip import ClipDataset, training_instances
from vidpose.data.detections import detection_instances, load_detections
from vidpose.data.frames import FrameReader
from vidpose.data.index import Instance, VideoPoseIndex
from vidpose.data.keypoints import KeypointLayout, get_layout
from vidpose.data.transforms import ClipTransform, SecondView
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluator import Evaluator
from vidpose.heatmaps import Geometry
from vidpose.models.pose_model import PoseModel
from vidpose.registry import BACKBONES, DATASETS, FLOWS, HEADS, REFINERS, TARGETS, to_plain

__all__ = [
    "build_geometry",
    "build_layout",
    "clip_spec",
    "build_index",
    "build_instances",
    "build_dataset",
    "build_frame_reader",
    "build_model",
    "build_target",
    "build_refiner",
    "flow_cache_mb",
    "coverage_required",
    "ClipSpec",
]

log = logging.getLogger(__name__)


def _node(cfg: Any) -> dict:
    return to_plain(cfg) if cfg is not None else {}


def build_geometry(cfg: Any) -> Geometry:
    """Geometry from ``data.input_size`` and the ``codec`` section."""
    h, w = (int(v) for v in cfg.data.input_size)
    return Geometry((h, w), int(cfg.codec.stride), str(cfg.codec.convention))


def build_layout(cfg: Any) -> KeypointLayout:
    """Keypoint layout named by ``data.layout``."""
    return get_layout(str(cfg.data.layout))


@dataclass(frozen=True)
class ClipSpec:
    """Frame offsets of a clip and the key frame's position among them."""

    offsets: tuple[int, ...]
    interval: int
    interval_range: tuple[int, int] | None

    @property
    def num_frames(self) -> int:
        """T."""
        return len(self.offsets)

    @property
    def key_index(self) -> int:
        """Index of offset 0."""
        return self.offsets.index(0)


def clip_spec(cfg: Any) -> ClipSpec:
    """Clip offsets from ``data.clip``; offset 0 must be present exactly once."""
    clip = _node(cfg.data.clip)
    offsets = tuple(int(o) for o in clip["offsets"])
    if offsets.count(0) != 1:
        raise ValueError(f"data.clip.offsets must contain the key frame offset 0 exactly once, got {list(offsets)}")
    if list(offsets) != sorted(offsets):
        raise ValueError(f"data.clip.offsets must be increasing, got {list(offsets)}")
    rng = clip.get("interval_range")
    return ClipSpec(offsets, int(clip.get("interval", 1)), tuple(int(v) for v in rng) if rng else None)


def build_index(cfg: Any, split: str) -> VideoPoseIndex:
    """Annotation index of a split through the ``DATASETS`` registry."""
    index = DATASETS.build(_node(cfg.data.dataset), path="data.dataset", split=split)
    log.info("%s", index.describe())
    return index


def build_instances(cfg: Any, index: VideoPoseIndex, train: bool, limit: int | None = None) -> list[Instance]:
    """Training people (min visible joints) or validation boxes (GT or a detector file)."""
    if train:
        instances = training_instances(index, min_visible=int(cfg.data.train.min_visible))
    else:
        val = _node(cfg.data.val)
        boxes = val.get("boxes", "gt")
        if boxes == "gt":
            instances = index.gt_instances(min_visible=0)
        elif boxes == "detections":
            if not val.get("detections"):
                raise ValueError("data.val.boxes=detections needs data.val.detections=<COCO results file>")
            dets = load_detections(val["detections"], index, score_threshold=float(val.get("box_score_threshold", 0.0)))
            instances = detection_instances(index, dets)
        else:
            raise ValueError(f"data.val.boxes: expected gt or detections, got {boxes!r}")
    if limit is not None:
        instances = instances[: int(limit)]
    if not instances:
        raise ValueError(f"{index.name}: no {'training' if train else 'validation'} instances ({index.describe()})")
    return instances


def build_frame_reader(cfg: Any, index: VideoPoseIndex) -> FrameReader:
    """Frame reader from ``data.reduced_decoding`` and ``data.frame_cache_mb`` (per loader process).

    Both default to off, so a config written before they existed (e.g. one stored in an old
    checkpoint) reads frames exactly as it did.
    """
    cache_mb = float(cfg.data.get("frame_cache_mb", 0) or 0)
    if cache_mb < 0:
        raise ValueError(f"data.frame_cache_mb must be >= 0, got {cache_mb}")
    return FrameReader(
        index.image_root,
        reduced_decoding=bool(cfg.data.get("reduced_decoding", False)),
        cache_bytes=int(cache_mb * 2**20),
    )


def build_dataset(
    cfg: Any, index: VideoPoseIndex, instances: list[Instance], geometry: Geometry, layout: KeypointLayout, train: bool
) -> ClipDataset:
    """Clip dataset with the shared-affine transform (augmented only when training).

    ``data.second_view`` (``enabled``, ``rotation``, ``scale``) adds the key frame's second view
    to training samples (CDPose's spatial-consistency loss).
    """
    augment = _node(cfg.data.augment)
    enabled = bool(augment.pop("train", True)) and train
    transform = ClipTransform(geometry, layout, train=enabled, **augment)
    spec = clip_spec(cfg)
    view = _node(cfg.data.get("second_view"))
    second_view = None
    if train and view.pop("enabled", False):
        try:
            second_view = SecondView(**view)
        except TypeError as err:
            raise ValueError(f"data.second_view: expected enabled, rotation and scale ({err})") from None
    return ClipDataset(
        index,
        instances,
        geometry,
        transform,
        offsets=spec.offsets,
        interval=spec.interval,
        interval_range=spec.interval_range if train else None,
        seed=int(cfg.seed),
        frame_reader=build_frame_reader(cfg, index),
        second_view=second_view,
    )


def build_model(cfg: Any, layout: KeypointLayout, geometry: Geometry) -> PoseModel:
    """Backbone + optional flow + head from the config groups, runtime facts injected."""
    spec = clip_spec(cfg)
    backbone = BACKBONES.build(
        _node(cfg.backbone), path="backbone", input_hw=geometry.input_hw, num_joints=layout.num_joints
    )
    head = HEADS.build(
        _node(cfg.head),
        path="head",
        in_channels=backbone.out_channels,
        in_stride=backbone.stride,
        num_joints=layout.num_joints,
        heatmap_stride=geometry.stride,
        num_frames=spec.num_frames,
        key_index=spec.key_index,
        input_hw=geometry.input_hw,
        heatmap_hw=geometry.heatmap_hw,
        geometry=geometry,
    )
    flow_node = _node(cfg.flow)
    flow = None if flow_node.get("name", "none") == "none" else FLOWS.build(flow_node, path="flow")
    return PoseModel(backbone, head, flow=flow, num_frames=spec.num_frames, key_index=spec.key_index)


def build_target(cfg: Any, geometry: Geometry) -> Any:
    """Target generator named by the ``target`` group."""
    return TARGETS.build(_node(cfg.target), path="target", geometry=geometry)


def target_sigma(cfg: Any) -> float | None:
    """The Gaussian width of the key-frame target, which DARK decoding's blur follows."""
    target = _node(cfg.target)
    value = target.get("sigma", target.get("sigma0"))
    return None if value is None else float(value)


def flow_cache_mb(cfg: Any) -> float:
    """``evaluation.flow_cache_mb`` (0 = no flow cache; absent from configs older than the option)."""
    evaluation = cfg.get("evaluation") or {}
    return float(evaluation.get("flow_cache_mb", 0) or 0)


def describe_parameters(model: PoseModel) -> Mapping[str, int]:
    """Parameter counts: total, trainable, backbone, head, flow."""
    def count(module, trainable_only=False):
        if module is None:
            return 0
        return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)

    return {
        "total": count(model),
        "trainable": count(model, True),
        "backbone": count(model.backbone),
        "head": count(model.head),
        "flow": count(model.flow),
    }


def build_refiner(cfg: Any, layout: KeypointLayout) -> Any:
    """The coordinate refiner named by the ``refiner`` group (its ``loss`` and ``sequences`` sections are the task's)."""
    node = _node(cfg.refiner)
    node.pop("loss", None)
    node.pop("sequences", None)
    if node.get("name", "none") == "none":
        raise ValueError("refiner: none is set; name a refiner (e.g. refiner=hanet)")
    return REFINERS.build(node, path="refiner", num_joints=layout.num_joints)


def coverage_required(cfg: Any) -> bool:
    """Whether evaluation must cover every GT person/video (``evaluation.require_coverage``).

    ``trainer.val_max_instances`` asks for a subset on purpose, so it waives the check; the
    evaluator still reports what it covered.
    """
    required = bool(cfg.get("evaluation", {}).get("require_coverage", True))
    return required and cfg.trainer.get("val_max_instances") is None


def build_clip_evaluator(
    cfg: Any,
    index: VideoPoseIndex,
    instances: list[Instance],
    dataset: ClipDataset,
    geometry: Geometry,
    layout: KeypointLayout,
    out_dir: Path,
    info: DistInfo,
) -> Evaluator:
    """The clip :class:`Evaluator` with the config's batch, workers, codec, scoring and coverage settings."""
    return Evaluator(
        index,
        instances,
        dataset,
        geometry,
        layout,
        str(cfg.data.benchmark),
        out_dir,
        info,
        batch_size=int(cfg.trainer.get("val_batch_size", cfg.trainer.batch_size)),
        num_workers=int(cfg.trainer.get("num_workers", 0)),
        flip_test=bool(cfg.codec.flip_test),
        refine=str(cfg.codec.refine),
        score=str(cfg.evaluation.score),
        sigma=target_sigma(cfg),
        flow_cache_mb=flow_cache_mb(cfg),
        require_coverage=coverage_required(cfg),
    )
