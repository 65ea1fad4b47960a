"""One augmentation shared by all T frames of a clip: box crop, half-body, scale, rotation, flip, colour.

Every frame of a clip is warped with the SAME affine (the key frame's box), so the motion between
frames survives augmentation. The random draws follow DCPose (``specs/models.md`` §0.4):

- scale: the crop size is multiplied by ``clip(N(0,1) * scale_factor + 1, 1 - scale_factor,
  1 + scale_factor)`` (0.35 -> [0.65, 1.35]);
- rotation: with probability ``rotation_prob`` (0.6) the angle is ``clip(N(0,1) * rotation,
  -rotation_clip, rotation_clip)`` degrees, else 0. DCPose clips at twice the spread (±90);
  vidpose's default clips at ±45 as the issue asks — pass ``rotation_clip=90`` for DCPose's;
- flip with probability ``flip_prob`` (0.5): the crop's columns are mirrored (``x -> W-1-x``) and
  left/right joint slots swapped (keypoints and visibility);
- half-body with probability ``half_body_prob`` (0.3) when MORE than ``half_body_min_joints`` (8)
  joints of the key frame are visible: pick the upper body with probability
  ``half_body_upper_prob`` if it has more than 2 visible joints, else the lower body if it has
  more than 2, else the upper; the crop is centred on the MEAN of the chosen joints, sized to
  their bounding box grown to the input aspect ratio and multiplied by ``half_body_padding``
  (1.5, instead of the usual 1.25). DCPose/HRNet choose the upper body when ``randn() < 0.5``,
  i.e. with probability Φ(0.5) ≈ 0.69; mmpose 1.x names it ``upper_prioritized_prob=0.7``,
  which is the default here. Scale, rotation and flip are applied after half-body, as in DCPose;
- colour jitter (off by default): brightness, contrast and saturation factors drawn from
  ``[1 - colour_jitter, 1 + colour_jitter]``, one set for the whole clip.

Joints whose crop position falls outside ``[-0.5, W-0.5] x [-0.5, H-0.5]`` (the crop's pixel
area) become invisible, in every frame, but stay *annotated*: they keep their (out-of-crop)
input-pixel coordinates and ``annotated = 1``, because a neighbour frame's joint that left the
crop still tells how fast the key joint moves (MTPose's motion-aware target). Unannotated
joints carry coordinates ``(0, 0)``.

A :class:`SecondView` (CDPose's spatial-consistency loss) re-renders one frame with the clip's
crop turned by an extra uniform rotation and magnified by an extra uniform scale about the crop
centre: the same centre and flip, rotation ``+ r``, crop size ``/ s``, through the same
:meth:`ClipTransform.affine` (``Geometry.crop_affine``) and warp as the clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from vidpose.data.frames import decoded_to_image_affine
from vidpose.data.keypoints import KeypointLayout
from vidpose.heatmaps.geometry import Geometry, apply_affine, box_to_center_scale

__all__ = ["AugmentParams", "ClipTransform", "SecondView", "half_body_box"]

_GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


@dataclass(frozen=True)
class AugmentParams:
    """The one augmentation of a clip: crop centre/size in image pixels, rotation, flip, colour."""

    center: np.ndarray  # (2,) image pixels
    size: np.ndarray  # (2,) crop (w, h) in image pixels, enlarged and aspect-corrected
    rotation: float = 0.0  # degrees, counter-clockwise on screen
    flip: bool = False
    colour: tuple[float, float, float] | None = None  # brightness, contrast, saturation factors
    half_body: str | None = None  # "upper" / "lower" when the box was rebuilt from half the joints


@dataclass(frozen=True)
class SecondView:
    """Extra rotation (uniform in ``[-rotation, rotation]`` degrees) and scale (uniform in ``scale``) for a second view."""

    rotation: float = 30.0
    scale: tuple[float, float] = (0.75, 1.25)  # content magnification: the crop size is divided by it

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.scale)
        object.__setattr__(self, "rotation", float(self.rotation))
        object.__setattr__(self, "scale", (lo, hi))
        if not self.rotation >= 0:
            raise ValueError(f"second_view.rotation must be >= 0 degrees, got {self.rotation}")
        if not 0 < lo <= hi:
            raise ValueError(f"second_view.scale must be [lo, hi] with 0 < lo <= hi, got {list(self.scale)}")

    def sample(self, rng: np.random.Generator, params: AugmentParams) -> AugmentParams:
        """``params`` turned by a random extra rotation and magnified by a random extra scale (same centre, flip, colour)."""
        extra_rotation = float(rng.uniform(-self.rotation, self.rotation))
        extra_scale = float(rng.uniform(*self.scale))
        return replace(params, rotation=params.rotation + extra_rotation, size=np.asarray(params.size) / extra_scale)


def half_body_box(
    keypoints: np.ndarray,
    visible: np.ndarray,
    layout: KeypointLayout,
    aspect_ratio: float,
    choose_upper: bool,
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Centre (2,), size (2,) and name of the half-body crop of keypoints ``(K, 2)``; None when too few joints."""
    shown = np.asarray(visible) > 0
    upper = [i for i in layout.upper_body if shown[i]]
    lower = [i for i in layout.lower_body if shown[i]]
    if choose_upper and len(upper) > 2:
        joints, name = upper, "upper"
    elif len(lower) > 2:
        joints, name = lower, "lower"
    else:
        joints, name = upper, "upper"
    if len(joints) < 2:
        return None
    points = np.asarray(keypoints, dtype=np.float64)[joints]
    width, height = points.max(axis=0) - points.min(axis=0)
    # DCPose's aspect rule; written out because box_to_center_scale rejects the zero height
    # of a row of joints, which this rule turns into a valid box.
    if width > aspect_ratio * height:
        height = width / aspect_ratio
    elif width < aspect_ratio * height:
        width = height * aspect_ratio
    if width <= 0:
        return None  # all chosen joints at one point
    return points.mean(axis=0), np.array([width, height]) * padding, name


