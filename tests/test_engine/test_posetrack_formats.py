"""The PoseTrack17/21 and HRNet experiments of MTPose, JM-Pose and CDPose run on real-format files.

``mtpose_pt18``, ``jmpose_pt18`` and ``continuity_pt18`` run on the real PoseTrack18 sample in each
method's own test; these exps differ from them in the dataset (reader, layout of the root,
evaluation files) or in the backbone family, so the model is shrunk to the cheapest build of that
family that still goes through every stage: one training step and one evaluation.
"""

from __future__ import annotations

import math

import pytest

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint

TINY_VIT = ("backbone=vit_tiny", "backbone.embed_dim=32", "backbone.depth=1", "backbone.num_heads=2")
SMALL_MODEL = {
    "mtpose": (*TINY_VIT, "head.num_heads=2", "head.deconv_channels=16", "flow=opencv_dis"),
    # 128x96 crops: the 96x72 grid's 6912-token attention is the PoseTrack18 test's cost, not this one's
    # random frozen HRNet on purpose: this test checks formats, not accuracy
    "jmpose": ("backbone=hrnet_tiny", "flow=opencv_dis", "data.input_size=[128,96]",
               "allow_random_frozen_backbone=true"),
    "continuity": TINY_VIT,
    # 128x96 crops: HRNet's stem and first stage at full width dominate at 256x192
    "continuity_hrnet": ("backbone=hrnet_tiny", "data.input_size=[128,96]"),
}
EXPERIMENTS = (
    "mtpose_pt21", "jmpose_pt17", "jmpose_pt21", "continuity_pt17", "continuity_pt21",
    "continuity_pt17_hrnet", "continuity_pt18_hrnet", "continuity_pt21_hrnet",
)


@pytest.mark.parametrize("exp", EXPERIMENTS)
def test_one_step_and_one_evaluation_on_the_real_sample_in_the_benchmark_format(
    exp, posetrack_format_root, compose_exp, tmp_path
):
    method, dataset, *variant = exp.split("_")
    cfg = compose_exp(
        exp,
        f"paths.data_root={posetrack_format_root}",
        "data.train.split=val",  # the sample has one labeled frame per video, in val only
        *SMALL_MODEL["_".join((method, *variant))],
        "trainer.batch_size=2",
        "trainer.val_batch_size=8",
        "trainer.max_steps=1",
        "schedule.epochs=1",
        "schedule.warmup_iters=1",
        "codec.flip_test=false",
    )
    assert cfg.data.dataset.name == f"posetrack{dataset[2:]}"
    assert cfg.backbone.name.startswith("hrnet" if variant or method == "jmpose" else "vit")
    metrics = train(cfg)
    assert metrics["n_frames_evaluated"] == 3  # the three labeled frames of the sample
    assert math.isfinite(metrics["mAP"]) and 0.0 <= metrics["mAP"] <= 100.0
    state = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 1 and state["config"]["exp_name"] == exp
