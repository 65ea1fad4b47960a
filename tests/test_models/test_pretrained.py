"""Pretrained loading against fake official checkpoints built from the spec's key grammar."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidpose.models.backbones.hrnet import hrnet_tiny
from vidpose.models.backbones.pretrained import (
    CheckpointError,
    compare_keys,
    convert_state_dict,
    detect_layout,
    extract_head_state,
    infer_grid,
    load_trunk_state,
    read_checkpoint,
)
from vidpose.models.backbones.vit import vit_tiny


def _load_sibling(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake = _load_sibling("fake_checkpoints", Path(__file__).with_name("fake_checkpoints.py"))
convert_tool = _load_sibling(
    "convert_checkpoint_tool",
    Path(__file__).resolve().parents[2] / "tools" / "convert_checkpoint.py",
)

DIM, DEPTH, HEADS = 64, 2, 4
LOGGER = "vidpose.models.backbones.pretrained"


def _tiny_vit(input_hw=(256, 192), num_heads=HEADS, checkpoint=None, **kw):
    return vit_tiny(
        input_hw=input_hw,
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=num_heads,
        checkpoint=checkpoint,
        **kw,
    )


def _save(obj, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _official_to_timm(key: str) -> str:
    """Spec section 3 renaming table, written out independently of the loader."""
    key = key.removeprefix("backbone.")
    return key.replace("last_norm.", "norm.")


# ---------------------------------------------------------------------------------------------
# reading


def test_read_checkpoint_unwraps_and_strips_module(tmp_path):
    sd = {"a.weight": torch.ones(2), "b": torch.zeros(1)}
    for obj in (
        sd,
        {"state_dict": sd, "meta": {"epoch": 210}},
        {"model": sd},
        fake.prefixed(sd, "module."),
    ):
        got = read_checkpoint(_save(obj, tmp_path, "x.pth"))
        assert sorted(got) == ["a.weight", "b"]
        assert torch.equal(got["a.weight"], sd["a.weight"])


def _mmcv_era_meta():
    # what mmcv-era releases store next to the weights (ViTPose, mmpose HRNet files)
    return {
        "hook_msgs": {"best_score": np.float64(0.756), "best_ckpt": "epoch_210.pth"},
        "epoch": np.int64(210),
        "dataset": np.arange(4),
        "dtype": np.dtype("float32"),
    }


def test_numpy_meta_loads_by_default(tmp_path):
    sd = {"w": torch.arange(3.0)}
    path = _save({"state_dict": sd, "meta": _mmcv_era_meta()}, tmp_path, "np.pth")
    assert torch.equal(read_checkpoint(path)["w"], sd["w"])


def test_numpy_meta_in_legacy_format(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(
        {"state_dict": {"w": torch.ones(2)}, "meta": _mmcv_era_meta()},
        path,
        _use_new_zipfile_serialization=False,
    )
    assert torch.equal(read_checkpoint(path)["w"], torch.ones(2))


def test_numpy_meta_loads_through_every_path(tmp_path):
    # backbone.checkpoint and init_from (an official file) both read it
    from vidpose.engine.initialise import initialise_weights
    from vidpose.models.pose_model import PoseModel
    from vidpose.registry import BACKBONES, HEADS

    state = fake.fake_pose_hrnet((4, 8, 16, 32), num_joints=3, seed=1)
    path = _save({"state_dict": state, "meta": _mmcv_era_meta()}, tmp_path, "hrnet.pth")
    backbone = BACKBONES.build({"name": "hrnet_tiny", "widths": [4, 8, 16, 32], "with_heatmap_layer": True,
                                "checkpoint": str(path)}, input_hw=(64, 64), num_joints=3)
    torch.testing.assert_close(backbone.heatmap_layer.weight, state["final_layer.weight"])
    head = HEADS.build({"name": "deconv"}, in_channels=backbone.out_channels, in_stride=backbone.stride,
                       num_joints=3, heatmap_stride=4)
    assert "backbone from" in initialise_weights(PoseModel(backbone, head), path)


def test_arbitrary_objects_are_refused_next_to_numpy_meta(tmp_path):
    path = _save(
        {"state_dict": {"w": torch.ones(1)}, "meta": _mmcv_era_meta(), "cfg": argparse.Namespace(lr=0.1)},
        tmp_path, "obj.pth",
    )
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace.*re-save") as info:
        read_checkpoint(path)
    assert "numpy" not in str(info.value).split("refuses:")[1].split(".")[0]  # only the offender is named


def test_read_errors_name_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="not tensors: meta"):
        read_checkpoint(_save({"w": torch.ones(1), "meta": {"epoch": 1}}, tmp_path, "mixed.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot be read by"):
        read_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        detect_layout({"foo.weight": torch.ones(1)})


def test_infer_grid():
    assert infer_grid(192) == (16, 12)  # 256x192 / 16
    assert infer_grid(432) == (24, 18)  # 384x288 / 16
    assert infer_grid(196) == (14, 14)  # MAE 224x224
    assert infer_grid(193) is None


# ---------------------------------------------------------------------------------------------
# ViTPose


@pytest.fixture()
def vitpose_state():
    return fake.fake_vitpose_official(DIM, DEPTH, cls_token=True, associate_heads=True)


@pytest.mark.parametrize("module_prefix", [False, True])
def test_vitpose_official_fills_every_key(tmp_path, vitpose_state, caplog, module_prefix):
    sd = fake.prefixed(vitpose_state, "module.") if module_prefix else vitpose_state
    path = _save({"state_dict": sd, "meta": {"epoch": 210}}, tmp_path, "vitpose.pth")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = _tiny_vit(checkpoint=str(path))
    got = model.vit.state_dict()
    assert len(got) == 5 + 12 * DEPTH  # spec 2.1 entry count
    for key, value in vitpose_state.items():
        if key.startswith("backbone.") and key not in ("backbone.pos_embed", "backbone.cls_token"):
            assert torch.equal(got[_official_to_timm(key)], value), key
    pe = vitpose_state["backbone.pos_embed"]
    assert torch.equal(got["pos_embed"], pe[:, 1:] + pe[:, :1])
    assert model.vit.patch_embed.proj.padding == (2, 2)
    assert "backbone.cls_token" in caplog.text and "associate_heads.0.x" in caplog.text


def test_vitpose_report_counts(tmp_path, vitpose_state):
    path = _save({"state_dict": vitpose_state}, tmp_path, "v.pth")
    report = _tiny_vit().load_pretrained(path)
    assert report.ok and report.layout == "vitpose_official"
    assert len(report.loaded) == 29 and not report.missing
    assert sorted(report.dropped) == ["associate_heads.0.x", "backbone.cls_token"]
    assert len(report.head) == 14


def _reference_vitpose(sd: dict, x: torch.Tensor, dim: int, depth: int, heads: int) -> torch.Tensor:
    """ViTPose's forward written from the spec (sections 2-3), straight from the official keys."""
    p = "backbone."
    t = F.conv2d(
        x, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=16, padding=2
    )
    n, _, hp, wp = t.shape
    t = t.flatten(2).transpose(1, 2)
    pe = sd[p + "pos_embed"]
    t = t + pe[:, 1:] + pe[:, :1]
    hd = dim // heads
    for i in range(depth):
        b = f"{p}blocks.{i}."
        h = F.layer_norm(t, (dim,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps=1e-6)
        qkv = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).reshape(
            n, -1, 3, heads, hd
        )
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(-1)
        o = (attn @ v).transpose(1, 2).reshape(n, -1, dim)
        t = t + F.linear(o, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.layer_norm(t, (dim,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps=1e-6)
        t = t + F.linear(
            F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
            sd[b + "mlp.fc2.weight"],
            sd[b + "mlp.fc2.bias"],
        )
    t = F.layer_norm(t, (dim,), sd[p + "last_norm.weight"], sd[p + "last_norm.bias"], eps=1e-6)
    return t.transpose(1, 2).reshape(n, dim, hp, wp)


def test_vitpose_forward_matches_reference(tmp_path, vitpose_state):
    # unit-scale LayerNorms and larger attention weights: sharp attention that weighs on the output
    sd = {
        k: (v * 10 if k.endswith(("qkv.weight", "proj.weight")) else v)
        for k, v in vitpose_state.items()
    }
    for key in sd:
        if (
            key.endswith("norm1.weight")
            or key.endswith("norm2.weight")
            or key.endswith("last_norm.weight")
        ):
            sd[key] = sd[key] + 1.0
    path = _save(sd, tmp_path, "v.pth")
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    expected = _reference_vitpose(sd, x, DIM, DEPTH, HEADS)
    model = _tiny_vit(checkpoint=path).eval()
    with torch.no_grad():
        got = model(x)
        wrong_heads = _tiny_vit(num_heads=2, checkpoint=path).eval()(x)
    assert got.shape == (2, DIM, 16, 12)
    torch.testing.assert_close(
        got, expected, atol=2e-4, rtol=1e-4
    )  # features are O(1); measured 3e-5
    # the weights cannot reveal the head count: a 2-head model loads and computes something else
    assert (wrong_heads - expected).abs().max() > 1.0


def test_vitpose_pos_embed_resampled_to_smaller_grid(tmp_path, vitpose_state):
    path = _save({"state_dict": vitpose_state}, tmp_path, "v.pth")
    model = _tiny_vit(input_hw=(128, 96))
    report = model.load_pretrained(path)
    pe = vitpose_state["backbone.pos_embed"]
    folded = (pe[:, 1:] + pe[:, :1]).reshape(1, 16, 12, DIM).permute(0, 3, 1, 2)
    expected = F.interpolate(
        folded, size=(8, 6), mode="bicubic", align_corners=False, antialias=True
    )
    expected = expected.permute(0, 2, 3, 1).reshape(1, 48, DIM)
    torch.testing.assert_close(model.vit.pos_embed.data, expected)
    assert any("16x12 to a 8x6" in note for note in report.notes)
    assert model(torch.zeros(1, 3, 128, 96)).shape == (1, DIM, 8, 6)


def test_constant_pos_embed_stays_constant_when_resampled(tmp_path, vitpose_state):
    # bicubic interpolation weights sum to one, so a constant embedding must stay that constant
    sd = dict(vitpose_state)
    sd["backbone.pos_embed"] = torch.zeros(1, 193, DIM)
    sd["backbone.pos_embed"][:, 0] = 0.25  # slot 0 alone: folding gives 0.25 everywhere
    model = _tiny_vit(input_hw=(128, 96), checkpoint=_save(sd, tmp_path, "c.pth"))
    torch.testing.assert_close(model.vit.pos_embed.data, torch.full((1, 48, DIM), 0.25))


def test_unknown_backbone_key_rejected(tmp_path, vitpose_state):
    for extra in ("backbone.blocks.0.gamma_1", "backbone.fpn.weight", "neck.weight"):
        sd = dict(vitpose_state, **{extra: torch.ones(DIM)})
        with pytest.raises(CheckpointError, match=extra.replace(".", r"\.")):
            _tiny_vit(checkpoint=_save(sd, tmp_path, "u.pth"))


def test_missing_and_mismatched_keys_fail_loudly(tmp_path, vitpose_state):
    sd = dict(vitpose_state)
    del sd["backbone.blocks.1.mlp.fc2.bias"]
    with pytest.raises(
        CheckpointError, match=r"missing in the checkpoint: blocks\.1\.mlp\.fc2\.bias"
    ):
        _tiny_vit(checkpoint=_save(sd, tmp_path, "m.pth"))
    narrow = fake.fake_vitpose_official(32, DEPTH)
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatches: .*patch_embed\.proj\.weight model \(64, 3, 16, 16\)",
    ):
        _tiny_vit(checkpoint=_save(narrow, tmp_path, "n.pth"))
    deeper = fake.fake_vitpose_official(DIM, DEPTH + 1)
    with pytest.raises(CheckpointError, match=r"not in the model: blocks\.2\."):
        _tiny_vit(checkpoint=_save(deeper, tmp_path, "d.pth"))


def test_vitpose_mmpose_layout(tmp_path, vitpose_state):
    sd = {
        fake.vitpose_mmpose_rename(k): v
        for k, v in vitpose_state.items()
        if not k.startswith("associate")
    }
    pe = vitpose_state["backbone.pos_embed"]
    sd["backbone.pos_embed"] = pe[:, 1:] + pe[:, :1]  # mmpose 1.x files have no class slot
    assert "backbone.layers.1.ffn.layers.0.0.weight" in sd and "head.final_layer.bias" in sd
    assert detect_layout(sd) == "vitpose_mmpose"
    model = _tiny_vit(checkpoint=_save({"state_dict": sd, "meta": {}}, tmp_path, "mm.pth"))
    reference = _tiny_vit(checkpoint=_save(vitpose_state, tmp_path, "off.pth"))
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    head = extract_head_state(sd)
    assert torch.equal(
        head["deconv_layers.3.weight"], vitpose_state["keypoint_head.deconv_layers.3.weight"]
    )


def test_mae_layout_folds_and_resamples(tmp_path, vitpose_state):
    sd = {_official_to_timm(k): v for k, v in vitpose_state.items() if k.startswith("backbone.")}
    sd.pop("cls_token")
    sd["pos_embed"] = torch.randn(1, 197, DIM)  # 224x224: class slot + 14x14
    sd["mask_token"] = torch.zeros(1, 1, DIM)
    sd["decoder_embed.weight"] = torch.zeros(8, DIM)
    sd["cls_token"] = torch.zeros(1, 1, DIM)
    model = _tiny_vit()
    report = model.load_pretrained(_save({"model": sd}, tmp_path, "mae.pth"))
    assert report.layout == "mae"
    assert sorted(report.dropped) == ["cls_token", "decoder_embed.weight", "mask_token"]
    pe = sd["pos_embed"]
    grid = (pe[:, 1:] + pe[:, :1]).reshape(1, 14, 14, DIM).permute(0, 3, 1, 2)
    expected = F.interpolate(
        grid, size=(16, 12), mode="bicubic", align_corners=False, antialias=True
    )
    torch.testing.assert_close(
        model.vit.pos_embed.data, expected.permute(0, 2, 3, 1).reshape(1, 192, DIM)
    )


def test_extract_head_state_classic(vitpose_state):
    head = extract_head_state(vitpose_state)
    assert sorted(head) == sorted(
        k.removeprefix("keypoint_head.") for k in fake.classic_head_shapes(DIM)
    )
    assert len(head) == 14
    assert torch.equal(
        head["final_layer.weight"], vitpose_state["keypoint_head.final_layer.weight"]
    )
    assert head["deconv_layers.0.weight"].shape == (DIM, 256, 4, 4)


def test_vit_checkpoint_refused_by_hrnet(tmp_path, vitpose_state):
    with pytest.raises(CheckpointError, match="takes hrnet weights"):
        hrnet_tiny(checkpoint=_save(vitpose_state, tmp_path, "v.pth"))


# ---------------------------------------------------------------------------------------------
# pose HRNet


@pytest.fixture(scope="module")
def hrnet_state():
    return fake.fake_pose_hrnet(fake.HRNET_TINY_WIDTHS)


def _untrimmed_timm_hrnet(widths):
    """Spec section 7 recipe: timm's feature HRNet from a cfg copy, WITHOUT the stage-4 trim."""
    from timm.models.hrnet import HighResolutionNetFeatures, cfg_cls

    cfg = copy.deepcopy(cfg_cls["hrnet_w48"])
    for stage, n in (("stage2", 2), ("stage3", 3), ("stage4", 4)):
        cfg[stage]["num_channels"] = tuple(widths[:n])
    return HighResolutionNetFeatures(cfg, feature_location="", out_indices=(1,))


HRNET_VARIANTS = {
    "bare": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "meta": {"epoch": 210}},
    "module": lambda sd: fake.prefixed(sd, "module."),
    "mmpose0": lambda sd: {"state_dict": fake.hrnet_mmpose(sd, "keypoint_head.")},
    "mmpose1": lambda sd: {"state_dict": fake.hrnet_mmpose(sd, "head.")},
}


