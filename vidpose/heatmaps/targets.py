"""Target generators (registry ``TARGETS``): batched torch targets from clip keypoints, on their device.

A generator is built from its config node with the runtime ``geometry`` injected::

    TARGETS.build({"name": "motion_aware", "sigma0": 3.0}, geometry=geo)

and called on a collated batch: ``gen(keypoints (B, T, K, 2), visible (B, T, K), clamped (B, T),
key_index, names=head.targets, annotated=(B, T, K))``; ``annotated`` (default: ``visible``) marks
joints whose coordinates are known even where they left the crop. ``gen.outputs`` names what it can return; ``names`` selects
(and computes only) some of them. Keypoints are in input pixels after the clip's shared
augmentation (a flipped clip already has x mirrored and left/right slots swapped in every
frame), so the motion is the motion the network sees.

- ``gaussian`` (:class:`GaussianTarget`): ``heatmap (B, K, h, w)`` and ``weight (B, K)`` of the
  key frame; ``heatmap_all (B, T, K, h, w)`` and ``weight_all (B, T, K)`` of every frame.
- ``motion_aware`` (:class:`MotionAwareTarget`): MTPose's ``heatmap``/``weight`` (``H_o``),
  ``motion_prev``/``motion_next`` ``(B, K, h, w)`` and ``weight_prev``/``weight_next``
  ``(B, K)``, with the previous/next frames at ``key_index - 1``/``key_index + 1``.

torch is imported only when a generator is called.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from vidpose.heatmaps.gaussian import gaussian, torch_module
from vidpose.heatmaps.geometry import Geometry
from vidpose.heatmaps.motion_aware import check_motion_options, motion_aware
from vidpose.registry import TARGETS

if TYPE_CHECKING:
    import torch

__all__ = ["TargetGenerator", "GaussianTarget", "MotionAwareTarget"]


class TargetGenerator(ABC):
    """Turns clip keypoints into named target tensors; subclasses set ``outputs`` and implement ``generate``."""

    outputs: tuple[str, ...] = ()

    def __init__(self, geometry: Geometry) -> None:
        if not isinstance(geometry, Geometry):
            raise TypeError(
                f"{type(self).__name__}: geometry must be a vidpose.heatmaps.Geometry, got {geometry!r}"
            )
        self.geometry = geometry

    def __call__(
        self,
        keypoints: Any,
        visible: Any,
        clamped: Any,
        key_index: int,
        names: Collection[str] | None = None,
        joint_names: Sequence[str] | None = None,
        annotated: Any = None,
    ) -> dict[str, torch.Tensor]:
        """Targets of a batch: ``keypoints (B, T, K, 2)`` input px, ``visible (B, T, K)``, ``clamped (B, T)`` bool.

        Tensors stay on their device (numpy arrays are converted). ``names`` selects the targets
        to return (default: all of ``outputs``); ``joint_names`` (names or a ``KeypointLayout``)
        only improves error messages. ``annotated (B, T, K)`` (default ``visible``) marks joints
        whose coordinates are known, inside the crop or not (``visible`` implies annotated).
        """
        torch = torch_module()
        keypoints = torch.as_tensor(keypoints)
        if not keypoints.is_floating_point():
            keypoints = keypoints.to(torch.float32)
        visible = torch.as_tensor(visible, device=keypoints.device)
        clamped = torch.as_tensor(clamped, device=keypoints.device).bool()
        who = type(self).__name__
        if keypoints.ndim != 4 or keypoints.shape[-1] != 2:
            raise ValueError(f"{who}: keypoints must be (B, T, K, 2), got {tuple(keypoints.shape)}")
        batch, frames, joints = keypoints.shape[:3]
        if tuple(visible.shape) != (batch, frames, joints) or tuple(clamped.shape) != (batch, frames):
            raise ValueError(
                f"{who}: expected visible ({batch}, {frames}, {joints}) and clamped ({batch}, {frames}), "
                f"got {tuple(visible.shape)} and {tuple(clamped.shape)}"
            )
        if not 0 <= key_index < frames:
            raise ValueError(f"{who}: key_index {key_index} is outside the clip of {frames} frames")
        annotated = visible if annotated is None else torch.as_tensor(annotated, device=keypoints.device)
        if tuple(annotated.shape) != (batch, frames, joints):
            raise ValueError(f"{who}: expected annotated ({batch}, {frames}, {joints}), got {tuple(annotated.shape)}")
        if bool(((visible > 0) & ~(annotated > 0)).any()):
            raise ValueError(f"{who}: a visible joint is not annotated; annotated must include every visible joint")
        wanted = self.outputs if names is None else tuple(names)
        unknown = sorted(set(wanted) - set(self.outputs))
        if unknown:
            raise ValueError(f"{who}: unknown target(s) {unknown}; it produces {list(self.outputs)}")
        return self.generate(keypoints, visible, clamped, key_index, wanted, joint_names, annotated)

    @abstractmethod
    def generate(
        self,
        keypoints: torch.Tensor,
        visible: torch.Tensor,
        clamped: torch.Tensor,
        key_index: int,
        wanted: Sequence[str],
        joint_names: Sequence[str] | None,
        annotated: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Compute the ``wanted`` outputs from validated tensors (see :meth:`__call__`)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.geometry})"


@TARGETS.register("gaussian")
class GaussianTarget(TargetGenerator):
    """Standard Gaussian heatmaps of the key frame and, on demand, of every frame."""

    outputs = ("heatmap", "weight", "heatmap_all", "weight_all")

    def __init__(self, geometry: Geometry, sigma: float = 2.0) -> None:
        super().__init__(geometry)
        if not sigma > 0:
            raise ValueError(f"gaussian target: sigma must be > 0 heatmap px, got {sigma}")
        self.sigma = float(sigma)

    def generate(
        self,
        keypoints: torch.Tensor,
        visible: torch.Tensor,
        clamped: torch.Tensor,
        key_index: int,
        wanted: Sequence[str],
        joint_names: Sequence[str] | None,
        annotated: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Key-frame targets, plus all-frame ones when ``heatmap_all``/``weight_all`` are wanted."""
        batch, frames, joints = visible.shape
        out: dict[str, torch.Tensor] = {}
        if {"heatmap_all", "weight_all"} & set(wanted):
            heatmaps, weights = gaussian(
                keypoints.reshape(batch * frames, joints, 2),
                visible.reshape(batch * frames, joints),
                self.geometry,
                self.sigma,
                joint_names,
            )
            heatmaps = heatmaps.view(batch, frames, joints, *heatmaps.shape[-2:])
            weights = weights.view(batch, frames, joints)
            out.update(heatmap=heatmaps[:, key_index], weight=weights[:, key_index])
            out.update(heatmap_all=heatmaps, weight_all=weights)
        else:
            out["heatmap"], out["weight"] = gaussian(
                keypoints[:, key_index], visible[:, key_index], self.geometry, self.sigma, joint_names
            )
        return {name: out[name] for name in wanted}

    def __repr__(self) -> str:
        return f"GaussianTarget({self.geometry}, sigma={self.sigma})"


