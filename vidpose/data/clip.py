"""The clip dataset: one person box -> T frames around its key frame, cropped with one shared affine.

A sample (DESIGN §3, numpy, before collate):

==================  ===================  ==============================================================
key                 shape / type         meaning
==================  ===================  ==============================================================
``frames``          (T, H, W, 3) uint8   RGB crops, key frame at ``key_index``
``keypoints``       (T, K, 2) float32    crop-input pixels, also outside the crop for annotated
                                         joints; (0, 0) where not annotated
``visible``         (T, K) float32       1 = annotated and inside the crop
``annotated``       (T, K) float32       1 = annotated in that frame, inside the crop or not
``center``          (2,) float32         crop centre in image pixels (before flip)
``scale``           (2,) float32         crop size ``(w, h)`` in image pixels: the box enlarged,
                                         aspect-corrected and augmented (no /200 legacy unit)
``rotation``        float                degrees, counter-clockwise on screen
``flipped``         bool                 crop columns mirrored, left/right slots swapped
``clamped``         (T,) bool            the offset fell outside the video; the first/last frame
                                         was used instead
``frame_indices``   (T,) int64           video positions actually read (after clamping)
``affine``          (2, 3) float32       image -> input pixels (includes rotation and flip)
``image_id``        int                  key frame's image id
``video_index``     int                  index into ``VideoPoseIndex.videos``
``video_id``        str                  the video's name (collated as a list of strings)
``frame_index``     int                  key frame's position in the video
``track_id``        int                  -1 for detector boxes
``box_score``       float                1 for ground-truth boxes
``key_index``       int                  position of offset 0 in ``offsets``
``interval``        int                  frame interval ``d`` used for this sample
``instance``        int                  index into the dataset's instances
``view2``           (H, W, 3) uint8      only with ``second_view``: the key frame re-rendered with
                                         an extra random rotation/scale (:class:`SecondView`)
``view2_affine``    (2, 3) float32       only with ``second_view``: image -> input pixels of ``view2``
==================  ===================  ==============================================================

Clip frames are ``t + o * d`` for ``o`` in ``offsets``; positions outside the video are clamped
to its first/last frame and flagged in ``clamped``. Keypoints of a non-key frame are those of the
person with the same ``track_id`` in that frame; when that person is not annotated there the frame
gets zeros with visibility 0, which the motion-aware target treats as a missing neighbour.
Detector boxes (``person == -1``) get zero keypoints and visibility 0 in every frame.

Randomness (interval, augmentation) comes from a generator seeded by ``(seed, epoch, index)``,
so a sample does not depend on worker count or loading order. ``dataset[i]`` uses the epoch set
by :meth:`ClipDataset.set_epoch`; ``dataset[(epoch, i)]`` names it explicitly (the samplers of
:mod:`vidpose.data.loader` do this, so persistent workers follow the epoch too).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from vidpose.data.frames import FrameReader
from vidpose.data.index import Instance, SkipLog, VideoPoseIndex
from vidpose.data.transforms import ClipTransform, SecondView
from vidpose.heatmaps.geometry import Geometry

__all__ = ["ClipDataset", "clip_positions", "training_instances"]

log = logging.getLogger(__name__)


def clip_positions(key: int, num_frames: int, offsets: Sequence[int], interval: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(T,) int64`` of frames ``key + o * interval`` clamped to the video, and ``clamped (T,) bool``."""
    if num_frames < 1:
        raise ValueError("a clip needs a video with at least one frame")
    wanted = key + np.asarray(offsets, dtype=np.int64) * int(interval)
    positions = np.clip(wanted, 0, num_frames - 1)
    return positions, positions != wanted


def training_instances(index: VideoPoseIndex, min_visible: int = 1, skipped: SkipLog | None = None) -> list[Instance]:
    """Every annotated person on a labeled frame with at least ``min_visible`` visible joints.

    People left out are counted in ``skipped`` (a fresh log when None) under their reason, and the
    summary is logged at INFO level.
    """
    skipped = SkipLog() if skipped is None else skipped
    out = []
    for vi, video in enumerate(index.videos):
        for fi, frame in enumerate(video.frames):
            for pi, person in enumerate(frame.people):
                example = f"{video.video_id}/{frame.file_name} track {person.track_id}"
                box = np.asarray(person.bbox_xywh, dtype=np.float64)
                if not frame.is_labeled:
                    skipped.add("person on a frame not flagged as labeled", example)
                elif int((np.asarray(person.visible) > 0).sum()) < min_visible:
                    skipped.add(f"fewer than {min_visible} visible joints", example)
                elif not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
                    skipped.add("box with a non-positive or non-finite size", example)
                else:
                    out.append(Instance(vi, fi, person.bbox_xywh, 1.0, person.track_id, pi))
    log.info("%s: %d training instances; skipped: %s", index.name, len(out), skipped.summary())
    return out


