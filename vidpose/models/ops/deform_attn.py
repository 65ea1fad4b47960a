"""Deformable attention on ``grid_sample`` (no custom kernels).

Two forms (spec ``models.md`` sections 0.7, 2.1, 2.4):

- :class:`DeformableAttention` — DAT-style sampled-key attention, VREMD's deformable cross
  attention (DCA): keys and values are sampled at deformed reference points and every query
  attends to all sampled points with dot-product weights.
- :class:`DeformableDETRAttention` — Deformable-DETR attention (single scale), VREMD's "DA"
  ablation: each query reads a few points per head and mixes them with predicted weights.

All sampling positions are feature-pixel ``(x, y)`` points (pixel centres at integers) and go
through :func:`vidpose.models.ops.grid.sample_at_pixels` (``align_corners=False``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.models.ops.grid import pixel_centres, sample_at_pixels

__all__ = ["OffsetNetwork", "DeformableAttention", "DeformableDETRAttention"]


def _check_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _xavier_linear(layer: nn.Linear) -> None:
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class OffsetNetwork(nn.Module):
    """DAT offset generator: depthwise ``k x k`` conv -> channel LayerNorm -> GELU -> 1x1 conv to 2.

    Maps ``(N, C, H, W)`` to raw offsets ``(N, 2, H, W)`` with channel 0 = dx, 1 = dy. The last
    conv has no bias and a zero weight, so the network starts at zero offsets.
    """

    def __init__(self, channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        _check_positive("OffsetNetwork", channels=channels, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"OffsetNetwork: kernel_size must be odd to keep the grid, got {kernel_size}"
            )
        self.depthwise = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
        )
        self.norm = nn.LayerNorm(channels)
        self.act = nn.GELU()
        self.to_offset = nn.Conv2d(channels, 2, 1, bias=False)
        nn.init.zeros_(self.to_offset.weight)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, 2, H, W)`` raw (dx, dy) before the tanh range limit."""
        x = self.depthwise(x)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.to_offset(self.act(x))


