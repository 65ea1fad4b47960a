"""VREMD head: HKME + BMD on a frozen ViT, keypoint-token and deconv heatmap heads (spec section 2).

Data flow for a clip of frames ``t-1, t, t+1`` (backbone features ``(B, 3, D, h, w)``, ``N = h*w``
tokens):

- optional ``Linear(D -> embed_dim)`` on every token (``embed_dim=None`` keeps ``e = D``);
- HKME (:mod:`vidpose.models.heads.vremd_hkme`) -> enhanced feature ``F (B, N, e)`` and the
  key frame's keypoint tokens ``(B, J, e)``;
- BMD (:mod:`vidpose.models.heads.vremd_bmd`) on the backbone tokens, constrained by ``F`` ->
  motion ``M (B, N, e)``;
- ``H_k``: key-frame keypoint tokens -> LN -> Linear -> LN -> Linear(-> h'*w') -> ``(B, J, h', w')``
  (TokenPose-style);
- ``H_m``: ``Linear(e + D -> D)(cat[M, F_t])`` (identity on the key frame's backbone tokens
  ``F_t``, zero on ``M``, so a ViTPose head loaded from the checkpoint starts from its own
  heatmaps) -> ViTPose classic deconv head;
- ``H_t = 0.5 H_k + 0.5 H_m``; loss: visibility-weighted MSE on ``H_t``.

Ablation switches (paper Tables 4-6, see ``docs/methods/vremd.md``): ``hkme=False`` (no keypoint
tokens, so ``H_t = H_m``, and BMD is constrained by the key frame's tokens), ``bmd=False`` (``H_m``
aggregates ``F`` instead of ``M``), ``masks`` (``both|human|keypoint|none``: a removed mask
removes its stage and tokens; without keypoint tokens ``H_t = H_m``), ``motion_attention``
(``dca``, or the Table 6 replacements of the whole ADC block ``dc`` (DCNv1) and ``da``),
``bidirectional``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from vidpose.losses.heatmap import heatmap_mse
from vidpose.models.heads.base import Head
from vidpose.models.heads.deconv import DeconvDecoder, num_upsampling_layers
from vidpose.models.heads.vremd_bmd import (
    MOTION_ATTENTION_CHOICES,
    BidirectionalMotionDisentanglement,
)
from vidpose.models.heads.vremd_hkme import MASK_CHOICES, HumanKeypointMaskEnhancement
from vidpose.registry import HEADS

__all__ = ["KeypointTokenHeatmapHead", "VREMDHead"]


class KeypointTokenHeatmapHead(nn.Module):
    """TokenPose-style MLP: keypoint tokens ``(B, J, e)`` -> heatmaps ``(B, J, h, w)``.

    ``LN -> Linear(e -> hidden) -> LN -> Linear(hidden -> h*w)``; the last layer starts at
    N(0, 0.001) with bias 0 (ViTPose's head init), so ``H_k`` starts near zero and the sum
    ``H_t`` near ``0.5 H_m``.
    """

    def __init__(self, dim: int, hidden: int, heatmap_hw: Sequence[int]) -> None:
        super().__init__()
        self.heatmap_hw = (int(heatmap_hw[0]), int(heatmap_hw[1]))
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.LayerNorm(hidden),
            nn.Linear(hidden, self.heatmap_hw[0] * self.heatmap_hw[1]),
        )
        nn.init.normal_(self.mlp[-1].weight, std=0.001)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, J, e) -> (B, J, h, w)``."""
        return self.mlp(tokens).unflatten(-1, self.heatmap_hw)


@HEADS.register("vremd")
class VREMDHead(Head):
    """VREMD: all three frames through a (frozen) backbone, HKME + BMD, ``H_t = w_k H_k + w_m H_m``.

    Features ``(B, 3, D, h, w)`` -> ``{"heatmaps": H_t, "motion_heatmaps": H_m}`` (all
    ``(B, K, h', w')``), plus ``"keypoint_heatmaps": H_k`` and ``"keypoint_mask": (B, 3, N)``
    with HKME's keypoint stage and ``"human_mask": (B, 3, N)`` with its human stage.
    """

    frames = "all"
    targets = ("heatmap", "weight")
    supported_num_frames = (3,)

    @classmethod
    def small_config(cls) -> dict:
        """CPU-sized: width 16, 2 heads, one block per stage, small heads."""
        return {
            "embed_dim": 16,
            "num_heads": 2,
            "human_blocks": 1,
            "keypoint_blocks": 1,
            "adc_blocks": 1,
            "offset_groups": 2,
            "offset_kernel": 3,
            "keypoint_head_hidden": 16,
            "deconv_channels": 8,
        }

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        num_joints: int,
        heatmap_stride: int,
        num_frames: int,
        key_index: int,
        input_hw: Sequence[int],
        heatmap_hw: Sequence[int],
        embed_dim: int | None = None,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        human_blocks: int = 2,
        keypoint_blocks: int = 2,
        spatial_blocks: int = 1,
        temporal_blocks: int = 1,
        adc_blocks: int = 2,
        offset_groups: int = 4,
        offset_kernel: int = 5,
        offset_range: float = 2.0,
        da_points: int = 4,
        keypoint_head_hidden: int = 384,
        deconv_channels: int = 256,
        keypoint_weight: float = 0.5,
        motion_weight: float = 0.5,
        hkme: bool = True,
        bmd: bool = True,
        masks: str = "both",
        motion_attention: str = "dca",
        bidirectional: bool = True,
        freeze_backbone: bool = True,
    ) -> None:
        super().__init__(freeze_backbone=freeze_backbone)
        if num_frames != 3 or key_index != 1:
            raise ValueError(
                f"head vremd uses frames t-1, t, t+1: data.clip.offsets must be [-1, 0, 1] "
                f"(3 frames, key index 1), got {num_frames} frames with key index {key_index}"
            )
        if masks not in MASK_CHOICES:
            raise ValueError(f"head.masks: expected one of {MASK_CHOICES}, got {masks!r}")
        if motion_attention not in MOTION_ATTENTION_CHOICES:
            raise ValueError(
                f"head.motion_attention: expected one of {MOTION_ATTENTION_CHOICES}, "
                f"got {motion_attention!r}"
            )
        input_h, input_w = (int(v) for v in input_hw)
        if input_h % in_stride or input_w % in_stride:
            raise ValueError(
                f"head vremd: input {input_h}x{input_w} is not a multiple of the backbone "
                f"stride {in_stride}"
            )
        self.grid_hw = (input_h // in_stride, input_w // in_stride)
        self.num_tokens = self.grid_hw[0] * self.grid_hw[1]
        self.num_joints, self.key_index = num_joints, key_index
        self.heatmap_hw = (int(heatmap_hw[0]), int(heatmap_hw[1]))
        self.keypoint_weight, self.motion_weight = float(keypoint_weight), float(motion_weight)
        uses_tokens = bool(hkme) or bool(bmd)
        dim = in_channels if embed_dim is None else int(embed_dim)
        if uses_tokens and dim % num_heads:
            raise ValueError(
                f"head vremd: num_heads={num_heads} must divide the block width {dim} (embed_dim)"
            )
        self.embed = (
            nn.Linear(in_channels, dim) if (embed_dim is not None and uses_tokens) else None
        )

        self.hkme: HumanKeypointMaskEnhancement | None = None
        self.keypoint_head: KeypointTokenHeatmapHead | None = None
        if hkme:
            self.hkme = HumanKeypointMaskEnhancement(
                dim,
                self.num_tokens,
                num_frames,
                num_joints,
                num_heads,
                mlp_ratio=mlp_ratio,
                human_blocks=human_blocks,
                keypoint_blocks=keypoint_blocks,
                spatial_blocks=spatial_blocks,
                temporal_blocks=temporal_blocks,
                masks=masks,
            )
            if self.hkme.use_keypoint_mask:
                self.keypoint_head = KeypointTokenHeatmapHead(
                    dim, keypoint_head_hidden, self.heatmap_hw
                )
        self.bmd: BidirectionalMotionDisentanglement | None = None
        if bmd:
            self.bmd = BidirectionalMotionDisentanglement(
                dim,
                num_heads,
                num_blocks=adc_blocks,
                bidirectional=bidirectional,
                motion_attention=motion_attention,
                num_groups=offset_groups,
                offset_kernel=offset_kernel,
                offset_range=offset_range,
                da_points=da_points,
            )
        # H_m's input: cat[M (or F without BMD), key-frame backbone tokens] -> backbone width,
        # so the checkpoint's deconv head fits whatever embed_dim is
        self.aggregate = nn.Linear(dim + in_channels, in_channels) if uses_tokens else None
        if self.aggregate is not None:
            self._identity_on_key_tokens(dim, in_channels)
        self.motion_decoder = DeconvDecoder(
            in_channels,
            num_joints,
            num_upsampling_layers(in_stride, heatmap_stride),
            deconv_channels,
        )

    @torch.no_grad()
    def _identity_on_key_tokens(self, stream_dim: int, in_channels: int) -> None:
        weight = self.aggregate.weight
        weight.zero_()
        weight[:, stream_dim:].copy_(
            torch.eye(in_channels, dtype=weight.dtype, device=weight.device)
        )
        self.aggregate.bias.zero_()

    def forward(
        self,
        features: Tensor,
        batch: Mapping[str, Tensor] | None = None,
        flows: Tensor | None = None,
        initial_heatmaps: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Features ``(B, 3, D, h, w)`` -> ``{"heatmaps": (B, K, h', w'), ...}`` (see the class)."""
        if (
            features.dim() != 5
            or features.shape[1] != 3
            or tuple(features.shape[-2:]) != self.grid_hw
        ):
            raise ValueError(
                f"head vremd expects features (B, 3, D, {self.grid_hw[0]}, {self.grid_hw[1]}), "
                f"got {tuple(features.shape)}"
            )
        b = features.shape[0]
        raw_tokens = features.flatten(3).transpose(2, 3)  # (B, 3, N, D), row-major tokens
        key_tokens = raw_tokens[:, self.key_index]
        outputs: dict[str, Tensor] = {}
        stream = None
        tokens = self.embed(raw_tokens) if self.embed is not None else raw_tokens
        constraint = tokens[:, self.key_index]
        if self.hkme is not None:
            enhanced = self.hkme(tokens)
            constraint = stream = enhanced["enhanced"]
            if self.keypoint_head is not None:
                outputs["keypoint_heatmaps"] = self.keypoint_head(
                    enhanced["keypoint_tokens"][:, self.key_index]
                )
            for name in ("human_mask", "keypoint_mask"):
                if name in enhanced:
                    outputs[name] = enhanced[name]
        if self.bmd is not None:
            k = self.key_index
            stream = self.bmd(
                tokens[:, k - 1], tokens[:, k], tokens[:, k + 1], constraint, self.grid_hw
            )
        fused = (
            key_tokens
            if stream is None
            else self.aggregate(torch.cat((stream, key_tokens), dim=-1))
        )
        fused_map = fused.transpose(1, 2).reshape(b, fused.shape[-1], *self.grid_hw)
        outputs["motion_heatmaps"] = self.motion_decoder(fused_map)
        if "keypoint_heatmaps" in outputs:
            outputs["heatmaps"] = (
                self.keypoint_weight * outputs["keypoint_heatmaps"]
                + self.motion_weight * outputs["motion_heatmaps"]
            )
        else:
            outputs["heatmaps"] = outputs["motion_heatmaps"]
        return outputs

    def loss(
        self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """MSE of ``H_t`` to the standard target (the total); ``H_k``'s and ``H_m``'s are logged."""
        loss = heatmap_mse(outputs["heatmaps"], targets["heatmap"], targets["weight"])
        terms = {"loss": loss, "heatmap": loss.detach()}
        for name in ("keypoint_heatmaps", "motion_heatmaps"):
            if name in outputs:
                with torch.no_grad():
                    terms[name] = heatmap_mse(outputs[name], targets["heatmap"], targets["weight"])
        return terms

    def load_pretrained_head(self, state: Mapping[str, Tensor]) -> list[str]:
        """Official ViTPose ``keypoint_head`` weights (no prefix) into ``H_m``'s deconv head."""
        return self.motion_decoder.load_official(state)
