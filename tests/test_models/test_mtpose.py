"""MTPose head: shapes and parameter count at ViT-B sizes, flow pooling, identity starts, loss, pretrained head."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.engine.initialise import initialise_weights
from vidpose.heatmaps import Geometry, motion_aware_np
from vidpose.models.heads.mtpose import DeformableFusion, FlowCrossAttention, MTPoseHead
from vidpose.models.pose_model import PoseModel
from vidpose.registry import BACKBONES, FLOWS, HEADS, TARGETS

K = 17


def _load_fake_checkpoints():
    # the sibling helper module, loaded by path (pytest runs in importlib mode: no package imports)
    spec = importlib.util.spec_from_file_location("fake_checkpoints", Path(__file__).with_name("fake_checkpoints.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load_fake_checkpoints()


def build_head(**overrides) -> MTPoseHead:
    node = {"name": "mtpose", **overrides}
    dim = node.pop("in_channels", 768)
    return HEADS.build(node, in_channels=dim, in_stride=16, num_joints=K, heatmap_stride=4, num_frames=3, key_index=1)


# ------------------------------------------------------------------------------------------- targets


def test_theta_zero_motion_gives_a_rectangle_of_msra_profiles():
    # models.md section 7: at theta = 0 with integer sigmas the support is the MSRA window. Here the
    # moving case: |m| = 6 heatmap px along x -> r = 1, sigma_par = 4 (|dx| <= 12), sigma_perp = 2
    # (|dy| <= 6); the map is the outer product of the two 1-D MSRA profiles.
    geo = Geometry((256, 192), 4, "msra")
    current = np.array([24.0, 30.0])
    clip = np.stack([current - (6.0, 0.0), current, current])  # heatmap px; prev is 6 px to the left
    xy = np.asarray(geo.to_input(clip))[:, None, :]
    out = motion_aware_np(xy, np.ones((3, 1)), geo, key=1)["motion_prev"][0]
    dx = np.arange(48) - 24
    dy = np.arange(64) - 30
    along = np.where(np.abs(dx) <= 12, np.exp(-(dx**2) / 32.0), 0.0)
    across = np.where(np.abs(dy) <= 6, np.exp(-(dy**2) / 8.0), 0.0)
    np.testing.assert_allclose(out, across[:, None] * along[None, :], rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------- shapes


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_vit_b_sizes_output_shapes_and_parameter_count():
    head = build_head()
    head.eval()
    features = torch.randn(2, 768, 16, 12)
    flows = torch.randn(2, 2, 2, 256, 192)
    with torch.no_grad():
        out = head(features, flows=flows)
    assert set(out) == {"heatmaps", "motion_prev", "motion_next"}
    assert all(v.shape == (2, K, 64, 48) for v in out.values())
    # cross-attention: flow 1x1 conv 4*768+768 = 3,840; two LayerNorms 3,072; MHA in/out projections
    # 4*768^2 + 4*768 = 2,362,368; FFN 2*768*3072 + 3072 + 768 = 4,722,432 -> 7,091,712
    assert count(head.cross_attention) == 7_091_712
    # decoder: 768*256*16 + 256*256*16 + 2 BN (512 each) + final 256*34 + 34 = 4,204,066
    assert count(head.decoder) == 4_204_066
    # per dilation: offsets 34*306*9 + 306, masks 34*153*9 + 153, DCN 17*17*9 + 17 -> 143,531; x5
    assert count(head.fusion) == 717_655
    with torch.device("meta"):
        backbone = BACKBONES.build({"name": "vit_b"}, input_hw=(256, 192), num_joints=K)
    # models.md section 1.3 estimates 85.8 M + 7.1 M + 4.2 M + 0.71 M = 97.8 M
    assert count(backbone) + count(head) == 97_807_481


def test_flow_pairs_and_clip_requirements():
    head = build_head(in_channels=32, num_heads=2, deconv_channels=8)
    assert head.flow_pairs(3, 1) == [(1, 0), (1, 2)]  # key->previous, key->next on the key grid
    with pytest.raises(ValueError, match="3-frame clip"):
        HEADS.build({"name": "mtpose"}, in_channels=32, in_stride=16, num_joints=K, heatmap_stride=4,
                    num_frames=5, key_index=2)
    with pytest.raises(ValueError, match="num_heads=5"):
        build_head(in_channels=32, num_heads=5)
    with pytest.raises(ValueError, match="flows"):
        head(torch.randn(1, 32, 4, 3), flows=None)


def test_flows_reach_the_token_grid_as_mean_motion_in_token_units(monkeypatch):
    head = build_head(in_channels=32, num_heads=2, deconv_channels=8)
    seen = {}

    def spy(features, flows):
        seen["flows"] = flows
        return features

    monkeypatch.setattr(head.cross_attention, "forward", spy)
    flows = torch.zeros(1, 2, 2, 64, 48)
    flows[0, 0, 0] = 32.0  # key->previous: 32 input px right = 2 tokens (stride 16)
    flows[0, 1, 1, :16] = -16.0  # key->next: 16 px up, only in the first token row
    flows[0, 1, 1, 16:32, :8] = 8.0  # half of each token of row 1, columns 0-1: mean 4 px
    head(torch.randn(1, 32, 4, 3), flows=flows)
    token = seen["flows"][0]  # channels (u_prev, v_prev, u_next, v_next)
    assert torch.allclose(token[0], torch.full((4, 3), 2.0))
    assert torch.equal(token[1], torch.zeros(4, 3))
    assert torch.allclose(token[3, 0], torch.full((3,), -1.0))
    # row 1: column 0 is fully covered by the 8 px band (width 8 of 16): mean 4 px = 0.25 tokens
    assert torch.allclose(token[3, 1], torch.tensor([0.25, 0.0, 0.0]))


# ------------------------------------------------------------------------------------------- identity starts


def test_cross_attention_block_starts_as_the_identity():
    block = FlowCrossAttention(64, 4)
    features = torch.randn(2, 64, 4, 3)
    assert torch.equal(block(features, torch.randn(2, 4, 4, 3)), features)


@pytest.mark.parametrize("backend", ["torchvision", "grid_sample"])
def test_fusion_at_initialisation_is_half_the_average(backend):
    # zero offsets, masks sigmoid(0) = 0.5, identity kernels: every dilation gives 0.5 * average
    fusion = DeformableFusion(K, backend=backend)
    prev, nxt = torch.randn(2, K, 16, 12), torch.randn(2, K, 16, 12)
    assert torch.allclose(fusion(prev, nxt), 0.25 * (prev + nxt), atol=1e-6)


def test_fusion_backends_agree_with_moving_offsets():
    torch.manual_seed(0)
    fusion = DeformableFusion(3, dilations=(1, 2), backend="torchvision")
    for branch in fusion.branches:
        torch.nn.init.normal_(branch.offset_conv.weight, std=0.5)
        torch.nn.init.normal_(branch.mask_conv.weight, std=0.5)
        torch.nn.init.normal_(branch.conv.weight)
    prev = torch.randn(2, 3, 9, 7, dtype=torch.float64, requires_grad=True)
    nxt = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    fusion.double()
    reference = fusion(prev, nxt)
    (grad_ref,) = torch.autograd.grad(reference.square().sum(), prev)
    fusion.backend = "grid_sample"
    sampled = fusion(prev, nxt)
    (grad_sampled,) = torch.autograd.grad(sampled.square().sum(), prev)
    assert torch.allclose(sampled, reference, atol=1e-10)
    assert torch.allclose(grad_sampled, grad_ref, atol=1e-9)


def test_every_parameter_receives_a_gradient_with_the_default_fusion():
    # DDP (find_unused_parameters=False) needs a gradient for every parameter at every step: the
    # default head (five dilations, one offset field per joint) on narrow features and real targets
    torch.manual_seed(0)
    head = build_head(in_channels=32, num_heads=2, deconv_channels=8)
    assert head.fusion.dilations == (3, 6, 9, 12, 15)
    geometry = Geometry((64, 48), 4, "msra")
    keypoints = torch.rand(2, 3, K, 2) * torch.tensor([40.0, 56.0]) + 4
    targets = TARGETS.build({"name": "motion_aware"}, geometry=geometry)(
        keypoints, torch.ones(2, 3, K), torch.zeros(2, 3, dtype=torch.bool), 1, names=head.targets
    )
    outputs = head(torch.randn(2, 32, 4, 3), flows=torch.randn(2, 2, 2, 64, 48))
    assert all(v.shape == (2, K, *geometry.heatmap_hw) for v in outputs.values())
    head.loss(outputs, targets)["loss"].backward()
    assert not [n for n, p in head.named_parameters() if p.grad is None]
    # and the fusion's offset/mask convs learn from the first step (zero init is not a dead end)
    for branch in head.fusion.branches:
        assert branch.offset_conv.weight.grad.abs().sum() > 0 and branch.mask_conv.weight.grad.abs().sum() > 0


def test_attention_learns_after_the_first_step():
    # the zero FFN output layer blocks gradients into the attention at step 0 (grads exist but are
    # 0, which DDP accepts); after one step they flow
    torch.manual_seed(0)
    block = FlowCrossAttention(16, 2, mlp_ratio=1.0)
    features, flows = torch.randn(2, 16, 4, 3), torch.randn(2, 4, 4, 3)
    block(features, flows).square().sum().backward()
    assert block.attention.in_proj_weight.grad is not None
    assert torch.count_nonzero(block.attention.in_proj_weight.grad) == 0
    assert torch.count_nonzero(block.ffn[-1].weight.grad) > 0
    torch.optim.SGD(block.parameters(), lr=0.1).step()
    block.zero_grad()
    block(features, flows).square().sum().backward()
    assert torch.count_nonzero(block.attention.in_proj_weight.grad) > 0
    assert torch.count_nonzero(block.flow_embed.weight.grad) > 0


# ------------------------------------------------------------------------------------------- loss


def test_loss_is_motion_terms_plus_gamma_times_original_with_their_own_weights():
    head = build_head(in_channels=32, num_heads=2, deconv_channels=8)
    shape = (1, 2, 4, 3)
    outputs = {"heatmaps": torch.zeros(shape), "motion_prev": torch.zeros(shape), "motion_next": torch.zeros(shape)}
    targets = {
        "heatmap": torch.full(shape, 2.0),  # squared error 4 per pixel
        "motion_prev": torch.full(shape, 1.0),  # 1
        "motion_next": torch.full(shape, 3.0),  # 9
        "weight": torch.tensor([[1.0, 1.0]]),
        "weight_prev": torch.tensor([[1.0, 0.0]]),  # missing_motion=ignore zeroed joint 1
        "weight_next": torch.tensor([[0.0, 1.0]]),
    }
    losses = head.loss(outputs, targets)
    # mean over (B, K) of w_k * per-joint mean: prev (1 + 0)/2 = 0.5, next (0 + 9)/2 = 4.5, original 4
    assert losses["motion_prev"].item() == pytest.approx(0.5)
    assert losses["motion_next"].item() == pytest.approx(4.5)
    assert losses["original"].item() == pytest.approx(4.0)
    assert losses["loss"].item() == pytest.approx(0.5 + 4.5 + 0.75 * 4.0)
    assert set(head.targets) == {"heatmap", "weight", "motion_prev", "motion_next", "weight_prev", "weight_next"}


# ------------------------------------------------------------------------------------------- pretrained


def test_initialise_from_a_vitpose_checkpoint_loads_backbone_and_duplicated_decoder(tmp_path):
    dim, depth = 64, 2
    state = fake.fake_vitpose_official(dim, depth, grid=(16, 12), num_joints=K)
    path = tmp_path / "vitpose_fake.pth"
    torch.save({"state_dict": state}, path)
    backbone = BACKBONES.build(
        {"name": "vit_tiny", "embed_dim": dim, "depth": depth, "num_heads": 2}, input_hw=(256, 192), num_joints=K
    )
    head = build_head(in_channels=dim, num_heads=2)
    model = PoseModel(backbone, head, flow=FLOWS.build({"name": "opencv_dis"}), num_frames=3, key_index=1)
    report = initialise_weights(model, path)
    assert "head: 14 tensors" in report
    final = state["keypoint_head.final_layer.weight"]
    assert torch.equal(head.decoder.final_layer.weight[:K], final)
    assert torch.equal(head.decoder.final_layer.weight[K:], final)  # both motion maps start alike
    assert torch.equal(head.decoder.final_layer.bias, state["keypoint_head.final_layer.bias"].repeat(2))
    assert torch.equal(head.decoder.deconv_layers[0].weight, state["keypoint_head.deconv_layers.0.weight"])
    assert torch.equal(head.decoder.deconv_layers[4].running_var, state["keypoint_head.deconv_layers.4.running_var"])
    assert torch.equal(backbone.vit.blocks[1].attn.qkv.weight, state["backbone.blocks.1.attn.qkv.weight"])
    # the new modules keep their initialisation: zero FFN output layer, identity DCN kernels
    assert torch.count_nonzero(head.cross_attention.ffn[-1].weight) == 0
    assert head.fusion.branches[0].conv.weight[3, 3, 1, 1].item() == 1.0
    # so the two motion maps agree at the start and the fused map is half of them
    model.eval()
    frames = torch.rand(1, 3, 3, 256, 192)
    with torch.no_grad():
        out = model(frames)
    assert torch.isfinite(out["heatmaps"]).all()
    assert torch.allclose(out["motion_prev"], out["motion_next"])
    assert torch.allclose(out["heatmaps"], 0.5 * out["motion_prev"], atol=1e-6)


# ------------------------------------------------------------------------------------------- benchmark


def test_models_benchmark_builds_the_mtpose_row_and_times_the_baseline():
    import argparse

    from vidpose.benchmarks import models as bench

    config = bench.BenchConfig({"name": "vit_tiny"}, (128, 96), batch=2)
    case = bench.ROW_BUILDERS["mtpose"](config)
    assert isinstance(case.model.head, MTPoseHead) and case.target["name"] == "motion_aware"
    assert case.model.head.cross_attention.attention.num_heads == 3  # vit_tiny's heads
    rows = bench.run(argparse.Namespace(quick=True, rows="baseline", batch=2, repeats=1, threads=None, seed=0))
    assert [r["method"] for r in rows] == ["baseline"] and rows[0]["input"] == "128x96"
    assert rows[0]["fwd_bwd_s_per_sample"] > 0 and rows[0]["samples_per_s"] > 0
    # the process's peak RSS growth on Linux, NaN where /proc is missing
    assert rows[0]["peak_mem_MB_per_sample"] > 0 or math.isnan(rows[0]["peak_mem_MB_per_sample"])