@pytest.mark.parametrize("variant", sorted(HRNET_VARIANTS))
def test_pose_hrnet_loads_strictly(tmp_path, hrnet_state, variant):
    path = _save(HRNET_VARIANTS[variant](hrnet_state), tmp_path, f"{variant}.pth")
    model = hrnet_tiny(widths=fake.HRNET_TINY_WIDTHS, with_heatmap_layer=True, num_joints=17)
    report = model.load_pretrained(path)
    assert report.ok and not report.dropped
    got = model.hrnet.state_dict()
    assert len(got) == 1752  # spec section 7 [M]
    for key, value in hrnet_state.items():
        if not key.startswith("final_layer."):
            assert torch.equal(got[key], value), key
    assert torch.equal(model.heatmap_layer.weight, hrnet_state["final_layer.weight"])
    assert torch.equal(model.heatmap_layer.bias, hrnet_state["final_layer.bias"])
    assert len(report.loaded) == 1752 + 2


def test_tiny_trimmed_parameter_count():
    model = hrnet_tiny(widths=fake.HRNET_TINY_WIDTHS)
    assert sum(p.numel() for p in model.parameters()) == 795_560  # spec section 7 [M]


def test_untrimmed_timm_hrnet_is_refused(hrnet_state):
    untrimmed = _untrimmed_timm_hrnet(fake.HRNET_TINY_WIDTHS)
    parts = convert_state_dict(hrnet_state)
    expected = {k: v.shape for k, v in untrimmed.state_dict().items()}
    report = compare_keys(expected, parts.trunk, source="fake", layout=parts.layout)
    assert len(report.missing) == 78  # spec section 6 [M]: stage4.2.fuse_layers.{1,2,3}.*
    assert all(
        k.startswith(
            ("stage4.2.fuse_layers.1.", "stage4.2.fuse_layers.2.", "stage4.2.fuse_layers.3.")
        )
        for k in report.missing
    )
    with pytest.raises(CheckpointError, match=r"(?s)stage4\.2\.fuse_layers\.1.*untrimmed"):
        load_trunk_state(untrimmed, parts)


