"""ViTPose-style plain ViT on timm's ``VisionTransformer`` (registry keys ``vit_*``).

Differences from an ImageNet ViT, all as in ViTPose: no class token fed through the blocks
(the checkpoint's class slot of the position embedding is folded into every position on load),
patch embedding with padding 2, and the output is the final-norm token map reshaped to
``(N, D, H/16, W/16)``.

Input sizes: H and W must be multiples of 16. With padding 2 the grid is
``floor((H + 4 - 16) / 16) + 1``, which equals ``H / 16`` exactly when ``H % 16 == 0``
(256 x 192 -> 16 x 12, 128 x 96 -> 8 x 6); other sizes would disagree with the position
embedding's grid. A model is built for one input size; a checkpoint trained on another grid has
its position embedding resampled (bicubic, antialiased) on load.

Variants (ViTPose, ``../shared/specs/models.md`` section 0.5); default ``drop_path_rate`` is
the COCO training value:

=========  ====  =====  =====  =========  ======================
key        D     depth  heads  drop path  note
=========  ====  =====  =====  =========  ======================
vit_tiny   192   6      3      0.0        CPU experiments (ours)
vit_s      384   12     12     0.1        12 heads, not timm's 6
vit_b      768   12     12     0.3
vit_l      1024  24     16     0.5
vit_h      1280  32     16     0.55       patch 16, not timm's 14
=========  ====  =====  =====  =========  ======================

The head count is not visible in the weights, so it always comes from the variant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from vidpose.models.backbones.base import Backbone
from vidpose.models.backbones.pretrained import (
    CheckpointError,
    PretrainedParts,
    infer_grid,
    resample_pos_embed,
)
from vidpose.registry import BACKBONES

__all__ = ["ViTBackbone", "vit_tiny", "vit_s", "vit_b", "vit_l", "vit_h", "PATCH_SIZE"]

PATCH_SIZE = 16
PATCH_PADDING = (2, 2)


def _input_hw(input_hw: Sequence[int]) -> tuple[int, int]:
    """Validated ``(H, W)`` of the network input."""
    hw = tuple(int(v) for v in input_hw)
    if len(hw) != 2 or any(v <= 0 or v % PATCH_SIZE for v in hw):
        raise ValueError(
            f"ViT backbone: input_hw must be (H, W) with both sides positive multiples of "
            f"{PATCH_SIZE} (the padded patch grid floor((H + 4 - 16) / 16) + 1 equals H / 16 "
            f"only then), got {tuple(input_hw)}"
        )
    return hw[0], hw[1]


class ViTBackbone(Backbone):
    """Plain ViT (ViTPose semantics): ``(N, 3, H, W)`` -> ``(N, D, H/16, W/16)``."""

    checkpoint_family = "vit"

    def __init__(
        self,
        *,
        input_hw: Sequence[int],
        embed_dim: int,
        depth: int,
        num_heads: int,
        drop_path_rate: float = 0.0,
        checkpoint: str | Path | None = None,
    ) -> None:
        if embed_dim % num_heads:
            raise ValueError(
                f"ViT backbone: embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
            )
        super().__init__(out_channels=embed_dim, stride=PATCH_SIZE, num_layers=depth)
        self.input_hw = _input_hw(input_hw)
        self.grid = (self.input_hw[0] // PATCH_SIZE, self.input_hw[1] // PATCH_SIZE)
        self.vit = VisionTransformer(
            img_size=self.input_hw,
            patch_size=PATCH_SIZE,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            class_token=False,
            global_pool="",
            num_classes=0,
            drop_path_rate=drop_path_rate,
        )
        self.vit.patch_embed.proj.padding = PATCH_PADDING
        if checkpoint is not None:
            self.load_pretrained(checkpoint)

    @property
    def trunk(self) -> VisionTransformer:
        """The timm ``VisionTransformer``."""
        return self.vit

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, D, H/16, W/16)`` final-norm tokens on the patch grid."""
        if x.ndim != 4 or tuple(x.shape[-2:]) != self.input_hw or x.shape[1] != 3:
            raise ValueError(
                f"ViT backbone built for input (N, 3, {self.input_hw[0]}, {self.input_hw[1]}) "
                f"got {tuple(x.shape)}"
            )
        tokens = self.vit.forward_features(x)  # (N, Hp*Wp, D), token index = row * Wp + column
        n, _, d = tokens.shape
        return tokens.transpose(1, 2).reshape(n, d, *self.grid)

    def layer_id(self, name: str) -> int:
        """0 for ``vit.pos_embed`` / ``vit.patch_embed.*``, i+1 for block i, depth+1 otherwise."""
        self._check_param_name(name)
        if name == "vit.pos_embed" or name.startswith("vit.patch_embed."):
            return 0
        match = re.match(r"vit\.blocks\.(\d+)\.", name)
        if match:
            return int(match.group(1)) + 1
        return self.num_layers + 1

    def no_weight_decay(self) -> set[str]:
        """1-D parameters (norms, biases) and the position embedding."""
        return super().no_weight_decay() | {"vit.pos_embed"}

    def adapt_trunk_state(self, parts: PretrainedParts) -> dict[str, Tensor]:
        """Resample the checkpoint's position embedding when its grid differs from the model's."""
        trunk = dict(parts.trunk)
        pos_embed = trunk.get("pos_embed")
        expected = self.grid[0] * self.grid[1]
        if pos_embed is None or pos_embed.ndim != 3 or pos_embed.shape[1] == expected:
            return trunk  # absent or malformed: the strict key check reports it
        src_grid = infer_grid(pos_embed.shape[1])
        if src_grid is None:
            raise CheckpointError(
                f"{parts.source}: pos_embed has {pos_embed.shape[1]} positions, not a 4:3 or "
                f"square grid, so it cannot be resampled to this model's "
                f"{self.grid[0]}x{self.grid[1]} grid"
            )
        trunk["pos_embed"] = resample_pos_embed(pos_embed, src_grid, self.grid)
        parts.notes.append(
            f"pos_embed: resampled from a {src_grid[0]}x{src_grid[1]} to a "
            f"{self.grid[0]}x{self.grid[1]} grid (bicubic, antialiased)"
        )
        return trunk


