"""JM-Pose experiments: stated values compose, the PT18 recipe runs on real samples, the twin learns."""

from __future__ import annotations

import math

import pytest

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint


def test_real_experiments_carry_the_stated_values(compose_exp):
    for dataset, name in (("17", "posetrack17"), ("18", "posetrack18"), ("21", "posetrack21")):
        cfg = compose_exp(f"jmpose_pt{dataset}")
        assert cfg.exp_name == f"jmpose_pt{dataset}" and cfg.data.dataset.name == name
        assert list(cfg.data.input_size) == [384, 288] and list(cfg.data.clip.offsets) == [-2, -1, 0, 1, 2]
        assert cfg.backbone.name == "hrnet_w48" and cfg.backbone.with_heatmap_layer
        assert cfg.flow.name == "raft_large" and cfg.flow.num_flow_updates == 20 and cfg.flow.checkpoint is None
        assert cfg.head.name == "jmpose" and cfg.head.freeze_backbone and cfg.head.num_blocks == 4
        assert cfg.head.io_weight == 1.0 and cfg.head.io_temperature == 0.05
        assert cfg.codec.convention == "msra" and cfg.codec.refine == "quarter" and cfg.target.sigma == 3.0
        assert cfg.optim.name == "adamw" and cfg.optim.lr == 1.0e-4
        assert cfg.schedule.epochs == 20 and list(cfg.schedule.milestones) == [5, 10, 15]
        assert cfg.schedule.gamma == 0.1
    synthetic = compose_exp("jmpose_synthetic")
    assert synthetic.backbone.name == "hrnet_tiny" and synthetic.backbone.with_heatmap_layer
    assert synthetic.flow.name == "opencv_dis" and list(synthetic.data.clip.offsets) == [-1, 0, 1]
    assert list(synthetic.data.input_size) == [128, 96] and synthetic.head.freeze_backbone is False


def test_pt18_recipe_trains_one_step_and_evaluates_on_real_posetrack18_samples(
    compose_exp, posetrack18_mini, tmp_path
):
    # the real reader, real frames and the real exp (frozen HRNet + frozen RAFT-large at 384x288);
    # a tiny HRNet, random RAFT weights and 2 flow updates only to stay fast on CPU
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "posetrack18").symlink_to(posetrack18_mini)
    cfg = compose_exp(
        "jmpose_pt18",
        f"paths.data_root={data_root}",
        "data.train.split=val",
        "backbone=hrnet_tiny",
        "flow.random_init=true",
        "flow.num_flow_updates=2",
        "trainer.batch_size=2",
        "trainer.val_batch_size=2",
        "trainer.val_max_instances=2",
        "trainer.max_steps=1",
        "schedule.epochs=1",
    )
    assert cfg.backbone.with_heatmap_layer and cfg.codec.flip_test
    metrics = train(cfg)
    assert math.isfinite(metrics["mAP"]) and 0.0 <= metrics["mAP"] <= 100.0
    state = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 1 and state["config"]["exp_name"] == "jmpose_pt18"
    assert "head.projection_weight" in state["model"] and any(k.startswith("head.blocks.3.") for k in state["model"])


@pytest.mark.slow
def test_synthetic_experiment_learns(compose_exp):
    # 64x64 crops and 4 short epochs keep the trained HRNet + head within the CI budget
    cfg = compose_exp(
        "jmpose_synthetic",
        "data.dataset.preset=tiny",
        "data.input_size=[64,64]",
        "trainer.validate_at_start=true",
        "trainer.batch_size=8",
        "trainer.val_batch_size=32",
        "schedule.epochs=4",
        "schedule.warmup_iters=10",
        "schedule.milestones=[3]",
        "trainer.val_every=4",
        "codec.flip_test=false",
    )
    metrics = train(cfg)
    assert metrics["mAP"] > metrics["initial/mAP"] + 10.0, metrics