class DeformableAttention(nn.Module):
    """DAT-style deformable attention on a ``(B, C, H, W)`` token grid (VREMD's DCA, spec 2.4).

    ``q = W_q x``; per offset group ``g`` the group's ``C/G`` channels of ``q`` (concatenated with
    the same channels of ``z = W_z constraint`` when ``use_constraint``) go through a shared
    :class:`OffsetNetwork`; offsets are ``tanh(.) * range_factor`` reference cells around the
    reference points (the ``H x W`` token centres, one sample per cell). The source is sampled
    per group at reference + offset (bilinear, zeros outside), so sampled token ``n``
    concatenates, for each group, that group's channels read at its own position ``n``
    (DAT's layout). ``k = W_k x̄``, ``v = W_v x̄``; each query attends to all ``H*W`` sampled
    tokens per head (scale ``head_dim^-0.5``); then an output projection.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        num_groups: int = 4,
        kernel_size: int = 5,
        range_factor: float = 2.0,
        use_constraint: bool = False,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        _check_positive("DeformableAttention", dim=dim, num_heads=num_heads, num_groups=num_groups)
        if dim % num_heads:
            raise ValueError(f"DeformableAttention: num_heads={num_heads} must divide dim={dim}")
        if dim % num_groups:
            raise ValueError(f"DeformableAttention: num_groups={num_groups} must divide dim={dim}")
        if not range_factor > 0:
            raise ValueError(
                f"DeformableAttention: range_factor must be > 0 reference cells, "
                f"got {range_factor!r}"
            )
        self.dim = dim
        self.num_heads = num_heads
        self.num_groups = num_groups
        self.head_dim = dim // num_heads
        self.range_factor = float(range_factor)
        self.use_constraint = use_constraint
        self.proj_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_z = nn.Linear(dim, dim, bias=qkv_bias) if use_constraint else None
        self.proj_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj_out = nn.Linear(dim, dim)
        group_channels = dim // num_groups
        self.offset_net = OffsetNetwork(group_channels * (2 if use_constraint else 1), kernel_size)
        for layer in (self.proj_q, self.proj_z, self.proj_k, self.proj_v, self.proj_out):
            if layer is not None:
                _xavier_linear(layer)

    def _check_map(self, name: str, x: Tensor, like: Tensor | None = None) -> None:
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(
                f"DeformableAttention: {name} must be (B, {self.dim}, H, W), got {tuple(x.shape)}"
            )
        if like is not None and (x.shape[0] != like.shape[0] or x.shape[-2:] != like.shape[-2:]):
            raise ValueError(
                f"DeformableAttention: {name} {tuple(x.shape)} must have the batch and grid "
                f"of query {tuple(like.shape)}"
            )

    def _per_group(self, tokens: Tensor, height: int, width: int) -> Tensor:
        """``(B, H*W, C) -> (B*G, C/G, H, W)``."""
        batch = tokens.shape[0]
        return tokens.transpose(1, 2).reshape(
            batch * self.num_groups, self.dim // self.num_groups, height, width
        )

    def forward(
        self,
        query: Tensor,
        source: Tensor | None = None,
        constraint: Tensor | None = None,
        return_sampling: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Attend from ``query`` to ``source`` (default query), all ``(B, C, H, W)`` -> same shape.

        ``constraint`` (also ``(B, C, H, W)``) is required exactly when built with
        ``use_constraint``. With ``return_sampling`` also returns ``{"positions":
        (B, G, H, W, 2)`` feature-pixel (x, y) sampling points, ``"offsets"``: same shape,
        ``"sampled": (B, C, H, W)}`` (the source read at the positions, before the key/value
        projections).
        """
        self._check_map("query", query)
        source = query if source is None else source
        self._check_map("source", source, like=query)
        if self.use_constraint != (constraint is not None):
            state = (
                "was built with use_constraint=True"
                if self.use_constraint
                else "was built without a constraint"
            )
            raise ValueError(
                f"DeformableAttention {state}; "
                f"got constraint={'None' if constraint is None else 'a tensor'}"
            )
        batch, _, height, width = query.shape
        groups = self.num_groups

        q = self.proj_q(query.flatten(2).transpose(1, 2))
        offset_input = self._per_group(q, height, width)
        if constraint is not None:
            self._check_map("constraint", constraint, like=query)
            z = self.proj_z(constraint.flatten(2).transpose(1, 2))
            offset_input = torch.cat((offset_input, self._per_group(z, height, width)), dim=1)
        raw = self.offset_net(offset_input)
        # positions stay in (at least) float32 under autocast: bf16 cannot hold sub-pixel steps
        offsets = (
            torch.tanh(raw.to(torch.promote_types(raw.dtype, torch.float32))) * self.range_factor
        )
        offsets = offsets.permute(0, 2, 3, 1)
        reference = pixel_centres((height, width), device=query.device, dtype=offsets.dtype)
        positions = reference + offsets

        source_groups = source.reshape(batch * groups, self.dim // groups, height, width)
        sampled = sample_at_pixels(source_groups, positions).reshape(
            batch, self.dim, height * width
        )
        sampled_tokens = sampled.transpose(1, 2)
        k = self.proj_k(sampled_tokens)
        v = self.proj_v(sampled_tokens)

        def heads(t: Tensor) -> Tensor:
            return t.reshape(batch, -1, self.num_heads, self.head_dim).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), scale=self.head_dim**-0.5
        )
        out = self.proj_out(attended.transpose(1, 2).reshape(batch, height * width, self.dim))
        out = out.transpose(1, 2).reshape(batch, self.dim, height, width)
        if not return_sampling:
            return out
        info = {
            "positions": positions.reshape(batch, groups, height, width, 2),
            "offsets": offsets.reshape(batch, groups, height, width, 2),
            "sampled": sampled.reshape(batch, self.dim, height, width),
        }
        return out, info