def _build(
    dims: tuple[int, int, int],
    input_hw: Sequence[int],
    drop_path_rate: float,
    checkpoint: str | None,
) -> ViTBackbone:
    """A ``ViTBackbone`` of ``(embed_dim, depth, num_heads)``."""
    embed_dim, depth, num_heads = dims
    return ViTBackbone(
        input_hw=input_hw,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        drop_path_rate=drop_path_rate,
        checkpoint=checkpoint,
    )


@BACKBONES.register("vit_s")
def vit_s(
    input_hw: Sequence[int],
    drop_path_rate: float = 0.1,
    checkpoint: str | None = None,
) -> ViTBackbone:
    """ViTPose-S (D 384, depth 12, 12 heads): (N, 384, H/16, W/16)."""
    return _build((384, 12, 12), input_hw, drop_path_rate, checkpoint)


@BACKBONES.register("vit_b")
def vit_b(
    input_hw: Sequence[int],
    drop_path_rate: float = 0.3,
    checkpoint: str | None = None,
) -> ViTBackbone:
    """ViTPose-B (D 768, depth 12, 12 heads): (N, 768, H/16, W/16)."""
    return _build((768, 12, 12), input_hw, drop_path_rate, checkpoint)


@BACKBONES.register("vit_l")
def vit_l(
    input_hw: Sequence[int],
    drop_path_rate: float = 0.5,
    checkpoint: str | None = None,
) -> ViTBackbone:
    """ViTPose-L (D 1024, depth 24, 16 heads): (N, 1024, H/16, W/16)."""
    return _build((1024, 24, 16), input_hw, drop_path_rate, checkpoint)


@BACKBONES.register("vit_h")
def vit_h(
    input_hw: Sequence[int],
    drop_path_rate: float = 0.55,
    checkpoint: str | None = None,
) -> ViTBackbone:
    """ViTPose-H (D 1280, depth 32, 16 heads, patch 16): (N, 1280, H/16, W/16)."""
    return _build((1280, 32, 16), input_hw, drop_path_rate, checkpoint)


@BACKBONES.register("vit_tiny")
def vit_tiny(
    input_hw: Sequence[int],
    embed_dim: int = 192,
    depth: int = 6,
    num_heads: int = 3,
    drop_path_rate: float = 0.0,
    checkpoint: str | None = None,
) -> ViTBackbone:
    """Small ViT for CPU runs (ours; sizes overridable): (N, embed_dim, H/16, W/16)."""
    return _build((embed_dim, depth, num_heads), input_hw, drop_path_rate, checkpoint)