def test_heatmap_layer_checks(tmp_path, hrnet_state):
    path = _save(hrnet_state, tmp_path, "h.pth")
    with pytest.raises(CheckpointError, match="num_joints"):
        hrnet_tiny(
            widths=fake.HRNET_TINY_WIDTHS,
            with_heatmap_layer=True,
            num_joints=15,
            checkpoint=str(path),
        )
    headless = {k: v for k, v in hrnet_state.items() if not k.startswith("final_layer.")}
    with pytest.raises(CheckpointError, match="final_layer"):
        hrnet_tiny(
            widths=fake.HRNET_TINY_WIDTHS,
            with_heatmap_layer=True,
            num_joints=17,
            checkpoint=_save(headless, tmp_path, "headless.pth"),
        )
    plain = hrnet_tiny(widths=fake.HRNET_TINY_WIDTHS)
    report = plain.load_pretrained(path)
    assert report.head == ["final_layer.bias", "final_layer.weight"]
    assert plain.heatmap_layer is None


def test_heatmaps_apply_the_checkpoint_final_layer(tmp_path, hrnet_state):
    model = hrnet_tiny(
        widths=fake.HRNET_TINY_WIDTHS,
        with_heatmap_layer=True,
        num_joints=17,
        checkpoint=_save(hrnet_state, tmp_path, "h.pth"),
    ).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 128, 96))
        heatmaps = model.heatmaps(features)
    expected = F.conv2d(
        features, hrnet_state["final_layer.weight"], hrnet_state["final_layer.bias"]
    )
    assert heatmaps.shape == (1, 17, 32, 24)
    torch.testing.assert_close(heatmaps, expected)


