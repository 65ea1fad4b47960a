"""CDPose end to end: experiment values, ablation overrides, real PoseTrack18 files, synthetic learning."""

from __future__ import annotations

import math

import pytest
import torch

from vidpose.engine import builders, train
from vidpose.engine.checkpoint import find_latest, load_checkpoint

# a one-block, 32-wide ViT instead of ViT-B: the real-data test checks formats, not accuracy
TINY_BACKBONE = ("backbone=vit_tiny", "backbone.embed_dim=32", "backbone.depth=1", "backbone.num_heads=2")

# The ablation command lines of docs/methods/continuity.md (Tables 5-6), as overrides of continuity_pt18.
ABLATIONS = {
    "without semantic space": ("head.semantic_space=false", "head.contrastive_weight=0", "head.spatial_weight=0",
                               "data.second_view.enabled=false"),
    "without TPDI": ("head.tpdi_weight=0",),
    "without fusion": ("head.fusion=false", "head.fused_heatmap_weight=0"),
    "L_c only": ("head.spatial_weight=0", "data.second_view.enabled=false"),
    "L_s only": ("head.contrastive_weight=0",),
    "without S": ("head.transform=false",),
    "Eq. 2 as printed": ("head.contrastive_form=literal",),
}


def test_experiments_carry_the_paper_values(compose_exp):
    cfg = compose_exp("continuity_pt18")
    assert cfg.head.name == "continuity" and cfg.backbone.name == "vit_b" and not cfg.head.freeze_backbone
    assert list(cfg.data.clip.offsets) == [-2, -1, 0, 1, 2] and list(cfg.data.input_size) == [256, 192]
    assert cfg.data.augment.enlarge == 1.25 and cfg.data.second_view.enabled
    assert cfg.optim.name == "adamw" and cfg.optim.lr == 1.0e-3 and cfg.optim.weight_decay == 0.1
    assert cfg.optim.layer_decay == 0.75 and cfg.optim.clip_grad == 1.0 and cfg.backbone.drop_path_rate == 0.3
    assert cfg.schedule.epochs == 100 and list(cfg.schedule.milestones) == [81, 95] and cfg.schedule.warmup_iters == 500
    assert cfg.trainer.batch_size == 64 and cfg.codec.convention == "udp" and cfg.target.sigma == 2.0
    weights = [cfg.head[f"{n}_weight"] for n in ("frames_heatmap", "fused_heatmap", "contrastive", "spatial", "tpdi")]
    assert weights == [1.0, 1.0, 0.01, 0.01, 0.01]
    for dataset in ("17", "18", "21"):
        hrnet = compose_exp(f"continuity_pt{dataset}_hrnet")
        assert hrnet.backbone.name == "hrnet_w48" and hrnet.codec.convention == "msra" and hrnet.target.sigma == 2.0
        assert list(hrnet.data.input_size) == [256, 192] and hrnet.optim.layer_decay is None
        assert hrnet.data.dataset.name == f"posetrack{dataset}"
    assert compose_exp("continuity_pt21").data.dataset.name == "posetrack21"
    synthetic = compose_exp("continuity_synthetic")
    assert synthetic.backbone.name == "vit_tiny" and synthetic.data.dataset.name == "synthetic"
    assert list(synthetic.data.clip.offsets) == [-2, -1, 0, 1, 2] and synthetic.data.second_view.enabled


def test_hrnet_experiment_matches_the_paper_parameter_count(compose_exp):
    cfg = compose_exp("continuity_pt18_hrnet")
    with torch.device("meta"):
        model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    count = sum(p.numel() for p in model.parameters())
    # 256x192: 63,594,912 (HRNet-W48) + 531,080 (CDPose modules); the paper states 64.3 M
    assert count == 64_125_992 and abs(count / 64.3e6 - 1) < 0.01


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_overrides_compose_and_build(compose_exp, name):
    cfg = compose_exp("continuity_pt18", *ABLATIONS[name])
    with torch.device("meta"):
        model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    assert model.head.extra_views == (("view2",) if cfg.head.spatial_weight > 0 else ())
    assert bool(cfg.data.second_view.enabled) == (cfg.head.spatial_weight > 0)


def test_one_step_and_one_evaluation_on_real_posetrack18_frames(posetrack18_mini, compose_exp, tmp_path):
    # the mini set has one labeled frame per video (annotations/val only): train on val too; every
    # neighbour is clamped to the key frame
    root = tmp_path / "data"
    root.mkdir()
    (root / "posetrack18").symlink_to(posetrack18_mini, target_is_directory=True)
    cfg = compose_exp(
        "continuity_pt18",
        f"paths.data_root={root}",
        "data.train.split=val",
        *TINY_BACKBONE,
        "trainer.batch_size=2",
        "trainer.val_batch_size=8",
        "trainer.max_steps=1",
        "schedule.epochs=1",
        "schedule.warmup_iters=1",
        "trainer.log_every=1",
    )
    metrics = train(cfg)
    assert metrics["n_frames_evaluated"] == 3  # the three labeled frames
    assert math.isfinite(metrics["mAP"]) and 0.0 <= metrics["mAP"] <= 100.0
    state = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 1 and state["config"]["exp_name"] == "continuity_pt18"
    assert any(k.startswith("head.heatmap_fusion.") for k in state["model"])


@pytest.mark.slow
def test_synthetic_experiment_learns(compose_exp):
    # Every heatmap passes through the 128-d embedding Z, so CDPose learns from scratch more slowly
    # than the single-frame baseline: 90 steps on the tiny preset reach 8.1 mAP from 0.03 untrained
    # (about 60 s on one thread). A 3-block backbone halves the CPU time of the full tiny ViT.
    cfg = compose_exp(
        "continuity_synthetic",
        "data.dataset.preset=tiny",
        "backbone.depth=3",
        "trainer.validate_at_start=true",
        "trainer.batch_size=8",
        "trainer.val_batch_size=32",
        "schedule.epochs=6",
        "schedule.warmup_iters=10",
        "schedule.milestones=[5]",
        "trainer.val_every=6",
        "codec.flip_test=false",
    )
    metrics = train(cfg)
    assert metrics["mAP"] > metrics["initial/mAP"] + 5.0, metrics
