"""The single-frame baseline head (SimpleBaseline / ViTPose "classic" decoder).

``DeconvDecoder`` uses ViTPose's module names (``deconv_layers.{0,1,3,4}``, ``final_layer``) so
that official ``keypoint_head.*`` weights load by a prefix swap; other heads reuse it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from vidpose.losses.heatmap import heatmap_mse
from vidpose.models.heads.base import Head
from vidpose.registry import HEADS

__all__ = ["DeconvDecoder", "DeconvHead", "num_upsampling_layers"]


def num_upsampling_layers(in_stride: int, out_stride: int) -> int:
    """Number of x2 deconvolutions taking features of ``in_stride`` to heatmaps of ``out_stride``."""
    ratio = in_stride / out_stride
    n = round(math.log2(ratio)) if ratio >= 1 else -1
    if n < 0 or 2**n != ratio:
        raise ValueError(
            f"backbone stride {in_stride} cannot reach heatmap stride {out_stride} with x2 deconvolutions"
        )
    return n


class DeconvDecoder(nn.Module):
    """``n x [ConvT 4x4 s2 (no bias) -> BN -> ReLU]`` then a ``final_kernel`` conv to ``out_channels``.

    ``(B, in_channels, h, w) -> (B, out_channels, h * 2^n, w * 2^n)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_deconv_layers: int = 2,
        deconv_channels: int = 256,
        final_kernel: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_deconv_layers):
            layers += [
                nn.ConvTranspose2d(channels, deconv_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(channels, out_channels, final_kernel, padding=final_kernel // 2)
        self.out_channels = out_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ViTPose's init: convolutions N(0, 0.001), BN weight 1 and bias 0, final bias 0."""
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w) -> (B, out_channels, h', w')``."""
        return self.final_layer(self.deconv_layers(x))

    def load_official(self, state: Mapping[str, torch.Tensor]) -> list[str]:
        """Load official head weights (keys ``deconv_layers.*``, ``final_layer.*``, no prefix).

        When ``out_channels`` is a multiple ``r`` of the checkpoint's K, the final layer is
        repeated ``r`` times along its outputs (MTPose's two motion maps start as the
        pretrained heatmap). Returns the keys loaded; shape mismatches are errors.
        """
        own = self.state_dict()
        new_state = {}
        for key, value in state.items():
            if key not in own:
                raise KeyError(f"pretrained head key {key!r} does not exist in {type(self).__name__}")
            target = own[key]
            if key.startswith("final_layer.") and value.shape != target.shape:
                repeats = target.shape[0] // value.shape[0] if value.shape[0] else 0
                if repeats * value.shape[0] != target.shape[0] or value.shape[1:] != target.shape[1:]:
                    raise ValueError(
                        f"pretrained {key} has shape {tuple(value.shape)}; expected {tuple(target.shape)} "
                        f"or a divisor of its first dimension"
                    )
                value = value.repeat(repeats, *([1] * (value.dim() - 1)))
            elif value.shape != target.shape:
                raise ValueError(f"pretrained {key} has shape {tuple(value.shape)}; expected {tuple(target.shape)}")
            new_state[key] = value
        missing = sorted(set(own) - set(new_state))
        if missing:
            raise KeyError(f"pretrained head is missing {missing}")
        self.load_state_dict(new_state)
        return sorted(new_state)


@HEADS.register("deconv")
class DeconvHead(Head):
    """Single-frame baseline: key-frame features -> deconvolutions -> K heatmaps.

    With a stride-16 ViT this is ViTPose's classic head (two deconvolutions); with stride-4
    HRNet features it reduces to the 1x1 ``final_layer`` of the pose HRNet.
    """

    frames = "key"
    targets = ("heatmap", "weight")

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        num_joints: int,
        heatmap_stride: int,
        deconv_channels: int = 256,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__(freeze_backbone=freeze_backbone)
        self.decoder = DeconvDecoder(
            in_channels, num_joints, num_upsampling_layers(in_stride, heatmap_stride), deconv_channels
        )

    def forward(self, features, batch=None, flows=None, initial_heatmaps=None):
        """Key-frame features ``(B, C, h, w)`` -> ``{"heatmaps": (B, K, h', w')}``."""
        return {"heatmaps": self.decoder(features)}

    def loss(self, outputs, targets):
        """Visibility-weighted MSE to the standard target."""
        loss = heatmap_mse(outputs["heatmaps"], targets["heatmap"], targets["weight"])
        return {"loss": loss, "heatmap": loss.detach()}

    def load_pretrained_head(self, state: Mapping[str, torch.Tensor]) -> list[str]:
        """Official ``keypoint_head`` weights (prefix removed) into the decoder."""
        return self.decoder.load_official(state)
