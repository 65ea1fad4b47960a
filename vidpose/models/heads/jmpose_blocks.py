"""Building blocks of JM-Pose (models.md section 3.2): heatmap aggregation, the context-aware
joint learner (CJL) and the joint-motion interaction block (JMIB).

"Conv block" is Conv3x3 -> BN -> ReLU and "residual block" one HRNet BasicBlock at constant
width (section 3.5). Every map is ``(B, C, h, w)`` on the heatmap grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.models.ops.deform_conv import ModulatedDeformConv2d

__all__ = [
    "ConvBlock",
    "ResidualBlock",
    "SequenceHeatmapAggregation",
    "ContextAwareJointLearner",
    "JointMotionInteractionBlock",
    "INTERACTIONS",
    "RETRIEVAL_SOURCES",
]

#: the head's joint-motion interaction: L JMIBs (cross attention + gating), or none ("without JMIB")
INTERACTIONS = ("cross_attention", "none")


class ConvBlock(nn.Sequential):
    """Conv3x3 (no bias) -> BN -> ReLU: ``(B, Cin, h, w) -> (B, Cout, h, w)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """HRNet BasicBlock: ``ReLU(x + BN(conv(ReLU(BN(conv(x))))))``, ``(B, C, h, w)`` -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, h, w) -> (B, C, h, w)``."""
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class SequenceHeatmapAggregation(nn.Module):
    """Per joint, a 3x3 conv over that joint's T initial maps: ``(B, T, K, h, w) -> (B, K, h, w)``.

    A grouped conv (groups = K) on the joint-major interleaved stack; the centre tap starts at
    1/T and all else at 0, so at initialisation the output is the mean of the T maps.
    """

    def __init__(self, num_joints: int, num_frames: int) -> None:
        super().__init__()
        self.num_joints, self.num_frames = num_joints, num_frames
        self.conv = nn.Conv2d(num_joints * num_frames, num_joints, 3, padding=1, groups=num_joints)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :, 1, 1] = 1.0 / num_frames
            self.conv.bias.zero_()

    def forward(self, heatmaps: Tensor) -> Tensor:
        """Initial heatmaps ``(B, T, K, h, w)`` -> sequence heatmap ``(B, K, h, w)``."""
        expected = (self.num_frames, self.num_joints)
        if heatmaps.dim() != 5 or tuple(heatmaps.shape[1:3]) != expected:
            raise ValueError(
                f"initial heatmaps must be (B, {expected[0]}, {expected[1]}, h, w), got {tuple(heatmaps.shape)}"
            )
        return self.conv(heatmaps.transpose(1, 2).flatten(1, 2))


#: what the CJL's deformable convolution samples: the fused input ``Ĥ_t ⊕ M_t`` or the flow alone
RETRIEVAL_SOURCES = ("fused", "flow")


class ContextAwareJointLearner(nn.Module):
    """CJL: sequence heatmap ``(B, K, h, w)`` + motion ``(B, Cm, h, w)`` -> joint feature ``(B, C, h, w)``.

    ``R = ResidualBlock(ConvBlock(cat[H, M]))``; offsets ``JO`` and modulation ``JW`` come from
    their own residual block + 3x3 conv (zero-initialised: offsets 0, modulation 0.5); ``J =
    ReLU(BN(DCNv2(X; JO, JW)))``. ``retrieve_from="fused"`` samples ``X = cat[H, M]`` (R's
    input) with one offset group, so the joint evidence of the heatmaps reaches ``J`` even where
    the flow is zero; ``"flow"`` is the literal Eq. 5, ``X = M`` with ``deform_groups`` groups
    (one per motion field), where the image reaches ``J`` only through the offsets and
    modulation. With ``deformable=False`` (the "without CJL" ablation) ``J = R``: the same
    fused input, no learned sampling.
    """

    def __init__(
        self,
        num_joints: int,
        motion_channels: int,
        channels: int,
        deform_groups: int,
        deformable: bool = True,
        retrieve_from: str = "fused",
    ) -> None:
        super().__init__()
        if retrieve_from not in RETRIEVAL_SOURCES:
            raise ValueError(f"CJL: retrieve_from must be one of {RETRIEVAL_SOURCES}, got {retrieve_from!r}")
        if motion_channels % deform_groups:
            raise ValueError(
                f"CJL: the {motion_channels} motion channels must split into {deform_groups} offset groups"
            )
        self.fuse = nn.Sequential(ConvBlock(num_joints + motion_channels, channels), ResidualBlock(channels))
        self.deformable = deformable
        self.retrieve_from = retrieve_from
        if deformable:
            fused = retrieve_from == "fused"
            self.dcn = ModulatedDeformConv2d(
                num_joints + motion_channels if fused else motion_channels,
                channels,
                kernel_size=3,
                deform_groups=1 if fused else deform_groups,
                bias=False,
            )
            self.offset_branch = nn.Sequential(
                ResidualBlock(channels), nn.Conv2d(channels, self.dcn.offset_channels, 3, padding=1)
            )
            self.modulation_branch = nn.Sequential(
                ResidualBlock(channels), nn.Conv2d(channels, self.dcn.mask_channels, 3, padding=1)
            )
            for last in (self.offset_branch[-1], self.modulation_branch[-1]):
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
            self.norm = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def forward(self, heatmap: Tensor, motion: Tensor) -> Tensor:
        """``(B, K, h, w)``, ``(B, Cm, h, w)`` -> ``(B, C, h, w)``."""
        inputs = torch.cat([heatmap, motion.to(heatmap.dtype)], dim=1)
        fused = self.fuse(inputs)
        if not self.deformable:
            return fused
        source = inputs if self.retrieve_from == "fused" else motion
        offsets = self.offset_branch(fused)
        modulation = torch.sigmoid(self.modulation_branch(fused))
        return self.norm(self.dcn(source, offsets.to(source.dtype), modulation.to(source.dtype)))


