"""VREMD experiments end to end: real PoseTrack18 files, ablation overrides, synthetic learning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose.engine import builders, train
from vidpose.engine.checkpoint import find_latest, load_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# a one-block, 32-wide ViT instead of ViT-L: the real-data test checks formats, not accuracy
TINY_BACKBONE = ("backbone=vit_tiny", "backbone.embed_dim=32", "backbone.depth=1",
                 "backbone.num_heads=2")


def compose_exp(name: str, *overrides: str):
    """The experiment's resolved config with command-line style overrides."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=[f"+exp={name}", *overrides])


def test_vremd_pt18_trains_one_step_and_evaluates_on_real_posetrack18(posetrack18_mini, tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "posetrack18").symlink_to(posetrack18_mini, target_is_directory=True)
    cfg = compose_exp(
        "vremd_pt18", *TINY_BACKBONE,
        f"paths.data_root={data_root}", f"paths.output_dir={tmp_path / 'run'}",
        "data.train.split=val",  # the sample has only validation files
        "head.deconv_channels=16", "head.keypoint_head_hidden=32",
        "trainer.batch_size=2", "trainer.val_batch_size=8", "trainer.num_workers=0",
        "trainer.max_steps=1", "trainer.tensorboard=false", "schedule.warmup_iters=1",
        "allow_random_frozen_backbone=true",  # formats, not accuracy
    )
    assert cfg.head.name == "vremd" and cfg.head.freeze_backbone and cfg.codec.convention == "udp"
    metrics = train(cfg)
    # three labeled 1920x1080 frames, scored by the poseval protocol
    assert metrics["n_frames_evaluated"] == 3
    assert 0.0 <= metrics["mAP"] <= 100.0
    state = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 1 and state["config"]["head"]["name"] == "vremd"
    # the frozen backbone was not updated: its weights are the seeded initialisation
    torch.manual_seed(int(cfg.seed))
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    fresh = builders.build_model(cfg, layout, geometry)
    backbone_keys = [k for k in state["model"] if k.startswith("backbone.")]
    assert backbone_keys and all(
        torch.equal(state["model"][k], fresh.state_dict()[k]) for k in backbone_keys
    )


# The ablation command lines of docs/methods/vremd.md, as overrides of vremd_pt18.
ABLATIONS = {
    "without HKME": ("head.hkme=false",),
    "without BMD": ("head.bmd=false",),
    "human mask only": ("head.masks=human",),
    "keypoint mask only": ("head.masks=keypoint",),
    "no masks": ("head.masks=none",),
    "DC": ("head.motion_attention=dc",),
    "DA": ("head.motion_attention=da",),
    "DCA without bidirectional": ("head.bidirectional=false",),
    "DC without bidirectional": ("head.motion_attention=dc", "head.bidirectional=false"),
    "DA without bidirectional": ("head.motion_attention=da", "head.bidirectional=false"),
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_documented_ablation_overrides_build_the_vit_l_model(name):
    cfg = compose_exp("vremd_pt18", *ABLATIONS[name])
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    with torch.device("meta"):
        model = builders.build_model(cfg, layout, geometry)
    head = model.head
    assert model.backbone.out_channels == 1024 and head.freeze_backbone
    assert (head.hkme is None) == ("head.hkme=false" in ABLATIONS[name])
    assert (head.bmd is None) == ("head.bmd=false" in ABLATIONS[name])
    docs = (CONFIGS.parent / "docs" / "methods" / "vremd.md").read_text()
    assert " ".join(ABLATIONS[name]) in docs, f"{name} is not documented with this command line"


@pytest.mark.slow
def test_synthetic_twin_learns(tmp_path):
    # tiny preset, batch 4 for more optimizer steps, the backbone frozen as in the paper: ~40
    # CPU-seconds, ~12 mAP (the single-frame baseline, backbone trained: ~3 after 8 epochs)
    cache = os.environ.get("VIDPOSE_CACHE", str(tmp_path / "cache"))
    cfg = compose_exp(
        "vremd_synthetic",
        f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_root={cache}",
        "data.dataset.preset=tiny", "trainer.validate_at_start=true", "trainer.num_workers=0",
        "trainer.tensorboard=false", "trainer.batch_size=4", "trainer.val_batch_size=32",
        "schedule.epochs=8", "schedule.milestones=[7]", "schedule.warmup_iters=10",
        "trainer.val_every=8", "codec.flip_test=false",
    )
    metrics = train(cfg)
    # the untrained head scores ~0.1 mAP
    assert metrics["mAP"] > metrics["initial/mAP"] + 5.0, metrics


def test_a_frozen_backbone_without_weights_is_refused_with_the_options_named(posetrack18_mini, tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "posetrack18").symlink_to(posetrack18_mini, target_is_directory=True)
    cfg = compose_exp(
        "vremd_pt18", *TINY_BACKBONE,
        f"paths.data_root={data_root}", f"paths.output_dir={tmp_path / 'run'}",
        "data.train.split=val", "head.deconv_channels=16", "head.keypoint_head_hidden=32",
        "trainer.batch_size=2", "trainer.num_workers=0", "trainer.max_steps=1",
        "trainer.tensorboard=false",
    )
    with pytest.raises(ValueError, match="init_from=.*backbone.checkpoint=.*allow_random_frozen_backbone=true"):
        train(cfg)
    assert not list((tmp_path / "run").rglob("*.pt"))  # nothing trained, nothing written
