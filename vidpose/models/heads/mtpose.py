"""MTPose: motion-aware heatmap regression (spec ``models.md`` section 1.3).

Only the key frame goes through the backbone. Its features ``F_c`` ``(B, D, h, w)`` attend to
the optical flows from the key frame to its two neighbours (computed on the crops by the
frozen flow estimator, average-pooled to the feature grid), one decoder turns the result into
the two motion-aware heatmaps, and a deformable fusion of their average gives the key-frame
heatmap::

    V   = cat(pool(V_c->p), pool(V_c->n))                       (B, 4, h, w), feature-grid px
    F'  = F_c + FFN(MHCA(LN(F_c) + P, LN(E V) + P, LN(E V)))    (B, D, h, w)   E: 1x1 conv
    H_p, H_n = split(Decoder(F'))                               2 x (B, K, h', w')
    H_o = mean_d DCNv2_d((H_p + H_n) / 2; offsets, masks from cat(H_p, H_n))

``P`` is a fixed 2-D sine-cosine encoding; the FFN's last layer starts at zero, so ``F' = F_c``
at initialisation; the DCN kernels start as the identity with zero offsets and masks 0.5, so
``H_o = (H_p + H_n) / 4`` at initialisation. Loss: ``L_p + L_n + gamma * L_o`` (section 1.4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from vidpose.losses.heatmap import heatmap_mse
from vidpose.models.deform_sampling import deform_conv2d_sampled, resolve_deform_backend
from vidpose.models.flow.base import resample_flow
from vidpose.models.heads.base import Head
from vidpose.models.heads.deconv import DeconvDecoder, num_upsampling_layers
from vidpose.models.ops.deform_conv import ModulatedDeformConvWithOffsets
from vidpose.models.position import sincos_2d
from vidpose.registry import HEADS

__all__ = ["MTPOSE_DILATIONS", "DeformableFusion", "FlowCrossAttention", "MTPoseHead"]

MTPOSE_DILATIONS = (3, 6, 9, 12, 15)
FLOW_CHANNELS = 4  # (u, v) of the key->previous and key->next flows


class FlowCrossAttention(nn.Module):
    """Eq. 5: ``F' = F + FFN(MHCA(q = LN(F) + P, k = LN(E V) + P, v = LN(E V)))``.

    Features ``(B, D, h, w)`` and flows ``(B, flow_channels, h, w)`` on the same grid ->
    ``(B, D, h, w)``. One residual around FFN after MHCA (no inner residual, as Eq. 5 is
    written); the FFN's last linear layer is zero-initialised so the block starts as the identity.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, flow_channels: int = FLOW_CHANNELS) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"mtpose: num_heads={num_heads} must be a positive divisor of the feature width {dim}")
        if dim % 4:
            raise ValueError(f"mtpose: the feature width {dim} must be a multiple of 4 (2-D sin-cos encoding)")
        hidden = round(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mtpose: mlp_ratio={mlp_ratio} gives an empty FFN for width {dim}")
        self.dim = dim
        self.flow_embed = nn.Conv2d(flow_channels, dim, kernel_size=1)
        self.norm_query = nn.LayerNorm(dim, eps=1e-6)
        self.norm_flow = nn.LayerNorm(dim, eps=1e-6)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.ffn[-1].weight)
        nn.init.zeros_(self.ffn[-1].bias)

    def forward(self, features: Tensor, flows: Tensor) -> Tensor:
        """``(B, D, h, w)`` features and ``(B, 4, h, w)`` flows -> fused ``(B, D, h, w)``."""
        b, d, h, w = features.shape
        if flows.shape[0] != b or flows.shape[-2:] != features.shape[-2:]:
            raise ValueError(
                f"mtpose: flows {tuple(flows.shape)} must share batch and grid with features {tuple(features.shape)}"
            )
        tokens = features.flatten(2).transpose(1, 2)  # (B, h*w, D), row-major as the encoding
        flow_tokens = self.flow_embed(flows.to(features.dtype)).flatten(2).transpose(1, 2)
        position = sincos_2d(h, w, d, device=features.device, dtype=tokens.dtype)
        query = self.norm_query(tokens)
        value = self.norm_flow(flow_tokens)
        attended, _ = self.attention(query + position, value + position, value, need_weights=False)
        fused = tokens + self.ffn(attended)
        return fused.transpose(1, 2).reshape(b, d, h, w)


