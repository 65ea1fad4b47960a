"""VREMD's bidirectional motion disentanglement (BMD), spec ``models.md`` sections 2.3-2.4.

Forward motion ``M_f = F_{t+1} - F_t`` and backward motion ``M_b = F_{t-1} - F_t`` (patch tokens
of the backbone) each go through their own stack of adaptive deformable cross (ADC) blocks,
constrained by the HKME feature ``F``; a fusion layer merges the two directions into ``M``.
An ADC block has two branches on the motion ``x``:

- the motion attention (default: deformable cross attention, DCA — DAT-style sampled keys with
  offsets from ``W_q x`` concatenated with ``W_z F``), queries from the motion;
- a cross attention with queries from ``F`` and keys/values from the motion;

then ``x <- x + MLP(cat[a, c])``. Ablation operators (``motion_attention``): ``dc`` a modulated
deformable 3x3 conv whose offsets and mask come from the motion itself, ``da`` single-scale
Deformable-DETR attention with queries from the motion. With ``bidirectional=False`` the two
directions are merged *before* one ADC stack instead of after two.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import Tensor, nn

from vidpose.models.ops.deform_attn import DeformableAttention, DeformableDETRAttention
from vidpose.models.ops.deform_conv import ModulatedDeformConvWithOffsets
from vidpose.models.ops.grid import pixel_centres

__all__ = [
    "MOTION_ATTENTION_CHOICES",
    "AdaptiveDeformableCrossBlock",
    "BidirectionalMotionDisentanglement",
    "ConstrainedDeformableAttention",
    "MotionDeformableConv",
    "MotionDeformableDETRAttention",
    "build_motion_attention",
]

#: values of the ``motion_attention`` switch: the ADC block's deformable operator
MOTION_ATTENTION_CHOICES = ("dca", "dc", "da")


def _to_map(tokens: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """Row-major tokens ``(B, N, C)`` -> map ``(B, C, h, w)``."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid_hw)


def _to_tokens(feature_map: Tensor) -> Tensor:
    """Map ``(B, C, h, w)`` -> row-major tokens ``(B, h*w, C)``."""
    return feature_map.flatten(2).transpose(1, 2)


class ConstrainedDeformableAttention(nn.Module):
    """DCA (VREMD Eq. 3-4): motion tokens attend to motion keys sampled where ``q ⊕ z`` points.

    ``(x (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``; ``attention`` is the DAT-style
    :class:`DeformableAttention` built with ``use_constraint`` (its ``proj_z`` is ``W_z``).
    """

    def __init__(
        self, dim: int, num_heads: int, num_groups: int, kernel_size: int, range_factor: float
    ) -> None:
        super().__init__()
        self.attention = DeformableAttention(
            dim,
            num_heads=num_heads,
            num_groups=num_groups,
            kernel_size=kernel_size,
            range_factor=range_factor,
            use_constraint=True,
        )

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` constrained by ``(B, N, e)`` -> ``(B, N, e)``."""
        motion = _to_map(x, grid_hw)
        return _to_tokens(self.attention(motion, motion, constraint=_to_map(constraint, grid_hw)))


class MotionDeformableConv(nn.Module):
    """Ablation "DC": DCNv2 3x3 on the motion map, offsets and mask predicted from the motion.

    ``(x (B, N, e), constraint, grid_hw) -> (B, N, e)``; the constraint is not used (a
    deformable conv has no second input).
    """

    def __init__(self, dim: int, num_groups: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedDeformConvWithOffsets(
            dim, dim, offset_in_channels=dim, kernel_size=kernel_size, deform_groups=num_groups
        )

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` -> ``(B, N, e)``."""
        motion = _to_map(x, grid_hw)
        return _to_tokens(self.conv(motion, motion))


class MotionDeformableDETRAttention(nn.Module):
    """Ablation "DA": Deformable-DETR attention, queries and values from the motion.

    Each motion token reads ``num_points`` points per head around its own grid cell.
    ``(x (B, N, e), constraint, grid_hw) -> (B, N, e)``; the constraint is not used.
    """

    def __init__(self, dim: int, num_heads: int, num_points: int) -> None:
        super().__init__()
        self.attention = DeformableDETRAttention(dim, num_heads=num_heads, num_points=num_points)

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` -> ``(B, N, e)``."""
        reference = pixel_centres(grid_hw, device=x.device, dtype=torch.float32).reshape(1, -1, 2)
        return self.attention(x, _to_map(x, grid_hw), reference.expand(x.shape[0], -1, -1))


