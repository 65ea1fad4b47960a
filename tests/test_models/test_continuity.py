"""CDPose head: shapes, the identity affine at start, parameter counts, gradients, the second-view hook, ablations."""

from __future__ import annotations

import pytest
import torch

from vidpose.heatmaps import Geometry
from vidpose.heatmaps.targets import GaussianTarget
from vidpose.models.heads.continuity import ContinuityHead
from vidpose.models.heads.continuity_blocks import IDENTITY_AFFINE, affine_warp
from vidpose.models.pose_model import PoseModel
from vidpose.registry import BACKBONES, HEADS

INPUT_HW = (64, 64)
K = 3
T = 5
KEY = 2
GEO = Geometry(INPUT_HW, 4, "udp")
SMALL_VIT = {"name": "vit_tiny", "embed_dim": 32, "depth": 1, "num_heads": 2}


def _head(backbone, num_frames=T, geometry=GEO, **overrides):
    node = {"name": "continuity", **ContinuityHead.small_config(), "fusion_patch": 2, **overrides}
    return HEADS.build(
        node, in_channels=backbone.out_channels, in_stride=backbone.stride, num_joints=K, heatmap_stride=4,
        num_frames=num_frames, key_index=num_frames // 2, input_hw=geometry.input_hw,
        heatmap_hw=geometry.heatmap_hw, geometry=geometry,
    )


def _model(**overrides):
    torch.manual_seed(0)
    backbone = BACKBONES.build(SMALL_VIT, input_hw=INPUT_HW)
    return PoseModel(backbone, _head(backbone, **overrides), num_frames=T, key_index=KEY)


def _batch(seed=0, view=True):
    g = torch.Generator().manual_seed(seed)
    b = 2
    batch = {
        "frames": torch.rand(b, T, 3, *INPUT_HW, generator=g),
        "keypoints": torch.rand(b, T, K, 2, generator=g) * 30 + 8,
        "visible": torch.ones(b, T, K),
        "clamped": torch.zeros(b, T, dtype=torch.bool),
    }
    if view:
        batch["view2"] = torch.rand(b, 3, *INPUT_HW, generator=g)
    return batch


def _targets(batch):
    return GaussianTarget(GEO)(batch["keypoints"], batch["visible"], batch["clamped"], KEY, names=ContinuityHead.targets)


def test_output_shapes():
    model = _model().train()
    batch = _batch()
    outputs = model(batch["frames"], batch)
    h, w = GEO.heatmap_hw
    assert outputs["heatmaps"].shape == (2, K, h, w)
    assert outputs["heatmaps_all"].shape == (2, T, K, h, w)
    assert outputs["embeddings"].shape == (2, T, 16) and outputs["view_embeddings"].shape == (2, 16)
    assert outputs["theta"].shape == (2, T, 2, 3)
    assert torch.allclose(outputs["embeddings"].norm(dim=-1), torch.ones(2, T), atol=1e-5)  # unit norm


def test_affine_decoder_is_the_identity_at_initialisation():
    model = _model().eval()
    batch = _batch(view=False)
    with torch.no_grad():
        outputs = model(batch["frames"], batch)
        features = model.backbone(((batch["frames"] - model.mean) / model.std).flatten(0, 1))
        canonical = model.head.decoder(model.head.semantic_encoder(features)).unflatten(0, (2, T))
    identity = torch.tensor(IDENTITY_AFFINE).view(2, 3)
    assert torch.equal(outputs["theta"], identity.expand(2, T, 2, 3))
    assert torch.allclose(outputs["heatmaps_all"], canonical, atol=1e-6)


def test_affine_warp_follows_the_align_corners_false_convention():
    maps = torch.arange(24.0).view(1, 1, 4, 6)
    # a translation of 2/w in normalised x samples one pixel to the right: out[..., j] = in[..., j + 1]
    theta = torch.tensor([[[1.0, 0.0, 2.0 / 6], [0.0, 1.0, 0.0]]])
    shifted = affine_warp(maps, theta)
    assert torch.allclose(shifted[..., :5], maps[..., 1:], atol=1e-5)
    assert torch.allclose(shifted[..., 5], torch.zeros(4), atol=1e-4)  # beyond the edge: zeros padding


