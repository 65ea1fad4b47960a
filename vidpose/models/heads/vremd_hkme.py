"""VREMD's human/keypoint mask enhancement (HKME), spec ``models.md`` section 2.2.

Three stages on the patch tokens of the ``T`` frames of a clip:

1. human mask: a learnable human token is prepended to each frame's tokens, the sequence goes
   through cascaded blocks, and the patch tokens are multiplied by
   ``sigmoid(patch . human / sqrt(e))``;
2. keypoint mask: one learnable set of ``J`` keypoint tokens per frame position is prepended to
   each frame, all frames are concatenated (plus a frame embedding) and go through blocks; the
   mask is ``softmax over all T*N patch tokens of (keypoint . patch / sqrt(e))`` summed over the
   ``T*J`` keypoint tokens (it sums to ``T*J``), and the patch tokens are multiplied by it;
3. spatial blocks per frame, temporal blocks per location, then a token-axis MLP that reduces the
   ``T*N`` tokens to ``N``: the enhanced feature ``F``.

Blocks are timm's pre-norm ViT ``Block``. The ``masks`` switch removes a stage with its mask
(Table 5(a) of the paper): without the human mask there is no human token and no human blocks;
without the keypoint mask no keypoint tokens and no keypoint blocks (hence no ``H_k``);
``masks="none"`` is the spatio-temporal transformer alone.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = ["MASK_CHOICES", "HumanKeypointMaskEnhancement", "vit_blocks"]

#: values of the ``masks`` switch: which HKME masks multiply the patch tokens
MASK_CHOICES = ("both", "human", "keypoint", "none")


def vit_blocks(dim: int, num_heads: int, mlp_ratio: float, depth: int) -> nn.Sequential:
    """``depth`` pre-norm ViT blocks (qkv bias, LN eps 1e-6): ``(B, L, dim) -> (B, L, dim)``."""
    return nn.Sequential(
        *(
            Block(
                dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
            )
            for _ in range(depth)
        )
    )


class HumanKeypointMaskEnhancement(nn.Module):
    """HKME: patch tokens ``(B, T, N, e)`` -> enhanced feature ``(B, N, e)`` and keypoint tokens.

    ``forward`` returns ``{"enhanced": (B, N, e)}`` plus, for the stages that exist,
    ``"human_mask": (B, T, N)``, ``"keypoint_tokens": (B, T, J, e)`` and ``"keypoint_mask": (B, T, N)``.
    """

    def __init__(
        self,
        dim: int,
        num_tokens: int,
        num_frames: int,
        num_joints: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        human_blocks: int = 2,
        keypoint_blocks: int = 2,
        spatial_blocks: int = 1,
        temporal_blocks: int = 1,
        masks: str = "both",
    ) -> None:
        super().__init__()
        if masks not in MASK_CHOICES:
            raise ValueError(f"HKME masks: expected one of {MASK_CHOICES}, got {masks!r}")
        for name, value in (("human_blocks", human_blocks), ("keypoint_blocks", keypoint_blocks)):
            if value < 1:
                raise ValueError(
                    f"HKME {name} must be at least 1 (its tokens define a mask), got {value}"
                )
        self.dim, self.num_tokens, self.num_frames, self.num_joints = (
            dim,
            num_tokens,
            num_frames,
            num_joints,
        )
        self.use_human_mask = masks in ("both", "human")
        self.use_keypoint_mask = masks in ("both", "keypoint")
        self.frame_embed = nn.Parameter(torch.zeros(num_frames, 1, dim))
        self.human_token = self.human_blocks = self.keypoint_tokens = self.keypoint_blocks = None
        if self.use_human_mask:
            self.human_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.human_blocks = vit_blocks(dim, num_heads, mlp_ratio, human_blocks)
        if self.use_keypoint_mask:
            self.keypoint_tokens = nn.Parameter(torch.zeros(num_frames, num_joints, dim))
            self.keypoint_blocks = vit_blocks(dim, num_heads, mlp_ratio, keypoint_blocks)
        self.spatial_blocks = vit_blocks(dim, num_heads, mlp_ratio, spatial_blocks)
        self.temporal_blocks = vit_blocks(dim, num_heads, mlp_ratio, temporal_blocks)
        # token-axis MLP: T*N tokens -> N (spec 2.2, "MLP token dimensionality reduction")
        self.token_reduction = nn.Sequential(
            nn.Linear(num_frames * num_tokens, num_tokens),
            nn.GELU(),
            nn.Linear(num_tokens, num_tokens),
        )
        for token in (self.human_token, self.keypoint_tokens, self.frame_embed):
            if token is not None:
                nn.init.trunc_normal_(token, std=0.02)

    def human_stage(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Per-frame tokens ``(B*T, N, e)`` -> (coarse ``(B*T, N, e)``, human mask ``(B*T, N)``)."""
        sequence = torch.cat((self.human_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        out = self.human_blocks(sequence)
        human, patches = out[:, :1], out[:, 1:]
        mask = torch.sigmoid((patches @ human.transpose(1, 2)).squeeze(-1) / math.sqrt(self.dim))
        return patches * mask.unsqueeze(-1), mask

    def keypoint_stage(self, coarse: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Coarse ``(B, T, N, e)`` -> filtered ``(B, T, N, e)``, keypoint tokens, keypoint mask.

        The keypoint tokens are ``(B, T, J, e)`` and the mask ``(B, T, N)``.
        """
        b, t, n, e = coarse.shape
        j = self.num_joints
        keypoints = self.keypoint_tokens.unsqueeze(0).expand(b, -1, -1, -1)
        sequence = torch.cat((keypoints, coarse), dim=2) + self.frame_embed
        out = self.keypoint_blocks(sequence.reshape(b, t * (j + n), e)).reshape(b, t, j + n, e)
        keypoint_tokens, patches = out[:, :, :j], out[:, :, j:]
        logits = keypoint_tokens.reshape(b, t * j, e) @ patches.reshape(b, t * n, e).transpose(1, 2)
        mask = (logits / math.sqrt(e)).softmax(dim=-1).sum(dim=1).reshape(b, t, n)
        return patches * mask.unsqueeze(-1), keypoint_tokens, mask

    def forward(self, tokens: Tensor) -> dict[str, Tensor]:
        """Patch tokens ``(B, T, N, e)`` -> enhanced feature, keypoint tokens and both masks."""
        b, t, n, e = tokens.shape
        if (t, n, e) != (self.num_frames, self.num_tokens, self.dim):
            raise ValueError(
                f"HKME built for (B, {self.num_frames}, {self.num_tokens}, {self.dim}) tokens, "
                f"got {tuple(tokens.shape)}"
            )
        outputs: dict[str, Tensor] = {}
        filtered = tokens
        if self.use_human_mask:
            coarse, human_mask = self.human_stage(tokens.reshape(b * t, n, e))
            filtered = coarse.reshape(b, t, n, e)
            outputs["human_mask"] = human_mask.reshape(b, t, n)
        if self.use_keypoint_mask:
            filtered, keypoint_tokens, keypoint_mask = self.keypoint_stage(filtered)
            outputs["keypoint_tokens"], outputs["keypoint_mask"] = keypoint_tokens, keypoint_mask
        spatial = self.spatial_blocks(filtered.reshape(b * t, n, e)).reshape(b, t, n, e)
        per_location = (spatial + self.frame_embed).transpose(1, 2).reshape(b * n, t, e)
        temporal = self.temporal_blocks(per_location).reshape(b, n, t, e).transpose(1, 2)
        enhanced = self.token_reduction(temporal.reshape(b, t * n, e).transpose(1, 2)).transpose(
            1, 2
        )
        return {"enhanced": enhanced, **outputs}
