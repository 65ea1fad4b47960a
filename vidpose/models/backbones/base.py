"""The backbone contract: feature maps with declared channels and stride, plus optimiser hooks.

A backbone maps normalised frames ``(N, 3, H, W)`` to features ``(N, out_channels, H/stride,
W/stride)``. Heads receive ``out_channels`` and ``stride`` at build time and never depend on a
backbone class. Optimiser builders use ``num_layers`` / ``layer_id`` (layer-wise LR decay: the
multiplier of a parameter is ``rate ** (num_layers + 1 - layer_id(name))``) and
``no_weight_decay``. Parameter names are relative to the backbone (as in
``backbone.named_parameters()``).
"""

from __future__ import annotations

import abc
from pathlib import Path

from torch import Tensor, nn

from vidpose.models.backbones.pretrained import (
    CheckpointError,
    KeyReport,
    PretrainedParts,
    load_trunk_state,
    log_report,
    read_pretrained,
)

__all__ = ["Backbone"]


class Backbone(nn.Module, abc.ABC):
    """Base class of vidpose backbones: a timm ``trunk`` plus the contract attributes.

    Subclasses set ``out_channels``, ``stride``, ``num_layers`` and ``checkpoint_family``
    (``vit`` / ``hrnet``, the family of checkpoints :meth:`load_pretrained` accepts), and
    implement :attr:`trunk` and :meth:`forward`. ``heatmap_layer`` is a 1x1 conv ``C -> K``
    (pose HRNet's ``final_layer``) when the backbone was built with one, else None.
    """

    out_channels: int
    stride: int
    num_layers: int
    checkpoint_family: str

    def __init__(self, *, out_channels: int, stride: int, num_layers: int) -> None:
        super().__init__()
        self.out_channels = int(out_channels)
        self.stride = int(stride)
        self.num_layers = int(num_layers)
        self.heatmap_layer: nn.Conv2d | None = None

    @property
    @abc.abstractmethod
    def trunk(self) -> nn.Module:
        """The timm module that pretrained backbone weights are loaded into."""

    @abc.abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` normalised frames -> ``(N, out_channels, H/stride, W/stride)``."""

    # optimiser hooks ------------------------------------------------------------------------
    def _check_param_name(self, name: str) -> None:
        try:
            self.get_parameter(name)
        except AttributeError:
            raise KeyError(
                f"{type(self).__name__}.layer_id: {name!r} is not a parameter of this backbone "
                "(names are relative to the backbone, as in backbone.named_parameters())"
            ) from None

    def layer_id(self, name: str) -> int:
        """Layer index of a backbone parameter for layer-wise LR decay (default: no decay)."""
        self._check_param_name(name)
        return self.num_layers + 1

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that get no weight decay: every 1-D parameter (norms, biases)."""
        return {name for name, p in self.named_parameters() if p.ndim <= 1}

    # single-frame heatmaps ------------------------------------------------------------------
    def heatmaps(self, features: Tensor) -> Tensor:
        """``(N, C, h, w)`` backbone features -> ``(N, K, h, w)`` with the pretrained 1x1 layer."""
        if self.heatmap_layer is None:
            raise RuntimeError(
                f"{type(self).__name__} has no heatmap layer; build it with with_heatmap_layer=True"
            )
        return self.heatmap_layer(features)

    # pretrained weights ---------------------------------------------------------------------
    def adapt_trunk_state(self, parts: PretrainedParts) -> dict[str, Tensor]:
        """Hook: the trunk tensors to load (ViT resamples its position embedding here)."""
        return parts.trunk

    def load_pretrained(self, path: str | Path) -> KeyReport:
        """Load a local checkpoint (any supported layout) strictly into the trunk; log the report.

        Backbone keys must all be present with the right shapes, unknown keys fail, known extras
        are dropped and named. With a heatmap layer, the checkpoint's ``final_layer`` fills it.
        """
        return self.load_pretrained_parts(read_pretrained(path))

    def load_pretrained_parts(self, parts: PretrainedParts) -> KeyReport:
        """:meth:`load_pretrained` of already converted parts (e.g. a trained single-frame model)."""
        if parts.family != self.checkpoint_family:
            raise CheckpointError(
                f"{parts.source}: a {parts.layout} checkpoint ({parts.family} weights) cannot initialise "
                f"{type(self).__name__}, which takes {self.checkpoint_family} weights"
            )
        heatmap_state = self._heatmap_layer_state(parts) if self.heatmap_layer is not None else None
        report = load_trunk_state(self.trunk, parts, self.adapt_trunk_state(parts))
        if heatmap_state is not None:
            self.heatmap_layer.load_state_dict(heatmap_state)
            report.loaded += [
                "heatmap_layer.weight <- final_layer.weight",
                "heatmap_layer.bias <- final_layer.bias",
            ]
        log_report(report)
        return report

    def _heatmap_layer_state(self, parts: PretrainedParts) -> dict[str, Tensor]:
        """The checkpoint's ``final_layer`` as heatmap-layer state, checked before anything loads."""
        layer = self.heatmap_layer
        names = ("final_layer.weight", "final_layer.bias")
        absent = [n for n in names if n not in parts.head]
        if absent:
            raise CheckpointError(
                f"{parts.source}: with_heatmap_layer=True needs the pose head's "
                f"{', '.join(absent)}, which this {parts.layout} checkpoint lacks "
                f"(head entries: {sorted(parts.head) or 'none'})"
            )
        weight, bias = (parts.head[n] for n in names)
        if weight.shape != layer.weight.shape or bias.shape != layer.bias.shape:
            raise CheckpointError(
                f"{parts.source}: final_layer has shapes {tuple(weight.shape)}/{tuple(bias.shape)}, "
                f"the heatmap layer expects {tuple(layer.weight.shape)}/{tuple(layer.bias.shape)} "
                "(num_joints must equal the checkpoint's joint count)"
            )
        return {"weight": weight, "bias": bias}