def test_parameter_counts_of_the_spec_defaults():
    # models.md section 4.2: HRNet-W48 at 384x288 (96x72 heatmaps, fusion patch 3) and ViT-B at 256x192
    def count(module):
        return sum(p.numel() for p in module.parameters())

    parts = ("semantic_encoder", "transformation_encoder", "decoder", "heatmap_fusion")
    with torch.device("meta"):
        hrnet = BACKBONES.build({"name": "hrnet_w48"}, input_hw=(384, 288))
        geometry = Geometry((384, 288), 4, "msra")
        head = _head_defaults(hrnet, geometry, fusion_patch=3)
        model = PoseModel(hrnet, head, num_frames=5, key_index=2)
        assert [count(getattr(head, p)) for p in parts] == [212_336, 112_678, 360_561, 70_065]
        assert count(model) == 64_350_552
        assert abs(count(model) / 64.3e6 - 1) < 0.01  # the paper's 64.3 M (Table 4)
        vit = BACKBONES.build({"name": "vit_b"}, input_hw=(256, 192))
        head = _head_defaults(vit, Geometry((256, 192), 4, "udp"), fusion_patch=2)
        assert count(head) == 722_888
        assert count(head.transformation_encoder) == 320_038


def _head_defaults(backbone, geometry, fusion_patch):
    return HEADS.build(
        {"name": "continuity", "fusion_patch": fusion_patch}, in_channels=backbone.out_channels,
        in_stride=backbone.stride, num_joints=17, heatmap_stride=4, num_frames=5, key_index=2,
        input_hw=geometry.input_hw, heatmap_hw=geometry.heatmap_hw, geometry=geometry,
    )