class JointMotionInteractionBlock(nn.Module):
    """JMIB: ``(J, M) -> (J', M')``, both outputs ``(B, C, h, w)``.

    1. ``Ĵ = ConvBlock(J)``, ``M̂ = ConvBlock(M)``;
    2. bidirectional cross attention over the h*w positions (queries of one side, keys and
       values of the other, separate 1x1 projections, ``num_heads`` heads), added to the input:
       ``Ĵ' = attn(Q_j, K_m, V_m) + Ĵ``, ``M̂' = attn(Q_m, K_j, V_j) + M̂``; ``kv_downsample`` r
       average-pools the key/value side by r x r (memory on small GPUs);
    3. ``[A_j, A_m] = chunk(sigmoid(Conv1x1(cat[Ĵ', M̂'])), 2)``; ``J' = A_j Ĵ'``, ``M' = A_m M̂'``.
    """

    def __init__(
        self,
        joint_channels: int,
        motion_channels: int,
        channels: int,
        num_heads: int = 1,
        kv_downsample: int = 1,
    ) -> None:
        super().__init__()
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"JMIB: num_heads={num_heads} must be >= 1 and divide channels={channels}")
        if kv_downsample < 1:
            raise ValueError(f"JMIB: kv_downsample must be >= 1, got {kv_downsample}")
        self.num_heads, self.kv_downsample = num_heads, kv_downsample
        self.joint_conv = ConvBlock(joint_channels, channels)
        self.motion_conv = ConvBlock(motion_channels, channels)
        self.joint_qkv = nn.ModuleDict({n: nn.Conv2d(channels, channels, 1) for n in ("query", "key", "value")})
        self.motion_qkv = nn.ModuleDict({n: nn.Conv2d(channels, channels, 1) for n in ("query", "key", "value")})
        self.gate = nn.Conv2d(2 * channels, 2 * channels, 1)

    def _tokens(self, x: Tensor) -> Tensor:
        """``(B, C, h, w) -> (B, heads, h*w, C/heads)``."""
        return x.flatten(2).transpose(1, 2).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _attend(self, queries: Tensor, query_proj: nn.Conv2d, source: Tensor, source_proj: nn.ModuleDict) -> Tensor:
        """Cross attention of ``queries`` ``(B, C, h, w)`` over ``source`` ``(B, C, h, w)`` -> ``(B, C, h, w)``."""
        if self.kv_downsample > 1:
            # pooling before the (linear) 1x1 projections equals pooling the keys and values
            source = F.avg_pool2d(source, self.kv_downsample, ceil_mode=True)
        out = F.scaled_dot_product_attention(
            self._tokens(query_proj(queries)),
            self._tokens(source_proj["key"](source)),
            self._tokens(source_proj["value"](source)),
        )
        return out.transpose(1, 2).flatten(2).transpose(1, 2).reshape(queries.shape)

    def forward(self, joint: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        """``J (B, Cj, h, w)``, ``M (B, Cm, h, w)`` -> ``(J', M')``, each ``(B, C, h, w)``."""
        j, m = self.joint_conv(joint), self.motion_conv(motion)
        j_att = self._attend(j, self.joint_qkv["query"], m, self.motion_qkv) + j
        m_att = self._attend(m, self.motion_qkv["query"], j, self.joint_qkv) + m
        gate_j, gate_m = torch.sigmoid(self.gate(torch.cat([j_att, m_att], dim=1))).chunk(2, dim=1)
        return gate_j * j_att, gate_m * m_att
