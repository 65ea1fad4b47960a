"""VREMD's bidirectional motion disentanglement (BMD), spec ``models.md`` sections 2.3-2.4.

Forward motion ``M_f = F_{t+1} - F_t`` and backward motion ``M_b = F_{t-1} - F_t`` (patch tokens
of the backbone) each go through their own stack of adaptive deformable cross (ADC) blocks,
constrained by the HKME feature ``F``; a fusion layer merges the two directions into ``M``.
An ADC block has two branches on the motion ``x``:

- the motion attention (default: deformable cross attention, DCA — DAT-style sampled keys with
  offsets from ``W_q x`` concatenated with ``W_z F``), queries from the motion;
- a cross attention with queries from ``F`` and keys/values from the motion;

then ``x <- x + MLP(cat[a, c])``. The paper's Table 6 replaces the whole ADC block
(``motion_attention``): ``dc`` by a block around the plain deformable 3x3 convolution of Dai et
al. 2017 (DCNv1, no modulation), ``da`` by a block around single-scale Deformable-DETR
attention; neither has the cross attention. The constraint ``F`` keeps the one role it has in
DCA (Eq. 3, ``Δp = θ(ψ(q ⊕ z))``): it steers where the operator samples (DC's offsets come from
``x ⊕ F``, DA's query is ``x + W_z F``), so the rows differ only in the operator. With
``bidirectional=False`` the two directions are merged *before* one block stack instead of after
two.
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
    "DeformableOperatorBlock",
    "MotionDeformableConv",
    "MotionDeformableDETRAttention",
    "build_motion_block",
]

#: values of the ``motion_attention`` switch: ADC blocks (dca) or the Table 6 replacements (dc, da)
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
    """Table 6 "DC": DCNv1 3x3 (Dai et al. 2017) on the motion map, offsets from ``x ⊕ F``.

    ``(x (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``; no modulation mask.
    """

    def __init__(self, dim: int, num_groups: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = ModulatedDeformConvWithOffsets(
            dim, dim, offset_in_channels=2 * dim, kernel_size=kernel_size, deform_groups=num_groups,
            modulated=False,
        )

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` steered by the constraint ``(B, N, e)`` -> ``(B, N, e)``."""
        motion = _to_map(x, grid_hw)
        return _to_tokens(self.conv(motion, torch.cat((motion, _to_map(constraint, grid_hw)), dim=1)))


class MotionDeformableDETRAttention(nn.Module):
    """Table 6 "DA": Deformable-DETR attention with query ``x + W_z F`` and values from the motion.

    Each motion token reads ``num_points`` points per head around its own grid cell.
    ``(x (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``.
    """

    def __init__(self, dim: int, num_heads: int, num_points: int) -> None:
        super().__init__()
        self.proj_z = nn.Linear(dim, dim)
        self.attention = DeformableDETRAttention(dim, num_heads=num_heads, num_points=num_points)

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` steered by the constraint ``(B, N, e)`` -> ``(B, N, e)``."""
        reference = pixel_centres(grid_hw, device=x.device, dtype=torch.float32).reshape(1, -1, 2)
        query = x + self.proj_z(constraint)
        return self.attention(query, _to_map(x, grid_hw), reference.expand(x.shape[0], -1, -1))


class DeformableOperatorBlock(nn.Module):
    """A Table 6 replacement of the ADC block: ``x <- x + MLP(op(LN x, LN F))``.

    ``(x (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``; ``op`` is DC or DA (no cross
    attention branch), the MLP ``Linear(e -> e) - GELU - Linear(e -> e)``, the ADC block's output
    MLP for one branch instead of two.
    """

    def __init__(self, dim: int, operator: nn.Module) -> None:
        super().__init__()
        self.norm_motion = nn.LayerNorm(dim, eps=1e-6)
        self.norm_constraint = nn.LayerNorm(dim, eps=1e-6)
        self.operator = operator
        self.mlp = Mlp(dim, hidden_features=dim, out_features=dim)

    def forward(self, x: Tensor, constraint: Tensor, grid_hw: tuple[int, int]) -> Tensor:
        """Motion ``(B, N, e)`` constrained by ``(B, N, e)`` -> updated motion ``(B, N, e)``."""
        return x + self.mlp(self.operator(self.norm_motion(x), self.norm_constraint(constraint), grid_hw))


def build_motion_block(
    kind: str,
    dim: int,
    num_heads: int,
    num_groups: int,
    offset_kernel: int,
    offset_range: float,
    da_points: int,
) -> nn.Module:
    """One block of a BMD stack named by ``kind``: an ADC block (``dca``) or its ``dc``/``da`` replacement."""
    if kind == "dca":
        return AdaptiveDeformableCrossBlock(
            dim, num_heads, num_groups=num_groups, offset_kernel=offset_kernel, offset_range=offset_range
        )
    if kind == "dc":
        return DeformableOperatorBlock(dim, MotionDeformableConv(dim, num_groups))
    if kind == "da":
        return DeformableOperatorBlock(dim, MotionDeformableDETRAttention(dim, num_heads, da_points))
    raise ValueError(f"motion_attention: expected one of {MOTION_ATTENTION_CHOICES}, got {kind!r}")


class AdaptiveDeformableCrossBlock(nn.Module):
    """ADC block: ``x <- x + MLP(cat[DCA(LN x, LN F), CrossAttn(q=LN F, kv=LN x)])``.

    ``(x (B, N, e), constraint (B, N, e), grid_hw) -> (B, N, e)``; the MLP is
    ``Linear(2e -> e) - GELU - Linear(e -> e)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_groups: int = 4,
        offset_kernel: int = 5,
        offset_range: float = 2.0,
    ) -> None:
        super().__init__()
        self.norm_motion = nn.LayerNorm(dim, eps=1e-6)
        self.norm_constraint = nn.LayerNorm(dim, eps=1e-6)
        self.motion_attention = ConstrainedDeformableAttention(
            dim, num_heads, num_groups, offset_kernel, offset_range
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
                build_motion_block(
                    motion_attention, dim, num_heads, num_groups, offset_kernel, offset_range, da_points
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