def test_gradients_reach_every_trainable_parameter_including_the_backbone():
    model = _model().train()
    batch = _batch()
    outputs = model(batch["frames"], batch)
    losses = model.loss(outputs, _targets(batch))
    assert set(losses) == {"loss", "frames_heatmap", "fused_heatmap", "contrastive", "spatial", "tpdi"}
    weights = model.head.weights
    total = sum(weights[f"{name}_weight"] * losses[name] for name in losses if name != "loss")
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    losses["loss"].backward()
    missing = [n for n, p in model.trainable_parameters() if p.grad is None]
    assert not missing
    assert any(p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_the_second_view_goes_through_the_backbone_and_the_semantic_encoder():
    model = _model().eval()  # eval: no dropout/BN batch statistics, so the two runs below must agree
    batch = _batch()
    with torch.no_grad():
        outputs = model(batch["frames"], batch)
        swapped = batch["frames"].clone()
        swapped[:, KEY] = batch["view2"]
        reference = model(swapped, {"frames": swapped})
    assert torch.allclose(outputs["view_embeddings"], reference["embeddings"][:, KEY], atol=1e-5)


def test_training_without_the_second_view_names_the_data_option():
    model = _model().train()
    batch = _batch(view=False)
    with pytest.raises(ValueError, match="data.second_view.enabled"):
        model(batch["frames"], batch)
    model.eval()  # evaluation never needs it
    assert "view_embeddings" not in model(batch["frames"], batch)


def test_a_view_of_the_wrong_shape_is_an_error():
    model = _model().train()
    batch = _batch()
    batch["view2"] = batch["view2"][:, :, :32]
    with pytest.raises(ValueError, match="view2"):
        model(batch["frames"], batch)


@pytest.mark.parametrize(
    "overrides, absent, terms",
    [
        ({"semantic_space": False, "contrastive_weight": 0, "spatial_weight": 0},
         ("semantic_encoder", "decoder", "transformation_encoder"), {"frames_heatmap", "fused_heatmap", "tpdi"}),
        ({"transform": False}, ("transformation_encoder",),
         {"frames_heatmap", "fused_heatmap", "contrastive", "spatial", "tpdi"}),
        ({"fusion": False, "fused_heatmap_weight": 0}, ("heatmap_fusion",),
         {"frames_heatmap", "contrastive", "spatial", "tpdi"}),
        ({"tpdi_weight": 0}, (), {"frames_heatmap", "fused_heatmap", "contrastive", "spatial"}),
        ({"spatial_weight": 0}, (), {"frames_heatmap", "fused_heatmap", "contrastive", "tpdi"}),
        ({"contrastive_weight": 0, "contrastive_form": "literal"}, (),
         {"frames_heatmap", "fused_heatmap", "spatial", "tpdi"}),
    ],
)
def test_ablation_switches(overrides, absent, terms):
    model = _model(**overrides).train()
    for name in absent:
        assert not hasattr(model.head, name)
    assert model.head.extra_views == (("view2",) if "spatial" in terms else ())
    batch = _batch()
    outputs = model(batch["frames"], batch)
    losses = model.loss(outputs, _targets(batch))
    assert set(losses) == {"loss", *terms}
    losses["loss"].backward()
    assert not [n for n, p in model.trainable_parameters() if p.grad is None]
    if overrides.get("fusion") is False:
        assert torch.equal(outputs["heatmaps"], outputs["heatmaps_all"][:, KEY])


def test_without_fusion_the_key_frame_heatmap_is_the_output_and_without_s_the_decoder_output_is():
    model = _model(transform=False).eval()
    batch = _batch(view=False)
    with torch.no_grad():
        outputs = model(batch["frames"], batch)
        canonical = model.head.decoder(outputs["embeddings"].flatten(0, 1)).unflatten(0, (2, T))
    assert "theta" not in outputs and torch.allclose(outputs["heatmaps_all"], canonical, atol=1e-6)


def test_invalid_configurations_are_errors():
    backbone = BACKBONES.build(SMALL_VIT, input_hw=INPUT_HW)
    with pytest.raises(ValueError, match="symmetric window"):
        _head(backbone, num_frames=4)
    with pytest.raises(ValueError, match="contrastive_weight=0"):
        _head(backbone, semantic_space=False)
    with pytest.raises(ValueError, match="fused_heatmap_weight=0"):
        _head(backbone, fusion=False)
    with pytest.raises(ValueError, match="contrastive_form"):
        _head(backbone, contrastive_form="printed")
    with pytest.raises(ValueError, match="patch"):
        _head(backbone, fusion_patch=3)  # 16x16 heatmaps


def test_three_frame_window_and_hrnet_features():
    torch.manual_seed(0)
    backbone = BACKBONES.build({"name": "hrnet_tiny", "widths": [4, 8, 16, 32]}, input_hw=(64, 64))
    geometry = Geometry((64, 64), 4, "msra")
    head = _head(backbone, num_frames=3, geometry=geometry)
    features = torch.rand(2, 3, 4, 16, 16)
    outputs = head.train()(features, {"frames": torch.rand(2, 3, 3, 64, 64),
                                      "extra_features": {"view2": torch.rand(2, 4, 16, 16)}})
    assert outputs["heatmaps"].shape == (2, K, 16, 16) and outputs["embeddings"].shape == (2, 3, 16)
    # stride-4 features, tokens at stride 16: two stride-2 convolutions, 16x16 -> 4x4 tokens
    assert head.semantic_encoder.num_tokens == 16


def test_pretrained_head_loads_only_into_the_deconvolution_ablation():
    plain = _model(semantic_space=False, contrastive_weight=0, spatial_weight=0).head
    state = {k: torch.full_like(v, 0.5) for k, v in plain.frame_decoder.state_dict().items()}
    used = plain.load_pretrained_head(state)
    assert sorted(used) == sorted(state) and torch.all(plain.frame_decoder.final_layer.weight == 0.5)
    with pytest.raises(NotImplementedError):
        _model().head.load_pretrained_head(state)
