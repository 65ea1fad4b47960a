"""Synthetic video pose data, rendered with OpenCV and written in the real benchmark formats.

The generator draws 2D articulated people (a kinematic tree in the PoseTrack 17-slot layout)
over a panning, textured background, with motion blur on fast limbs and short-lived occluder
rectangles, and writes two datasets under one cached root:

- ``posetrack18/``: PoseTrack18 per-video JSON files (``annotations/{train,val}/<video>.json``),
  JPEG frames (``images/{train,val}/<video>/<frame:06d>.jpg``) and a detector-style box file
  for val (``detections/val_boxes.json``, COCO results format).
- ``jhmdb/``: the raw Sub-JHMDB layout (``Rename_Images``, ``joint_positions``,
  ``puppet_mask``, ``sub_splits``), one person per clip, 15 joints, all inside the frame.

With ``SyntheticConfig.degradation`` set (the ``degraded`` presets), single frames of single
people are also degraded (defocus, sensor noise, a one-frame occluder, a motion-blur burst;
``vidpose/data/degradations.py``) and a sidecar per video lists the degraded joints
(``posetrack18/degraded/<split>/<video>.json``, ``jhmdb/degraded/<class>/<clip>.json``;
``vidpose/data/degraded.py``). Degraded joints stay annotated.

The readers of the real benchmarks load them (``DATASETS`` keys ``synthetic`` and
``synthetic_jhmdb`` delegate to ``posetrack18`` and ``jhmdb``); nothing here is a special path.

Visibility: a PoseTrack joint covered by an occluder or outside the frame is written as
``(0, 0, 0)``, exactly like an unannotated joint in real PoseTrack18 (poseval then ignores it),
and a person with no visible joint in a frame gets no annotation there. The ear slots are never
annotated. Sub-JHMDB has no visibility: every joint is written, occluded or not, and the
sampler guarantees that all joints lie inside the frame.

Generation is deterministic from ``SyntheticConfig`` (seed included) and cached under
``<cache_root>/synthetic/<preset-or-custom>-<hash>/``; the default cache root is the
``VIDPOSE_CACHE`` environment variable, else ``~/.cache/vidpose``. A root is complete when its
``manifest.json`` exists; generation writes into a temporary folder and renames it into place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io

from vidpose.data.degraded import DegradedEntry, jhmdb_sidecar_path, write_degraded_file
from vidpose.data.degradations import (
    Degradation,
    DegradationConfig,
    apply_degradation,
    degradation_config,
    sample_degradations,
)
from vidpose.data.index import VideoPoseIndex
from vidpose.data.keypoints import JHMDB, POSETRACK
from vidpose.registry import DATASETS

__all__ = [
    "SyntheticConfig",
    "PRESETS",
    "GENERATOR_VERSION",
    "JHMDB_CLASSES",
    "generate",
    "default_cache_root",
    "dataset_dir",
    "identity",
    "detections_path",
    "load_manifest",
    "PersonMotion",
    "CameraPath",
    "Occluder",
    "VideoScene",
    "sample_posetrack_scene",
    "sample_jhmdb_scene",
    "render_frame",
    "person_mask",
    "head_box_xyxy",
    "posetrack_video_name",
    "posetrack_to_jhmdb",
    "synthetic_posetrack",
    "synthetic_jhmdb",
]

# Bump when the rendered data or the written files change, so old caches are not reused.
GENERATOR_VERSION = 1

# PoseTrack slot indices used by the kinematic model (POSETRACK layout order).
_NOSE, _HEAD_BOTTOM, _HEAD_TOP, _L_EAR, _R_EAR = 0, 1, 2, 3, 4
_L_SH, _R_SH, _L_EL, _R_EL, _L_WR, _R_WR = 5, 6, 7, 8, 9, 10
_L_HIP, _R_HIP, _L_KNEE, _R_KNEE, _L_ANK, _R_ANK = 11, 12, 13, 14, 15, 16
_ANNOTATABLE = np.array([i for i in range(17) if i not in POSETRACK.never_annotated])

# Smooth angle trajectories, one row each (radians except "yaw", which turns the body).
_ANGLES = ("lean", "head_tilt", "yaw", "l_shoulder", "l_elbow", "r_shoulder", "r_elbow",
           "l_hip", "l_knee", "r_hip", "r_knee")
_ARM_ANGLES = (3, 4, 5, 6)
_LEG_ANGLES = (7, 8, 9, 10)
_COMPONENTS = 3

# Segment lengths as fractions of the body size (head top to ankles, standing straight).
_PROPORTIONS = {
    "head": 0.13, "neck": 0.05, "torso": 0.30, "shoulder_half": 0.10, "hip_half": 0.065,
    "upper_arm": 0.17, "forearm": 0.15, "thigh": 0.25, "shin": 0.25,
}

# Sub-JHMDB synthetic classes and the limbs that move fast in them.
JHMDB_CLASSES: dict[str, tuple[str, ...]] = {
    "synth_wave": ("arms",),
    "synth_kick": ("legs",),
    "synth_walk": (),
}
_VIEWPOINTS = ("E", "ENE", "ESE", "N", "NE", "NNE", "NNW", "NW", "S", "SE", "SSE", "SSW", "SW", "W",
               "WNW", "WSW")

# PoseTrack18's category entry (names in slot order; skeleton as in the official files, 1-based).
_PT18_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]


@dataclass(frozen=True)
class SyntheticConfig:
    """Every parameter of the generator; lengths and speeds are fractions of the frame height."""

    num_train_videos: int = 40
    num_val_videos: int = 10
    num_frames: int = 24
    width: int = 320
    height: int = 240
    min_people: int = 1
    max_people: int = 4
    seed: int = 0
    val_label_every: int = 4  # val frames 0, k, 2k, ... are labeled (as PoseTrack val)
    body_size: tuple[float, float] = (0.45, 0.8)  # person height, fraction of frame height
    fast_fraction: float = 0.4  # share of people whose arms and/or legs move fast
    slow_amplitude: float = 0.2  # rad, per sinusoid component of a slow limb angle
    slow_max_frequency: float = 0.035  # cycles per frame
    fast_amplitude: tuple[float, float] = (0.5, 0.9)  # rad, main component of a fast limb angle
    fast_frequency: tuple[float, float] = (0.05, 0.11)  # cycles per frame
    walk_speed: float = 0.008  # max body translation, fraction of height per frame
    camera_pan: float = 0.008  # max camera pan speed, fraction of height per frame
    exposure: float = 0.8  # fraction of the frame interval the shutter is open
    blur_threshold: float = 0.012  # joint displacement per frame above which blur is rendered
    blur_max_samples: int = 9  # sub-frame renders averaged for the fastest person
    occluder_probability: float = 0.15  # chance per frame that a new occluder appears
    occluder_max_frames: int = 3  # an occluder stays 1..this many frames
    occluder_size: tuple[float, float] = (0.12, 0.3)  # side length, fraction of height
    background_clutter: int = 10  # limb-like distractor shapes painted into each background
    image_noise: float = 2.0  # std of per-pixel Gaussian noise, grey levels
    jpeg_quality: int = 92
    det_jitter: float = 0.05  # std of detector box jitter, fraction of box size
    det_miss_rate: float = 0.03  # chance that the detector misses a person
    det_false_positives: float = 0.3  # mean number of false-positive boxes per frame
    jhmdb_clips_per_class: int = 6  # clips of each class in JHMDB_CLASSES
    jhmdb_num_frames: int = 24
    degradation: DegradationConfig | None = None  # single-frame degradations (None: off)

    def __post_init__(self) -> None:
        for name in ("body_size", "fast_amplitude", "fast_frequency", "occluder_size"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        positive = (
            "num_frames",
            "width",
            "height",
            "min_people",
            "val_label_every",
            "blur_max_samples",
            "occluder_max_frames",
            "jhmdb_clips_per_class",
            "jhmdb_num_frames",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)!r}"
                )
        if self.num_train_videos < 0 or self.num_val_videos < 0:
            raise ValueError("SyntheticConfig.num_train_videos / num_val_videos must be >= 0")
        if not self.min_people <= self.max_people < 10000:
            raise ValueError(
                f"SyntheticConfig: need 1 <= min_people <= max_people < 10000 (poseval track ids), "
                f"got {self.min_people}, {self.max_people}"
            )
        if max(self.num_frames, self.jhmdb_num_frames) >= 10000:
            raise ValueError(
                "SyntheticConfig: num_frames must be below 10000 (poseval parses 4-digit frames)"
            )
        if self.num_train_videos + self.num_val_videos >= 1_000_000:
            raise ValueError(
                "SyntheticConfig: at most 999999 videos (6-digit PoseTrack video numbers)"
            )
        for name in ("body_size", "fast_amplitude", "fast_frequency", "occluder_size"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(
                    f"SyntheticConfig.{name} must be a range (lo, hi) with 0 <= lo <= hi"
                )
        for name in ("fast_fraction", "exposure", "det_miss_rate", "occluder_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(
                    f"SyntheticConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}"
                )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"SyntheticConfig.jpeg_quality must lie in [1, 100], got {self.jpeg_quality}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Every parameter; ``degradation`` only when set, so configs without it keep their hash."""
        out = dataclasses.asdict(self)
        if self.degradation is None:
            del out["degradation"]
        return out

    def digest(self) -> str:
        """12-hex-digit hash of every parameter and the generator version (the cache key)."""
        payload = json.dumps({"version": GENERATOR_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


PRESETS: dict[str, SyntheticConfig] = {
    "tiny": SyntheticConfig(
        num_train_videos=6, num_val_videos=2, num_frames=12, width=160, height=120,
        jhmdb_clips_per_class=3, jhmdb_num_frames=12,
    ),
    "default": SyntheticConfig(),
    # Temporal information decides (docs/data.md, "The degraded preset"): default's scene without
    # its multi-frame occluders, single frames of single people degraded, every val frame labeled.
    "degraded": SyntheticConfig(
        occluder_probability=0.0, val_label_every=1, degradation=DegradationConfig(),
    ),
    # The same at tiny's size, for tests and smoke runs.
    "degraded_tiny": SyntheticConfig(
        num_train_videos=6, num_val_videos=2, num_frames=12, width=160, height=120,
        jhmdb_clips_per_class=3, jhmdb_num_frames=12,
        occluder_probability=0.0, val_label_every=1, degradation=DegradationConfig(),
    ),
}


# ------------------------------------------------------------------------------------------
# Scene model: people, camera, occluders
# ------------------------------------------------------------------------------------------


def _direction(theta: np.ndarray) -> np.ndarray:
    """(N,) angles -> (N, 2) unit vectors; 0 points down (+y), +pi/2 points right (+x)."""
    return np.stack([np.sin(theta), np.cos(theta)], axis=-1)


@dataclass
class PersonStyle:
    """Colours (BGR) of one person; left limbs are a lighter shade, right limbs a darker one."""

    shirt: tuple[float, float, float]
    pants: tuple[float, float, float]
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shoes: tuple[float, float, float]


@dataclass
class PersonMotion:
    """One person: body size, a root path and smooth angle trajectories (sums of sinusoids)."""

    track_id: int
    body_size: float  # pixels
    lengths: dict[str, float]  # pixels
    root0: np.ndarray  # (2,) mid-hip at t = 0, world pixels
    velocity: np.ndarray  # (2,) pixels per frame
    bob: tuple[float, float, float]  # vertical bounce: amplitude px, frequency, phase
    base: np.ndarray  # (A,) angle offsets
    amplitude: np.ndarray  # (A, C)
    frequency: np.ndarray  # (A, C) cycles per frame
    phase: np.ndarray  # (A, C)
    fast_limbs: tuple[str, ...]  # () for a slow person, else "arms" and/or "legs"
    style: PersonStyle

    @property
    def is_fast(self) -> bool:
        """Whether some limb of this person follows a fast trajectory."""
        return bool(self.fast_limbs)

    def angles(self, t: np.ndarray) -> np.ndarray:
        """(N,) times in frames -> (N, A) angles."""
        t = np.asarray(t, dtype=np.float64)[:, None, None]
        waves = self.amplitude * np.sin(2 * np.pi * self.frequency * t + self.phase)
        return self.base + waves.sum(axis=-1)

    def world_joints(self, t: np.ndarray) -> np.ndarray:
        """(N,) times -> (N, 17, 2) PoseTrack-slot joint positions in world pixels."""
        t = np.asarray(t, dtype=np.float64)
        a = self.angles(t)
        L = self.lengths
        lean, tilt, yaw = a[:, 0], a[:, 1], a[:, 2]
        amp, freq, ph = self.bob
        root = self.root0 + self.velocity * t[:, None]
        root = root + np.stack([np.zeros_like(t), amp * np.sin(2 * np.pi * freq * t + ph)], axis=-1)

        up = -_direction(lean)
        # Towards the person's left, which is image right: people face the camera.
        side = np.stack([np.cos(lean), -np.sin(lean)], axis=-1)
        width = (0.6 + 0.4 * np.cos(yaw))[:, None]  # turning the body narrows it
        head_up = -_direction(lean + tilt)
        head_side = np.stack([np.cos(lean + tilt), -np.sin(lean + tilt)], axis=-1)

        j = np.zeros((len(t), 17, 2))
        mid_shoulder = root + up * L["torso"]
        j[:, _HEAD_BOTTOM] = mid_shoulder + head_up * L["neck"]
        j[:, _HEAD_TOP] = j[:, _HEAD_BOTTOM] + head_up * L["head"]
        head_half_width = 0.38 * L["head"]
        j[:, _NOSE] = (
            j[:, _HEAD_BOTTOM]
            + head_up * (0.38 * L["head"])
            + head_side * (0.45 * head_half_width * np.sin(yaw))[:, None]
        )
        centre = 0.5 * (j[:, _HEAD_BOTTOM] + j[:, _HEAD_TOP])
        j[:, _L_EAR] = centre + head_side * head_half_width
        j[:, _R_EAR] = centre - head_side * head_half_width
        j[:, _L_SH] = mid_shoulder + side * L["shoulder_half"] * width
        j[:, _R_SH] = mid_shoulder - side * L["shoulder_half"] * width
        j[:, _L_HIP] = root + side * L["hip_half"] * width
        j[:, _R_HIP] = root - side * L["hip_half"] * width

        # Positive shoulder/hip angles swing a limb outwards on both sides.
        l_upper = lean + a[:, 3]
        r_upper = lean - a[:, 5]
        j[:, _L_EL] = j[:, _L_SH] + _direction(l_upper) * L["upper_arm"]
        j[:, _L_WR] = j[:, _L_EL] + _direction(l_upper + a[:, 4]) * L["forearm"]
        j[:, _R_EL] = j[:, _R_SH] + _direction(r_upper) * L["upper_arm"]
        j[:, _R_WR] = j[:, _R_EL] + _direction(r_upper - a[:, 6]) * L["forearm"]
        leg_lean = 0.3 * lean
        l_thigh = leg_lean + a[:, 7]
        r_thigh = leg_lean - a[:, 9]
        j[:, _L_KNEE] = j[:, _L_HIP] + _direction(l_thigh) * L["thigh"]
        j[:, _L_ANK] = j[:, _L_KNEE] + _direction(l_thigh - a[:, 8]) * L["shin"]
        j[:, _R_KNEE] = j[:, _R_HIP] + _direction(r_thigh) * L["thigh"]
        j[:, _R_ANK] = j[:, _R_KNEE] + _direction(r_thigh + a[:, 10]) * L["shin"]
        return j


@dataclass
class CameraPath:
    """Camera offset (world pixels of the frame's top-left) over time: drift plus a slow sway."""

    velocity: np.ndarray  # (2,) pixels per frame
    sway: np.ndarray  # (2,) amplitude, pixels
    frequency: float
    phase: float

    def position(self, t: np.ndarray) -> np.ndarray:
        """(N,) times -> (N, 2) camera offsets."""
        t = np.asarray(t, dtype=np.float64)[:, None]
        return self.velocity * t + self.sway * np.sin(2 * np.pi * self.frequency * t + self.phase)


@dataclass
class Occluder:
    """A textured rectangle in front of everything on frames ``first..last`` (image pixels)."""

    first: int
    last: int
    x0: float
    y0: float
    x1: float
    y1: float
    colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    stripe_period: float
    stripe_angle: float

    def active(self, frame: int) -> bool:
        """Whether the occluder is drawn on this frame."""
        return self.first <= frame <= self.last

    def covers(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) points -> (...) bool, True inside the rectangle (borders included)."""
        x, y = xy[..., 0], xy[..., 1]
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)


@dataclass
class VideoScene:
    """Everything needed to render and annotate one video (frames ``0..num_frames-1``)."""

    width: int
    height: int
    num_frames: int
    people: list[PersonMotion]  # in drawing order (far to near)
    camera: CameraPath
    texture: np.ndarray  # (h, w, 3) float32 background, world pixels offset by texture_origin
    texture_origin: np.ndarray  # (2,) world position of texture pixel (0, 0)
    occluders: list[Occluder]
    noise_seed: int
    config: SyntheticConfig
    degradations: list[Degradation] = field(default_factory=list)  # drawn after the occluders

    def image_joints(self, t: np.ndarray) -> np.ndarray:
        """(N,) times -> (P, N, 17, 2) joints in image pixels (camera applied)."""
        t = np.asarray(t, dtype=np.float64)
        cam = self.camera.position(t)
        return np.stack([p.world_joints(t) - cam[:, None, :] for p in self.people])

    def joint_speed(self) -> np.ndarray:
        """(P, T, 17) image-space joint travel over the frame interval centred on each frame."""
        t = np.arange(self.num_frames, dtype=np.float64)
        return np.linalg.norm(self.image_joints(t + 0.5) - self.image_joints(t - 0.5), axis=-1)

    def visibility(self) -> tuple[np.ndarray, np.ndarray]:
        """(P, T, 17) bool masks ``(occluded, out_of_frame)`` of the joints at integer frames."""
        t = np.arange(self.num_frames)
        joints = self.image_joints(t)
        x, y = joints[..., 0], joints[..., 1]
        outside = (x < 0) | (x > self.width - 1) | (y < 0) | (y > self.height - 1)
        occluded = np.zeros_like(outside)
        for occ in self.occluders:
            frames = np.arange(occ.first, occ.last + 1)
            occluded[:, frames] |= occ.covers(joints[:, frames])
        return occluded & ~outside, outside


def _random_colour(
    rng: np.random.Generator,
    sat: tuple[float, float],
    val: tuple[float, float],
    hue: tuple[float, float] = (0.0, 180.0),
) -> tuple[float, float, float]:
    hsv = np.array(
        [[[rng.uniform(*hue), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], dtype=np.float32
    )
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(float(c) for c in bgr)


def _sample_style(rng: np.random.Generator) -> PersonStyle:
    return PersonStyle(
        shirt=_random_colour(rng, (0.45, 1.0), (0.45, 0.95)),
        pants=_random_colour(rng, (0.3, 0.9), (0.3, 0.8)),
        skin=_random_colour(rng, (0.25, 0.6), (0.45, 0.95), hue=(5.0, 20.0)),
        hair=_random_colour(rng, (0.2, 0.8), (0.05, 0.45), hue=(0.0, 30.0)),
        shoes=_random_colour(rng, (0.0, 0.5), (0.05, 0.3)),
    )


def _sample_person(
    rng: np.random.Generator,
    cfg: SyntheticConfig,
    track_id: int,
    body_size: float,
    root0: np.ndarray,
    fast_limbs: tuple[str, ...],
    walk_speed: float,
) -> PersonMotion:
    lengths = {k: v * body_size * rng.uniform(0.92, 1.08) for k, v in _PROPORTIONS.items()}
    # Rest pose, in _ANGLES order: upright, arms a little out, elbows and knees slightly bent.
    shoulder, elbow, hip, knee = (0.15, 0.7), (-0.2, 0.9), (0.05, 0.3), (-0.05, 0.4)
    base = np.array([
        rng.normal(0, 0.06), rng.normal(0, 0.08), rng.normal(0, 0.35),
        *(rng.uniform(*r) for r in (shoulder, elbow, shoulder, elbow, hip, knee, hip, knee)),
    ])
    scale = np.array([0.25, 0.5, 1.5] + [1.0] * 8)  # lean sways less than limbs, yaw more
    n = len(_ANGLES)
    amplitude = rng.uniform(0.0, cfg.slow_amplitude, (n, _COMPONENTS)) * scale[:, None]
    frequency = rng.uniform(0.005, cfg.slow_max_frequency, (n, _COMPONENTS))
    phase = rng.uniform(0, 2 * np.pi, (n, _COMPONENTS))
    limb_rows = {"arms": _ARM_ANGLES, "legs": _LEG_ANGLES}
    for i in (row for limb in fast_limbs for row in limb_rows[limb]):
        amplitude[i, 0] = rng.uniform(*cfg.fast_amplitude)
        frequency[i, 0] = rng.uniform(*cfg.fast_frequency)
    h = cfg.height
    velocity = np.array(
        [rng.uniform(-1, 1) * walk_speed * h, rng.uniform(-0.25, 0.25) * walk_speed * h]
    )
    bob = (rng.uniform(0, 0.01) * body_size, rng.uniform(0.02, 0.08), rng.uniform(0, 2 * np.pi))
    return PersonMotion(
        track_id=track_id, body_size=body_size, lengths=lengths,
        root0=np.asarray(root0, dtype=np.float64), velocity=velocity, bob=bob, base=base,
        amplitude=amplitude, frequency=frequency, phase=phase, fast_limbs=fast_limbs,
        style=_sample_style(rng),
    )


def _sample_fast_limbs(rng: np.random.Generator, fast_fraction: float) -> tuple[str, ...]:
    if rng.random() >= fast_fraction:
        return ()
    return (("arms",), ("legs",), ("arms", "legs"))[int(rng.integers(3))]


def _sample_camera(rng: np.random.Generator, cfg: SyntheticConfig) -> CameraPath:
    speed = cfg.camera_pan * cfg.height
    velocity = np.array([rng.uniform(-1, 1) * speed, rng.uniform(-0.3, 0.3) * speed])
    sway = rng.uniform(0, 2.0, 2) * speed
    return CameraPath(
        velocity, sway, float(rng.uniform(0.02, 0.08)), float(rng.uniform(0, 2 * np.pi))
    )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """(h, w) float32 noise with features about ``cell`` pixels wide."""
    small = rng.standard_normal((h // cell + 3, w // cell + 3)).astype(np.float32)
    big = cv2.resize(
        small, ((w // cell + 3) * cell, (h // cell + 3) * cell), interpolation=cv2.INTER_CUBIC
    )
    return big[cell : cell + h, cell : cell + w]


def _sample_background(
    rng: np.random.Generator, cfg: SyntheticConfig, h: int, w: int
) -> np.ndarray:
    """(h, w, 3) float32 BGR texture: multi-octave colour noise plus limb-like clutter."""
    unit = max(4, cfg.height // 8)
    field_ = sum(
        wt * _smooth_noise(rng, h, w, max(2, int(unit * s)))
        for wt, s in ((1.0, 4), (0.5, 1), (0.25, 0.3))
    )
    field_ = (field_ - field_.min()) / max(float(np.ptp(field_)), 1e-6)
    palette = np.array(
        [_random_colour(rng, (0.1, 0.7), (0.2, 0.95)) for _ in range(3)], dtype=np.float32
    )
    lo = np.clip(field_ * 2, 0, 1)[..., None]
    hi = np.clip(field_ * 2 - 1, 0, 1)[..., None]
    texture = palette[0] * (1 - lo) + palette[1] * lo
    texture = texture * (1 - hi) + palette[2] * hi
    texture += 12.0 * np.stack(
        [_smooth_noise(rng, h, w, max(2, unit // 4)) for _ in range(3)], axis=-1
    )
    canvas = np.clip(texture, 0, 255).astype(np.uint8)
    n_clutter = int(round(cfg.background_clutter * (h * w) / (cfg.height * cfg.width)))
    for _ in range(n_clutter):
        colour = _random_colour(rng, (0.2, 1.0), (0.2, 1.0))
        p = rng.uniform([0, 0], [w, h])
        length = rng.uniform(0.08, 0.3) * cfg.height
        q = p + length * _direction(np.array([rng.uniform(0, 2 * np.pi)]))[0]
        thickness = max(1, int(round(rng.uniform(0.02, 0.07) * cfg.height)))
        if rng.random() < 0.7:
            cv2.line(canvas, _fix(p), _fix(q), colour, thickness, cv2.LINE_AA, _SHIFT)
        else:
            axes = (int(length / 2 * _ONE), int(thickness / 2 * _ONE))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(canvas, _fix(p), axes, angle, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
    return cv2.GaussianBlur(canvas, (3, 3), 0).astype(np.float32)


def _sample_occluders(
    rng: np.random.Generator, cfg: SyntheticConfig, joints: np.ndarray
) -> list[Occluder]:
    """Occluders placed over a random joint of a random person, so they really hide joints."""
    num_people, num_frames = joints.shape[:2]
    out = []
    for frame in range(num_frames):
        if rng.random() >= cfg.occluder_probability:
            continue
        person = int(rng.integers(num_people))
        joint = int(rng.choice(_ANNOTATABLE))
        centre = joints[person, frame, joint] + rng.normal(0, 0.03 * cfg.height, 2)
        w, h = rng.uniform(*cfg.occluder_size, 2) * cfg.height
        duration = int(rng.integers(1, cfg.occluder_max_frames + 1))
        colours = tuple(_random_colour(rng, (0.0, 1.0), (0.1, 1.0)) for _ in range(2))
        out.append(Occluder(
            first=frame, last=min(frame + duration - 1, num_frames - 1),
            x0=float(centre[0] - w / 2), y0=float(centre[1] - h / 2),
            x1=float(centre[0] + w / 2), y1=float(centre[1] + h / 2), colours=colours,
            stripe_period=float(rng.uniform(0.02, 0.08) * cfg.height),
            stripe_angle=float(rng.uniform(0, np.pi)),
        ))
    return out


def _texture_for(
    rng: np.random.Generator, cfg: SyntheticConfig, camera: CameraPath, num_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Background texture covering every camera position of the video (sub-frames included)."""
    cam = camera.position(np.linspace(-1.0, num_frames, 8 * num_frames + 9))
    origin = np.floor(cam.min(axis=0)) - 2
    extent = np.ceil(cam.max(axis=0)) + 2 - origin
    h, w = int(extent[1]) + cfg.height + 1, int(extent[0]) + cfg.width + 1
    return _sample_background(rng, cfg, h, w), origin


def _scene_rng(cfg: SyntheticConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=key))


_SPLIT_KEY = {"train": 0, "val": 1}


def sample_posetrack_scene(cfg: SyntheticConfig, split: str, index: int) -> VideoScene:
    """The scene of PoseTrack-twin video ``index`` (0-based) of ``split`` (``train`` or ``val``)."""
    if split not in _SPLIT_KEY:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    rng = _scene_rng(cfg, 1, _SPLIT_KEY[split], index)
    num_people = int(rng.integers(cfg.min_people, cfg.max_people + 1))
    h, w = cfg.height, cfg.width
    slots = (np.arange(num_people) + rng.uniform(0.2, 0.8, num_people)) / num_people
    xs = 0.05 * w + 0.9 * w * rng.permutation(slots)
    sizes = rng.uniform(*cfg.body_size, num_people) * h
    people = []
    for track_id in range(num_people):
        size = sizes[track_id]
        ankle_y = rng.uniform(0.75, 1.02) * h
        root0 = np.array([xs[track_id], ankle_y - 0.5 * size])
        fast = _sample_fast_limbs(rng, cfg.fast_fraction)
        people.append(_sample_person(rng, cfg, track_id, size, root0, fast, cfg.walk_speed))
    people.sort(key=lambda p: p.body_size)  # small people are far away: drawn first
    camera = _sample_camera(rng, cfg)
    texture, origin = _texture_for(rng, cfg, camera, cfg.num_frames)
    scene = VideoScene(w, h, cfg.num_frames, people, camera, texture, origin, occluders=[],
                       noise_seed=int(rng.integers(2**31)), config=cfg)
    scene.occluders = _sample_occluders(rng, cfg, scene.image_joints(np.arange(cfg.num_frames)))
    # a stream of its own, so the rest of the scene equals the same config without degradations
    _add_degradations(scene, _scene_rng(cfg, 5, _SPLIT_KEY[split], index))
    return scene


def sample_jhmdb_scene(
    cfg: SyntheticConfig, class_name: str, index: int, max_tries: int = 200
) -> VideoScene:
    """One-person scene of Sub-JHMDB-twin clip ``index`` of ``class_name``; joints stay in frame."""
    if class_name not in JHMDB_CLASSES:
        raise ValueError(
            f"unknown synthetic JHMDB class {class_name!r}; known: {sorted(JHMDB_CLASSES)}"
        )
    class_index = sorted(JHMDB_CLASSES).index(class_name)
    rng = _scene_rng(cfg, 2, class_index, index)
    h, w, t = cfg.height, cfg.width, np.arange(cfg.jhmdb_num_frames)
    walk = 2.0 * cfg.walk_speed if class_name == "synth_walk" else 0.3 * cfg.walk_speed
    margin = 2.0
    for _ in range(max_tries):
        size = rng.uniform(0.5, 0.75) * h
        root0 = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.45, 0.55) * h + 0.02 * size])
        person = _sample_person(rng, cfg, 0, size, root0, JHMDB_CLASSES[class_name], walk)
        camera = _sample_camera(rng, cfg)
        joints = person.world_joints(t) - camera.position(t)[:, None, :]
        joints = joints[:, _ANNOTATABLE]
        inside = ((joints >= margin) & (joints <= np.array([w - 1 - margin, h - 1 - margin]))).all()
        if inside:
            break
    else:
        raise RuntimeError(
            f"synthetic JHMDB clip {class_name}/{index}: no pose trajectory stayed inside the "
            f"{w}x{h} frame in {max_tries} tries; reduce body_size, walk_speed or camera_pan"
        )
    texture, origin = _texture_for(rng, cfg, camera, cfg.jhmdb_num_frames)
    scene = VideoScene(w, h, cfg.jhmdb_num_frames, [person], camera, texture, origin, occluders=[],
                       noise_seed=int(rng.integers(2**31)), config=cfg)
    scene.occluders = _sample_occluders(rng, cfg, scene.image_joints(t))
    _add_degradations(scene, _scene_rng(cfg, 6, class_index, index))
    return scene


