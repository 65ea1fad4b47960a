"""CDPose's building blocks (``specs/models.md`` section 4.2), used by :mod:`vidpose.models.heads.continuity`.

- :class:`SemanticAlignmentEncoder` (``E_Z``): frame features -> stride-16 tokens -> one MHSA
  block -> one MLP-Mixer block -> token mean -> LayerNorm -> linear -> unit-norm embedding ``Z``.
- :class:`TransformationEncoder` (``E_S``): frame features -> a 2x3 affine ``θ`` (identity at
  initialisation: last layer zero weight, identity bias).
- :class:`EmbeddingDecoder` (``D``): ``Z`` -> canonical heatmaps (linear to a coarse grid at
  1/8 of the heatmap, three bilinear x2 + conv stages).
- :func:`affine_warp` (``A``): ``affine_grid`` + ``grid_sample`` of canonical heatmaps by ``θ``.
- :class:`MultiFrameHeatmapFusion`: per-frame heatmap patches -> alternating temporal and
  spatial attention -> the key frame's fused heatmap ``H*_t``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.models.position import sincos_2d

__all__ = [
    "TransformerBlock",
    "MixerBlock",
    "SemanticAlignmentEncoder",
    "TransformationEncoder",
    "EmbeddingDecoder",
    "affine_warp",
    "MultiFrameHeatmapFusion",
    "IDENTITY_AFFINE",
]

IDENTITY_AFFINE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
DECODER_UPSAMPLING = 3  # D upsamples x2 three times: its coarse grid is 1/8 of the heatmap


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))``; ``(N, L, C) -> (N, L, C)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"continuity: num_heads={num_heads} must be a positive divisor of the width {dim}")
        hidden = round(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, L, C) -> (N, L, C)``."""
        y = self.norm1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class MixerBlock(nn.Module):
    """MLP-Mixer block: token-mixing MLP across the ``L`` tokens, then channel MLP; ``(N, L, C) -> (N, L, C)``."""

    def __init__(self, num_tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.token_mlp = nn.Sequential(nn.Linear(num_tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, num_tokens))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))
        self.num_tokens = num_tokens

    def forward(self, x: Tensor) -> Tensor:
        """``(N, L, C) -> (N, L, C)``; ``L`` must be the ``num_tokens`` the block was built for."""
        if x.shape[1] != self.num_tokens:
            raise ValueError(f"continuity MixerBlock built for {self.num_tokens} tokens got {x.shape[1]}")
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


def _conv_bn_relu(in_channels: int, out_channels: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _halve(size: int, times: int) -> int:
    """Size after ``times`` 3x3 stride-2 convolutions with padding 1."""
    for _ in range(times):
        size = (size - 1) // 2 + 1
    return size


class SemanticAlignmentEncoder(nn.Module):
    """``E_Z``: features ``(N, C, h, w)`` of stride ``in_stride`` -> unit-norm embeddings ``(N, embed_dim)``.

    Tokens live at ``token_stride``: a 1x1 conv when the features already have it (ViT),
    otherwise ``log2(token_stride / in_stride)`` x [3x3 stride-2 conv, BN, ReLU] (HRNet).
    """

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        feature_hw: Sequence[int],
        embed_dim: int = 128,
        width: int = 64,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        token_hidden: int = 64,
        token_stride: int = 16,
    ) -> None:
        super().__init__()
        ratio = token_stride / in_stride
        steps = round(math.log2(ratio)) if ratio >= 1 else -1
        if steps < 0 or 2**steps != ratio:
            raise ValueError(
                f"continuity E_Z: token_stride {token_stride} must be the feature stride {in_stride} times a power of 2"
            )
        if steps == 0:
            self.stem = nn.Conv2d(in_channels, width, 1)
        else:
            self.stem = nn.Sequential(
                *(_conv_bn_relu(in_channels if i == 0 else width, width, bias=False) for i in range(steps))
            )
        h, w = (_halve(int(v), steps) for v in feature_hw)
        self.num_tokens = h * w
        self.attention_block = TransformerBlock(width, num_heads, mlp_ratio)
        self.mixer_block = MixerBlock(self.num_tokens, width, token_hidden, round(width * mlp_ratio))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.project = nn.Linear(width, embed_dim)

    def forward(self, features: Tensor) -> Tensor:
        """``(N, C, h, w) -> (N, embed_dim)`` with unit L2 norm."""
        tokens = self.stem(features).flatten(2).transpose(1, 2)
        tokens = self.mixer_block(self.attention_block(tokens))
        return F.normalize(self.project(self.norm(tokens.mean(dim=1))), dim=-1)


class TransformationEncoder(nn.Module):
    """``E_S``: features ``(N, C, h, w)`` -> affine ``θ (N, 2, 3)`` (output -> canonical, normalised coordinates)."""

    def __init__(
        self, in_channels: int, channels: int = 32, pool_hw: Sequence[int] = (8, 6), hidden: int = 64
    ) -> None:
        super().__init__()
        pool_h, pool_w = (int(v) for v in pool_hw)
        self.reduce = _conv_bn_relu(in_channels, channels, bias=True)
        self.pool = nn.AdaptiveAvgPool2d((pool_h, pool_w))
        self.mlp = nn.Sequential(nn.Linear(channels * pool_h * pool_w, hidden), nn.GELU(), nn.Linear(hidden, 6))
        # Spatial-transformer convention: start as the identity transform.
        nn.init.zeros_(self.mlp[-1].weight)
        with torch.no_grad():
            self.mlp[-1].bias.copy_(torch.tensor(IDENTITY_AFFINE))

    def forward(self, features: Tensor) -> Tensor:
        """``(N, C, h, w) -> (N, 2, 3)``."""
        return self.mlp(self.pool(self.reduce(features)).flatten(1)).view(-1, 2, 3)


