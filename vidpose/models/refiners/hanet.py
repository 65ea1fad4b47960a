"""HANet: kinematic-aware hierarchical attention refiner of 2-D keypoint sequences (models.md section 5).

Input: a window of ``L = N*Q + 1`` stage-1 poses ``(B, L, K, 2)`` in normalised coordinates.
Only the frames on the sampling grid (``index % N == 0``) are seen, plus the raw poses of their
immediate neighbours (the kinematic features); every other frame is zeroed and masked.

1. Kinematic features (:func:`kinematic_features`): previous / next frame by a shift of one
   with edge replication, taken from the raw input and zeroed off the grid; flow = mean of
   previous, current and next; velocities ``P - prev`` and ``next - P``.
2. Encoder tokens: ``Linear(4*KD -> C)`` of ``[flow, P, prev, next]``.
3. Hierarchical encoder: level ``l`` is one Transformer layer of width ``C * 2**l`` whose
   self-attention masks the diagonal (a frame never attends to itself) and the off-grid
   frames; a sine position code is added to queries and keys. ``Linear(C*2**l -> C*2**(l+1))``
   feeds the next level (the official code also computes one after the last level and never
   uses it; it is not created here). Each level's output goes through a 1x1 conv to width C;
   their mean ``X`` gives ``P' = Linear(C -> KD)(X) + P``.
4. Decoder: ``P'`` at the sampled frames, linearly interpolated back to L frames, embedded by
   ``Conv1d(KD -> C, k=5)``, is the query stream; the memory is
   ``Linear(3*KD + C -> C)([X, v_prev', v_next', a'])`` where ``v'`` are per-channel affine
   maps of the velocities and ``a' = affine((v_next' - v_prev')**2)``. ``P_s = Linear(C -> KD)
   (decoder output) + interpolated P'``.

Module names follow the official implementation (KyungMinJin/HANet ``Transformer``), so an
official checkpoint loads through :func:`convert_official_state_dict`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.registry import REFINERS

__all__ = ["HANet", "KinematicFeatures", "kinematic_features", "sine_positions", "convert_official_state_dict"]

_ACTIVATIONS = {"leaky_relu": F.leaky_relu, "relu": F.relu, "gelu": F.gelu}
OFF_GRID_MEMORY = ("plus_one", "masked")


@dataclass
class KinematicFeatures:
    """Per-frame kinematic features of a window, each ``(B, L, C)`` with C = K*D coordinates."""

    masked: Tensor  # the input with off-grid frames zeroed
    prev: Tensor  # raw pose of the previous frame (first frame replicated), zeroed off-grid
    next: Tensor  # raw pose of the next frame (last frame replicated), zeroed off-grid
    flow: Tensor  # (prev + masked + next) / 3
    velocity_prev: Tensor  # masked - prev
    velocity_next: Tensor  # next - masked


def kinematic_features(poses: Tensor, sampled: Tensor) -> KinematicFeatures:
    """Neighbours, flow and velocities of ``(B, L, C)`` poses with the ``(L,)`` bool sampling grid."""
    keep = sampled.to(poses.dtype).view(1, -1, 1)
    prev = torch.cat([poses[:, :1], poses[:, :-1]], dim=1) * keep
    nxt = torch.cat([poses[:, 1:], poses[:, -1:]], dim=1) * keep
    masked = poses * keep
    return KinematicFeatures(
        masked=masked,
        prev=prev,
        next=nxt,
        flow=(prev + masked + nxt) / 3.0,
        velocity_prev=masked - prev,
        velocity_next=nxt - masked,
    )


def sine_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """HANet's 1-D sine code ``(length, dim)``: channel 2i = sin(p / 10000**(2i/n)), 2i+1 = cos, n = dim/2.

    Positions are ``2*pi*l / (length - 1 + 1e-6)``. The exponent uses ``2i/n`` for every
    channel pair (not the usual ``2*floor(i/2)/n``), as the official code does.
    """
    if dim % 2:
        raise ValueError(f"sine_positions: dim must be even, got {dim}")
    half = dim // 2
    position = torch.arange(length, dtype=torch.float32, device=device)
    position = position / (max(length - 1, 0) + 1e-6) * (2 * math.pi)
    frequency = 10000.0 ** (2 * torch.arange(half, dtype=torch.float32, device=device) / half)
    angle = position[:, None] / frequency
    code = torch.zeros(length, dim, device=device)
    code[:, 0::2] = angle.sin()
    code[:, 1::2] = angle.cos()
    return code


class _EncoderLayer(nn.Module):
    """Self-attention + FFN at one width, post-norm (official default) or pre-norm."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, activation: str, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = _ACTIVATIONS[activation]
        self.pre_norm = pre_norm

    def _ffn(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def forward(self, x: Tensor, pos: Tensor, attn_mask: Tensor, key_padding_mask: Tensor) -> Tensor:
        """``(B, L, E)`` tokens -> ``(B, L, E)``; ``pos (1, L, E)`` is added to queries and keys only."""
        if self.pre_norm:
            h = self.norm1(x)
            x = x + self.dropout1(self.self_attn(h + pos, h + pos, h, attn_mask=attn_mask,
                                                 key_padding_mask=key_padding_mask, need_weights=False)[0])
            return x + self.dropout2(self._ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout1(self.self_attn(x + pos, x + pos, x, attn_mask=attn_mask,
                                                        key_padding_mask=key_padding_mask, need_weights=False)[0]))
        return self.norm2(x + self.dropout2(self._ffn(x)))


class _DecoderLayer(nn.Module):
    """Self-attention on the query stream, cross-attention to the memory, FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, activation: str, pre_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = _ACTIVATIONS[activation]
        self.pre_norm = pre_norm

    def _ffn(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor, memory_mask: Tensor) -> Tensor:
        """Queries ``(B, L, C)`` attend to memory ``(B, L, C)``; ``pos (1, L, C)`` on queries and keys."""
        if self.pre_norm:
            h = self.norm1(tgt)
            tgt = tgt + self.dropout1(self.self_attn(h + pos, h + pos, h, need_weights=False)[0])
            h = self.norm2(tgt)
            tgt = tgt + self.dropout2(self.multihead_attn(h + pos, memory + pos, memory,
                                                          key_padding_mask=memory_mask, need_weights=False)[0])
            return tgt + self.dropout3(self._ffn(self.norm3(tgt)))
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(tgt + pos, tgt + pos, tgt, need_weights=False)[0]))
        tgt = self.norm2(tgt + self.dropout2(self.multihead_attn(tgt + pos, memory + pos, memory,
                                                                 key_padding_mask=memory_mask, need_weights=False)[0]))
        return self.norm3(tgt + self.dropout3(self._ffn(tgt)))


class _LayerStack(nn.Module):
    """Layers applied in turn, then an optional final norm (the official ``layers`` / ``norm`` names)."""

    def __init__(self, layers: list[nn.Module], norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(self, x: Tensor, *args: Tensor) -> Tensor:
        """Run every layer on ``x`` with the same extra arguments."""
        for layer in self.layers:
            x = layer(x, *args)
        return x if self.norm is None else self.norm(x)


@REFINERS.register("hanet")
class HANet(nn.Module):
    """Refines a window ``(B, L, K, 2)`` of poses; returns ``refined`` (P_s) and ``encoder`` (P') of the same shape.

    ``off_grid_memory`` decides how the decoder's cross-attention treats memory frames off the
    sampling grid: ``plus_one`` reproduces the official code as it runs (its integer key-padding
    mask is added to the attention logits by torch 1.9-1.13, so those frames get +1 instead of
    being masked; docs/methods/hanet.md), ``masked`` removes them (the evident intent).
    """

    def __init__(
        self,
        num_joints: int,
        window: int = 11,
        sample_interval: int = 5,
        hidden_dim: int = 256,
        num_levels: int = 5,
        num_decoder_layers: int = 5,
        heads: int = 4,
        ffn_ratio: int = 4,
        dropout: float = 0.1,
        activation: str = "leaky_relu",
        pre_norm: bool = False,
        off_grid_memory: str = "plus_one",
        coord_dim: int = 2,
    ) -> None:
        super().__init__()
        if sample_interval < 1 or window < sample_interval + 1 or (window - 1) % sample_interval:
            raise ValueError(
                f"refiner: window {window} must be sample_interval * Q + 1 with Q >= 1 "
                f"(sample_interval {sample_interval})"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(f"refiner.activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if off_grid_memory not in OFF_GRID_MEMORY:
            raise ValueError(f"refiner.off_grid_memory: expected one of {OFF_GRID_MEMORY}, got {off_grid_memory!r}")
        if num_levels < 1 or num_decoder_layers < 1:
            raise ValueError("refiner: num_levels and num_decoder_layers must be >= 1")
        if hidden_dim % (2 * heads):
            raise ValueError(f"refiner.hidden_dim {hidden_dim} must be a multiple of 2 * heads ({2 * heads})")
        self.num_joints, self.coord_dim = int(num_joints), int(coord_dim)
        self.window, self.sample_interval = int(window), int(sample_interval)
        self.hidden_dim, self.num_levels = int(hidden_dim), int(num_levels)
        self.off_grid_memory = off_grid_memory
        channels = self.num_joints * self.coord_dim
        c = self.hidden_dim

        self.encoder_embed = nn.Linear(4 * channels, c)
        self.encoder = nn.ModuleList(
            _LayerStack([_EncoderLayer(c * 2**lv, heads, ffn_ratio * c * 2**lv, dropout, activation, pre_norm)])
            for lv in range(num_levels)
        )
        self.projection = nn.ModuleList(nn.Linear(c * 2**lv, c * 2 ** (lv + 1)) for lv in range(num_levels - 1))
        self.offset_refine = nn.ModuleList(nn.Conv1d(c * 2**lv, c, kernel_size=1) for lv in range(num_levels))
        self.encoder_joints_embed = nn.Linear(c, channels)

        self.decoder_embed = nn.Conv1d(channels, c, kernel_size=5, padding=2)
        self.prev_v_embed = nn.Conv1d(channels, channels, kernel_size=1, groups=channels)
        self.next_v_embed = nn.Conv1d(channels, channels, kernel_size=1, groups=channels)
        self.acc_embed = nn.Conv1d(channels, channels, kernel_size=1, groups=channels)
        self.motion_embed = nn.Linear(3 * channels + c, c)
        self.decoder = _LayerStack(
            [_DecoderLayer(c, heads, ffn_ratio * c, dropout, activation, pre_norm) for _ in range(num_decoder_layers)],
            norm=nn.LayerNorm(c),
        )
        self.decoder_joints_embed = nn.Linear(c, channels)
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    def sampled_frames(self, device: torch.device | None = None) -> Tensor:
        """``(L,)`` bool: the frames on the sampling grid (``index % N == 0``)."""
        return torch.arange(self.window, device=device) % self.sample_interval == 0

    def forward(self, poses: Tensor) -> dict[str, Tensor]:
        """``(B, L, K, 2)`` poses -> ``{"refined": P_s, "encoder": P'}``, both ``(B, L, K, 2)``."""
        b, length, k, d = poses.shape
        if length != self.window or k != self.num_joints or d != self.coord_dim:
            raise ValueError(
                f"HANet: expected poses (B, {self.window}, {self.num_joints}, {self.coord_dim}), "
                f"got {tuple(poses.shape)}"
            )
        x = poses.reshape(b, length, k * d).float()
        sampled = self.sampled_frames(poses.device)
        feats = kinematic_features(x, sampled)
        off_grid = (~sampled).unsqueeze(0).expand(b, length)
        no_self = torch.eye(length, dtype=torch.bool, device=poses.device)

        tokens = self.encoder_embed(torch.cat([feats.flow, feats.masked, feats.prev, feats.next], dim=-1))
        offsets = []
        for level, stack in enumerate(self.encoder):
            pos = sine_positions(length, tokens.shape[-1], poses.device).unsqueeze(0)
            tokens = stack(tokens, pos, no_self, off_grid)
            offsets.append(self.offset_refine[level](tokens.transpose(1, 2)).transpose(1, 2))
            if level < len(self.projection):
                tokens = self.projection[level](tokens)
        fused = torch.stack(offsets).mean(dim=0)
        coarse = self.encoder_joints_embed(fused) + feats.masked

        anchors = coarse[:, :: self.sample_interval].transpose(1, 2)
        centre = F.interpolate(anchors, size=length, mode="linear", align_corners=True)
        queries = self.decoder_embed(centre).transpose(1, 2)

        v_prev = self.prev_v_embed(feats.velocity_prev.transpose(1, 2))
        v_next = self.next_v_embed(feats.velocity_next.transpose(1, 2))
        acc = self.acc_embed((v_next - v_prev) ** 2)
        motion = torch.cat([v_prev, v_next, acc], dim=1).transpose(1, 2)
        memory = self.motion_embed(torch.cat([fused, motion], dim=-1))
        memory_mask = off_grid if self.off_grid_memory == "masked" else off_grid.to(memory.dtype)
        pos = sine_positions(length, self.hidden_dim, poses.device).unsqueeze(0)
        out = self.decoder(queries, memory, pos, memory_mask)
        refined = self.decoder_joints_embed(out) + centre.transpose(1, 2)
        return {"refined": refined.view(b, length, k, d), "encoder": coarse.view(b, length, k, d)}


def convert_official_state_dict(state: Mapping[str, Tensor], num_levels: int) -> dict[str, Tensor]:
    """An official HANet ``state_dict`` (``transformer.*`` keys, optional ``module.``) -> :class:`HANet` keys.

    Drops what the official model creates but never uses: the last projection
    ``projection.{num_levels - 1}`` and, in a pre-norm model, the per-level LayerNorms
    ``encoder_norm.{level}`` (its encoder stacks are built without them). Any other key that is
    not the official model's raises, naming it.
    """
    out: dict[str, Tensor] = {}
    unused = re.compile(
        rf"^(projection\.{num_levels - 1}|encoder_norm\.({'|'.join(str(lv) for lv in range(num_levels))}))\."
    )
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if not name.startswith("transformer."):
            raise KeyError(f"official HANet state_dict: unexpected key {key!r} (expected 'transformer.*')")
        name = name[len("transformer."):]
        if not unused.match(name):
            out[name] = value
    return out
