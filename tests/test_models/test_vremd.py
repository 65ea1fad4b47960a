"""VREMD head: ViT-L shapes and parameter counts, DCA sampling, HKME masks, gradients, ablations."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from vidpose.heatmaps import Geometry
from vidpose.models.heads.vremd import VREMDHead
from vidpose.models.heads.vremd_bmd import ConstrainedDeformableAttention
from vidpose.models.heads.vremd_hkme import HumanKeypointMaskEnhancement
from vidpose.models.ops.grid import pixel_centres
from vidpose.models.pose_model import PoseModel
from vidpose.registry import BACKBONES, HEADS, TARGETS

K = 5
INPUT_HW = (64, 48)  # 4x3 ViT tokens, 16x12 heatmaps
TINY_VIT = {"name": "vit_tiny", "embed_dim": 32, "depth": 1, "num_heads": 2}


def build_head(in_channels=32, input_hw=INPUT_HW, in_stride=16, num_joints=K, **overrides):
    node = {"name": "vremd", **VREMDHead.small_config(), **overrides}
    heatmap_hw = (input_hw[0] // 4, input_hw[1] // 4)
    return HEADS.build(
        node, in_channels=in_channels, in_stride=in_stride, num_joints=num_joints,
        heatmap_stride=4, num_frames=3, key_index=1, input_hw=input_hw, heatmap_hw=heatmap_hw,
    )


def build_model(**overrides) -> PoseModel:
    backbone = BACKBONES.build(dict(TINY_VIT), input_hw=INPUT_HW, num_joints=K)
    head = build_head(in_channels=backbone.out_channels, **overrides)
    return PoseModel(backbone, head, num_frames=3, key_index=1)


def fake_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "frames": torch.rand(2, 3, 3, *INPUT_HW, generator=g),
        "keypoints": torch.rand(2, 3, K, 2, generator=g) * 36 + 6,
        "visible": torch.ones(2, 3, K),
        "clamped": torch.zeros(2, 3, dtype=torch.bool),
    }


def train_loss(model: PoseModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    geometry = Geometry(INPUT_HW, 4, "udp")
    targets = TARGETS.build({"name": "gaussian"}, geometry=geometry)(
        batch["keypoints"], batch["visible"], batch["clamped"], 1, names=model.head.targets
    )
    return model.loss(model(batch["frames"], batch), targets)["loss"]


def load_sibling(name: str):
    """A helper module next to this test file (tests are not a package)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vit_block_params(d: int) -> int:
    # LN 2d + qkv 3d^2+3d + proj d^2+d + LN 2d + fc1 4d^2+4d + fc2 4d^2+d = 12 d^2 + 13 d
    return 12 * d * d + 13 * d


# --- ViT-L dimensions (meta device: no memory, real shapes) -------------------------------------