@pytest.mark.parametrize("variant", ["bare", "mmpose0", "mmpose1"])
def test_extract_head_state_hrnet(hrnet_state, variant):
    obj = HRNET_VARIANTS[variant](hrnet_state)
    head = extract_head_state(obj.get("state_dict", obj))
    assert sorted(head) == ["final_layer.bias", "final_layer.weight"]
    assert head["final_layer.weight"].shape == (17, 4, 1, 1)


def test_hrnet_unknown_key_rejected(tmp_path, hrnet_state):
    sd = dict(hrnet_state, **{"incre_modules.0.0.conv1.weight": torch.ones(1)})
    with pytest.raises(CheckpointError, match=r"incre_modules\.0\.0\.conv1\.weight"):
        hrnet_tiny(widths=fake.HRNET_TINY_WIDTHS, checkpoint=_save(sd, tmp_path, "x.pth"))


def test_official_w48_key_set_equals_trimmed_timm_plus_final_layer():
    from vidpose.models.backbones.hrnet import hrnet_w48

    official = fake.pose_hrnet_shapes(fake.HRNET_W48_WIDTHS, num_joints=17)
    assert len(official) == 1754  # spec section 5 [M]
    with torch.device("meta"):
        model = hrnet_w48()
    timm_shapes = {k: tuple(v.shape) for k, v in model.hrnet.state_dict().items()}
    timm_shapes.update({"final_layer.weight": (17, 48, 1, 1), "final_layer.bias": (17,)})
    assert timm_shapes == official