class ClipDataset(Dataset):
    """Clips of ``len(offsets)`` frames around each instance's key frame, as Sample dicts (module docstring)."""

    def __init__(
        self,
        index: VideoPoseIndex,
        instances: Sequence[Instance],
        geometry: Geometry,
        transform: ClipTransform,
        offsets: Sequence[int] = (-1, 0, 1),
        interval: int = 1,
        interval_range: tuple[int, int] | None = None,
        seed: int = 0,
        frame_reader: FrameReader | None = None,
        second_view: SecondView | None = None,
    ) -> None:
        self.offsets = tuple(int(o) for o in offsets)
        if self.offsets.count(0) != 1:
            raise ValueError(f"offsets {self.offsets} must contain the key frame offset 0 exactly once")
        if int(interval) < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        if interval_range is not None:
            lo, hi = (int(v) for v in interval_range)
            if not 1 <= lo <= hi:
                raise ValueError(f"interval_range must be (lo, hi) with 1 <= lo <= hi, got {interval_range}")
            interval_range = (lo, hi)
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if transform.geometry != geometry:
            raise ValueError(f"the transform's geometry {transform.geometry} differs from the dataset's {geometry}")
        if transform.layout.num_joints != index.layout.num_joints:
            raise ValueError(
                f"the transform's layout {transform.layout.name!r} ({transform.layout.num_joints} joints) does not "
                f"match index {index.name!r} ({index.layout.name!r}, {index.layout.num_joints} joints)"
            )
        self.index = index
        self.instances = list(instances)
        for i, inst in enumerate(self.instances):
            self._check_instance(i, inst)
        self.geometry = geometry
        self.transform = transform
        self.interval = int(interval)
        self.interval_range = interval_range
        self.seed = int(seed)
        self.epoch = 0
        self.key_index = self.offsets.index(0)
        self.frame_reader = frame_reader if frame_reader is not None else FrameReader(index.image_root)
        self.second_view = second_view

    def _check_instance(self, i: int, inst: Instance) -> None:
        if not 0 <= inst.video < len(self.index.videos):
            raise ValueError(f"instance {i}: video {inst.video} is out of range for index {self.index.name!r}")
        video = self.index.videos[inst.video]
        if not 0 <= inst.frame < len(video):
            raise ValueError(f"instance {i}: frame {inst.frame} is out of range for video {video.video_id!r}")
        if inst.person >= len(video.frames[inst.frame].people):
            raise ValueError(
                f"instance {i}: person {inst.person} is out of range for "
                f"{video.video_id}/{video.frames[inst.frame].file_name}"
            )

    def __len__(self) -> int:
        return len(self.instances)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by ``dataset[i]`` (``dataset[(epoch, i)]`` overrides it)."""
        self.epoch = int(epoch)

    def rng(self, epoch: int, item: int) -> np.random.Generator:
        """The generator of sample ``item`` in ``epoch``: a pure function of (seed, epoch, item)."""
        return np.random.default_rng([self.seed, int(epoch), int(item)])

    def draws_interval(self) -> bool:
        """Whether each sample draws its interval from ``interval_range`` (training transforms only)."""
        return self.interval_range is not None and self.transform.train

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """The Sample dict of instance ``item`` (or ``(epoch, item)``)."""
        epoch, item = item if isinstance(item, tuple) else (self.epoch, item)
        if not 0 <= item < len(self.instances):
            raise IndexError(f"sample {item} out of range for {len(self.instances)} instances")
        inst = self.instances[item]
        video = self.index.videos[inst.video]
        key_frame = video.frames[inst.frame]
        rng = self.rng(epoch, item)
        interval = self.interval
        if self.draws_interval():
            interval = int(rng.integers(self.interval_range[0], self.interval_range[1] + 1))
        positions, clamped = clip_positions(inst.frame, len(video), self.offsets, interval)
        keypoints, visible = self._clip_keypoints(inst, positions)

        try:
            params = self.transform.sample(rng, inst.bbox_xywh, keypoints[self.key_index], visible[self.key_index])
        except ValueError as err:
            raise ValueError(f"instance {item} ({video.video_id}/{key_frame.file_name}): {err}") from None
        # Drawn after the clip's augmentation, so turning the second view on leaves those draws unchanged.
        view_params = self.second_view.sample(rng, params) if self.second_view is not None else None
        max_downscale = self.transform.max_downscale(params)
        key_position = int(positions[self.key_index])
        decoded: dict[int, tuple[np.ndarray, int]] = {}
        for p in positions.tolist():
            if p not in decoded:  # a clamped offset repeats a frame: decode it once
                limit = max_downscale
                if view_params is not None and p == key_position:  # the magnified view needs more detail
                    limit = min(limit, self.transform.max_downscale(view_params))
                decoded[p] = self.frame_reader.read(video.frames[p].file_name, limit)
        frames = [decoded[p][0] for p in positions.tolist()]
        factors = [decoded[p][1] for p in positions.tolist()]
        crops, keypoints, visible, affine, annotated = self.transform.apply(
            frames, keypoints, visible, params, factors
        )

        sample = {
            "frames": crops,
            "keypoints": keypoints,
            "visible": visible,
            "annotated": annotated,
            "center": np.asarray(params.center, dtype=np.float32),
            "scale": np.asarray(params.size, dtype=np.float32),
            "rotation": float(params.rotation),
            "flipped": bool(params.flip),
            "clamped": clamped,
            "frame_indices": positions,
            "affine": affine.astype(np.float32),
            "image_id": int(key_frame.image_id),
            "video_index": int(inst.video),
            "video_id": video.video_id,
            "frame_index": int(key_frame.frame_index),
            "track_id": int(inst.track_id),
            "box_score": float(inst.box_score),
            "key_index": self.key_index,
            "interval": interval,
            "instance": item,
        }
        if view_params is not None:
            key_image, key_factor = decoded[key_position]
            view, view_affine = self.transform.render(key_image, view_params, key_factor)
            sample.update(view2=view, view2_affine=view_affine.astype(np.float32))
        return sample

    def _clip_keypoints(self, inst: Instance, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints ``(T, K, 2)`` and visibility ``(T, K)`` of the instance's person in each clip frame."""
        num_joints = self.index.layout.num_joints
        keypoints = np.zeros((len(positions), num_joints, 2), dtype=np.float32)
        visible = np.zeros((len(positions), num_joints), dtype=np.float32)
        if inst.person < 0:
            return keypoints, visible
        for t, p in enumerate(positions.tolist()):
            if p == inst.frame:
                person = self.index.videos[inst.video].frames[p].people[inst.person]
            elif inst.track_id >= 0:
                person = self.index.find_person(inst.video, p, inst.track_id)
            else:
                person = None
            if person is not None:
                keypoints[t] = person.keypoints
                visible[t] = person.visible
        return keypoints, visible

    def clamp_counts(self, interval: int | None = None) -> dict[int, int]:
        """Per offset, how many instances have it clamped at ``interval`` (default: the dataset's, or the range top)."""
        if interval is None:
            interval = self.interval_range[1] if self.draws_interval() else self.interval
        counts = dict.fromkeys(self.offsets, 0)
        for inst in self.instances:
            _, clamped = clip_positions(inst.frame, len(self.index.videos[inst.video]), self.offsets, interval)
            for offset, c in zip(self.offsets, clamped.tolist()):
                counts[offset] += int(c)
        return counts

    def describe(self) -> str:
        """Instances, detector boxes, offsets/interval and how often each offset is clamped."""
        n = len(self.instances)
        interval = self.interval_range[1] if self.draws_interval() else self.interval
        interval_text = (
            f"interval drawn from {self.interval_range}" if self.draws_interval() else f"interval {interval}"
        )
        counts = self.clamp_counts(interval)
        per_offset = ", ".join(f"{o:+d}: {c} ({100.0 * c / max(n, 1):.1f}%)" for o, c in counts.items() if o != 0)
        detector = sum(inst.person < 0 for inst in self.instances)
        videos = len({inst.video for inst in self.instances})
        return (
            f"{self.index.name}: {n} instances in {videos} videos ({detector} detector boxes), "
            f"offsets {self.offsets}, {interval_text}; clamped at interval {interval}: {per_offset or 'none'}"
        )