class DeformableFusion(nn.Module):
    """Eqs. 7-8: DCNv2 of ``(H_p + H_n) / 2`` steered by ``cat(H_p, H_n)``, averaged over dilations.

    One ``ModulatedDeformConvWithOffsets`` per dilation ``d`` (offset and mask convs ``3x3``,
    dilation and padding ``d``; ``deform_groups`` offset fields (default ``K``: one per joint), a
    full ``K -> K`` kernel, identity init), so at initialisation the output is ``0.5 * (H_p + H_n) / 2``. ``backend`` picks the DCNv2
    kernel: ``torchvision`` (``deform_conv2d``), ``grid_sample`` (the same function, much faster
    backward on CPU) or ``auto`` (torchvision on CUDA, grid_sample elsewhere).
    ``(B, K, h, w)`` twice -> ``(B, K, h, w)``.
    """

    def __init__(
        self,
        num_joints: int,
        dilations: Sequence[int] = MTPOSE_DILATIONS,
        kernel_size: int = 3,
        deform_groups: int | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        deform_groups = num_joints if deform_groups is None else int(deform_groups)
        if deform_groups < 1 or num_joints % deform_groups:
            raise ValueError(f"mtpose: deform_groups={deform_groups} must divide the {num_joints} joints")
        if not dilations or any(d < 1 for d in dilations):
            raise ValueError(f"mtpose: dilations must be a non-empty list of positive integers, got {list(dilations)}")
        resolve_deform_backend(backend, torch.device("cpu"))  # validates the name
        self.dilations = dilations
        self.backend = backend
        self.branches = nn.ModuleList(
            ModulatedDeformConvWithOffsets(
                num_joints,
                num_joints,
                offset_in_channels=2 * num_joints,
                kernel_size=kernel_size,
                dilation=d,
                deform_groups=deform_groups,
                identity_init=True,
            )
            for d in dilations
        )

    def forward(self, motion_prev: Tensor, motion_next: Tensor) -> Tensor:
        """Two motion-aware heatmaps ``(B, K, h, w)`` -> fused key-frame heatmap ``(B, K, h, w)``."""
        guide = torch.cat((motion_prev, motion_next), dim=1)
        average = (motion_prev + motion_next) / 2
        backend = resolve_deform_backend(self.backend, average.device)
        outputs = []
        for branch in self.branches:
            if backend == "torchvision":
                outputs.append(branch(average, guide))
                continue
            offset, mask = branch.predict_offsets(guide)
            conv = branch.conv
            outputs.append(
                deform_conv2d_sampled(average, offset, conv.weight, conv.bias, conv.padding, conv.dilation, mask)
            )
        return torch.stack(outputs).mean(dim=0)

    def extra_repr(self) -> str:
        return f"dilations={list(self.dilations)}, backend={self.backend}"


@HEADS.register("mtpose")
class MTPoseHead(Head):
    """MTPose on key-frame features ``(B, D, h, w)`` and flows key->previous, key->next.

    Outputs ``heatmaps`` (``H_o``), ``motion_prev`` and ``motion_next``, each ``(B, K, h', w')``.
    ``num_heads`` should be the backbone's head count (12 for ViT-B); ``deform_groups`` is the
    number of DCN offset fields (None: one per joint); ``deform_backend`` is
    ``auto | torchvision | grid_sample`` (see :class:`DeformableFusion`); ``original_loss_weight``
    is the paper's gamma.
    """

    frames = "key"
    targets = ("heatmap", "weight", "motion_prev", "motion_next", "weight_prev", "weight_next")
    supported_num_frames = (3,)

    @classmethod
    def small_config(cls) -> dict:
        """CPU-sized: one attention head, a narrow FFN and decoder, two dilations."""
        return {"num_heads": 1, "mlp_ratio": 1.0, "deconv_channels": 8, "dilations": [1, 3]}

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        num_joints: int,
        heatmap_stride: int,
        num_frames: int = 3,
        key_index: int = 1,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        deconv_channels: int = 256,
        dilations: Sequence[int] = MTPOSE_DILATIONS,
        deform_groups: int | None = None,
        deform_backend: str = "auto",
        original_loss_weight: float = 0.75,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__(freeze_backbone=freeze_backbone)
        if num_frames != 3 or key_index != 1:
            raise ValueError(
                f"mtpose needs a 3-frame clip (previous, key, next) with the key frame in the middle; "
                f"data.clip.offsets gives {num_frames} frames with the key at index {key_index}"
            )
        if original_loss_weight < 0:
            raise ValueError(f"mtpose: original_loss_weight must be >= 0, got {original_loss_weight}")
        self.num_joints = num_joints
        self.original_loss_weight = float(original_loss_weight)
        self.cross_attention = FlowCrossAttention(in_channels, num_heads, mlp_ratio)
        self.decoder = DeconvDecoder(
            in_channels, 2 * num_joints, num_upsampling_layers(in_stride, heatmap_stride), deconv_channels
        )
        self.fusion = DeformableFusion(num_joints, dilations, deform_groups=deform_groups, backend=deform_backend)

    def flow_pairs(self, num_frames: int, key_index: int) -> list[tuple[int, int]]:
        """Key -> previous and key -> next (flows on the key frame's grid)."""
        return [(key_index, key_index - 1), (key_index, key_index + 1)]

    def forward(
        self,
        features: Tensor,
        batch: Mapping[str, Tensor] | None = None,
        flows: Tensor | None = None,
        initial_heatmaps: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Features ``(B, D, h, w)``, flows ``(B, 2, 2, H, W)`` in input px -> the three heatmaps."""
        if features.dim() != 4:
            raise ValueError(f"mtpose: expected key-frame features (B, D, h, w), got {tuple(features.shape)}")
        if flows is None or flows.dim() != 5 or flows.shape[1:3] != (2, 2):
            shape = None if flows is None else tuple(flows.shape)
            raise ValueError(f"mtpose: expected flows (B, 2, 2, H, W) (key->previous, key->next), got {shape}")
        b, _, h, w = features.shape
        # mean motion per feature cell, in feature-grid pixels (input px / stride)
        token_flows = resample_flow(flows.flatten(0, 1).float(), (h, w)).reshape(b, FLOW_CHANNELS, h, w)
        fused = self.cross_attention(features, token_flows)
        motion = self.decoder(fused)
        motion_prev, motion_next = motion[:, : self.num_joints], motion[:, self.num_joints :]
        heatmaps = self.fusion(motion_prev, motion_next)
        return {"heatmaps": heatmaps, "motion_prev": motion_prev, "motion_next": motion_next}

    def loss(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``L_p + L_n + gamma * L_o``: visibility-weighted MSE of each map (models.md section 1.4)."""
        motion_prev = heatmap_mse(outputs["motion_prev"], targets["motion_prev"], targets["weight_prev"])
        motion_next = heatmap_mse(outputs["motion_next"], targets["motion_next"], targets["weight_next"])
        original = heatmap_mse(outputs["heatmaps"], targets["heatmap"], targets["weight"])
        total = motion_prev + motion_next + self.original_loss_weight * original
        return {
            "loss": total,
            "motion_prev": motion_prev.detach(),
            "motion_next": motion_next.detach(),
            "original": original.detach(),
        }

    def load_pretrained_head(self, state: Mapping[str, Tensor]) -> list[str]:
        """ViTPose ``keypoint_head`` weights into the decoder; the final 1x1 conv serves both halves."""
        return self.decoder.load_official(state)

    def extra_repr(self) -> str:
        return f"num_joints={self.num_joints}, original_loss_weight={self.original_loss_weight}"
