"""The contract between :class:`~vidpose.models.pose_model.PoseModel` and a head.

A head declares what differs between methods; ``PoseModel`` does the plumbing once:

- ``frames``: ``"key"`` (only the key frame goes through the backbone; features arrive as
  ``(B, C, h, w)``) or ``"all"`` (every frame; features ``(B, T, C, h, w)``);
- ``freeze_backbone``: the backbone runs in eval mode under ``no_grad`` and gets no
  optimizer group;
- ``flow_pairs(num_frames, key_index)``: which ``(source, target)`` frame pairs the flow
  estimator computes; flows arrive as ``(B, P, 2, H, W)`` in input pixels on the source grid;
- ``needs_initial_heatmaps``: the backbone's own single-frame heatmaps (JM-Pose) arrive as
  ``(B, T, K, h, w)``;
- ``targets``: the names the target generator must produce for :meth:`Head.loss`;
- ``extra_views``: batch keys holding extra images ``(B, 3, H, W)`` in [0, 1] (e.g. CDPose's
  rotated second view ``"view2"``) that go through normalisation and the backbone with the
  clip's frames; when the batch has them, their features arrive as
  ``batch["extra_features"][name]`` ``(B, C, h, w)``.

``forward`` returns a dict whose ``"heatmaps"`` is the key frame's final ``(B, K, h, w)``;
auxiliaries go under their own names. ``loss`` returns ``{"loss": total, <part>: value}``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["Head"]


class Head(nn.Module):
    """Base class of every head (registry ``HEADS``)."""

    frames: str = "key"
    targets: tuple[str, ...] = ("heatmap", "weight")
    needs_initial_heatmaps: bool = False
    extra_views: tuple[str, ...] = ()
    #: clip lengths the head supports (None: any)
    supported_num_frames: tuple[int, ...] | None = None

    @classmethod
    def small_config(cls) -> dict:
        """Constructor overrides for a CPU-sized instance (used by the registry-wide tests)."""
        return {}

    def __init__(self, freeze_backbone: bool = False) -> None:
        super().__init__()
        self.freeze_backbone = bool(freeze_backbone)

    def flow_pairs(self, num_frames: int, key_index: int) -> list[tuple[int, int]]:
        """``(source, target)`` frame indices whose flow the head needs; none by default."""
        return []

    def forward(
        self,
        features: torch.Tensor,
        batch: Mapping[str, torch.Tensor] | None = None,
        flows: torch.Tensor | None = None,
        initial_heatmaps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Features ``(B, C, h, w)`` or ``(B, T, C, h, w)`` -> outputs with ``"heatmaps"`` ``(B, K, h', w')``."""
        raise NotImplementedError

    def loss(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms from outputs and the generator's targets; ``"loss"`` is the total."""
        raise NotImplementedError

    def load_pretrained_head(self, state: Mapping[str, torch.Tensor]) -> list[str]:
        """Load the official single-frame head weights (deconv layout); returns the keys used."""
        raise NotImplementedError(f"{type(self).__name__} has no pretrained-head loader")
