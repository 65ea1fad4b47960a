"""Single-frame degradations of one person, drawn by the synthetic generator's ``degraded`` preset.

Independently per frame and per person, with probability ``DegradationConfig.probability``, one
kind (uniformly among ``kinds``) hits the person in that frame only, so its neighbours are usually
clean. Each kind destroys what a single frame tells about the joints under it:

- ``defocus``: the person's region Gaussian-blurred with a std of 10-16 % of the body size,
  several limb widths, so limb edges and ends dissolve;
- ``noise``: low-light sensor noise on the person's region: contrast cut to ``noise_contrast``
  and colour noise of 60-90 grey levels whose grain is about a limb's width, so averaging
  along a limb does not recover it;
- ``occluder``: a striped rectangle of 30-50 % of the body size in front of some joints for this
  one frame; the covered joint's position inside it is uniform, so the rectangle does not point
  at it;
- ``motion_burst``: a linear smear of 20-35 % of the body size in a random direction (camera
  shake during one exposure); the true position lies at a uniform point of the streak, so the
  streak's centre does not give it.

Sizes are fractions of the person's body size (head top to ankles). The region of the first,
second and fourth kinds is the box of the person's joints, padded on each side by a random
``region_pad`` (so its border does not trace the pose) and blended in over ``feather`` from the
border inwards; a joint (of any person) counts as degraded where that blend weight reaches 0.5.
Points are ``(x, y)`` image pixels, 0-based, pixel centres at integers; boxes ``[x0, y0, x1, y1]``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from vidpose.data.degraded import KINDS

__all__ = [
    "Defocus",
    "Degradation",
    "DegradationConfig",
    "MotionBurst",
    "SensorNoise",
    "TransientOccluder",
    "apply_degradation",
    "degradation_config",
    "sample_degradations",
]

_RANGES = ("defocus_sigma", "noise_std", "occluder_size", "burst_length", "region_pad")
_SHIFT = 4  # OpenCV sub-pixel bits for the smear kernel's line


def _fix(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * (1 << _SHIFT))), int(round(float(p[1]) * (1 << _SHIFT)))


@dataclass(frozen=True)
class DegradationConfig:
    """Parameters of the per-frame degradations; lengths are fractions of the body size."""

    probability: float = 0.25  # chance per frame and person of a degradation
    kinds: tuple[str, ...] = KINDS  # drawn uniformly; a subset ablates the others
    defocus_sigma: tuple[float, float] = (0.10, 0.16)  # Gaussian std
    noise_std: tuple[float, float] = (60.0, 90.0)  # grey levels
    noise_grain: float = 0.04  # std of the Gaussian that correlates the noise (limbs: 0.045-0.075 wide)
    noise_contrast: float = 0.3  # contrast kept under the noise
    occluder_size: tuple[float, float] = (0.3, 0.5)  # side lengths
    burst_length: tuple[float, float] = (0.2, 0.35)  # streak length
    region_pad: tuple[float, float] = (0.1, 0.3)  # padding of the region around the joints, per side
    feather: float = 0.05  # width of the region's soft border

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(str(k) for k in self.kinds))
        for name in _RANGES:
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"DegradationConfig.{name} must be a range (lo, hi) with 0 <= lo <= hi")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"DegradationConfig.probability must lie in [0, 1], got {self.probability!r}")
        if not self.kinds or any(k not in KINDS for k in self.kinds) or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"DegradationConfig.kinds must be distinct names from {list(KINDS)}, got {self.kinds!r}")
        if not 0.0 <= self.noise_contrast <= 1.0:
            raise ValueError(f"DegradationConfig.noise_contrast must lie in [0, 1], got {self.noise_contrast!r}")
        if self.region_pad[0] < self.feather:
            # the person's own joints must lie where the blend weight is 1
            raise ValueError("DegradationConfig.region_pad must start at or above feather")
        for name in ("noise_grain", "feather"):
            if getattr(self, name) < 0:
                raise ValueError(f"DegradationConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Defocus:
    """Gaussian blur of std ``sigma`` pixels."""

    kind: ClassVar[str] = "defocus"
    sigma: float

    def margin(self) -> int:
        """Pixels outside the region the filter reads."""
        return int(math.ceil(3 * self.sigma))

    def filtered(self, crop: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 -> the blurred crop."""
        return cv2.GaussianBlur(crop, (0, 0), self.sigma, borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class SensorNoise:
    """Contrast cut to ``contrast`` around the crop's mean colour plus correlated noise of std ``std``."""

    kind: ClassVar[str] = "noise"
    std: float
    grain: float  # pixels
    contrast: float
    seed: int

    def margin(self) -> int:
        """Pixels outside the region the filter reads."""
        return 0

    def filtered(self, crop: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 -> the noisy crop."""
        rng = np.random.default_rng(self.seed)
        noise = rng.standard_normal(crop.shape, dtype=np.float32)
        if self.grain > 0:
            noise = cv2.GaussianBlur(noise, (0, 0), self.grain, borderType=cv2.BORDER_REFLECT)
        noise *= np.float32(self.std) / max(float(noise.std()), 1e-6)
        mean = crop.mean(axis=(0, 1), dtype=np.float32)
        return mean + np.float32(self.contrast) * (crop - mean) + noise


@dataclass(frozen=True)
class MotionBurst:
    """Linear smear of ``length`` pixels along ``angle``; the true point sits ``offset`` of the way along it."""

    kind: ClassVar[str] = "motion_burst"
    length: float
    angle: float  # radians, 0 = +x, pi/2 = +y
    offset: float  # in [0, 1]

    def margin(self) -> int:
        """Pixels outside the region the filter reads."""
        return int(math.ceil(self.length)) + 1

    def kernel(self) -> np.ndarray:
        """(2R+1, 2R+1) float32 correlation kernel summing to 1."""
        r = self.margin()
        kernel = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
        d = np.array([math.cos(self.angle), math.sin(self.angle)])
        # the object sits at p + s*d for s in [-offset*L, (1-offset)*L] during the exposure, so
        # pixel x averages src(x - s*d): a correlation kernel from +offset*L*d to -(1-offset)*L*d
        a = r + self.offset * self.length * d
        b = r - (1.0 - self.offset) * self.length * d
        cv2.line(kernel, _fix(a), _fix(b), 1.0, 1, cv2.LINE_AA, _SHIFT)
        return kernel / kernel.sum()

    def filtered(self, crop: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 -> the smeared crop."""
        return cv2.filter2D(crop, -1, self.kernel(), borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class TransientOccluder:
    """Opaque stripes of two colours (BGR) with period ``period`` pixels along ``angle``."""

    kind: ClassVar[str] = "occluder"
    colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    period: float
    angle: float

    def margin(self) -> int:
        """Pixels outside the region the filter reads."""
        return 0

    def filtered(self, crop: np.ndarray) -> np.ndarray:
        """(h, w, 3) float32 -> the occluder's texture (the crop is hidden)."""
        yy, xx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]].astype(np.float32)
        proj = xx * math.cos(self.angle) + yy * math.sin(self.angle)
        mix = (0.5 + 0.5 * np.sin(2 * np.pi * proj / self.period))[..., None]
        a, b = (np.array(c, np.float32) for c in self.colours)
        return a * (1 - mix) + b * mix


Effect = Defocus | SensorNoise | MotionBurst | TransientOccluder


@dataclass(frozen=True)
class Degradation:
    """One effect on frame ``frame``, aimed at person ``person`` (index into the scene's people)."""

    frame: int
    person: int
    box: tuple[float, float, float, float]  # [x0, y0, x1, y1] image pixels
    feather: float  # pixels; 0 = hard edge
    effect: Effect

    @property
    def kind(self) -> str:
        """The effect's kind name (one of ``KINDS``)."""
        return self.effect.kind

    def covers(self, joints: np.ndarray) -> np.ndarray:
        """(..., K, 2) image-pixel joints -> (..., K) bool: where the blend weight is at least 0.5."""
        m = 0.5 * self.feather
        x0, y0, x1, y1 = self.box
        x, y = joints[..., 0], joints[..., 1]
        return (x >= x0 + m) & (x <= x1 - m) & (y >= y0 + m) & (y <= y1 - m)


def _blend_weight(box: tuple[float, float, float, float], feather: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(len(ys), len(xs)) float32: 0 at the box border rising linearly to 1 at ``feather`` inside."""
    if feather <= 0:
        return np.ones((len(ys), len(xs)), np.float32)
    x0, y0, x1, y1 = box
    wx = np.clip(np.minimum(xs - x0, x1 - xs) / feather, 0, 1)
    wy = np.clip(np.minimum(ys - y0, y1 - ys) / feather, 0, 1)
    return np.minimum(wy[:, None], wx[None, :]).astype(np.float32)


def apply_degradation(image: np.ndarray, degradation: Degradation) -> None:
    """Draw ``degradation`` into ``image`` (H, W, 3) float32 in place; pixels outside its box stay."""
    h, w = image.shape[:2]
    bx0, by0, bx1, by1 = degradation.box
    x0, y0 = max(0, math.ceil(bx0)), max(0, math.ceil(by0))
    x1, y1 = min(w, math.floor(bx1) + 1), min(h, math.floor(by1) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    margin = degradation.effect.margin()
    cx0, cy0 = max(0, x0 - margin), max(0, y0 - margin)
    cx1, cy1 = min(w, x1 + margin), min(h, y1 + margin)
    out = degradation.effect.filtered(image[cy0:cy1, cx0:cx1].copy())[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
    weight = _blend_weight(degradation.box, degradation.feather, np.arange(x0, x1), np.arange(y0, y1))
    roi = image[y0:y1, x0:x1]
    roi += weight[..., None] * (out - roi)


def _sample_effect(
    rng: np.random.Generator, cfg: DegradationConfig, kind: str, body: float, frame_height: int
) -> Effect:
    if kind == "defocus":
        return Defocus(float(rng.uniform(*cfg.defocus_sigma) * body))
    if kind == "noise":
        return SensorNoise(float(rng.uniform(*cfg.noise_std)), cfg.noise_grain * body, cfg.noise_contrast,
                           int(rng.integers(2**31)))
    if kind == "motion_burst":
        return MotionBurst(float(rng.uniform(*cfg.burst_length) * body), float(rng.uniform(0, 2 * np.pi)),
                           float(rng.uniform(0, 1)))
    colours = tuple(tuple(float(c) for c in rng.uniform(20, 235, 3)) for _ in range(2))
    return TransientOccluder(colours, float(rng.uniform(0.02, 0.08) * frame_height), float(rng.uniform(0, np.pi)))


def sample_degradations(
    rng: np.random.Generator,
    cfg: DegradationConfig,
    joints: np.ndarray,
    body_sizes: np.ndarray,
    width: int,
    height: int,
) -> list[Degradation]:
    """Degradations of a video from its joints ``(P, T, K, 2)`` (image pixels) and body sizes ``(P,)`` (pixels).

    A person with no joint inside the frame is never degraded (there is nothing of it to hide).
    """
    num_people, num_frames = joints.shape[:2]
    limit = np.array([width - 1, height - 1])
    out = []
    for frame in range(num_frames):
        for person in range(num_people):
            if rng.random() >= cfg.probability:
                continue
            pts = joints[person, frame]
            inside = pts[np.all((pts >= 0) & (pts <= limit), axis=-1)]
            if not len(inside):
                continue
            body = float(body_sizes[person])
            kind = cfg.kinds[int(rng.integers(len(cfg.kinds)))]
            effect = _sample_effect(rng, cfg, kind, body, height)
            if kind == "occluder":
                side = rng.uniform(*cfg.occluder_size, 2) * body
                centre = inside[int(rng.integers(len(inside)))] + rng.uniform(-0.35, 0.35, 2) * side
                box = np.concatenate([centre - side / 2, centre + side / 2])
                feather = 0.0
            else:
                pad = rng.uniform(*cfg.region_pad, 4) * body
                box = np.concatenate([pts.min(axis=0) - pad[:2], pts.max(axis=0) + pad[2:]])
                feather = cfg.feather * body
            out.append(Degradation(frame, person, tuple(float(v) for v in box), feather, effect))
    return out


def degradation_config(overrides: dict | None, base: DegradationConfig | None) -> DegradationConfig:
    """``base`` (or the defaults) with ``overrides`` (field -> value) applied; unknown fields are an error."""
    base = base or DegradationConfig()
    if not overrides:
        return base
    known = {f.name for f in dataclasses.fields(DegradationConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"degradation: unknown parameters {unknown}; known: {sorted(known)}")
    return dataclasses.replace(base, **overrides)