class EmbeddingDecoder(nn.Module):
    """``D``: embeddings ``(N, embed_dim)`` -> canonical heatmaps ``(N, K, h, w)`` (``h``, ``w`` multiples of 8)."""

    def __init__(
        self,
        embed_dim: int,
        num_joints: int,
        heatmap_hw: Sequence[int],
        coarse_channels: int = 24,
        channels: int = 32,
    ) -> None:
        super().__init__()
        h, w = (int(v) for v in heatmap_hw)
        factor = 2**DECODER_UPSAMPLING
        if h % factor or w % factor:
            raise ValueError(f"continuity D: heatmap size {h}x{w} must be a multiple of {factor} on both sides")
        self.coarse = (coarse_channels, h // factor, w // factor)
        self.expand = nn.Linear(embed_dim, coarse_channels * (h // factor) * (w // factor))
        stages: list[nn.Module] = []
        for i in range(DECODER_UPSAMPLING):
            stages += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(coarse_channels if i == 0 else channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        self.upsample = nn.Sequential(*stages)
        self.final_layer = nn.Conv2d(channels, num_joints, 1)
        # ViTPose's head init for the output layer: heatmaps start near zero.
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, embeddings: Tensor) -> Tensor:
        """``(N, embed_dim) -> (N, K, h, w)``."""
        coarse = self.expand(embeddings).view(-1, *self.coarse)
        return self.final_layer(self.upsample(coarse))


def affine_warp(canonical: Tensor, theta: Tensor) -> Tensor:
    """``A``: warp maps ``(N, K, h, w)`` by ``θ (N, 2, 3)`` (output -> input normalised coords), bilinear, zeros outside.

    Computed in float32 even under autocast: a bf16 sampling grid is off by up to ~1/4 pixel on
    a 64-pixel map.
    """
    with torch.autocast(canonical.device.type, enabled=False):
        grid = F.affine_grid(theta.float(), list(canonical.shape), align_corners=False)
        return F.grid_sample(canonical.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class MultiFrameHeatmapFusion(nn.Module):
    """Heatmaps ``(B, T, K, h, w)`` -> the key frame's fused heatmaps ``(B, K, h, w)``.

    Each frame is cut into ``patch x patch`` tokens (shared conv), given a learnable frame
    embedding and a fixed 2-D sin-cos position; ``depth`` x [temporal attention per location
    across frames, spatial attention per frame across locations]; the key frame's tokens go back
    to maps through a transposed conv, ReLU and a 3x3 conv. No residual from the input heatmaps.
    """

    def __init__(
        self,
        num_joints: int,
        num_frames: int,
        key_index: int,
        heatmap_hw: Sequence[int],
        patch: int = 2,
        dim: int = 32,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        h, w = (int(v) for v in heatmap_hw)
        if patch < 1 or h % patch or w % patch:
            raise ValueError(f"continuity fusion: patch {patch} must divide the heatmap size {h}x{w}")
        if dim % 4:
            raise ValueError(f"continuity fusion: width {dim} must be a multiple of 4 (2-D sin-cos position)")
        self.grid = (h // patch, w // patch)
        self.key_index = key_index
        self.embed = nn.Conv2d(num_joints, dim, patch, stride=patch)
        self.frame_embedding = nn.Parameter(torch.zeros(num_frames, dim))
        nn.init.trunc_normal_(self.frame_embedding, std=0.02)
        self.register_buffer("position", sincos_2d(*self.grid, dim), persistent=False)
        self.temporal_blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.spatial_blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.upsample = nn.ConvTranspose2d(dim, dim, patch, stride=patch)
        self.final_layer = nn.Conv2d(dim, num_joints, 3, padding=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, heatmaps: Tensor) -> Tensor:
        """``(B, T, K, h, w) -> (B, K, h, w)``."""
        b, t = heatmaps.shape[:2]
        if t != self.frame_embedding.shape[0]:
            raise ValueError(f"continuity fusion built for {self.frame_embedding.shape[0]} frames got {t}")
        tokens = self.embed(heatmaps.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B*T, N, C)
        n, c = tokens.shape[1:]
        tokens = tokens.view(b, t, n, c) + self.frame_embedding[:, None] + self.position.to(tokens.dtype)
        for temporal, spatial in zip(self.temporal_blocks, self.spatial_blocks):
            tokens = temporal(tokens.transpose(1, 2).reshape(b * n, t, c)).view(b, n, t, c).transpose(1, 2)
            tokens = spatial(tokens.reshape(b * t, n, c)).view(b, t, n, c)
        key = tokens[:, self.key_index].transpose(1, 2).reshape(b, c, *self.grid)
        return self.final_layer(F.relu(self.upsample(key)))