# ---------------------------------------------------------------------------------------------
# tools/convert_checkpoint.py


def test_convert_tool_vitpose_roundtrip(tmp_path, capsys):
    sd = fake.fake_vitpose_official(192, 6, cls_token=True)  # vit_tiny's default size
    src = _save({"state_dict": sd, "meta": {"epoch": 210}}, tmp_path, "vitpose.pth")
    out = tmp_path / "converted.pth"
    assert convert_tool.main([str(src), str(out), "--layout", "vitpose", "--arch", "vit_tiny"]) == 0
    printed = capsys.readouterr().out
    assert "dropped known extras: backbone.cls_token" in printed
    converted = torch.load(out, weights_only=True)
    assert converted["meta"]["source_layout"] == "vitpose_official"
    assert sum(k.startswith("backbone.vit.") for k in converted["state_dict"]) == 5 + 12 * 6
    assert sum(k.startswith("head.") for k in converted["state_dict"]) == 14
    direct = vit_tiny(input_hw=(256, 192), checkpoint=str(src))
    via_tool = vit_tiny(input_hw=(256, 192), checkpoint=str(out))
    for key, value in direct.state_dict().items():
        assert torch.equal(via_tool.state_dict()[key], value), key
    assert torch.equal(
        extract_head_state(converted["state_dict"])["final_layer.weight"],
        sd["keypoint_head.final_layer.weight"],
    )


