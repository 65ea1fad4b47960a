"""JM-Pose head: joint-motion mutual learning (Wu et al., ACM MM 2024; models.md section 3).

The frozen pose HRNet gives every frame's initial heatmaps ``(B, T, K, h, w)``; they are
aggregated into the sequence heatmap ``Ĥ_t``. Motion ``M_t`` is the frozen optical flow of the
declared frame pairs, average-pooled to the heatmap grid (``(B, 2P, h, w)`` in heatmap
pixels). The context-aware joint learner (CJL) turns ``Ĥ_t ⊕ M_t`` into offsets and modulation
weights of a DCNv2 that samples ``Ĥ_t ⊕ M_t`` (default; ``retrieve_from="flow"``: ``M_t`` only,
the literal Eq. 5) -> joint feature ``J``; ``L`` joint-motion interaction blocks (JMIB)
exchange information between ``J`` and ``M``; ``Υ(J^L ⊕ M^L)`` -> 3x3 convs -> heatmaps.
Training loss: ``heatmap MSE + io_weight * Σ_i L_IO^i`` (:mod:`vidpose.losses.mutual_information`).

The information-orthogonality loss projects 48-channel maps to joint maps with the pose HRNet's
own final 1x1 layer ``φ``. The head never calls the backbone: it keeps a frozen copy of ``φ``
as buffers, which :meth:`JMPoseHead.load_pretrained_head` fills from the pose-HRNet file's
``final_layer`` (``init_from=<pose_hrnet file>`` does this together with the backbone and its
heatmap layer); vidpose checkpoints carry the buffers.

Ablations (Tables 5-6 of the paper) are constructor options: ``use_cjl=False``,
``use_jmml=False`` (with ``io_weight=0``: ``J`` alone feeds the detection head),
``interaction="none"`` (without JMIB: no blocks; ``L_IO`` acts on the joint learner's ``J`` and
the motion lifted to ``C`` channels by one conv block), ``io_weight=0`` (without L_IO),
``motion="feature_difference"`` (JM-Pose*: backbone feature differences instead of flow).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from vidpose.losses.heatmap import heatmap_mse
from vidpose.losses.mutual_information import REDUCTIONS, InformationOrthogonalityLoss
from vidpose.models.flow.base import resample_flow
from vidpose.models.heads.base import Head
from vidpose.models.heads.jmpose_blocks import (
    INTERACTIONS,
    RETRIEVAL_SOURCES,
    ContextAwareJointLearner,
    ConvBlock,
    JointMotionInteractionBlock,
    SequenceHeatmapAggregation,
)
from vidpose.registry import HEADS

__all__ = ["JMPoseHead", "FLOW_ANCHORS", "MOTIONS", "frame_pairs"]

log = logging.getLogger(__name__)

#: consecutive: (s, s+1) for every s (Eq. 1 generalised); key: (key, s) for every support s
FLOW_ANCHORS = ("consecutive", "key")
#: flow: optical flow of the frame pairs; feature_difference: backbone features F_b - F_a (JM-Pose*)
MOTIONS = ("flow", "feature_difference")


def frame_pairs(num_frames: int, key_index: int, anchor: str) -> list[tuple[int, int]]:
    """``(source, target)`` frame indices of the motion fields: ``T - 1`` pairs in frame order."""
    if anchor == "consecutive":
        return [(s, s + 1) for s in range(num_frames - 1)]
    if anchor == "key":
        return [(key_index, s) for s in range(num_frames) if s != key_index]
    raise ValueError(f"JM-Pose: flow_anchor must be one of {FLOW_ANCHORS}, got {anchor!r}")


@HEADS.register("jmpose")
class JMPoseHead(Head):
    """JM-Pose: all frames' initial heatmaps + motion -> key-frame heatmaps ``(B, K, h, w)``."""

    frames = "all"
    targets = ("heatmap", "weight")
    needs_initial_heatmaps = True
    supported_num_frames = (3, 5)

    @classmethod
    def small_config(cls) -> dict:
        """Two interaction blocks; widths follow the (tiny) backbone."""
        return {"num_blocks": 2}

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        num_joints: int,
        heatmap_stride: int,
        num_frames: int,
        key_index: int,
        channels: int | None = None,
        num_blocks: int = 4,
        num_heads: int = 1,
        kv_downsample: int = 1,
        flow_anchor: str = "consecutive",
        motion: str = "flow",
        retrieve_from: str = "fused",
        use_cjl: bool = True,
        use_jmml: bool = True,
        interaction: str = "cross_attention",
        io_weight: float = 1.0,
        io_temperature: float = 0.05,
        io_reduction: str = "mean",
        initial_heatmap_weight: float = 0.0,
        freeze_backbone: bool = True,
    ) -> None:
        super().__init__(freeze_backbone=freeze_backbone)
        channels = int(in_channels if channels is None else channels)
        self._check_options(
            in_channels, in_stride, heatmap_stride, num_frames, key_index, channels, num_blocks,
            flow_anchor, motion, retrieve_from, use_jmml, interaction, io_weight, io_reduction,
        )
        if initial_heatmap_weight < 0 or (initial_heatmap_weight > 0 and freeze_backbone):
            raise ValueError(
                f"JM-Pose: head.initial_heatmap_weight={initial_heatmap_weight} must be >= 0, and > 0 only "
                "with freeze_backbone=false (it trains the backbone's own heatmaps)"
            )
        self.initial_heatmap_weight = float(initial_heatmap_weight)
        if self.initial_heatmap_weight > 0:
            self.targets = ("heatmap", "weight", "heatmap_all", "weight_all")
        self.num_joints, self.num_frames, self.key_index = num_joints, num_frames, key_index
        self.channels, self.flow_anchor, self.motion = channels, flow_anchor, motion
        self.io_weight = float(io_weight)
        self.pairs = frame_pairs(num_frames, key_index, flow_anchor)
        num_fields = len(self.pairs)
        motion_channels = num_fields * (2 if motion == "flow" else in_channels)

        self.aggregate = SequenceHeatmapAggregation(num_joints, num_frames)
        self.joint_learner = ContextAwareJointLearner(
            num_joints, motion_channels, channels, deform_groups=num_fields, deformable=use_cjl,
            retrieve_from=retrieve_from,
        )
        self.use_jmml = use_jmml
        interacting = use_jmml and interaction == "cross_attention"
        self.blocks = nn.ModuleList(
            JointMotionInteractionBlock(
                channels, motion_channels if i == 0 else channels, channels,
                num_heads=num_heads, kv_downsample=kv_downsample,
            )
            for i in range(num_blocks if interacting else 0)
        )
        # without JMIB the motion still meets J at C channels (fusion, L_IO): one conv block lifts it
        self.motion_embedding = ConvBlock(motion_channels, channels) if use_jmml and not interacting else None
        self.fusion = ConvBlock(2 * channels, channels) if use_jmml else None
        self.detection_head = nn.Sequential(ConvBlock(channels, channels), nn.Conv2d(channels, num_joints, 3, padding=1))
        # the pose networks' final-layer start: near-zero heatmaps
        nn.init.normal_(self.detection_head[-1].weight, std=0.001)
        nn.init.zeros_(self.detection_head[-1].bias)

        if self.io_weight > 0:
            self.io_loss = InformationOrthogonalityLoss(io_temperature, io_reduction)
            # frozen copy of the pose HRNet's final 1x1 layer (phi), filled by load_pretrained_head
            self.register_buffer("projection_weight", torch.empty(num_joints, channels, 1, 1))
            self.register_buffer("projection_bias", torch.zeros(num_joints))
            self.register_buffer("projection_loaded", torch.zeros((), dtype=torch.bool))
            nn.init.normal_(self.projection_weight, std=0.001)
            self._projection_checked = False

    @staticmethod
    def _check_options(
        in_channels, in_stride, heatmap_stride, num_frames, key_index, channels, num_blocks,
        flow_anchor, motion, retrieve_from, use_jmml, interaction, io_weight, io_reduction,
    ) -> None:
        if in_stride != heatmap_stride:
            raise ValueError(
                f"JM-Pose: the backbone's stride {in_stride} must equal the heatmap stride {heatmap_stride} "
                "(the head works on the backbone's own single-frame heatmaps; use a pose HRNet)"
            )
        if num_frames not in JMPoseHead.supported_num_frames:
            raise ValueError(
                f"JM-Pose: clips of {num_frames} frames are not supported; use "
                f"{JMPoseHead.supported_num_frames} (data.clip.offsets [-2..2] or [-1, 0, 1])"
            )
        if not 0 <= key_index < num_frames:
            raise ValueError(f"JM-Pose: key_index {key_index} outside a clip of {num_frames} frames")
        if channels < 1 or num_blocks < 0:
            raise ValueError(f"JM-Pose: channels ({channels}) must be >= 1 and num_blocks ({num_blocks}) >= 0")
        if flow_anchor not in FLOW_ANCHORS:
            raise ValueError(f"JM-Pose: head.flow_anchor must be one of {FLOW_ANCHORS}, got {flow_anchor!r}")
        if motion not in MOTIONS:
            raise ValueError(f"JM-Pose: head.motion must be one of {MOTIONS}, got {motion!r}")
        if retrieve_from not in RETRIEVAL_SOURCES:
            raise ValueError(
                f"JM-Pose: head.retrieve_from must be one of {RETRIEVAL_SOURCES}, got {retrieve_from!r}"
            )
        if interaction not in INTERACTIONS:
            raise ValueError(f"JM-Pose: head.interaction must be one of {INTERACTIONS}, got {interaction!r}")
        if use_jmml and interaction == "cross_attention" and num_blocks < 1:
            raise ValueError(
                "JM-Pose: head.num_blocks must be >= 1 with interaction=cross_attention "
                "(head.interaction=none is the ablation without interaction blocks)"
            )
        if io_reduction not in REDUCTIONS:
            raise ValueError(f"JM-Pose: head.io_reduction must be one of {REDUCTIONS}, got {io_reduction!r}")
        if io_weight < 0:
            raise ValueError(f"JM-Pose: head.io_weight must be >= 0, got {io_weight}")
        if io_weight > 0 and not use_jmml:
            raise ValueError(
                "JM-Pose: the information-orthogonality loss is part of joint-motion mutual learning; "
                "with use_jmml=false set head.io_weight=0"
            )
        if io_weight > 0 and channels != in_channels:
            raise ValueError(
                f"JM-Pose: head.channels={channels} must equal the backbone's {in_channels} channels while "
                "io_weight > 0 (the IO loss projects features with the pose HRNet's final layer, "
                f"{in_channels} -> K); set head.channels=null or head.io_weight=0"
            )

    # ------------------------------------------------------------------ PoseModel contract
    def flow_pairs(self, num_frames: int, key_index: int) -> list[tuple[int, int]]:
        """Consecutive ``(s, s+1)`` pairs, or ``(key, s)`` with ``flow_anchor="key"``; none for JM-Pose*."""
        if self.motion != "flow":
            return []
        return frame_pairs(num_frames, key_index, self.flow_anchor)

    def motion_features(self, features: Tensor, flows: Tensor | None, heatmap_hw: tuple[int, int]) -> Tensor:
        """Motion ``M_t``: flows ``(B, P, 2, H, W)`` pooled to ``(B, 2P, h, w)`` in heatmap pixels,
        or (JM-Pose*) feature differences ``F_b - F_a`` of the pairs, ``(B, P*C, h, w)``."""
        if self.motion == "feature_difference":
            if features.dim() != 5 or features.shape[1] != self.num_frames:
                raise ValueError(f"JM-Pose*: features must be (B, {self.num_frames}, C, h, w), got {tuple(features.shape)}")
            return torch.cat([features[:, b] - features[:, a] for a, b in self.pairs], dim=1)
        if flows is None or flows.dim() != 5 or tuple(flows.shape[1:3]) != (len(self.pairs), 2):
            got = None if flows is None else tuple(flows.shape)
            raise ValueError(
                f"JM-Pose: expected flows of the pairs {self.pairs} as (B, {len(self.pairs)}, 2, H, W), got {got}"
            )
        pooled = resample_flow(flows.flatten(0, 1).float(), heatmap_hw)
        return pooled.reshape(flows.shape[0], 2 * len(self.pairs), *heatmap_hw)

    def forward(
        self,
        features: Tensor,
        batch: Mapping[str, Tensor] | None = None,
        flows: Tensor | None = None,
        initial_heatmaps: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Initial heatmaps ``(B, T, K, h, w)`` + flows -> ``{"heatmaps": (B, K, h, w), ...}``.

        Also returned: ``"sequence_heatmap"`` ``Ĥ_t`` ``(B, K, h, w)`` and, with the IO loss on,
        every block's ``"joint_features"`` / ``"motion_features"`` ``(B, L, C, h, w)`` (without
        JMIB, ``L = 1``: the joint learner's ``J`` and the lifted motion).
        """
        if initial_heatmaps is None:
            raise ValueError("JM-Pose needs the backbone's initial heatmaps (PoseModel passes them)")
        heatmap_hw = tuple(initial_heatmaps.shape[-2:])
        sequence = self.aggregate(initial_heatmaps)
        motion = self.motion_features(features, flows, heatmap_hw)
        joint = self.joint_learner(sequence, motion)
        joints, motions = [], []
        for block in self.blocks:
            joint, motion = block(joint, motion)
            joints.append(joint)
            motions.append(motion)
        if self.motion_embedding is not None:
            motion = self.motion_embedding(motion.to(joint.dtype))
            joints, motions = [joint], [motion]
        if self.use_jmml:
            heatmaps = self.detection_head(self.fusion(torch.cat([joint, motion.to(joint.dtype)], dim=1)))
        else:
            heatmaps = self.detection_head(joint)
        outputs = {"heatmaps": heatmaps, "sequence_heatmap": sequence}
        if self.initial_heatmap_weight > 0:
            outputs["initial_heatmaps"] = initial_heatmaps
        if self.io_weight > 0:
            outputs["joint_features"] = torch.stack(joints, dim=1)
            outputs["motion_features"] = torch.stack(motions, dim=1)
        return outputs

    def loss(self, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``heatmap MSE + io_weight * Σ_i (complement_i + redundancy_i + relevancy_i)``.

        Returns ``"loss"``, ``"heatmap"`` and, with the IO loss on, ``"io"`` (the unweighted sum)
        and every block's ``"io_complement_i"``, ``"io_redundancy_i"``, ``"io_relevancy_i"``
        (i from 1).
        """
        heatmap = heatmap_mse(outputs["heatmaps"], targets["heatmap"], targets["weight"])
        parts = {"heatmap": heatmap.detach()}
        total = heatmap
        if self.initial_heatmap_weight > 0:
            initial = heatmap_mse(outputs["initial_heatmaps"], targets["heatmap_all"], targets["weight_all"])
            parts["initial_heatmap"] = initial.detach()
            total = total + self.initial_heatmap_weight * initial
        if self.io_weight > 0:
            self._warn_if_projection_not_loaded()
            io_total = heatmap.new_zeros(())
            joints, motions = outputs["joint_features"], outputs["motion_features"]
            for i in range(joints.shape[1]):
                terms = self.io_loss(
                    joints[:, i], motions[:, i], outputs["sequence_heatmap"],
                    self.projection_weight, self.projection_bias,
                )
                for name in ("complement", "redundancy", "relevancy"):
                    parts[f"io_{name}_{i + 1}"] = terms[name].detach()
                io_total = io_total + terms["total"]
            parts["io"] = io_total.detach()
            total = total + self.io_weight * io_total
        return {"loss": total, **parts}

    def _warn_if_projection_not_loaded(self) -> None:
        if self._projection_checked:
            return
        self._projection_checked = True
        if not bool(self.projection_loaded):
            log.warning(
                "JM-Pose: the IO loss projection (the pose HRNet's final layer) was not loaded, so the "
                "complement and redundancy terms compare random projections; start real runs with "
                "init_from=<pose_hrnet file> (or a vidpose checkpoint)"
            )

    def load_pretrained_head(self, state: Mapping[str, Tensor]) -> list[str]:
        """The pose-HRNet file's ``final_layer.{weight,bias}`` ``(K, C, 1, 1)``/``(K,)`` -> the frozen φ."""
        if self.io_weight <= 0:
            log.info("JM-Pose: io_weight=0, the pretrained final layer is not needed by the head")
            return []
        names = ("final_layer.weight", "final_layer.bias")
        missing = [n for n in names if n not in state]
        if missing:
            raise KeyError(
                f"JM-Pose: the pretrained head needs a pose-HRNet {list(names)}; missing {missing} "
                f"(the file has {sorted(state)[:8]})"
            )
        weight, bias = state[names[0]], state[names[1]]
        if tuple(weight.shape) != tuple(self.projection_weight.shape) or tuple(bias.shape) != tuple(self.projection_bias.shape):
            raise ValueError(
                f"JM-Pose: pretrained final_layer has shapes {tuple(weight.shape)}/{tuple(bias.shape)}; "
                f"the IO projection expects {tuple(self.projection_weight.shape)}/{tuple(self.projection_bias.shape)}"
            )
        with torch.no_grad():
            self.projection_weight.copy_(weight)
            self.projection_bias.copy_(bias)
            self.projection_loaded.fill_(True)
        return list(names)
