"""JM-Pose head: shapes (3 and 5 frames), module wiring, loss terms, ablations, frozen parts, φ loading."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vidpose.engine.initialise import initialise_weights
from vidpose.heatmaps import Geometry
from vidpose.models.heads.jmpose import JMPoseHead, frame_pairs
from vidpose.models.heads.jmpose_blocks import JointMotionInteractionBlock
from vidpose.models.pose_model import PoseModel
from vidpose.registry import BACKBONES, FLOWS, HEADS, TARGETS


def _load_fake_checkpoints():
    # the sibling helper module, loaded by path (pytest runs in importlib mode: no package imports)
    spec = importlib.util.spec_from_file_location("fake_checkpoints", Path(__file__).with_name("fake_checkpoints.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load_fake_checkpoints()

C, K = 8, 3
HM_HW = (8, 6)
INPUT_HW = (32, 24)


def build_head(num_frames: int = 3, in_channels: int = C, num_joints: int = K, **overrides) -> JMPoseHead:
    node = {"name": "jmpose", "num_blocks": 2, **overrides}
    return HEADS.build(
        node, in_channels=in_channels, in_stride=4, num_joints=num_joints, heatmap_stride=4,
        num_frames=num_frames, key_index=num_frames // 2,
    )


def head_inputs(num_frames: int, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(b, num_frames, C, *HM_HW, generator=g)
    flows = torch.randn(b, num_frames - 1, 2, *INPUT_HW, generator=g) * 4
    initial = torch.rand(b, num_frames, K, *HM_HW, generator=g)
    return features, flows, initial


@pytest.mark.parametrize("num_frames", [3, 5])
def test_output_shapes(num_frames):
    torch.manual_seed(0)
    head = build_head(num_frames)
    features, flows, initial = head_inputs(num_frames)
    out = head(features, None, flows=flows, initial_heatmaps=initial)
    assert out["heatmaps"].shape == (2, K, *HM_HW)
    assert out["sequence_heatmap"].shape == (2, K, *HM_HW)
    assert out["joint_features"].shape == out["motion_features"].shape == (2, 2, C, *HM_HW)
    assert torch.isfinite(out["heatmaps"]).all()


@pytest.mark.parametrize("num_frames", [3, 5])
def test_full_size_layers_follow_the_spec_tables(num_frames):
    # models.md 3.2 / 3.6: M_t has 2(T-1) channels; the literal Eq. 5 samples M_t with G = T-1
    # offset groups, the default samples Ĥ_t ⊕ M_t (17 + 2(T-1) channels) with one group
    fields = num_frames - 1
    literal = build_head(num_frames, in_channels=48, num_joints=17, num_blocks=4, retrieve_from="flow").joint_learner
    assert tuple(literal.dcn.weight.shape) == (48, 2 * fields, 3, 3)
    assert literal.offset_branch[-1].out_channels == 2 * 9 * fields
    assert literal.modulation_branch[-1].out_channels == 9 * fields
    head = build_head(num_frames, in_channels=48, num_joints=17, num_blocks=4)
    cjl = head.joint_learner
    assert tuple(cjl.dcn.weight.shape) == (48, 17 + 2 * fields, 3, 3)
    assert cjl.offset_branch[-1].out_channels == 2 * 9
    assert cjl.modulation_branch[-1].out_channels == 9
    assert head.blocks[0].motion_conv[0].in_channels == 2 * fields
    assert head.blocks[1].motion_conv[0].in_channels == 48
    assert len(head.blocks) == 4 and head.detection_head[-1].out_channels == 17


def test_full_size_parameter_count_five_frames():
    # C = 48, K = 17, T = 5 (P = 4 flows, 8 motion channels); BN = 2C parameters:
    # aggregation 17*5*9 + 17 = 782
    # CJL, literal (samples M_t, 4 groups): ConvBlock(25->48) 10800+96, BasicBlock 2*20736+192 = 41664,
    #      DCN 48*8*9 = 3456, offsets 41664 + 48*72*9+72 = 72840, modulation 41664 + 48*36*9+36 = 57252,
    #      BN 96 -> 186204
    # CJL, default (samples Ĥ_t ⊕ M_t, 1 group): DCN 48*25*9 = 10800, offsets 41664 + 48*18*9+18 = 49458,
    #      modulation 41664 + 48*9*9+9 = 45561 -> 10896 + 41664 + 10800 + 49458 + 45561 + 96 = 158475
    # JMIB 1: Υ_J 20832, Υ_M 8*48*9+96 = 3552, QKV 6*(48*48+48) = 14112, gate 96*96+96 = 9312 -> 47808
    # JMIB 2-4: 65088 each -> blocks 243072; fusion 96*48*9+96 = 41568;
    # head 20832 + 48*17*9+17 = 28193.  Totals: literal 499819, default 472090.
    literal = build_head(5, in_channels=48, num_joints=17, num_blocks=4, retrieve_from="flow")
    assert sum(p.numel() for p in literal.parameters()) == 499_819
    head = build_head(5, in_channels=48, num_joints=17, num_blocks=4)
    assert sum(p.numel() for p in head.parameters()) == 472_090


def test_flow_pairs_consecutive_key_anchored_and_none_for_feature_differences():
    assert build_head(5).flow_pairs(5, 2) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert build_head(5, flow_anchor="key").flow_pairs(5, 2) == [(2, 0), (2, 1), (2, 3), (2, 4)]
    assert build_head(3).flow_pairs(3, 1) == [(0, 1), (1, 2)]
    assert build_head(5, motion="feature_difference").flow_pairs(5, 2) == []
    with pytest.raises(ValueError, match="flow_anchor"):
        frame_pairs(3, 1, "previous")


def test_aggregation_starts_as_the_mean_of_the_initial_heatmaps():
    head = build_head(5)
    _, _, initial = head_inputs(5)
    torch.testing.assert_close(head.aggregate(initial), initial.mean(dim=1))


def test_motion_from_flows_is_pooled_to_heatmap_pixels_pair_by_pair():
    head = build_head(5)
    b = 2
    flows = torch.zeros(b, 4, 2, *INPUT_HW)
    for p in range(4):
        flows[:, p, 0] = 4.0 * (p + 1)  # u in input pixels -> (p+1) heatmap pixels (stride 4)
        flows[:, p, 1] = -8.0 * (p + 1)
    motion = head.motion_features(torch.zeros(b, 5, C, *HM_HW), flows, HM_HW)
    assert motion.shape == (b, 8, *HM_HW)
    for p in range(4):
        assert torch.allclose(motion[:, 2 * p], torch.full((b, *HM_HW), float(p + 1)))
        assert torch.allclose(motion[:, 2 * p + 1], torch.full((b, *HM_HW), -2.0 * (p + 1)))
    with pytest.raises(ValueError, match="expected flows"):
        head.motion_features(torch.zeros(b, 5, C, *HM_HW), flows[:, :2], HM_HW)


@pytest.mark.parametrize("anchor, expected", [("consecutive", [1, 1]), ("key", [-1, 1])])
def test_feature_difference_motion(anchor, expected):
    # F_s = s everywhere: consecutive pairs differ by 1; key-anchored F_s - F_key = s - 1
    head = build_head(3, motion="feature_difference", flow_anchor=anchor)
    features = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(2, 3, C, *HM_HW)
    motion = head.motion_features(features, None, HM_HW)
    assert motion.shape == (2, 2 * C, *HM_HW)
    for p, value in enumerate(expected):
        assert torch.all(motion[:, p * C : (p + 1) * C] == value)


@pytest.mark.parametrize("retrieve_from", ["fused", "flow"])
def test_cjl_starts_with_zero_offsets_and_half_modulation(retrieve_from):
    # zero-initialised offset/modulation convs: J = ReLU(BN(0.5 * conv(X))) with the DCN's kernel,
    # X = Ĥ ⊕ M by default, M alone in the literal reading
    torch.manual_seed(0)
    cjl = build_head(5, retrieve_from=retrieve_from).joint_learner.eval()
    g = torch.Generator().manual_seed(1)
    heatmap, motion = torch.rand(2, K, *HM_HW, generator=g), torch.randn(2, 8, *HM_HW, generator=g)
    source = torch.cat([heatmap, motion], 1) if retrieve_from == "fused" else motion
    plain = 0.5 * F.conv2d(source, cjl.dcn.weight, padding=1)
    expected = F.relu(plain / math.sqrt(1 + cjl.norm[0].eps))  # eval BN: mean 0, var 1, affine identity
    torch.testing.assert_close(cjl(heatmap, motion), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kv_downsample", [1, 2])
def test_jmib_matches_hand_written_bidirectional_attention(kv_downsample):
    torch.manual_seed(0)
    block = JointMotionInteractionBlock(C, 4, C, num_heads=1, kv_downsample=kv_downsample).eval()
    g = torch.Generator().manual_seed(2)
    joint, motion = torch.randn(2, C, *HM_HW, generator=g), torch.randn(2, 4, *HM_HW, generator=g)
    j, m = block.joint_conv(joint), block.motion_conv(motion)

    def attend(queries, query_conv, source, convs):
        if kv_downsample > 1:
            source = F.avg_pool2d(source, kv_downsample)  # 8x6 pools exactly to 4x3
        q = query_conv(queries).flatten(2)  # (B, C, N)
        k, v = convs["key"](source).flatten(2), convs["value"](source).flatten(2)
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(C), dim=-1)  # (B, N, N')
        return (v @ weights.transpose(1, 2)).view_as(queries)

    j_att = attend(j, block.joint_qkv["query"], m, block.motion_qkv) + j
    m_att = attend(m, block.motion_qkv["query"], j, block.joint_qkv) + m
    gates = torch.sigmoid(block.gate(torch.cat([j_att, m_att], 1)))
    out_j, out_m = block(joint, motion)
    torch.testing.assert_close(out_j, gates[:, :C] * j_att, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_m, gates[:, C:] * m_att, rtol=1e-4, atol=1e-5)


def test_without_jmib_the_io_loss_acts_on_the_joint_learners_output():
    # "w/o JMIB": no interaction blocks; J is the CJL's output, M is lifted to C channels once
    torch.manual_seed(0)
    head = build_head(3, interaction="none").eval()
    assert len(head.blocks) == 0 and head.motion_embedding is not None
    features, flows, initial = head_inputs(3)
    out = head(features, None, flows=flows, initial_heatmaps=initial)
    sequence = head.aggregate(initial)
    motion = head.motion_features(features, flows, HM_HW)
    joint = head.joint_learner(sequence, motion)
    lifted = head.motion_embedding(motion)
    torch.testing.assert_close(out["joint_features"], joint.unsqueeze(1))
    torch.testing.assert_close(out["motion_features"], lifted.unsqueeze(1))
    torch.testing.assert_close(out["heatmaps"], head.detection_head(head.fusion(torch.cat([joint, lifted], 1))))
    losses = head.loss(out, _targets())
    assert {k for k in losses if k.startswith("io_")} == {"io_complement_1", "io_redundancy_1", "io_relevancy_1"}


def test_without_jmml_the_joint_feature_alone_feeds_the_detection_head():
    torch.manual_seed(0)
    head = build_head(3, use_jmml=False, io_weight=0.0).eval()
    assert head.fusion is None and head.motion_embedding is None and len(head.blocks) == 0
    features, flows, initial = head_inputs(3)
    out = head(features, None, flows=flows, initial_heatmaps=initial)
    joint = head.joint_learner(head.aggregate(initial), head.motion_features(features, flows, HM_HW))
    torch.testing.assert_close(out["heatmaps"], head.detection_head(joint))


@pytest.mark.parametrize("retrieve_from", ["fused", "flow"])
def test_output_depends_on_the_initial_heatmaps_where_the_flow_is_zero(retrieve_from):
    # the literal Eq. 5 samples only M_t: with zero flow J is a constant and the heatmaps cannot
    # reach the output (max difference exactly 0); the default samples Ĥ_t ⊕ M_t
    torch.manual_seed(0)
    head = build_head(3, retrieve_from=retrieve_from).eval()
    features, _, initial = head_inputs(3)
    flows = torch.zeros(2, 2, 2, *INPUT_HW)
    other = torch.rand(initial.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        a = head(features, None, flows=flows, initial_heatmaps=initial)["heatmaps"]
        b = head(features, None, flows=flows, initial_heatmaps=other)["heatmaps"]
    difference = (a - b).abs().max().item()
    if retrieve_from == "flow":
        assert difference == 0.0
    else:
        assert difference > 1e-4 * a.abs().max().item() and difference > 0


def _targets(b: int = 2):
    g = torch.Generator().manual_seed(5)
    return {"heatmap": torch.rand(b, K, *HM_HW, generator=g), "weight": torch.ones(b, K)}


def test_loss_reports_every_io_term_and_adds_them_with_alpha():
    torch.manual_seed(0)
    features, flows, initial = head_inputs(3)
    for alpha in (1.0, 0.5):
        torch.manual_seed(0)
        head = build_head(3, io_weight=alpha)
        losses = head.loss(head(features, None, flows=flows, initial_heatmaps=initial), _targets())
        per_block = [f"io_{n}_{i}" for i in (1, 2) for n in ("complement", "redundancy", "relevancy")]
        assert set(losses) == {"loss", "heatmap", "io", *per_block}
        for i in (1, 2):
            assert losses[f"io_complement_{i}"] >= 0 and losses[f"io_redundancy_{i}"] >= 0
            assert losses[f"io_relevancy_{i}"] <= 0
        io = sum(losses[name] for name in per_block)
        torch.testing.assert_close(losses["io"], io)
        torch.testing.assert_close(losses["loss"], losses["heatmap"] + alpha * io)
    head = build_head(3, io_weight=0.0)
    losses = head.loss(head(features, None, flows=flows, initial_heatmaps=initial), _targets())
    assert set(losses) == {"loss", "heatmap"}
    torch.testing.assert_close(losses["loss"], losses["heatmap"])


# ---------------------------------------------------------------------------------------------
# in a PoseModel on a tiny pose HRNet

MODEL_HW = (32, 32)  # the smallest pose-HRNet input (multiples of 32)
TINY_WIDTHS = (4, 8, 16, 32)


def tiny_model(num_frames: int, flow: str = "opencv_dis", flow_args: dict | None = None, hw=MODEL_HW, **head_args):
    backbone = BACKBONES.build(
        {"name": "hrnet_tiny", "widths": list(TINY_WIDTHS), "with_heatmap_layer": True}, input_hw=hw, num_joints=K
    )
    head = HEADS.build(
        {"name": "jmpose", "num_blocks": 2, **head_args}, in_channels=backbone.out_channels,
        in_stride=backbone.stride, num_joints=K, heatmap_stride=4, num_frames=num_frames, key_index=num_frames // 2,
    )
    estimator = FLOWS.build({"name": flow, **(flow_args or {})}) if head.flow_pairs(num_frames, num_frames // 2) else None
    return PoseModel(backbone, head, flow=estimator, num_frames=num_frames, key_index=num_frames // 2)


def train_step(model: PoseModel, num_frames: int, hw=MODEL_HW) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b = 2
    frames = torch.rand(b, num_frames, 3, *hw, generator=g)
    keypoints = torch.rand(b, num_frames, K, 2, generator=g) * (hw[1] - 8) + 4
    geometry = Geometry(hw, 4, "msra")
    targets = TARGETS.build({"name": "gaussian", "sigma": 2.0}, geometry=geometry)(
        keypoints, torch.ones(b, num_frames, K), torch.zeros(b, num_frames, dtype=torch.bool),
        num_frames // 2, names=model.head.targets,
    )
    model.train()
    outputs = model(frames, {})
    assert outputs["heatmaps"].shape == (b, K, *geometry.heatmap_hw)
    losses = model.loss(outputs, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    missing = [n for n, p in model.trainable_parameters() if p.grad is None]
    assert not missing, f"trainable parameters without gradient: {missing[:5]}"
    return losses


ABLATIONS = {
    "default_5_frames": (5, {}),
    "key_anchored_flow": (5, {"flow_anchor": "key"}),
    "without_cjl": (3, {"use_cjl": False}),
    "without_jmml": (3, {"use_jmml": False, "io_weight": 0.0}),
    "without_jmib": (3, {"interaction": "none"}),
    "literal_flow_retrieval": (3, {"retrieve_from": "flow"}),
    "without_io": (3, {"io_weight": 0.0}),
    "jmpose_star_feature_difference": (3, {"motion": "feature_difference"}),
    "kv_downsample": (5, {"kv_downsample": 2}),
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_variants_train_with_gradients_on_every_trainable_parameter(name):
    torch.manual_seed(0)
    num_frames, args = ABLATIONS[name]
    model = tiny_model(num_frames, **args)
    losses = train_step(model, num_frames)
    assert ("io" in losses) == (args.get("io_weight", 1.0) > 0)
    assert all(p.grad is None for p in model.backbone.parameters())
    if name == "without_cjl":
        assert not hasattr(model.head.joint_learner, "dcn")
    if name == "without_jmml":
        assert len(model.head.blocks) == 0
    if name == "jmpose_star_feature_difference":
        assert model.flow is None


def test_static_clips_of_different_images_give_different_outputs():
    # a still person (all T frames identical, zero flow): the default head sees the image through
    # the initial heatmaps; the literal Eq. 5 reading is blind to it (the review's finding)
    g = torch.Generator().manual_seed(4)
    still = [torch.rand(1, 3, *MODEL_HW, generator=g).expand(2, 3, 3, *MODEL_HW) for _ in range(2)]
    outputs = {}
    for retrieve_from in ("fused", "flow"):
        torch.manual_seed(0)
        model = tiny_model(3, retrieve_from=retrieve_from).eval()
        with torch.no_grad():
            outputs[retrieve_from] = [model(frames, {})["heatmaps"] for frames in still]
    fused, literal = outputs["fused"], outputs["flow"]
    assert (fused[0] - fused[1]).abs().max() > 1e-3 * fused[0].abs().max()
    assert (literal[0] - literal[1]).abs().max() == 0.0


def test_only_the_head_trains_next_to_the_frozen_hrnet_and_raft():
    # raft_small with random weights: RAFT needs crops of at least 128 px
    torch.manual_seed(0)
    hw = (128, 128)
    model = tiny_model(3, flow="raft_small", flow_args={"random_init": True, "num_flow_updates": 1}, hw=hw)
    trainable = dict(model.trainable_parameters())
    assert trainable and all(name.startswith("head.") for name in trainable)
    assert sum(p.numel() for p in trainable.values()) == sum(p.numel() for p in model.head.parameters())
    assert not any(p.requires_grad for p in model.flow.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    # φ is a frozen buffer, never a parameter, and travels in the state dict
    assert "head.projection_weight" in model.state_dict() and "projection_weight" not in dict(model.head.named_parameters())
    train_step(model, 3, hw=hw)
    assert all(p.grad is None for p in model.flow.parameters())


def test_init_from_pose_hrnet_file_fills_backbone_heatmap_layer_and_projection(tmp_path):
    model = tiny_model(3)
    state = fake.fake_pose_hrnet(TINY_WIDTHS, num_joints=K, seed=3)
    path = tmp_path / "pose_hrnet_tiny.pth"
    torch.save(state, path)
    assert not model.head.projection_loaded
    report = initialise_weights(model, path)
    assert "head: 2 tensors" in report
    torch.testing.assert_close(model.head.projection_weight, state["final_layer.weight"])
    torch.testing.assert_close(model.head.projection_bias, state["final_layer.bias"])
    torch.testing.assert_close(model.backbone.heatmap_layer.weight, state["final_layer.weight"])
    assert model.head.projection_loaded


def test_initial_heatmap_loss_trains_the_backbone_in_the_cpu_twin():
    # the synthetic twin's stand-in for COCO pretraining: MSE on every frame's initial heatmaps
    torch.manual_seed(0)
    model = tiny_model(3, freeze_backbone=False, initial_heatmap_weight=0.5)
    assert model.head.targets == ("heatmap", "weight", "heatmap_all", "weight_all")
    losses = train_step(model, 3)
    io = sum(v for k, v in losses.items() if k.startswith("io_"))
    torch.testing.assert_close(losses["loss"], losses["heatmap"] + 0.5 * losses["initial_heatmap"] + io)
    assert model.backbone.heatmap_layer.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="freeze_backbone=false"):
        build_head(3, initial_heatmap_weight=1.0)


def test_load_pretrained_head_errors_name_the_problem():
    head = build_head(3)
    with pytest.raises(KeyError, match="final_layer.bias"):
        head.load_pretrained_head({"final_layer.weight": torch.zeros(K, C, 1, 1)})
    with pytest.raises(ValueError, match="IO projection expects"):
        head.load_pretrained_head({"final_layer.weight": torch.zeros(K, 4, 1, 1), "final_layer.bias": torch.zeros(K)})
    assert build_head(3, io_weight=0.0).load_pretrained_head({}) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_frames": 4}, "not supported"),
        ({"channels": 16}, "must equal the backbone"),
        ({"use_jmml": False}, "io_weight=0"),
        ({"num_blocks": 0}, "num_blocks must be >= 1"),
        ({"retrieve_from": "heatmap"}, "head.retrieve_from"),
        ({"motion": "optical"}, "head.motion"),
        ({"interaction": "concat"}, "head.interaction"),
        ({"io_reduction": "sum"}, "head.io_reduction"),
        ({"num_heads": 3}, "num_heads"),
    ],
)
def test_invalid_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_head(**kwargs)


def test_stride_mismatch_is_rejected():
    with pytest.raises(ValueError, match="stride"):
        HEADS.build({"name": "jmpose"}, in_channels=C, in_stride=16, num_joints=K, heatmap_stride=4, num_frames=3, key_index=1)


def test_wider_head_without_io_loss_is_allowed():
    head = build_head(3, channels=16, io_weight=0.0)
    features, flows, initial = head_inputs(3)
    assert head(features, None, flows=flows, initial_heatmaps=initial)["heatmaps"].shape == (2, K, *HM_HW)


def test_builds_on_the_meta_device_at_full_size():
    with torch.device("meta"):
        head = build_head(5, in_channels=48, num_joints=17, num_blocks=4)
    assert head.projection_weight.is_meta
