"""Pose HRNet on timm's ``HighResolutionNetFeatures`` (registry keys ``hrnet_*``).

timm's HRNet is the classification network; vidpose keeps its trunk (stem, layer1, stages 2-4,
``feature_location=""`` so no classification modules) and applies the one difference of the pose
network: the last stage-4 module keeps only the highest-resolution output
(``stage4[-1].fuse_layers[:1]``). The official pose-HRNet checkpoints then load strictly with no
renaming. Output: branch 0, ``(N, C0, H/4, W/4)``.

H and W must be multiples of 32 (the branch fusions upsample by up to 8x from stride 32).

=============  ====================  ==========================================
key            branch widths         note
=============  ====================  ==========================================
hrnet_w32      (32, 64, 128, 256)    pose HRNet-W32
hrnet_w48      (48, 96, 192, 384)    pose HRNet-W48 (63,594,912 backbone params)
hrnet_tiny     (8, 16, 32, 64)       CPU runs (ours); stem, layer1 and module /
                                     block counts as W48, widths overridable
=============  ====================  ==========================================

``with_heatmap_layer=True`` adds the pose network's final 1x1 conv ``C0 -> num_joints`` as
``heatmap_layer``, filled from the checkpoint's ``final_layer`` (single-frame heatmaps, e.g.
JM-Pose's initial heatmaps).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from timm.models.hrnet import HighResolutionNetFeatures, cfg_cls
from torch import Tensor, nn

from vidpose.models.backbones.base import Backbone
from vidpose.registry import BACKBONES

__all__ = ["HRNetBackbone", "build_pose_hrnet_trunk", "hrnet_w32", "hrnet_w48", "hrnet_tiny"]

HRNET_STRIDE = 4
INPUT_MULTIPLE = 32


def build_pose_hrnet_trunk(widths: Sequence[int]) -> HighResolutionNetFeatures:
    """timm HRNet with branch ``widths`` (4 ints), trimmed to pose HRNet: ``[(N, w0, H/4, W/4)]``."""
    widths = tuple(int(w) for w in widths)
    if len(widths) != 4 or any(w <= 0 for w in widths):
        raise ValueError(f"HRNet backbone: widths must be 4 positive branch widths, got {widths}")
    cfg = copy.deepcopy(cfg_cls["hrnet_w48"])  # timm pops keys from the cfg it is given
    for stage, branches in (("stage2", 2), ("stage3", 3), ("stage4", 4)):
        cfg[stage]["num_channels"] = widths[:branches]
    trunk = HighResolutionNetFeatures(cfg, feature_location="", out_indices=(1,))
    # pose HRNet's last module fuses into branch 0 only; timm builds all four outputs
    trunk.stage4[-1].fuse_layers = trunk.stage4[-1].fuse_layers[:1]
    return trunk


def _check_input_hw(input_hw: Sequence[int], where: str) -> None:
    h, w = (int(v) for v in input_hw)
    if h <= 0 or w <= 0 or h % INPUT_MULTIPLE or w % INPUT_MULTIPLE:
        raise ValueError(
            f"HRNet backbone: {where} (H, W) = ({h}, {w}) must have both sides multiples of "
            f"{INPUT_MULTIPLE} (the branch fusions upsample by up to 8x from stride 32); "
            "e.g. 256x192, 384x288 or 128x96"
        )


class HRNetBackbone(Backbone):
    """Pose HRNet trunk: ``(N, 3, H, W)`` -> branch-0 features ``(N, widths[0], H/4, W/4)``."""

    checkpoint_family = "hrnet"

    def __init__(
        self,
        *,
        widths: Sequence[int],
        with_heatmap_layer: bool = False,
        num_joints: int | None = None,
        input_hw: Sequence[int] | None = None,
        checkpoint: str | Path | None = None,
    ) -> None:
        hrnet = build_pose_hrnet_trunk(widths)
        # one layer id for everything: HRNet recipes use no layer-wise decay
        super().__init__(out_channels=int(widths[0]), stride=HRNET_STRIDE, num_layers=0)
        self.hrnet = hrnet
        if input_hw is not None:
            _check_input_hw(input_hw, "input_hw")
        if with_heatmap_layer:
            if num_joints is None or int(num_joints) <= 0:
                raise ValueError(
                    f"HRNet backbone: with_heatmap_layer=True needs num_joints > 0, got {num_joints}"
                )
            self.heatmap_layer = nn.Conv2d(self.out_channels, int(num_joints), kernel_size=1)
            # the pose HRNet's own initialisation of its final layer
            nn.init.normal_(self.heatmap_layer.weight, std=0.001)
            nn.init.zeros_(self.heatmap_layer.bias)
        if checkpoint is not None:
            self.load_pretrained(checkpoint)

    @property
    def trunk(self) -> HighResolutionNetFeatures:
        """The trimmed timm HRNet."""
        return self.hrnet

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` with H, W multiples of 32 -> ``(N, C0, H/4, W/4)``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"HRNet backbone expects (N, 3, H, W) frames, got {tuple(x.shape)}")
        _check_input_hw(x.shape[-2:], "input")
        return self.hrnet(x)[0]


@BACKBONES.register("hrnet_w32")
def hrnet_w32(
    with_heatmap_layer: bool = False,
    checkpoint: str | None = None,
    num_joints: int | None = None,
    input_hw: Sequence[int] | None = None,
) -> HRNetBackbone:
    """Pose HRNet-W32 trunk: (N, 32, H/4, W/4)."""
    return HRNetBackbone(
        widths=(32, 64, 128, 256),
        with_heatmap_layer=with_heatmap_layer,
        num_joints=num_joints,
        input_hw=input_hw,
        checkpoint=checkpoint,
    )


@BACKBONES.register("hrnet_w48")
def hrnet_w48(
    with_heatmap_layer: bool = False,
    checkpoint: str | None = None,
    num_joints: int | None = None,
    input_hw: Sequence[int] | None = None,
) -> HRNetBackbone:
    """Pose HRNet-W48 trunk: (N, 48, H/4, W/4)."""
    return HRNetBackbone(
        widths=(48, 96, 192, 384),
        with_heatmap_layer=with_heatmap_layer,
        num_joints=num_joints,
        input_hw=input_hw,
        checkpoint=checkpoint,
    )


@BACKBONES.register("hrnet_tiny")
def hrnet_tiny(
    widths: Sequence[int] = (8, 16, 32, 64),
    with_heatmap_layer: bool = False,
    checkpoint: str | None = None,
    num_joints: int | None = None,
    input_hw: Sequence[int] | None = None,
) -> HRNetBackbone:
    """Narrow pose HRNet for CPU runs (ours): (N, widths[0], H/4, W/4)."""
    return HRNetBackbone(
        widths=widths,
        with_heatmap_layer=with_heatmap_layer,
        num_joints=num_joints,
        input_hw=input_hw,
        checkpoint=checkpoint,
    )
