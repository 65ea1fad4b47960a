import pytest
import torch

from vidpose.models.heads.deconv import DeconvDecoder, DeconvHead, num_upsampling_layers
from vidpose.registry import HEADS


def test_number_of_upsampling_layers():
    assert num_upsampling_layers(16, 4) == 2 and num_upsampling_layers(4, 4) == 0
    with pytest.raises(ValueError, match="cannot reach"):
        num_upsampling_layers(12, 4)


def official_head_state(d_in, k, width=256):
    # ViTPose keypoint_head layout (pretrained.md section 2.2), random values
    g = torch.Generator().manual_seed(0)
    state = {"deconv_layers.0.weight": torch.randn(d_in, width, 4, 4, generator=g),
             "deconv_layers.3.weight": torch.randn(width, width, 4, 4, generator=g),
             "final_layer.weight": torch.randn(k, width, 1, 1, generator=g),
             "final_layer.bias": torch.randn(k, generator=g)}
    for i in (1, 4):
        for name in ("weight", "bias", "running_mean", "running_var"):
            state[f"deconv_layers.{i}.{name}"] = torch.rand(width, generator=g) + 0.5
        state[f"deconv_layers.{i}.num_batches_tracked"] = torch.tensor(7)
    return state


def test_vitpose_layout_loads_and_duplicates_final_layer():
    state = official_head_state(32, 3, width=16)
    decoder = DeconvDecoder(32, 6, num_deconv_layers=2, deconv_channels=16)
    used = decoder.load_official(state)
    assert len(used) == 14
    assert torch.equal(decoder.final_layer.weight[:3], state["final_layer.weight"])
    assert torch.equal(decoder.final_layer.weight[3:], state["final_layer.weight"])
    assert torch.equal(decoder.deconv_layers[4].running_var, state["deconv_layers.4.running_var"])
    bad = dict(state, **{"final_layer.weight": torch.zeros(4, 16, 1, 1)})
    with pytest.raises(ValueError, match="final_layer.weight"):
        decoder.load_official(bad)
    with pytest.raises(KeyError, match="extra"):
        decoder.load_official(dict(state, extra=torch.zeros(1)))


def test_deconv_head_shapes_and_loss():
    head = HEADS.build({"name": "deconv", "deconv_channels": 8}, in_channels=16, in_stride=16, num_joints=5,
                       heatmap_stride=4, num_frames=1, key_index=0)
    assert isinstance(head, DeconvHead)
    out = head(torch.randn(2, 16, 8, 6))
    assert out["heatmaps"].shape == (2, 5, 32, 24)
    target = torch.zeros(2, 5, 32, 24)
    weight = torch.ones(2, 5)
    weight[0, 0] = 0
    losses = head.loss(out, {"heatmap": target, "weight": weight})
    # mean over (B, K, h, w) of w * pred^2, with joint (0, 0) weighted out
    expected = (out["heatmaps"].pow(2).mean(dim=(-2, -1)) * weight).mean()
    assert torch.allclose(losses["loss"], expected)
    hr = HEADS.build({"name": "deconv"}, in_channels=8, in_stride=4, num_joints=3, heatmap_stride=4)
    assert len(hr.decoder.deconv_layers) == 0 and hr(torch.randn(1, 8, 4, 3))["heatmaps"].shape == (1, 3, 4, 3)