def test_convert_tool_resamples_for_input_hw(tmp_path):
    sd = fake.fake_vitpose_official(192, 6)
    src = _save(sd, tmp_path, "v.pth")
    out = tmp_path / "small.pth"
    assert (
        convert_tool.main([str(src), str(out), "--arch", "vit_tiny", "--input-hw", "128", "96"])
        == 0
    )
    assert torch.load(out, weights_only=True)["state_dict"]["backbone.vit.pos_embed"].shape == (
        1,
        48,
        192,
    )


def test_convert_tool_hrnet_and_errors(tmp_path, hrnet_state, capsys):
    src = _save({"state_dict": fake.hrnet_mmpose(hrnet_state, "head.")}, tmp_path, "mm.pth")
    out = tmp_path / "h.pth"
    assert convert_tool.main([str(src), str(out), "--layout", "hrnet"]) == 0
    model = hrnet_tiny(
        widths=fake.HRNET_TINY_WIDTHS, with_heatmap_layer=True, num_joints=17, checkpoint=str(out)
    )
    assert torch.equal(model.heatmap_layer.weight, hrnet_state["final_layer.weight"])
    capsys.readouterr()
    assert convert_tool.main([str(src), str(tmp_path / "bad.pth"), "--layout", "vitpose"]) == 1
    assert "expects vit weights" in capsys.readouterr().err
    # hrnet_tiny's default widths (8, 16, ...) do not match the (4, 8, ...) fake
    assert convert_tool.main([str(src), str(tmp_path / "bad.pth"), "--arch", "hrnet_tiny"]) == 1
    assert "shape mismatches" in capsys.readouterr().err
    assert not (tmp_path / "bad.pth").exists()