@TARGETS.register("motion_aware")
class MotionAwareTarget(TargetGenerator):
    """MTPose targets: ``H_o`` plus the two motion-aware maps of the key frame (see :mod:`.motion_aware`).

    ``last_oversized`` holds, after each call, the ``(B,)`` count of motion maps whose
    uncapped ``3 sigma_par`` exceeded ``max(h, w)`` (a device tensor; reading it syncs).
    """

    outputs = ("heatmap", "weight", "motion_prev", "motion_next", "weight_prev", "weight_next")

    def __init__(
        self,
        geometry: Geometry,
        sigma0: float = 3.0,
        delta: float = 3.0,
        sigma_min: float = 1.0,
        sigma_max: float | None = None,
        variant: str = "motion_aware",
        missing_motion: str = "standard",
    ) -> None:
        super().__init__(geometry)
        check_motion_options(sigma0, delta, sigma_min, sigma_max, variant, missing_motion)
        self.options = {
            "sigma0": float(sigma0),
            "delta": float(delta),
            "sigma_min": float(sigma_min),
            "sigma_max": None if sigma_max is None else float(sigma_max),
            "variant": variant,
            "missing_motion": missing_motion,
        }
        self.last_oversized: torch.Tensor | None = None

    def generate(
        self,
        keypoints: torch.Tensor,
        visible: torch.Tensor,
        clamped: torch.Tensor,
        key_index: int,
        wanted: Sequence[str],
        joint_names: Sequence[str] | None,
        annotated: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """All six maps/weights for the key frame and its neighbours ``key_index -/+ 1``."""
        out = motion_aware(
            keypoints, visible, self.geometry, key_index, clamped=clamped, joint_names=joint_names,
            annotated=annotated, **self.options
        )
        self.last_oversized = out["oversized"]
        return {name: out[name] for name in wanted}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"MotionAwareTarget({self.geometry}, {options})"