def test_vit_l_shapes_and_parameter_counts_on_meta():
    d, j, n = 1024, 17, 192  # ViT-L width, PoseTrack slots, 16x12 tokens at 256x192
    with torch.device("meta"):
        head = HEADS.build(  # every constructor default: the models.md 2.7 design
            {"name": "vremd"}, in_channels=d, in_stride=16, num_joints=j, heatmap_stride=4,
            num_frames=3, key_index=1, input_hw=(256, 192), heatmap_hw=(64, 48),
        )
        out = head(torch.empty(2, 3, d, 16, 12))
    for name in ("heatmaps", "keypoint_heatmaps", "motion_heatmaps"):
        assert out[name].shape == (2, j, 64, 48)
    assert out["human_mask"].shape == out["keypoint_mask"].shape == (2, 3, n)
    assert head.freeze_backbone and head.frames == "all"

    def count(module):
        return sum(p.numel() for p in module.parameters())

    # HKME: 6 blocks (2 human, 2 keypoint, 1 spatial, 1 temporal), human token, 3 x 17 keypoint
    # tokens, 3 frame embeddings, token MLP 576 -> 192 -> 192
    hkme = 6 * vit_block_params(d) + d + 3 * j * d + 3 * d + (576 * 192 + 192) + (192 * 192 + 192)
    assert count(head.hkme) == hkme == 75_781_504
    # ADC block: 2 LN (4d), DCA q/z/k/v/out (5 d^2 + 5 d), offset net on 2d/4 = 512 channels
    # (depthwise 5x5 + bias, LN, 1x1 to 2 without bias), cross attention (4 d^2 + 4 d),
    # MLP 2d -> d -> d (3 d^2 + 2 d); 2 blocks per direction, 2 directions, fusion 2d -> d
    offset_net = 512 * 25 + 512 + 2 * 512 + 2 * 512
    adc = 4 * d + 5 * d * d + 5 * d + offset_net + 4 * d * d + 4 * d + 3 * d * d + 2 * d
    assert count(head.bmd) == 4 * adc + 2 * d * d + d == 52_552_704
    # H_k: LN(d), d -> 384, LN(384), 384 -> 64*48
    assert count(head.keypoint_head) == 2 * d + d * 384 + 384 + 2 * 384 + 384 * 3072 + 3072
    # aggregation (d + d) -> d; ViTPose-L classic head: 2 deconvs, 2 BN, 1x1 to 17
    assert count(head.aggregate) == 2 * d * d + d
    deconv = d * 256 * 16 + 2 * 256 + 256 * 256 * 16 + 2 * 256 + 256 * j + j
    assert count(head.motion_decoder) == deconv == 5_248_273
    assert count(head) == 137_259_793

    def ablated(**switches):
        with torch.device("meta"):
            return count(HEADS.build(
                {"name": "vremd", **switches}, in_channels=d, in_stride=16, num_joints=j, heatmap_stride=4,
                num_frames=3, key_index=1, input_hw=(256, 192), heatmap_hw=(64, 48),
            ))

    # Table 6 rows replace every ADC block by LN(x), LN(F), operator, MLP d -> d -> d (2 d^2 + 2 d):
    # DC = DCNv1 3x3 d -> d (9 d^2 + d) with offsets from x ⊕ F (2d -> 2*4*9 = 72, 3x3);
    # DA = W_z (d^2 + d) + Deformable-DETR attention (16 heads x 4 points: offsets d -> 128,
    # weights d -> 64, value/output projections 2 (d^2 + d))
    mlp = 2 * d * d + 2 * d
    dc_block = 4 * d + 9 * d * d + d + 2 * d * 72 * 9 + 72 + mlp
    da_block = 4 * d + d * d + d + (d * 128 + 128) + (d * 64 + 64) + 2 * (d * d + d) + mlp
    fusion = 2 * d * d + d
    assert ablated(motion_attention="dc") == 137_259_793 - 52_552_704 + 4 * dc_block + fusion == 138_279_985
    assert ablated(motion_attention="da") == 137_259_793 - 52_552_704 + 4 * da_block + fusion == 108_600_849
    # Table 5(a): no masks = no human token/blocks, no keypoint tokens/blocks, no H_k
    no_masks = 137_259_793 - (d + 2 * vit_block_params(d)) - (3 * j * d + 2 * vit_block_params(d)) - 1_579_136
    assert ablated(masks="none") == no_masks == 85_242_513


# --- DCA ----------------------------------------------------------------------------------------