def build_motion_attention(
    kind: str,
    dim: int,
    num_heads: int,
    num_groups: int,
    offset_kernel: int,
    offset_range: float,
    da_points: int,
) -> nn.Module:
    """The ADC block's deformable branch named by ``kind`` (``dca`` | ``dc`` | ``da``)."""
    if kind == "dca":
        return ConstrainedDeformableAttention(
            dim, num_heads, num_groups, offset_kernel, offset_range
        )
    if kind == "dc":
        return MotionDeformableConv(dim, num_groups)
    if kind == "da":
        return MotionDeformableDETRAttention(dim, num_heads, da_points)
    raise ValueError(f"motion_attention: expected one of {MOTION_ATTENTION_CHOICES}, got {kind!r}")


class AdaptiveDeformableCrossBlock(nn.Module):
    """ADC block: ``x <- x + MLP(cat[deformable(LN x, LN F), CrossAttn(q=LN F, kv=LN x)])``.

    ``(x (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``; the MLP is
    ``Linear(2e -> e) - GELU - Linear(e -> e)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        motion_attention: str = "dca",
        num_groups: int = 4,
        offset_kernel: int = 5,
        offset_range: float = 2.0,
        da_points: int = 4,
    ) -> None:
        super().__init__()
        self.norm_motion = nn.LayerNorm(dim, eps=1e-6)
        self.norm_constraint = nn.LayerNorm(dim, eps=1e-6)
        self.motion_attention = build_motion_attention(
            motion_attention, dim, num_heads, num_groups, offset_kernel, offset_range, da_points
        )
        self.cross_attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = Mlp(2 * dim, hidden_features=dim, out_features=dim)

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` constrained by ``(B, N, e)`` -> updated motion ``(B, N, e)``."""
        motion, feature = self.norm_motion(x), self.norm_constraint(constraint)
        deformable = self.motion_attention(motion, feature, grid_hw)
        cross, _ = self.cross_attention(feature, motion, motion, need_weights=False)
        return x + self.mlp(torch.cat((deformable, cross), dim=-1))


class BidirectionalMotionDisentanglement(nn.Module):
    """BMD: tokens of frames ``t-1, t, t+1`` and the HKME feature -> fused motion ``M``.

    ``forward(previous, key, following (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_blocks: int = 2,
        bidirectional: bool = True,
        motion_attention: str = "dca",
        num_groups: int = 4,
        offset_kernel: int = 5,
        offset_range: float = 2.0,
        da_points: int = 4,
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"BMD num_blocks must be at least 1, got {num_blocks}")
        self.bidirectional = bool(bidirectional)

        def stack() -> nn.ModuleList:
            return nn.ModuleList(
                AdaptiveDeformableCrossBlock(
                    dim,
                    num_heads,
                    motion_attention=motion_attention,
                    num_groups=num_groups,
                    offset_kernel=offset_kernel,
                    offset_range=offset_range,
                    da_points=da_points,
                )
                for _ in range(num_blocks)
            )

        if self.bidirectional:
            self.forward_blocks, self.backward_blocks = stack(), stack()
            self.fusion = nn.Linear(2 * dim, dim)
        else:
            # no separation: the two directions are merged first and share one stack
            self.merge = nn.Linear(2 * dim, dim)
            self.blocks = stack()

    @staticmethod
    def _run(
        blocks: nn.ModuleList, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]
    ) -> Tensor:
        for block in blocks:
            x = block(x, constraint, grid_hw)
        return x

    def forward(
        self,
        previous: Tensor,
        key: Tensor,
        following: Tensor,
        constraint: Tensor,
        grid_hw: tuple[int, int],
    ) -> Tensor:
        """Tokens ``(B, N, e)`` x 3 and the constraint ``(B, N, e)`` -> motion ``(B, N, e)``."""
        forward_motion, backward_motion = following - key, previous - key
        if not self.bidirectional:
            merged = self.merge(torch.cat((forward_motion, backward_motion), dim=-1))
            return self._run(self.blocks, merged, constraint, grid_hw)
        forward_motion = self._run(self.forward_blocks, forward_motion, constraint, grid_hw)
        backward_motion = self._run(self.backward_blocks, backward_motion, constraint, grid_hw)
        return self.fusion(torch.cat((forward_motion, backward_motion), dim=-1))
