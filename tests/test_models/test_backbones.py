"""Backbone contract: shapes, channels/stride, parameter counts, LR-decay ids, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidpose.models.backbones.base import Backbone
from vidpose.registry import BACKBONES


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_keys():
    assert {
        "vit_tiny",
        "vit_s",
        "vit_b",
        "vit_l",
        "vit_h",
        "hrnet_w32",
        "hrnet_w48",
        "hrnet_tiny",
    } <= set(BACKBONES.names())


def test_vit_b_meta_forward_and_parameter_count():
    with torch.device("meta"):
        model = BACKBONES.build({"name": "vit_b"}, input_hw=(256, 192), num_joints=17)
        out = model(torch.empty(2, 3, 256, 192))
    assert isinstance(model, Backbone)
    assert (model.out_channels, model.stride, model.num_layers) == (768, 16, 12)
    assert out.shape == (2, 768, 16, 12)
    assert _count(model) == 85_794_048  # spec: 85.79 M
    assert len(model.vit.state_dict()) == 149  # spec section 3 [M]
    assert model.vit.pos_embed.shape == (1, 192, 768)


@pytest.mark.parametrize(
    "name, dim, depth, heads, params",
    [
        ("vit_s", 384, 12, 12, 21_663_360),  # spec: 21.66 M, 12 heads (not timm's 6)
        ("vit_l", 1024, 24, 16, 303_295_488),  # 303.30 M
        ("vit_h", 1280, 32, 16, 630_910_720),  # 630.91 M, patch 16 (not timm's 14)
    ],
)
def test_vit_variants_on_meta(name, dim, depth, heads, params):
    with torch.device("meta"):
        model = BACKBONES.build({"name": name}, input_hw=(256, 192))
    assert (model.out_channels, model.num_layers) == (dim, depth)
    assert model.vit.blocks[0].attn.num_heads == heads
    assert model.vit.patch_embed.proj.kernel_size == (16, 16)
    assert model.vit.patch_embed.proj.padding == (2, 2)
    assert _count(model) == params


def test_vit_drop_path_is_linear_over_depth():
    with torch.device("meta"):
        model = BACKBONES.build({"name": "vit_b"}, input_hw=(256, 192))  # COCO default 0.3
        custom = BACKBONES.build({"name": "vit_b", "drop_path_rate": 0.1}, input_hw=(256, 192))
    assert isinstance(model.vit.blocks[0].drop_path1, nn.Identity)  # rate 0 for the first block
    assert model.vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.3)
    assert model.vit.blocks[6].drop_path1.drop_prob == pytest.approx(0.3 * 6 / 11)
    assert custom.vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)


def test_vit_tiny_real_forward():
    model = BACKBONES.build({"name": "vit_tiny"}, input_hw=[128, 96])
    out = model(torch.randn(2, 3, 128, 96))
    assert out.shape == (2, 192, 8, 6) and torch.isfinite(out).all()
    assert model.grid == (8, 6)


def test_vit_token_layout_is_row_major():
    # depth 0, zero position embedding, identity final norm: each output cell is its own patch's
    # embedding, so a bright square inside patch (row 2, column 4) lights up exactly that cell
    model = BACKBONES.build({"name": "vit_tiny", "depth": 0, "embed_dim": 48}, input_hw=(128, 96))
    with torch.no_grad():
        model.vit.pos_embed.zero_()
        model.vit.patch_embed.proj.bias.zero_()
        model.vit.norm.weight.fill_(1.0)
        model.vit.norm.bias.zero_()
    x = torch.zeros(1, 3, 128, 96)
    # padded patch (r, c) reads input rows 16r-2 .. 16r+13, so rows 34..42 belong to r = 2 only
    x[:, :, 34:42, 66:74] = 1.0
    out = model(x)[0].abs().sum(0)
    assert out.nonzero().tolist() == [[2, 4]]


def test_vit_input_checks():
    with pytest.raises(ValueError, match="multiples of 16"):
        BACKBONES.build({"name": "vit_tiny"}, input_hw=(120, 96))
    model = BACKBONES.build({"name": "vit_tiny", "depth": 1}, input_hw=(128, 96))
    with pytest.raises(ValueError, match=r"built for input \(N, 3, 128, 96\)"):
        model(torch.zeros(1, 3, 256, 192))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        BACKBONES.build({"name": "vit_tiny", "embed_dim": 64, "num_heads": 3}, input_hw=(128, 96))


def test_vit_layer_ids_and_no_weight_decay():
    model = BACKBONES.build(
        {"name": "vit_tiny", "depth": 2, "embed_dim": 32, "num_heads": 2}, input_hw=(64, 48)
    )
    assert model.num_layers == 2
    assert model.layer_id("vit.pos_embed") == 0
    assert model.layer_id("vit.patch_embed.proj.weight") == 0
    assert model.layer_id("vit.blocks.0.attn.qkv.weight") == 1
    assert model.layer_id("vit.blocks.1.mlp.fc2.bias") == 2
    assert model.layer_id("vit.norm.weight") == 3  # depth + 1
    with pytest.raises(KeyError, match="not a parameter"):
        model.layer_id("backbone.vit.norm.weight")
    no_decay = model.no_weight_decay()
    # patch bias + 8 one-dim tensors per block + final norm (2) + pos_embed = 4 + 8 * depth
    assert len(no_decay) == 4 + 8 * 2
    assert {"vit.pos_embed", "vit.norm.weight", "vit.blocks.1.attn.qkv.bias"} <= no_decay
    assert (
        "vit.blocks.0.attn.qkv.weight" not in no_decay
        and "vit.patch_embed.proj.weight" not in no_decay
    )


def test_hrnet_meta_parameter_counts():
    with torch.device("meta"):
        w48 = BACKBONES.build({"name": "hrnet_w48"})
        w32 = BACKBONES.build({"name": "hrnet_w32", "with_heatmap_layer": True}, num_joints=17)
        out = w48(torch.empty(1, 3, 256, 192))
    assert _count(w48) == 63_594_912  # spec section 6 [M]
    assert _count(w32) == 28_536_113  # pose HRNet-W32 with its 17-joint final layer: spec 28.54 M
    assert (w48.out_channels, w48.stride, w32.out_channels) == (48, 4, 32)
    assert out.shape == (1, 48, 64, 48)


def test_hrnet_tiny_real_forward_and_heatmaps():
    model = BACKBONES.build(
        {"name": "hrnet_tiny", "with_heatmap_layer": True}, num_joints=5, input_hw=(128, 96)
    )
    features = model(torch.randn(2, 3, 128, 96))
    assert (model.out_channels, model.stride) == (8, 4)
    assert features.shape == (2, 8, 32, 24)
    assert model.heatmaps(features).shape == (2, 5, 32, 24)


def test_hrnet_input_and_option_checks():
    with pytest.raises(ValueError, match="multiples of 32"):
        BACKBONES.build({"name": "hrnet_tiny"}, input_hw=(96, 72))
    model = BACKBONES.build({"name": "hrnet_tiny"})
    with pytest.raises(ValueError, match=r"\(96, 72\) must have both sides multiples of 32"):
        model(torch.zeros(1, 3, 96, 72))
    with pytest.raises(RuntimeError, match="with_heatmap_layer=True"):
        model.heatmaps(torch.zeros(1, 8, 32, 24))
    with pytest.raises(ValueError, match="num_joints"):
        BACKBONES.build({"name": "hrnet_tiny", "with_heatmap_layer": True})


def test_hrnet_single_layer_id_and_no_weight_decay():
    model = BACKBONES.build({"name": "hrnet_tiny", "with_heatmap_layer": True}, num_joints=3)
    names = [n for n, _ in model.named_parameters()]
    assert model.num_layers == 0
    assert {model.layer_id(n) for n in names} == {1}  # rate ** (0 + 1 - 1) = 1: no decay
    no_decay = model.no_weight_decay()
    bn_layers = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(no_decay) == 2 * bn_layers + 1  # BN weight and bias, plus the heatmap bias
    assert "heatmap_layer.bias" in no_decay and "heatmap_layer.weight" not in no_decay