def _add_degradations(scene: VideoScene, rng: np.random.Generator) -> None:
    """Sample the scene's single-frame degradations when its config asks for them."""
    cfg = scene.config.degradation
    if cfg is None:
        return
    joints = scene.image_joints(np.arange(scene.num_frames))[:, :, _ANNOTATABLE]
    sizes = np.array([p.body_size for p in scene.people])
    scene.degradations = sample_degradations(rng, cfg, joints, sizes, scene.width, scene.height)


# ------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------

_SHIFT = 4  # OpenCV sub-pixel bits: coordinates are drawn with 1/16 pixel precision
_ONE = 1 << _SHIFT


def _fix(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def _shade(
    colour: tuple[float, float, float], towards: float, amount: float
) -> tuple[float, float, float]:
    return tuple(c * (1 - amount) + towards * amount for c in colour)


def _draw_person(
    colour: np.ndarray, alpha: np.ndarray, j: np.ndarray, person: PersonMotion
) -> None:
    """Draw one pose (17, 2) (canvas pixels) as premultiplied colour plus alpha (both uint8)."""
    s = person.body_size
    st = person.style

    def line(p, q, c, width):
        thickness = max(1, int(round(width * s)))
        cv2.line(colour, _fix(p), _fix(q), c, thickness, cv2.LINE_AA, _SHIFT)
        cv2.line(alpha, _fix(p), _fix(q), 255, thickness, cv2.LINE_AA, _SHIFT)

    def disc(p, c, radius):
        r = max(_ONE, int(round(radius * s * _ONE)))
        cv2.circle(colour, _fix(p), r, c, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(alpha, _fix(p), r, 255, -1, cv2.LINE_AA, _SHIFT)

    def ellipse(centre, half_len, half_wid, axis, c):
        angle = math.degrees(math.atan2(axis[1], axis[0]))
        axes = (max(1, int(round(half_len * _ONE))), max(1, int(round(half_wid * _ONE))))
        cv2.ellipse(colour, _fix(centre), axes, angle, 0, 360, c, -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(alpha, _fix(centre), axes, angle, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)

    left_pants, right_pants = _shade(st.pants, 255, 0.4), _shade(st.pants, 0, 0.4)
    left_shirt, right_shirt = _shade(st.shirt, 255, 0.4), _shade(st.shirt, 0, 0.4)
    for hip, knee, ankle, c, side in (
        (_R_HIP, _R_KNEE, _R_ANK, right_pants, -1),
        (_L_HIP, _L_KNEE, _L_ANK, left_pants, 1),
    ):
        shin = j[ankle] - j[knee]
        shin = shin / max(np.linalg.norm(shin), 1e-6)
        toe = j[ankle] + 0.07 * s * (
            0.5 * shin + 0.87 * side * np.array([shin[1], -shin[0]]) * np.sign(shin[1] + 1e-9)
        )
        line(j[ankle], toe, st.shoes, 0.045)
        line(j[hip], j[knee], c, 0.075)
        line(j[knee], j[ankle], c, 0.06)
    torso = np.array([j[_L_SH], j[_R_SH], j[_R_HIP], j[_L_HIP]])
    pts = np.round(torso * _ONE).astype(np.int32)
    cv2.fillConvexPoly(colour, pts, st.shirt, cv2.LINE_AA, _SHIFT)
    cv2.fillConvexPoly(alpha, pts, 255, cv2.LINE_AA, _SHIFT)
    line(j[_L_SH], j[_R_SH], st.shirt, 0.06)
    line(j[_L_HIP], j[_R_HIP], st.pants, 0.07)
    mid_shoulder = 0.5 * (j[_L_SH] + j[_R_SH])
    line(mid_shoulder, j[_HEAD_BOTTOM], st.skin, 0.05)
    for sh, el, wr, c in ((_R_SH, _R_EL, _R_WR, right_shirt), (_L_SH, _L_EL, _L_WR, left_shirt)):
        line(j[sh], j[el], c, 0.055)
        line(j[el], j[wr], c, 0.045)
        fore = j[wr] - j[el]
        disc(j[wr] + 0.025 * s * fore / max(np.linalg.norm(fore), 1e-6), st.skin, 0.032)
    axis = j[_HEAD_TOP] - j[_HEAD_BOTTOM]
    head_len = float(np.linalg.norm(axis))
    u = axis / max(head_len, 1e-6)
    centre = 0.5 * (j[_HEAD_TOP] + j[_HEAD_BOTTOM])
    ellipse(centre, head_len / 2, 0.38 * head_len, axis, st.hair)
    ellipse(centre - 0.1 * head_len * u, 0.38 * head_len, 0.32 * head_len, axis, st.skin)
    disc(j[_NOSE], _shade(st.skin, 0, 0.5), 0.012)


def head_box_xyxy(j: np.ndarray) -> np.ndarray:
    """(17, 2) pose -> (4,) [x1, y1, x2, y2], the axis-aligned box of the drawn head ellipse."""
    axis = j[_HEAD_TOP] - j[_HEAD_BOTTOM]
    half_len = 0.5 * float(np.linalg.norm(axis))
    half_wid = 0.38 * 2 * half_len
    c, sn = axis / max(2 * half_len, 1e-6)
    ex = math.sqrt((half_len * c) ** 2 + (half_wid * sn) ** 2)
    ey = math.sqrt((half_len * sn) ** 2 + (half_wid * c) ** 2)
    centre = 0.5 * (j[_HEAD_TOP] + j[_HEAD_BOTTOM])
    return np.array([centre[0] - ex, centre[1] - ey, centre[0] + ex, centre[1] + ey])


def _person_layer(
    scene: VideoScene, person_index: int, times: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """Average premultiplied render of one person over sub-frame ``times``: ROI, colour, alpha."""
    person = scene.people[person_index]
    cam = scene.camera.position(times)
    poses = person.world_joints(times) - cam[:, None, :]
    pad = 0.2 * person.body_size + 3
    x0 = max(0, int(math.floor(poses[..., 0].min() - pad)))
    y0 = max(0, int(math.floor(poses[..., 1].min() - pad)))
    x1 = min(scene.width, int(math.ceil(poses[..., 0].max() + pad)))
    y1 = min(scene.height, int(math.ceil(poses[..., 1].max() + pad)))
    if x1 <= x0 or y1 <= y0:
        return None
    offset = np.array([x0, y0], dtype=np.float64)
    colour_sum = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
    alpha_sum = np.zeros((y1 - y0, x1 - x0), np.float32)
    colour = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    alpha = np.empty((y1 - y0, x1 - x0), np.uint8)
    for pose in poses:
        colour.fill(0)
        alpha.fill(0)
        _draw_person(colour, alpha, pose - offset, person)
        colour_sum += colour
        alpha_sum += alpha
    n = float(len(poses))
    return (x0, y0, x1, y1), colour_sum / n, alpha_sum / (n * 255.0)


def _exposure_times(scene: VideoScene, frame: int, motion_blur: bool) -> list[np.ndarray]:
    """Per person, the sub-frame times averaged into this frame (one time when it is slow)."""
    cfg = scene.config
    t = np.array([frame - 0.5, frame + 0.5])
    out = []
    for person in scene.people:
        poses = person.world_joints(t) - scene.camera.position(t)[:, None, :]
        speed = float(
            np.linalg.norm(poses[1, _ANNOTATABLE] - poses[0, _ANNOTATABLE], axis=-1).max()
        )
        if not motion_blur or speed <= cfg.blur_threshold * cfg.height:
            out.append(np.array([float(frame)]))
            continue
        # About one sample per 1.5 px of travel keeps the streak smooth instead of ghosted.
        n = int(np.clip(math.ceil(speed * cfg.exposure / 1.5), 2, cfg.blur_max_samples))
        out.append(frame + cfg.exposure * np.linspace(-0.5, 0.5, n))
    return out


def _draw_occluder(image: np.ndarray, occ: Occluder) -> None:
    h, w = image.shape[:2]
    x0, y0 = max(0, int(math.floor(occ.x0))), max(0, int(math.floor(occ.y0)))
    x1, y1 = min(w, int(math.floor(occ.x1)) + 1), min(h, int(math.floor(occ.y1)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    proj = xx * math.cos(occ.stripe_angle) + yy * math.sin(occ.stripe_angle)
    mix = (0.5 + 0.5 * np.sin(2 * np.pi * proj / occ.stripe_period))[..., None]
    a, b = (np.array(c, np.float32) for c in occ.colours)
    image[y0:y1, x0:x1] = a * (1 - mix) + b * mix


def render_frame(scene: VideoScene, frame: int, motion_blur: bool = True) -> np.ndarray:
    """Render integer ``frame`` of a scene -> (H, W, 3) uint8 BGR image.

    ``motion_blur=False`` renders every person at the exact frame time (used by tests to
    compare against the blurred render); the sampled scene is the same either way.
    """
    cam = scene.camera.position(np.array([float(frame)]))[0] - scene.texture_origin
    warp = np.array([[1, 0, cam[0]], [0, 1, cam[1]]], dtype=np.float64)
    image = cv2.warpAffine(
        scene.texture,
        warp,
        (scene.width, scene.height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    for index, times in enumerate(_exposure_times(scene, frame, motion_blur)):
        layer = _person_layer(scene, index, times)
        if layer is None:
            continue
        (x0, y0, x1, y1), colour, alpha = layer
        roi = image[y0:y1, x0:x1]
        roi *= 1.0 - alpha[..., None]
        roi += colour
    for occ in scene.occluders:
        if occ.active(frame):
            _draw_occluder(image, occ)
    for degradation in scene.degradations:
        if degradation.frame == frame:
            apply_degradation(image, degradation)
    noise_rng = np.random.default_rng(np.random.SeedSequence(scene.noise_seed, spawn_key=(frame,)))
    image += noise_rng.standard_normal(image.shape, dtype=np.float32) * np.float32(
        scene.config.image_noise
    )
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def person_mask(scene: VideoScene, person_index: int, frame: int) -> np.ndarray:
    """(H, W) uint8 {0, 1} silhouette of one person at the exact frame time (no blur/occluders)."""
    mask = np.zeros((scene.height, scene.width), np.uint8)
    layer = _person_layer(scene, person_index, np.array([float(frame)]))
    if layer is not None:
        (x0, y0, x1, y1), _, alpha = layer
        mask[y0:y1, x0:x1] = alpha >= 0.5
    return mask


# ------------------------------------------------------------------------------------------
# Statistics reported in the manifest
# ------------------------------------------------------------------------------------------


@dataclass
class _Stats:
    """Counts, motion and visibility totals gathered while writing; summarised in the manifest."""

    counts: Counter = field(default_factory=Counter)
    displacement_sum: Counter = field(default_factory=Counter)  # by "slow" / "fast" person
    displacement_n: Counter = field(default_factory=Counter)
    joint_slots: int = 0  # annotatable joints of the people annotated on labeled frames
    occluded: int = 0
    out_of_frame: int = 0
    degradation: bool = False  # the config degrades frames; only then is the degraded share reported
    annotated_joints: int = 0  # annotated joints on labeled PoseTrack frames
    degraded_joints: int = 0  # of those, the ones a degradation covers

    def add_video(self, scene: VideoScene, split: str, labeled: np.ndarray) -> None:
        """Count one PoseTrack video; ``labeled`` is the (T,) bool mask of labeled frames."""
        self.counts[f"{split}_videos"] += 1
        self.counts[f"{split}_frames"] += scene.num_frames
        joints = scene.image_joints(np.arange(scene.num_frames))[:, :, _ANNOTATABLE]
        step = np.linalg.norm(np.diff(joints, axis=1), axis=-1)  # (P, T-1, 15) px per frame
        for p, person in enumerate(scene.people):
            kind = "fast" if person.is_fast else "slow"
            self.counts[f"{kind}_people"] += 1
            self.displacement_sum[kind] += float(step[p].sum())
            self.displacement_n[kind] += step[p].size
        occluded, outside = (m[:, labeled][..., _ANNOTATABLE] for m in scene.visibility())
        annotated = (~(occluded | outside)).any(axis=-1, keepdims=True)  # (P, L, 1)
        self.joint_slots += int(annotated.sum()) * len(_ANNOTATABLE)
        self.occluded += int((occluded & annotated).sum())
        self.out_of_frame += int((outside & annotated).sum())

    def add_degraded(self, prefix: str, entries: list[DegradedEntry], annotated: np.ndarray,
                     labeled: np.ndarray | None) -> None:
        """Count degraded person-frames per kind; on PoseTrack (``labeled`` (T,) given) also the joint share.

        ``annotated`` is the (P, T, K) bool mask of annotated joints, people in track-id order.
        """
        for e in entries:
            self.counts[f"{prefix}degraded_{e.kind}"] += 1
        if labeled is None:
            return
        self.annotated_joints += int(annotated[:, labeled].sum())
        hit = np.zeros_like(annotated)  # track ids are 0..P-1, so they index people in track order
        for e in entries:
            hit[e.track_id, e.frame_index, list(e.joints)] = True
        self.degraded_joints += int((hit & annotated)[:, labeled].sum())

    def summary(self) -> dict[str, Any]:
        """Counts plus mean joint displacement (slow / fast people) and invisible fractions."""
        slots = max(self.joint_slots, 1)
        mean = {k: round(self.displacement_sum[k] / max(self.displacement_n[k], 1), 3)
                for k in ("slow", "fast")}
        out = {
            **dict(sorted(self.counts.items())),
            "mean_displacement_slow_px": mean["slow"],
            "mean_displacement_fast_px": mean["fast"],
            "invisible_fraction": round((self.occluded + self.out_of_frame) / slots, 4),
            "occluded_fraction": round(self.occluded / slots, 4),
            "out_of_frame_fraction": round(self.out_of_frame / slots, 4),
        }
        if self.degradation:
            out["degraded_joint_fraction"] = round(self.degraded_joints / max(self.annotated_joints, 1), 4)
        return out


# ------------------------------------------------------------------------------------------
# PoseTrack18 writer
# ------------------------------------------------------------------------------------------


def posetrack_video_name(number: int) -> str:
    """PoseTrack-style folder name that poseval can parse, e.g. ``000001_mpii_synthetic``."""
    return f"{number:06d}_mpii_synthetic"


def _posetrack_image_id(number: int, frame: int) -> int:
    # PoseTrack18 id layout TSSSSSSFFFF with T = 1 for the "mpii" sequence type.
    return 10_000_000_000 + number * 10_000 + frame


def _categories() -> list[dict[str, Any]]:
    skeleton = [list(edge) for edge in _PT18_SKELETON]
    return [{"supercategory": "person", "id": 1, "name": "person",
             "keypoints": list(POSETRACK.joint_names), "skeleton": skeleton}]


def _round(values: np.ndarray, digits: int = 2) -> list[float]:
    return [round(float(v), digits) for v in values]


def _person_box(points: np.ndarray, body_size: float) -> np.ndarray:
    """(N, 2) points -> (4,) [x, y, w, h]: their extent grown 30 % (as real PT18), >= 0.2 body."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    size = np.maximum((hi - lo) * 1.3, 0.2 * body_size)
    return np.concatenate([0.5 * (lo + hi) - size / 2, size])


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, separators=(",", ":")))


def _image_record(scene: VideoScene, number: int, frame: int, file_name: str,
                  labeled: bool) -> dict[str, Any]:
    image_id = _posetrack_image_id(number, frame)
    return {
        "id": image_id, "vid_id": f"{number:06d}", "frame_id": image_id, "file_name": file_name,
        "is_labeled": labeled, "nframes": scene.num_frames, "width": scene.width,
        "height": scene.height, "ignore_regions_x": [], "ignore_regions_y": [],
    }


def _person_record(image_id: int, slot: int, person: PersonMotion, pose: np.ndarray,
                   visible: np.ndarray) -> dict[str, Any]:
    """One PT18 annotation: pose (17, 2) and visible (17,) bool -> dict."""
    # As in real PT18 files: visible joints are (x, y, 1), all others (0, 0, 0).
    keypoints = [v for k in range(17) for v in ((*_round(pose[k]), 1) if visible[k] else (0, 0, 0))]
    x1, y1, x2, y2 = head_box_xyxy(pose)
    return {
        "id": image_id * 100 + slot,  # PT18 annotation ids: image id * 100 + index in the frame
        "image_id": image_id, "track_id": person.track_id, "category_id": 1,
        "keypoints": keypoints, "num_keypoints": int(visible.sum()),
        "bbox": _round(_person_box(pose[visible], person.body_size)),
        "bbox_head": [round(x1), round(y1), round(x2 - x1), round(y2 - y1)],
        "scores": [], "iscrowd": False,
    }


def _video_meta(name: str, scene: VideoScene) -> dict[str, Any]:
    speed = scene.joint_speed()
    people = [{"track_id": person.track_id, "fast_limbs": list(person.fast_limbs),
               "body_size": round(person.body_size, 2),
               "joint_speed": np.round(speed[p], 2).tolist()}
              for p, person in enumerate(scene.people)]
    occluders = [{"first": o.first, "last": o.last,
                  "box_xyxy": _round(np.array([o.x0, o.y0, o.x1, o.y1]))} for o in scene.occluders]
    return {"video": name, "people": people, "occluders": occluders}


def _write_posetrack_video(root: Path, cfg: SyntheticConfig, split: str, index: int, number: int,
                           stats: _Stats) -> tuple[VideoScene, list[int], dict[str, Any]]:
    """Render and annotate one video; returns its scene, image ids and meta entry."""
    scene = sample_posetrack_scene(cfg, split, index)
    name = posetrack_video_name(number)
    (root / "images" / split / name).mkdir(parents=True, exist_ok=True)
    joints = scene.image_joints(np.arange(scene.num_frames))  # (P, T, 17, 2)
    occluded, outside = scene.visibility()
    visible = ~(occluded | outside)
    visible[..., list(POSETRACK.never_annotated)] = False
    every = 1 if split == "train" else cfg.val_label_every
    labeled = np.arange(scene.num_frames) % every == 0
    images, annotations = [], []
    for frame in range(scene.num_frames):
        file_name = f"images/{split}/{name}/{frame:06d}.jpg"
        cv2.imwrite(str(root / file_name), render_frame(scene, frame),
                    [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        images.append(_image_record(scene, number, frame, file_name, bool(labeled[frame])))
        if labeled[frame]:
            shown = [p for p in range(len(scene.people)) if visible[p, frame].any()]
            image_id = images[-1]["id"]
            annotations += [_person_record(image_id, slot, scene.people[p], joints[p, frame],
                                           visible[p, frame]) for slot, p in enumerate(shown)]
    _write_json(root / "annotations" / split / f"{name}.json",
                {"images": images, "annotations": annotations, "categories": _categories()})
    stats.add_video(scene, split, labeled)
    if cfg.degradation is not None:
        image_ids = [_posetrack_image_id(number, frame) for frame in range(scene.num_frames)]
        entries = _degraded_entries(scene, joints, visible, image_ids)
        write_degraded_file(root / "degraded" / split / f"{name}.json", name, POSETRACK.name,
                            scene.num_frames, entries)
        stats.add_degraded("", entries, _by_track(scene, visible), labeled)
    return scene, [im["id"] for im in images], _video_meta(name, scene)


def _by_track(scene: VideoScene, values: np.ndarray) -> np.ndarray:
    """(P, ...) per-person values in drawing order -> the same in track-id order."""
    return values[np.argsort([p.track_id for p in scene.people])]


def _degraded_entries(scene: VideoScene, joints: np.ndarray, annotated: np.ndarray,
                      image_ids: list[int] | None) -> list[DegradedEntry]:
    """Sidecar entries: per (frame, track, kind) the annotated joints ``(P, T, K)`` a degradation covers.

    ``joints`` (P, T, K, 2) are in the layout the sidecar names (PoseTrack slots or JHMDB joints);
    every person is checked, since a region degraded for one person also covers its neighbours.
    """
    hits: dict[tuple[int, int, str], set[int]] = {}
    for d in scene.degradations:
        covered = d.covers(joints[:, d.frame]) & annotated[:, d.frame]
        for p in np.flatnonzero(covered.any(axis=1)):
            key = (d.frame, scene.people[p].track_id, d.kind)
            hits.setdefault(key, set()).update(int(k) for k in np.flatnonzero(covered[p]))
    return [DegradedEntry(frame, track, kind, tuple(sorted(slots)),
                          None if image_ids is None else image_ids[frame])
            for (frame, track, kind), slots in sorted(hits.items())]


def _detections(cfg: SyntheticConfig, scene: VideoScene, image_ids: list[int],
                key: int) -> list[dict[str, Any]]:
    """Detector-style boxes on every frame: jittered body boxes with scores plus false positives."""
    rng = _scene_rng(cfg, 3, key)
    w, h = scene.width, scene.height
    joints = scene.image_joints(np.arange(scene.num_frames))[:, :, _ANNOTATABLE]
    occluded = scene.visibility()[0][..., _ANNOTATABLE]
    out = []

    def emit(image_id: int, box: np.ndarray, score: float) -> None:
        x0, y0 = np.clip(box[:2], 0, [w - 1, h - 1])
        x1, y1 = np.clip(box[:2] + box[2:], 0, [w - 1, h - 1])
        if x1 - x0 >= 2 and y1 - y0 >= 2:  # a detector box clipped to the frame
            out.append({"image_id": image_id, "category_id": 1, "score": round(float(score), 4),
                        "bbox": _round(np.array([x0, y0, x1 - x0, y1 - y0]))})

    for frame, image_id in enumerate(image_ids):
        for p, person in enumerate(scene.people):
            pts = joints[p, frame]
            inside = np.all((pts >= 0) & (pts <= [w - 1, h - 1]), axis=-1)
            if inside.sum() < 3 or rng.random() < cfg.det_miss_rate:
                continue
            box = _person_box(pts[inside], person.body_size)
            centre = box[:2] + box[2:] / 2 + rng.normal(0, cfg.det_jitter, 2) * box[2:]
            size = box[2:] * np.exp(rng.normal(0, cfg.det_jitter, 2))
            seen = float(inside.mean() - occluded[p, frame].mean())  # less visible, less confident
            score = np.clip(0.5 + 0.45 * seen + rng.normal(0, 0.05), 0.05, 0.999)
            emit(image_id, np.concatenate([centre - size / 2, size]), score)
        for _ in range(int(rng.poisson(cfg.det_false_positives))):
            size = rng.uniform(0.1, 0.5, 2) * h
            corner = rng.uniform([0, 0], [max(w - size[0], 1), max(h - size[1], 1)])
            emit(image_id, np.concatenate([corner, size]), rng.uniform(0.05, 0.6))
    return out


def _write_posetrack(root: Path, cfg: SyntheticConfig, stats: _Stats) -> dict[str, Any]:
    """All PoseTrack-twin videos (train numbered from 1, then val), their JSONs and val boxes."""
    meta: dict[str, Any] = {"train": [], "val": []}
    detections: list[dict[str, Any]] = []
    first = {"train": 1, "val": cfg.num_train_videos + 1}
    for split, count in (("train", cfg.num_train_videos), ("val", cfg.num_val_videos)):
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            number = first[split] + index
            scene, image_ids, video_meta = _write_posetrack_video(
                root, cfg, split, index, number, stats)
            meta[split].append(video_meta)
            if split == "val":
                detections += _detections(cfg, scene, image_ids, number)
    _write_json(root / "detections" / "val_boxes.json", detections)
    stats.counts["val_detections"] = len(detections)
    return meta


# ------------------------------------------------------------------------------------------
# Sub-JHMDB writer
# ------------------------------------------------------------------------------------------


def posetrack_to_jhmdb(joints: np.ndarray) -> np.ndarray:
    """(..., 17, 2) PoseTrack-slot joints -> (..., 15, 2) in JHMDB order.

    neck = head_bottom, face = nose, belly = a quarter of the way from mid-hip to
    mid-shoulder (where Sub-JHMDB's puppet puts it, just above the hips).
    """
    mid_hip = 0.5 * (joints[..., _L_HIP, :] + joints[..., _R_HIP, :])
    mid_shoulder = 0.5 * (joints[..., _L_SH, :] + joints[..., _R_SH, :])
    by_name = {"neck": joints[..., _HEAD_BOTTOM, :], "belly": 0.75 * mid_hip + 0.25 * mid_shoulder,
               "face": joints[..., _NOSE, :]}
    for slot, name in enumerate(POSETRACK.joint_names):
        by_name.setdefault(name, joints[..., slot, :])
    return np.stack([by_name[name] for name in JHMDB.joint_names], axis=-2)


def _jhmdb_clip_name(class_name: str, index: int) -> str:
    return f"{class_name}_clip{index:02d}"


def _write_jhmdb_clip(root: Path, cfg: SyntheticConfig, class_name: str,
                      index: int, stats: _Stats) -> dict[str, Any]:
    """Frames, joint_positions.mat and puppet_mask.mat of one clip; returns its meta entry."""
    clip = _jhmdb_clip_name(class_name, index)
    scene = sample_jhmdb_scene(cfg, class_name, index)
    frames_dir = root / "Rename_Images" / class_name / clip
    frames_dir.mkdir(parents=True)
    masks = np.zeros((scene.height, scene.width, scene.num_frames), np.uint8)
    for frame in range(scene.num_frames):
        cv2.imwrite(str(frames_dir / f"{frame + 1:05d}.png"), render_frame(scene, frame))
        masks[..., frame] = person_mask(scene, 0, frame)
    t = np.arange(scene.num_frames, dtype=np.float64)
    joints = posetrack_to_jhmdb(scene.image_joints(t)[0])  # (T, 15, 2)
    pos_img = joints.transpose(2, 1, 0) + 1.0  # (2, 15, T), Matlab 1-based pixels
    scale = np.full((1, scene.num_frames), scene.people[0].body_size / scene.height)
    w, h = float(scene.width), float(scene.height)
    pos_world = np.stack([(pos_img[0] / w - 0.5) * (w / h) / scale[0],
                          (pos_img[1] / h - 0.5) / scale[0]])
    view_rng = _scene_rng(cfg, 4, sorted(JHMDB_CLASSES).index(class_name), index)
    viewpoint = _VIEWPOINTS[int(view_rng.integers(len(_VIEWPOINTS)))]
    joints_file = root / "joint_positions" / class_name / clip / "joint_positions.mat"
    joints_file.parent.mkdir(parents=True)
    scipy.io.savemat(joints_file, {"pos_img": pos_img, "pos_world": pos_world, "scale": scale,
                                   "viewpoint": viewpoint})
    (root / "puppet_mask" / class_name / clip).mkdir(parents=True)
    scipy.io.savemat(root / "puppet_mask" / class_name / clip / "puppet_mask.mat",
                     {"part_mask": masks}, do_compression=True)
    if cfg.degradation is not None:
        annotated = np.ones(joints.shape[:2], dtype=bool)[None]  # Sub-JHMDB annotates every joint
        entries = _degraded_entries(scene, joints[None], annotated, None)
        write_degraded_file(jhmdb_sidecar_path(joints_file), clip, JHMDB.name, scene.num_frames, entries)
        stats.add_degraded("jhmdb_", entries, annotated, None)
    after, before = (posetrack_to_jhmdb(scene.image_joints(t + d)[0]) for d in (0.5, -0.5))
    return {"class": class_name, "fast_limbs": list(scene.people[0].fast_limbs),
            "joint_speed": np.round(np.linalg.norm(after - before, axis=-1), 2).tolist(),
            "occluders": len(scene.occluders)}


def _write_jhmdb(root: Path, cfg: SyntheticConfig, stats: _Stats) -> dict[str, Any]:
    """Every clip of every class, plus the three split lists per class."""
    meta: dict[str, Any] = {}
    (root / "sub_splits").mkdir(parents=True)
    for class_name in sorted(JHMDB_CLASSES):
        clips = [_jhmdb_clip_name(class_name, i) for i in range(cfg.jhmdb_clips_per_class)]
        for index, clip in enumerate(clips):
            meta[clip] = _write_jhmdb_clip(root, cfg, class_name, index, stats)
            stats.counts["jhmdb_clips"] += 1
            stats.counts["jhmdb_frames"] += cfg.jhmdb_num_frames
        for k in (1, 2, 3):
            # Clip i is a test clip (flag 2) in split (i mod 3) + 1 only, so the splits differ.
            lines = [f"{clip}.avi {2 if i % 3 == k - 1 else 1}" for i, clip in enumerate(clips)]
            split_file = root / "sub_splits" / f"{class_name}_test_split_{k}.txt"
            split_file.write_text("\n".join(lines) + "\n")
    return meta


# ------------------------------------------------------------------------------------------
# Cache and public entry points
# ------------------------------------------------------------------------------------------


def default_cache_root() -> Path:
    """``$VIDPOSE_CACHE`` if set, else ``~/.cache/vidpose``."""
    env = os.environ.get("VIDPOSE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidpose"


def _resolve(preset_or_config: str | SyntheticConfig, seed: int | None,
             degradation: dict[str, Any] | None = None) -> tuple[str, SyntheticConfig]:
    if isinstance(preset_or_config, SyntheticConfig):
        cfg = preset_or_config
        label = next((name for name, p in PRESETS.items() if p == cfg), "custom")
    elif isinstance(preset_or_config, str):
        if preset_or_config not in PRESETS:
            raise KeyError(
                f"unknown synthetic preset {preset_or_config!r}; known: {sorted(PRESETS)}")
        label, cfg = preset_or_config, PRESETS[preset_or_config]
    else:
        raise TypeError(
            f"expected a preset name or a SyntheticConfig, got {type(preset_or_config).__name__}")
    if seed is not None:
        cfg = dataclasses.replace(cfg, seed=int(seed))
    if degradation:
        # an ablation of the preset's degradations: a config of its own, cached under "custom"
        cfg = dataclasses.replace(cfg, degradation=degradation_config(degradation, cfg.degradation))
        label = next((name for name, p in PRESETS.items() if p == cfg), "custom")
    return label, cfg


def _dataset_dir(label: str, cfg: SyntheticConfig, cache_root: str | Path | None) -> Path:
    base = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    return base / "synthetic" / f"{label}-{cfg.digest()}"


def identity(preset_or_config: str | SyntheticConfig, seed: int | None = None,
             degradation: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a generated set is: ``{"preset", "digest", "generator_version"}`` (the cache key's parts)."""
    label, cfg = _resolve(preset_or_config, seed, degradation)
    return {"preset": label, "digest": cfg.digest(), "generator_version": GENERATOR_VERSION}


def dataset_dir(preset_or_config: str | SyntheticConfig, cache_root: str | Path | None = None,
                seed: int | None = None, degradation: dict[str, Any] | None = None) -> Path:
    """Where ``generate`` puts this configuration: ``<cache_root>/synthetic/<label>-<hash>``."""
    return _dataset_dir(*_resolve(preset_or_config, seed, degradation), cache_root)


def detections_path(root: str | Path) -> Path:
    """The val detector box file (COCO results JSON) of a generated dataset root."""
    return Path(root) / "posetrack18" / "detections" / "val_boxes.json"


def load_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of a generated root: config, generator version, counts and statistics."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a complete synthetic dataset (manifest.json missing)")
    return json.loads(path.read_text())


def _build_temp(final: Path, label: str, cfg: SyntheticConfig) -> Path:
    """Generate a complete dataset into a temporary sibling folder of ``final``; returns it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        stats = _Stats(degradation=cfg.degradation is not None)
        meta = {"posetrack18": _write_posetrack(tmp / "posetrack18", cfg, stats),
                "jhmdb": _write_jhmdb(tmp / "jhmdb", cfg, stats)}
        _write_json(tmp / "meta.json", meta)
        manifest = {"generator_version": GENERATOR_VERSION, "preset": label, "hash": cfg.digest(),
                    "config": cfg.as_dict(), "stats": stats.summary()}
        # The manifest is written last: its presence marks a complete dataset.
        _write_json(tmp / "manifest.json", manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def generate(preset_or_config: str | SyntheticConfig = "default",
             cache_root: str | Path | None = None, seed: int | None = None,
             force: bool = False, degradation: dict[str, Any] | None = None) -> Path:
    """Generate (or reuse from the cache) a synthetic dataset; returns its root.

    The root holds ``posetrack18/``, ``jhmdb/``, ``meta.json`` (per-person fast limbs and joint
    speeds, occluders) and ``manifest.json``. ``seed`` overrides the config's seed;
    ``degradation`` (``DegradationConfig`` field -> value) overrides its degradation parameters
    (turning them on with the defaults where the preset has none); ``force`` regenerates even
    when a complete cached copy exists. The data is written to a temporary folder and renamed
    into place, so an interrupted run never leaves a root that looks complete.
    """
    label, cfg = _resolve(preset_or_config, seed, degradation)
    final = _dataset_dir(label, cfg, cache_root)
    if (final / "manifest.json").is_file() and not force:
        return final
    tmp = _build_temp(final, label, cfg)
    if (final / "manifest.json").is_file() and not force:
        # another process finished the same data set while this one built it: keep theirs (it may
        # be in use already) and drop this copy
        shutil.rmtree(tmp, ignore_errors=True)
        return final
    if final.exists():
        # Replaced on force, or a folder without manifest (not made by us): move it aside first.
        trash = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        final.rename(trash)
        shutil.rmtree(trash)
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "manifest.json").is_file():
            raise
        # Another process renamed its identical copy into place first; use that one.
    return final


@DATASETS.register("synthetic")
def synthetic_posetrack(split: str, preset: str = "default", cache_root: str | None = None,
                        seed: int | None = None, degradation: dict[str, Any] | None = None,
                        **reader_options: Any) -> VideoPoseIndex:
    """Synthetic PoseTrack18 ``split`` (train/val): generated if needed, read by posetrack18."""
    root = generate(preset, cache_root, seed=seed, degradation=degradation)
    reader = DATASETS.get("posetrack18")
    return reader(root=str(root / "posetrack18"), split=split, **reader_options)


@DATASETS.register("synthetic_jhmdb")
def synthetic_jhmdb(split: str, preset: str = "default", cache_root: str | None = None,
                    seed: int | None = None, protocol: str = "split1",
                    degradation: dict[str, Any] | None = None,
                    **reader_options: Any) -> VideoPoseIndex:
    """Synthetic Sub-JHMDB ``split`` (train/test): generated if needed, read by raw jhmdb."""
    root = generate(preset, cache_root, seed=seed, degradation=degradation)
    return DATASETS.get("jhmdb")(root=str(root / "jhmdb"), split=split, protocol=protocol,
                                 layout_format="raw", **reader_options)
