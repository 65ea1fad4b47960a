"""``VideoPoseEstimator``: a trained model run on your own frames, through the evaluator's own path.

The frames become a one-video, unlabelled :class:`~vidpose.data.index.VideoPoseIndex`, each
person box an :class:`~vidpose.data.index.Instance`; the clip dataset
(:func:`vidpose.engine.builders.build_dataset`: T frames around the box's frame, clamped at the
video's ends, cropped with one affine) and the clip evaluator
(:func:`vidpose.engine.builders.build_clip_evaluator`: batching, flip test, decoding with the
config's codec, the inverse crop affine, the config's keypoint score) are those of
``tools/eval.py``, so a box gets the prediction evaluation gives it. The model is a
checkpoint's ``PoseModel`` (``backend="torch"``) or its exported ONNX graph run by
onnxruntime (``backend="onnxruntime"``, :mod:`vidpose.export.runtime`), decoded identically.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vidpose.data.index import FrameRecord, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import KeypointLayout
from vidpose.engine import builders
from vidpose.engine.distributed import DistInfo
from vidpose.inference.boxes import BoxInput, assign_tracks, box_instances, frame_boxes
from vidpose.inference.frames import ArrayFrames, FolderFrames, FrameInput, open_frames
from vidpose.inference.loading import load_pose_model
from vidpose.inference.results import PersonPose, VideoPoses
from vidpose.tracking import IouTracker

__all__ = ["BACKENDS", "VideoPoseEstimator", "resolve_device"]

BACKENDS = ("torch", "onnxruntime")


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def frame_index(
    source: ArrayFrames | FolderFrames, layout: KeypointLayout, image_ids: Sequence[int] | None
) -> VideoPoseIndex:
    """The input as one unlabelled video: frame ``i`` has image id ``image_ids[i]`` (default ``i``)."""
    if image_ids is not None and len(image_ids) != len(source):
        raise ValueError(f"image_ids: {len(image_ids)} ids for {len(source)} frames; give one per frame")
    frames = []
    for i, file_name in enumerate(source.names):
        h, w = source.size_hw(i)
        image_id = i if image_ids is None else int(image_ids[i])
        frames.append(
            FrameRecord(image_id=image_id, file_name=file_name, frame_index=i, is_labeled=False, width=w, height=h)
        )
    return VideoPoseIndex(name=source.name, layout=layout, image_root=source.image_root,
                          videos=[VideoRecord(source.name, frames)])


class VideoPoseEstimator:
    """Per-frame, per-person keypoints of a trained clip model on any frames (module docstring).

    ``batch_size`` boxes go through the model at once; ``num_workers`` loader processes crop
    clips (0: this process).
    """

    def __init__(
        self, model: torch.nn.Module, cfg: DictConfig, device: str | torch.device = "cpu",
        batch_size: int = 16, num_workers: int = 0,
    ) -> None:
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
        self.model, self.device = model, resolve_device(device)
        self.layout, self.geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
        # evaluation's settings except the batch size, the loader workers and the flow cache (a
        # call predicts one video once, so cached flows would never be read again)
        self.cfg = copy.deepcopy(cfg)
        OmegaConf.update(self.cfg, "trainer.val_batch_size", int(batch_size), force_add=True)
        OmegaConf.update(self.cfg, "trainer.num_workers", int(num_workers), force_add=True)
        OmegaConf.update(self.cfg, "evaluation.flow_cache_mb", 0, force_add=True)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "auto", backend: str = "torch",
        batch_size: int = 16, num_workers: int = 0,
    ) -> VideoPoseEstimator:
        """The model of a ``tools/train.py`` checkpoint (``backend="torch"``) or of a ``tools/export.py``
        ONNX file (``backend="onnxruntime"``, CPU), with the configuration stored in it."""
        if backend == "torch":
            model, cfg = load_pose_model(path, resolve_device(device))
        elif backend == "onnxruntime":
            from vidpose.export.runtime import OnnxClipModel

            model = OnnxClipModel(path)
            cfg, device = model.config, "cpu"
        else:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        return cls(model, cfg, device, batch_size, num_workers)

    def __call__(
        self,
        frames: FrameInput,
        boxes: BoxInput = None,
        *,
        image_ids: Sequence[int] | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
        box_threshold: float = 0.0,
        iou_threshold: float = 0.3,
        max_age: int = 1,
    ) -> VideoPoses:
        """Keypoints of every person box of every frame, in image pixels (``(x, y)``, 0-based).

        ``frames``: an array ``(N, H, W, 3)`` or list of RGB ``uint8`` frames, a video file or a
        folder of images (name order). ``boxes``: see :func:`vidpose.inference.boxes.frame_boxes`
        (None: the whole frame); a detection file's ``image_id`` are ``image_ids`` (default: frame
        positions). Boxes without track ids are tracked by IoU (``iou_threshold``, ``max_age``).
        """
        source = open_frames(frames, fps=fps, max_frames=max_frames)
        index = frame_index(source, self.layout, image_ids)
        per_frame = assign_tracks(frame_boxes(boxes, source, index, box_threshold), IouTracker(iou_threshold, max_age))
        instances = box_instances(per_frame)
        people: list[list[PersonPose]] = [[] for _ in range(len(source))]
        if instances:
            dataset = builders.build_dataset(self.cfg, index, instances, self.geometry, self.layout, False)
            if isinstance(source, ArrayFrames):
                dataset.frame_reader = source
            # predict() writes nothing; only scoring would write under out_dir
            evaluator = builders.build_clip_evaluator(
                self.cfg, index, instances, dataset, self.geometry, self.layout, Path(os.devnull),
                DistInfo(device=self.device),
            )
            for inst, pred in zip(instances, evaluator.predict(self.model)):
                people[inst.frame].append(
                    PersonPose(inst.frame, pred.image_id, inst.track_id, np.asarray(inst.bbox_xywh, np.float64),
                               inst.box_score, pred.keypoints)
                )
        image_ids = [f.image_id for f in index.videos[0].frames]
        return VideoPoses(people, self.layout, image_ids, source.fps, source.name)