class ClipTransform:
    """Samples one augmentation per clip (``train``) or none (eval) and warps all T frames with it."""

    def __init__(
        self,
        geometry: Geometry,
        layout: KeypointLayout,
        train: bool,
        enlarge: float = 1.25,
        rotation: float = 45.0,
        rotation_prob: float = 0.6,
        rotation_clip: float = 45.0,
        scale_factor: float = 0.35,
        flip_prob: float = 0.5,
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
        half_body_upper_prob: float = 0.7,
        half_body_padding: float = 1.5,
        colour_jitter: float = 0.0,
    ) -> None:
        for name, p in (
            ("rotation_prob", rotation_prob),
            ("flip_prob", flip_prob),
            ("half_body_prob", half_body_prob),
            ("half_body_upper_prob", half_body_upper_prob),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"ClipTransform: {name} must be a probability in [0, 1], got {p}")
        if not 0.0 <= scale_factor < 1.0:
            raise ValueError(f"ClipTransform: scale_factor must be in [0, 1), got {scale_factor}")
        if not 0.0 <= colour_jitter < 1.0:
            raise ValueError(f"ClipTransform: colour_jitter must be in [0, 1), got {colour_jitter}")
        if enlarge <= 0 or half_body_padding <= 0:
            raise ValueError(
                f"ClipTransform: enlarge ({enlarge}) and half_body_padding ({half_body_padding}) must be > 0"
            )
        if rotation < 0 or rotation_clip < 0:
            raise ValueError(f"ClipTransform: rotation ({rotation}) and rotation_clip ({rotation_clip}) must be >= 0")
        self.geometry = geometry
        self.layout = layout
        self.train = bool(train)
        self.enlarge = float(enlarge)
        self.rotation = float(rotation)
        self.rotation_prob = float(rotation_prob)
        self.rotation_clip = float(rotation_clip)
        self.scale_factor = float(scale_factor)
        self.flip_prob = float(flip_prob)
        self.half_body_prob = float(half_body_prob)
        self.half_body_min_joints = int(half_body_min_joints)
        self.half_body_upper_prob = float(half_body_upper_prob)
        self.half_body_padding = float(half_body_padding)
        self.colour_jitter = float(colour_jitter)

    def sample(
        self, rng: np.random.Generator, key_box_xywh: np.ndarray, key_keypoints: np.ndarray, key_visible: np.ndarray
    ) -> AugmentParams:
        """Draw the clip's augmentation from the key frame's box ``(4,)``, keypoints ``(K, 2)``, visibility ``(K,)``."""
        center, size = box_to_center_scale(key_box_xywh, self.geometry.aspect_ratio, self.enlarge)
        if not self.train:
            return AugmentParams(center, size)
        # A fixed number of draws whatever the branches, so changing one probability leaves
        # the other draws of the same sample unchanged.
        gate_half, pick_upper, gate_rotation, gate_flip = rng.random(4)
        normal_scale, normal_rotation = rng.standard_normal(2)
        colour_draws = rng.random(3)

        half_body = None
        visible = np.asarray(key_visible)
        if int((visible > 0).sum()) > self.half_body_min_joints and gate_half < self.half_body_prob:
            half = half_body_box(
                key_keypoints,
                visible,
                self.layout,
                self.geometry.aspect_ratio,
                choose_upper=bool(pick_upper < self.half_body_upper_prob),
                padding=self.half_body_padding,
            )
            if half is not None:
                center, size, half_body = half

        sf = self.scale_factor
        size = size * float(np.clip(normal_scale * sf + 1.0, 1.0 - sf, 1.0 + sf))
        rotation = 0.0
        if gate_rotation < self.rotation_prob:
            rotation = float(np.clip(normal_rotation * self.rotation, -self.rotation_clip, self.rotation_clip))
        colour = None
        if self.colour_jitter > 0:
            low, high = 1.0 - self.colour_jitter, 1.0 + self.colour_jitter
            colour = tuple(float(v) for v in low + colour_draws * (high - low))
        return AugmentParams(center, size, rotation, bool(gate_flip < self.flip_prob), colour, half_body)

    def affine(self, params: AugmentParams) -> np.ndarray:
        """(2, 3) affine taking image pixels to input pixels for ``params``."""
        return self.geometry.crop_affine(params.center, params.size, params.rotation, params.flip)

    def max_downscale(self, params: AugmentParams) -> float:
        """Image pixels per input pixel on the finest axis: decoding this much smaller loses no input detail."""
        input_per_image = float(np.linalg.svd(self.affine(params)[:, :2], compute_uv=False).max())
        return 1.0 / input_per_image

    def apply(
        self,
        frames: list[np.ndarray],
        keypoints: np.ndarray,
        visible: np.ndarray,
        params: AugmentParams,
        frame_factors: list[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Warp T frames ``(H_i, W_i, 3) uint8`` and keypoints ``(T, K, 2)`` / visibility ``(T, K)`` with one affine.

        Returns crops ``(T, H, W, 3) uint8``, keypoints ``(T, K, 2) float32`` in input pixels
        (kept for annotated joints outside the crop, ``(0, 0)`` for unannotated ones), visibility
        ``(T, K) float32`` (annotated and inside the crop), the image -> input affine ``(2, 3)``
        and ``annotated (T, K) float32`` (the input visibility, flip-permuted).
        ``frame_factors[t]`` is the reduction factor frame ``t`` was decoded at (1 = full
        resolution); keypoints are always in full-resolution image pixels.
        """
        num_frames = len(frames)
        num_joints = self.layout.num_joints
        keypoints = np.asarray(keypoints, dtype=np.float64)
        visible = np.asarray(visible, dtype=np.float32)
        if keypoints.shape != (num_frames, num_joints, 2) or visible.shape != (num_frames, num_joints):
            raise ValueError(
                f"expected keypoints ({num_frames}, {num_joints}, 2) and visible ({num_frames}, {num_joints}) "
                f"for {num_frames} frames of layout {self.layout.name!r}; got {keypoints.shape} and {visible.shape}"
            )
        factors = [1] * num_frames if frame_factors is None else list(frame_factors)
        if len(factors) != num_frames:
            raise ValueError(f"got {len(factors)} frame_factors for {num_frames} frames")
        bad = (visible > 0) & ~np.isfinite(keypoints).all(axis=-1)
        if bad.any():
            t, k = np.argwhere(bad)[0]
            raise ValueError(
                f"visible joint {self.layout.joint_names[k]!r} of clip frame {t} has a non-finite coordinate"
            )

        affine = self.affine(params)
        height, width = self.geometry.input_hw
        crops = np.empty((num_frames, height, width, 3), dtype=np.uint8)
        for t, (frame, factor) in enumerate(zip(frames, factors)):
            crops[t] = self._warp(frame, affine, factor, f"clip frame {t}")

        out = apply_affine(affine, np.where(visible[..., None] > 0, keypoints, 0.0))
        if params.flip:
            permutation = self.layout.flip_permutation()
            out, visible = out[:, permutation], visible[:, permutation]
        inside = (
            (out[..., 0] >= -0.5) & (out[..., 0] <= width - 0.5) & (out[..., 1] >= -0.5) & (out[..., 1] <= height - 0.5)
        )
        annotated = (visible > 0).astype(np.float32)
        visible = np.where(inside, visible, 0.0).astype(np.float32)
        out[annotated <= 0] = 0.0
        if params.colour is not None:
            crops = _colour_jitter(crops, params.colour)
        return crops, out.astype(np.float32), visible, affine, annotated

    def render(self, frame: np.ndarray, params: AugmentParams, factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """One image ``(H_i, W_i, 3) uint8`` cropped with ``params`` -> crop ``(H, W, 3) uint8`` and its affine ``(2, 3)``.

        The single-image twin of :meth:`apply` (same affine, warp and colour jitter), used for
        the second view; ``factor`` is the reduction the image was decoded at.
        """
        affine = self.affine(params)
        crop = self._warp(frame, affine, factor, "second-view frame")
        if params.colour is not None:
            crop = _colour_jitter(crop[None], params.colour)[0]
        return crop, affine

    def _warp(self, frame: np.ndarray, affine: np.ndarray, factor: int, what: str) -> np.ndarray:
        """Warp an image decoded at reduction ``factor`` with the image -> input ``affine`` -> ``(H, W, 3) uint8``."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{what}: expected an (H, W, 3) uint8 image, got {frame.dtype} {frame.shape}")
        matrix = affine
        if factor != 1:
            matrix = affine @ np.vstack([decoded_to_image_affine(factor), [0.0, 0.0, 1.0]])
        height, width = self.geometry.input_hw
        return cv2.warpAffine(
            frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )


def _colour_jitter(crops: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """Brightness, contrast and saturation on crops ``(T, H, W, 3) uint8``: one pixel-wise map for the clip."""
    brightness, contrast, saturation = factors
    values = crops.astype(np.float32) * brightness
    # One grey mean over the whole clip, so every frame gets the same map.
    mean = float((values @ _GREY_WEIGHTS).mean())
    values = (values - mean) * contrast + mean
    grey = (values @ _GREY_WEIGHTS)[..., None]
    values = (values - grey) * saturation + grey
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
