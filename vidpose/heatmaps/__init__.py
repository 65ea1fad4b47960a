"""vidpose.heatmaps: the public, stable heatmap API (geometry, targets, decoding, flip test).

``__all__`` is the API and follows semantic versioning. Importing this package pulls in numpy
(and the pure-Python registry) only; torch is imported lazily by the torch paths. It never
imports torchvision, timm, hydra or vidpose.models.

- :class:`Geometry`: input size, stride and pixel-centre convention (``msra`` | ``udp``).
- :func:`gaussian_np` / :func:`gaussian`: standard targets, numpy reference / batched torch.
- :func:`motion_aware_np` / :func:`motion_aware`: MTPose motion-aware targets.
- :func:`decode`, :func:`flip_back`, :func:`merge_flip`, :func:`crop_to_image`: decoding.
- :class:`TargetGenerator`, :class:`GaussianTarget`, :class:`MotionAwareTarget`: the
  generators of registry ``TARGETS`` (``"gaussian"``, ``"motion_aware"``).
"""

from vidpose.heatmaps.decode import REFINEMENTS, crop_to_image, decode, default_blur_kernel, flip_back, merge_flip
from vidpose.heatmaps.gaussian import SUPPORT_RTOL, gaussian, gaussian_np, support_radius
from vidpose.heatmaps.geometry import CONVENTIONS, Geometry, apply_affine, box_to_center_scale, invert_affine
from vidpose.heatmaps.motion_aware import (
    MISSING_MOTION,
    MOTION_VARIANTS,
    motion_aware,
    motion_aware_np,
    motion_sigmas,
)
from vidpose.heatmaps.targets import GaussianTarget, MotionAwareTarget, TargetGenerator

__all__ = [
    "CONVENTIONS",
    "Geometry",
    "apply_affine",
    "box_to_center_scale",
    "invert_affine",
    "SUPPORT_RTOL",
    "gaussian_np",
    "gaussian",
    "support_radius",
    "MOTION_VARIANTS",
    "MISSING_MOTION",
    "motion_sigmas",
    "motion_aware_np",
    "motion_aware",
    "REFINEMENTS",
    "decode",
    "default_blur_kernel",
    "flip_back",
    "merge_flip",
    "crop_to_image",
    "TargetGenerator",
    "GaussianTarget",
    "MotionAwareTarget",
]