def test_dca_with_zero_offsets_samples_the_reference_grid_and_is_plain_attention():
    torch.manual_seed(0)
    dim, heads, grid = 8, 2, (4, 3)
    dca = ConstrainedDeformableAttention(dim, heads, num_groups=2, kernel_size=3, range_factor=2.0)
    x, f = torch.randn(2, 12, dim), torch.randn(2, 12, dim)
    x_map = x.transpose(1, 2).reshape(2, dim, *grid)
    f_map = f.transpose(1, 2).reshape(2, dim, *grid)
    out, info = dca.attention(x_map, x_map, constraint=f_map, return_sampling=True)
    # the offset network's last conv starts at zero: every group reads the token centres exactly
    assert torch.equal(info["offsets"], torch.zeros_like(info["offsets"]))
    assert torch.equal(info["positions"], pixel_centres(grid).expand(2, 2, *grid, 2))
    assert torch.allclose(info["sampled"], x_map, atol=1e-6)
    # ... so DCA is ordinary multi-head attention with q, k, v all from the motion tokens
    att = dca.attention
    q, k, v = att.proj_q(x), att.proj_k(x), att.proj_v(x)

    def split(t):
        return t.reshape(2, 12, heads, dim // heads).transpose(1, 2)

    weights = (split(q) @ split(k).transpose(-1, -2) / math.sqrt(dim // heads)).softmax(-1)
    expected = att.proj_out((weights @ split(v)).transpose(1, 2).reshape(2, 12, dim))
    assert torch.allclose(dca(x, f, grid), expected, atol=1e-5)
    assert torch.allclose(out.flatten(2).transpose(1, 2), expected, atol=1e-5)


def test_dca_offsets_follow_the_constraint_and_stay_in_range():
    torch.manual_seed(0)
    dim, grid = 8, (4, 3)
    dca = ConstrainedDeformableAttention(dim, 2, num_groups=2, kernel_size=3, range_factor=2.0)
    torch.nn.init.normal_(dca.attention.offset_net.to_offset.weight, std=5.0)
    x_map = torch.randn(1, dim, *grid)
    first, second = (
        dca.attention(x_map, x_map, constraint=torch.randn(1, dim, *grid), return_sampling=True)[1]
        for _ in range(2)
    )
    # z = W_z F enters the offset network: another constraint moves the sampling points
    assert not torch.allclose(first["positions"], second["positions"])
    assert first["offsets"].abs().max() <= 2.0  # tanh(.) x 2 token cells


# --- HKME ---------------------------------------------------------------------------------------


def make_hkme(masks: str = "both") -> HumanKeypointMaskEnhancement:
    torch.manual_seed(0)
    return HumanKeypointMaskEnhancement(
        16, num_tokens=12, num_frames=3, num_joints=K, num_heads=2, human_blocks=1,
        keypoint_blocks=1, masks=masks,
    )


def test_keypoint_mask_sums_to_3j_and_human_mask_is_a_sigmoid():
    out = make_hkme()(torch.randn(2, 3, 12, 16))
    # each of the 3J keypoint rows is a softmax over all 3N patch tokens, and rows are summed
    sums = out["keypoint_mask"].sum(dim=(1, 2))
    assert torch.allclose(sums, torch.full((2,), 3.0 * K), atol=1e-4)
    assert out["keypoint_mask"].min() > 0
    assert 0 < out["human_mask"].min() and out["human_mask"].max() < 1
    assert out["enhanced"].shape == (2, 12, 16) and out["keypoint_tokens"].shape == (2, 3, K, 16)


def test_mask_switches_remove_their_stage_and_its_tokens():
    # Table 5(a): a row without a mask has neither that mask's blocks nor its tokens; "none" is
    # the spatio-temporal transformer alone
    def owners(module):
        return {name.split(".")[0] for name, _ in module.named_parameters()}

    shared = {"frame_embed", "spatial_blocks", "temporal_blocks", "token_reduction"}
    human, keypoint = {"human_token", "human_blocks"}, {"keypoint_tokens", "keypoint_blocks"}
    expected = {"both": shared | human | keypoint, "human": shared | human,
                "keypoint": shared | keypoint, "none": shared}
    tokens = torch.randn(2, 3, 12, 16)
    for masks, names in expected.items():
        hkme = make_hkme(masks)
        assert owners(hkme) == names, masks
        out = hkme(tokens)
        assert ("human_mask" in out) == (masks in ("both", "human"))
        assert ("keypoint_tokens" in out) == ("keypoint_mask" in out) == (masks in ("both", "keypoint"))


def test_without_masks_hkme_is_the_spatio_temporal_transformer_alone():
    torch.manual_seed(0)
    hkme = make_hkme("none").eval()
    tokens = torch.randn(2, 3, 12, 16)
    b, t, n, e = tokens.shape
    spatial = hkme.spatial_blocks(tokens.reshape(b * t, n, e)).reshape(b, t, n, e)
    per_location = (spatial + hkme.frame_embed).transpose(1, 2).reshape(b * n, t, e)
    temporal = hkme.temporal_blocks(per_location).reshape(b, n, t, e).transpose(1, 2)
    expected = hkme.token_reduction(temporal.reshape(b, t * n, e).transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(hkme(tokens)["enhanced"], expected)


def test_without_the_keypoint_stage_the_head_has_no_keypoint_heatmaps():
    torch.manual_seed(0)
    for masks in ("human", "none"):
        head = build_head(masks=masks).eval()
        assert head.keypoint_head is None
        out = head(torch.randn(2, 3, 32, 4, 3))
        assert "keypoint_heatmaps" not in out and torch.equal(out["heatmaps"], out["motion_heatmaps"])


# --- the whole head -----------------------------------------------------------------------------


def test_motion_path_starts_as_the_single_frame_head_on_the_key_frame():
    torch.manual_seed(0)
    head = build_head().eval()
    features = torch.randn(2, 3, 32, 4, 3)
    out = head(features)
    # aggregation = identity on the key frame's backbone tokens, zero on the motion: a deconv head
    # loaded from ViTPose starts from its own single-frame heatmaps
    assert torch.allclose(out["motion_heatmaps"], head.motion_decoder(features[:, 1]), atol=1e-6)
    assert torch.allclose(
        out["heatmaps"], 0.5 * out["keypoint_heatmaps"] + 0.5 * out["motion_heatmaps"]
    )


def test_gradients_reach_every_trainable_parameter_and_never_the_frozen_backbone():
    torch.manual_seed(0)
    model = build_model().train()
    assert not model.backbone.training, "a frozen backbone stays in eval mode"
    assert all(not p.requires_grad for p in model.backbone.parameters())
    with torch.no_grad():  # leave the zero initialisations that block gradients at step 0
        for p in model.head.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    train_loss(model, fake_batch()).backward()
    silent = [
        n for n, p in model.trainable_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not silent, f"trainable parameters without gradient: {silent}"
    assert all(p.grad is None for p in model.backbone.parameters())
    trainable = sum(p.numel() for _, p in model.trainable_parameters())
    assert trainable == sum(p.numel() for p in model.head.parameters())


ABLATIONS = {
    "no_hkme": {"hkme": False},
    "no_bmd": {"bmd": False},
    "neither": {"hkme": False, "bmd": False},
    "human_mask_only": {"masks": "human"},
    "keypoint_mask_only": {"masks": "keypoint"},
    "no_masks": {"masks": "none"},
    "dc": {"motion_attention": "dc"},
    "da": {"motion_attention": "da"},
    "dca_not_bidirectional": {"bidirectional": False},
    "dc_not_bidirectional": {"motion_attention": "dc", "bidirectional": False},
    "da_not_bidirectional": {"motion_attention": "da", "bidirectional": False},
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_each_ablation_builds_trains_and_uses_every_parameter(name):
    torch.manual_seed(0)
    switches = ABLATIONS[name]
    model = build_model(**switches).train()
    loss = train_loss(model, fake_batch())
    loss.backward()
    assert torch.isfinite(loss)
    assert not [n for n, p in model.trainable_parameters() if p.grad is None]
    head = model.head
    assert (head.hkme is None) == (switches.get("hkme") is False)
    assert (head.bmd is None) == (switches.get("bmd") is False)
    outputs = model(fake_batch()["frames"])
    assert outputs["heatmaps"].shape == (2, K, 16, 12)
    if head.hkme is None:  # no keypoint tokens: H_t is H_m alone
        assert "keypoint_heatmaps" not in outputs
        assert torch.equal(outputs["heatmaps"], outputs["motion_heatmaps"])
    if head.bmd is not None:
        blocks = head.bmd.forward_blocks if head.bmd.bidirectional else head.bmd.blocks
        kind = switches.get("motion_attention", "dca")
        if kind == "dca":
            assert type(blocks[0].motion_attention).__name__ == "ConstrainedDeformableAttention"
        else:  # Table 6: the whole ADC block is replaced, cross attention included
            expected = {"dc": "MotionDeformableConv", "da": "MotionDeformableDETRAttention"}[kind]
            assert type(blocks[0]).__name__ == "DeformableOperatorBlock"
            assert type(blocks[0].operator).__name__ == expected
            assert not any("cross_attention" in n for n, _ in blocks.named_parameters())
        assert head.bmd.bidirectional == switches.get("bidirectional", True)


def test_dc_replacement_is_a_plain_deformable_convolution_without_modulation():
    from torchvision.ops import deform_conv2d

    torch.manual_seed(0)
    head = build_head(motion_attention="dc").eval()
    block = head.bmd.forward_blocks[0]
    dcn = block.operator.conv
    assert dcn.mask_conv is None
    with torch.no_grad():
        torch.nn.init.normal_(dcn.offset_conv.weight, std=0.1)
    x, constraint = torch.randn(2, 12, 16), torch.randn(2, 12, 16)  # 4x3 tokens of width 16

    def as_map(tokens):
        return tokens.transpose(1, 2).reshape(2, 16, 4, 3)

    motion = as_map(block.norm_motion(x))
    offset = dcn.offset_conv(torch.cat([motion, as_map(block.norm_constraint(constraint))], 1))  # x ⊕ F
    assert offset.abs().max() > 0.05
    plain = deform_conv2d(motion, offset, dcn.conv.weight, dcn.conv.bias, padding=1)  # no mask
    expected = x + block.mlp(plain.flatten(2).transpose(1, 2))
    torch.testing.assert_close(block(x, constraint, (4, 3)), expected, rtol=1e-4, atol=1e-5)


def test_runs_on_stride_4_features():
    # an HRNet-like stride-4 map: 16x12 tokens and a deconv head with no upsampling
    head = build_head(in_channels=8, in_stride=4)
    out = head(torch.randn(1, 3, 8, 16, 12))
    assert out["heatmaps"].shape == (1, K, 16, 12) and len(head.motion_decoder.deconv_layers) == 0


def test_official_vitpose_head_loads_into_the_motion_decoder():
    fake = load_sibling("fake_checkpoints")
    # the official keypoint_head.* grammar (pretrained.md 2.2) of a 32-wide backbone, K joints
    state = fake.random_state(fake.classic_head_shapes(32, K, prefix=""), seed=1)
    head = build_head(deconv_channels=256)
    used = head.load_pretrained_head(state)
    assert len(used) == 14  # 2 deconvs, 2 BN x 5 entries, final weight and bias
    assert torch.equal(head.motion_decoder.final_layer.weight, state["final_layer.weight"])
    assert torch.equal(
        head.motion_decoder.deconv_layers[0].weight, state["deconv_layers.0.weight"]
    )


def test_bad_configuration_errors_name_the_field():
    with pytest.raises(ValueError, match="offsets must be \\[-1, 0, 1\\]"):
        HEADS.build({"name": "vremd", **VREMDHead.small_config()}, in_channels=32, in_stride=16,
                    num_joints=K, heatmap_stride=4, num_frames=5, key_index=2, input_hw=INPUT_HW,
                    heatmap_hw=(16, 12))
    with pytest.raises(ValueError, match="head.masks"):
        build_head(masks="hands")
    with pytest.raises(ValueError, match="head.motion_attention"):
        build_head(motion_attention="conv")
    with pytest.raises(ValueError, match="num_heads=3 must divide"):
        build_head(num_heads=3)


def test_models_benchmark_row_uses_vit_l_for_the_paper_workload():
    from vidpose.benchmarks import models as bench

    with torch.device("meta"):
        paper = bench.ROW_BUILDERS["vremd"](bench.BenchConfig({"name": "vit_b"}, (256, 192), 2))
        quick = bench.ROW_BUILDERS["vremd"](bench.BenchConfig({"name": "vit_tiny"}, (128, 96), 2))
    assert paper.labels["backbone"] == "vit_l" and paper.model.backbone.out_channels == 1024
    assert isinstance(paper.model.head, VREMDHead) and paper.model.head.freeze_backbone
    assert quick.labels["backbone"] == "vit_tiny" and quick.model.backbone.out_channels == 192
    assert paper.target == {"name": "gaussian", "sigma": 2.0}
