"""``check_frozen_backbone_is_loaded``: a frozen backbone trains only with loaded weights or an explicit opt-in."""

from __future__ import annotations

import pytest

from vidpose.engine.initialise import check_frozen_backbone_is_loaded

FROZEN = {"name": "vremd", "freeze_backbone": True}


@pytest.mark.parametrize(
    "cfg",
    [
        {"head": {"name": "mtpose", "freeze_backbone": False}},
        {"head": FROZEN, "init_from": "/weights/vitpose-l.pth"},
        {"head": FROZEN, "backbone": {"name": "vit_l", "checkpoint": "/weights/vitpose-l.pth"}},
        {"head": FROZEN, "allow_random_frozen_backbone": True},
    ],
    ids=["trained backbone", "init_from", "backbone.checkpoint", "explicit opt-in"],
)
def test_accepted(cfg):
    check_frozen_backbone_is_loaded(cfg)


@pytest.mark.parametrize(
    "cfg",
    [
        {"head": FROZEN},
        {"head": FROZEN, "init_from": None, "backbone": {"name": "vit_l", "checkpoint": None}},
        {"head": FROZEN, "allow_random_frozen_backbone": False},
    ],
)
def test_refused_with_every_option_named(cfg):
    with pytest.raises(ValueError) as error:
        check_frozen_backbone_is_loaded(cfg)
    for option in ("'vremd'", "init_from=", "backbone.checkpoint=", "allow_random_frozen_backbone=true",
                   "head.freeze_backbone=false"):
        assert option in str(error.value)


# --- init_from a trained single-frame vidpose model (the papers' protocol in miniature) -------

import torch  # noqa: E402

from vidpose.engine.checkpoint import save_checkpoint  # noqa: E402
from vidpose.engine.initialise import initialise_weights  # noqa: E402
from vidpose.models.pose_model import PoseModel  # noqa: E402
from vidpose.registry import BACKBONES, FLOWS, HEADS  # noqa: E402

K = 3
VIT = {"name": "vit_tiny", "embed_dim": 32, "depth": 1, "num_heads": 2}
HRNET = {"name": "hrnet_tiny", "widths": [4, 8, 16, 32]}


def _model(backbone_node, head_node, input_hw, num_frames=1, flow=None):
    backbone = BACKBONES.build(dict(backbone_node), input_hw=input_hw, num_joints=K)
    head = HEADS.build(  # runtime facts reach only the heads whose signature takes them
        dict(head_node), in_channels=backbone.out_channels, in_stride=backbone.stride, num_joints=K,
        heatmap_stride=4, num_frames=num_frames, key_index=num_frames // 2, input_hw=input_hw,
        heatmap_hw=(input_hw[0] // 4, input_hw[1] // 4),
    )
    return PoseModel(backbone, head, flow=flow, num_frames=num_frames, key_index=num_frames // 2)


def _trained_single_frame(tmp_path, backbone_node, input_hw):
    torch.manual_seed(1)
    model = _model(backbone_node, {"name": "deconv", "deconv_channels": 16}, input_hw)
    with torch.no_grad():  # "trained": every tensor moved away from its initialisation
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = save_checkpoint({"model": model.state_dict(), "step": 10}, tmp_path / "single_frame.pt")
    return model, path


def test_a_trained_single_frame_vit_initialises_temporal_heads_like_a_vitpose_release(tmp_path):
    single, path = _trained_single_frame(tmp_path, VIT, (64, 48))
    decoder = {k: v for k, v in single.head.decoder.state_dict().items()}
    for head_node, num_frames, loaded_decoder in (
        ({"name": "mtpose", "num_heads": 2, "deconv_channels": 16}, 3, lambda m: m.head.decoder),
        ({"name": "vremd", **{"embed_dim": 16, "num_heads": 2, "human_blocks": 1, "keypoint_blocks": 1,
                              "adc_blocks": 1, "offset_groups": 2, "offset_kernel": 3,
                              "keypoint_head_hidden": 16, "deconv_channels": 16}}, 3, lambda m: m.head.motion_decoder),
    ):
        flow = FLOWS.build({"name": "opencv_dis"}) if head_node["name"] == "mtpose" else None
        torch.manual_seed(2)
        model = _model(VIT, head_node, (64, 48), num_frames=num_frames, flow=flow)
        report = initialise_weights(model, path)
        assert "head:" in report and "tensors" in report, report
        for key, value in single.backbone.state_dict().items():
            assert torch.equal(model.backbone.state_dict()[key], value), key
        target = loaded_decoder(model).state_dict()
        assert torch.equal(target["deconv_layers.0.weight"], decoder["deconv_layers.0.weight"])
        # MTPose duplicates the single-frame final layer for its two motion maps
        assert torch.equal(target["final_layer.weight"][:K], decoder["final_layer.weight"])


def test_a_trained_single_frame_hrnet_gives_jmpose_its_heatmap_layer_and_projection(tmp_path):
    single, path = _trained_single_frame(tmp_path, HRNET, (64, 64))
    final = single.head.decoder.final_layer
    model = _model({**HRNET, "with_heatmap_layer": True}, {"name": "jmpose", "num_blocks": 1}, (64, 64), 3,
                   flow=FLOWS.build({"name": "opencv_dis"}))
    initialise_weights(model, path)
    assert torch.equal(model.backbone.heatmap_layer.weight, final.weight)
    assert torch.equal(model.head.projection_weight, final.weight) and bool(model.head.projection_loaded)
    for key, value in single.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_the_same_model_continues_from_every_tensor(tmp_path):
    single, path = _trained_single_frame(tmp_path, VIT, (64, 48))
    torch.manual_seed(3)
    model = _model(VIT, {"name": "deconv", "deconv_channels": 16}, (64, 48))
    assert "0 kept their initialisation" in initialise_weights(model, path)
    for key, value in single.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
