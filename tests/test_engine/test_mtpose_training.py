"""MTPose end to end: the experiment files, a step on real PoseTrack18 frames, learning on synthetic data."""

from __future__ import annotations

import math

import pytest

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint


def test_experiments_carry_the_paper_values(compose_exp):
    cfg = compose_exp("mtpose_pt18")
    assert cfg.head.name == "mtpose" and cfg.target.name == "motion_aware" and cfg.flow.name == "raft_large"
    assert list(cfg.data.clip.offsets) == [-1, 0, 1] and cfg.data.clip.interval == 2  # frames t-2, t, t+2
    assert list(cfg.data.input_size) == [256, 192] and cfg.data.augment.enlarge == 1.25
    assert (cfg.target.sigma0, cfg.target.delta, cfg.target.variant) == (3.0, 3.0, "motion_aware")
    assert list(cfg.head.dilations) == [3, 6, 9, 12, 15] and cfg.head.original_loss_weight == 0.75
    assert cfg.optim.name == "adamw" and cfg.optim.lr == 3.0e-4 and cfg.trainer.batch_size == 64
    assert cfg.flow.checkpoint is None and cfg.flow.random_init is False  # the user supplies RAFT weights
    pt21 = compose_exp("mtpose_pt21")
    assert pt21.data.dataset.name == "posetrack21" and pt21.data.clip.interval == 1
    jhmdb = compose_exp("mtpose_jhmdb")
    assert jhmdb.data.dataset.name == "jhmdb" and jhmdb.data.clip.interval == 2
    assert compose_exp("mtpose_pt18_sigma").target.variant == "sigma_only"
    assert compose_exp("mtpose_pt18_original").target.variant == "standard"
    synthetic = compose_exp("mtpose_synthetic")
    assert synthetic.flow.name == "opencv_dis" and synthetic.backbone.name == "vit_tiny"
    assert synthetic.head.num_heads == synthetic.backbone.num_heads


def test_one_step_and_one_evaluation_on_real_posetrack18_frames(posetrack18_mini, compose_exp, tmp_path):
    # the mini set has one labeled frame per video (annotations/val only): train on val too;
    # both neighbours are clamped to the key frame, so the flows and the motion are 0
    root = tmp_path / "data"
    root.mkdir()
    (root / "posetrack18").symlink_to(posetrack18_mini, target_is_directory=True)
    cfg = compose_exp(
        "mtpose_pt18",
        f"paths.data_root={root}",
        "data.train.split=val",
        "backbone=vit_tiny",
        "backbone.embed_dim=32",
        "backbone.depth=1",
        "backbone.num_heads=2",
        "head.num_heads=2",
        "head.deconv_channels=16",
        "flow.random_init=true",
        "flow.num_flow_updates=1",
        "trainer.batch_size=2",
        "trainer.val_batch_size=4",
        "trainer.val_max_instances=4",
        "codec.flip_test=false",
        "trainer.max_steps=1",
        "schedule.epochs=1",
        "schedule.warmup_iters=1",
    )
    metrics = train(cfg)
    assert metrics["n_frames_evaluated"] == 3  # every labeled GT frame is scored, with or without people
    assert math.isfinite(metrics["mAP"]) and 0.0 <= metrics["mAP"] <= 100.0
    state = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 1 and state["config"]["exp_name"] == "mtpose_pt18"
    assert any(k.startswith("head.fusion.branches.4.") for k in state["model"])


@pytest.mark.slow
def test_synthetic_experiment_learns(compose_exp):
    cfg = compose_exp(
        "mtpose_synthetic",
        "data.dataset.preset=tiny",
        "trainer.validate_at_start=true",
        "trainer.batch_size=8",
        "trainer.val_batch_size=32",
        "schedule.epochs=12",
        "schedule.warmup_iters=10",
        "schedule.milestones=[10]",
        "trainer.val_every=12",
        "codec.flip_test=false",
    )
    metrics = train(cfg)
    assert metrics["mAP"] > metrics["initial/mAP"] + 10.0, metrics