class DeformableDETRAttention(nn.Module):
    """Deformable-DETR attention on one feature level (VREMD's "DA" ablation).

    Per query and head, ``num_points`` sampling offsets (feature pixels) come from a linear layer
    on the query and attention weights from another (softmax over the points); the projected
    value map is read at reference + offset (bilinear, zeros outside) and mixed by the weights.
    Initialisation as Deformable-DETR: offset weight 0 with bias = head ``h``'s direction
    ``2 pi h / heads`` scaled to a largest component of 1, times ``p + 1`` for point ``p``;
    attention-weight layer all 0 (uniform); value/output projections Xavier-uniform, bias 0.
    """

    def __init__(self, dim: int, num_heads: int = 8, num_points: int = 4) -> None:
        super().__init__()
        _check_positive(
            "DeformableDETRAttention", dim=dim, num_heads=num_heads, num_points=num_points
        )
        if dim % num_heads:
            raise ValueError(
                f"DeformableDETRAttention: num_heads={num_heads} must divide dim={dim}"
            )
        self.dim = dim
        self.num_heads = num_heads
        self.num_points = num_points
        self.head_dim = dim // num_heads
        self.sampling_offsets = nn.Linear(dim, num_heads * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Deformable-DETR initialisation (see the class docstring)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float64) * (
            2.0 * math.pi / self.num_heads
        )
        directions = torch.stack((angles.cos(), angles.sin()), dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, self.num_points + 1, dtype=torch.float64)
        bias = directions[:, None, :] * steps[None, :, None]
        self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        _xavier_linear(self.value_proj)
        _xavier_linear(self.output_proj)

    def forward(
        self, query: Tensor, value: Tensor, reference: Tensor, return_sampling: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """``query (B, Nq, C)``, ``value (B, C, H, W)``, ``reference (B, Nq, 2)`` -> ``(B, Nq, C)``.

        With ``return_sampling`` also returns ``{"positions": (B, Nq, heads, points, 2)``
        feature-pixel points, ``"weights": (B, Nq, heads, points)}``.
        """
        if query.dim() != 3 or query.shape[-1] != self.dim:
            raise ValueError(
                f"DeformableDETRAttention: query must be (B, Nq, {self.dim}), "
                f"got {tuple(query.shape)}"
            )
        batch, num_queries, _ = query.shape
        if value.dim() != 4 or value.shape[:2] != (batch, self.dim):
            raise ValueError(
                f"DeformableDETRAttention: value must be ({batch}, {self.dim}, H, W), "
                f"got {tuple(value.shape)}"
            )
        if tuple(reference.shape) != (batch, num_queries, 2):
            raise ValueError(
                f"DeformableDETRAttention: reference must be ({batch}, {num_queries}, 2) (x, y), "
                f"got {tuple(reference.shape)}"
            )
        height, width = value.shape[-2:]
        heads, points = self.num_heads, self.num_points

        offsets = self.sampling_offsets(query).reshape(batch, num_queries, heads, points, 2)
        weights = (
            self.attention_weights(query).reshape(batch, num_queries, heads, points).softmax(dim=-1)
        )
        # positions stay in (at least) float32 under autocast: bf16 cannot hold sub-pixel steps
        position_dtype = torch.promote_types(offsets.dtype, torch.float32)
        positions = reference[:, :, None, None, :].to(position_dtype) + offsets.to(position_dtype)

        projected = self.value_proj(value.flatten(2).transpose(1, 2))
        value_heads = projected.transpose(1, 2).reshape(batch * heads, self.head_dim, height, width)
        head_positions = positions.permute(0, 2, 1, 3, 4).reshape(
            batch * heads, num_queries, points, 2
        )
        sampled = sample_at_pixels(value_heads, head_positions)
        head_weights = weights.permute(0, 2, 1, 3).reshape(batch * heads, 1, num_queries, points)
        mixed = (sampled * head_weights).sum(dim=-1)
        out = self.output_proj(mixed.reshape(batch, self.dim, num_queries).transpose(1, 2))
        if not return_sampling:
            return out
        return out, {"positions": positions, "weights": weights}
