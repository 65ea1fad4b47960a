"""A tiny MTPose model trained for two steps in the trainer's checkpoint format, on the tiny synthetic set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# CPU-sized MTPose (T = 3, OpenCV DIS flows, DCNv2 fusion) on 64 x 48 crops; flip test on
TINY_MTPOSE = (
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=1",
    "backbone.num_heads=2",
    "head.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=8",
    "trainer.val_max_instances=4",
    "trainer.batch_size=4",
    "trainer.max_steps=2",
    "trainer.device=cpu",
    "trainer.num_workers=0",
    "trainer.tensorboard=false",
    "schedule.epochs=1",
    "schedule.warmup_iters=1",
)


@pytest.fixture(scope="session")
def inference_cache(tmp_path_factory) -> Path:
    """The synthetic data cache ($VIDPOSE_CACHE when set, so the set is not regenerated)."""
    existing = os.environ.get("VIDPOSE_CACHE")
    return Path(existing) if existing else tmp_path_factory.mktemp("vidpose_cache")


@pytest.fixture(scope="session")
def tiny_root(inference_cache) -> Path:
    """The tiny synthetic set's PoseTrack18 root (annotations/val, images/val)."""
    from vidpose.data.synthetic import generate

    return generate("tiny", cache_root=inference_cache) / "posetrack18"


@pytest.fixture(scope="session")
def mtpose_checkpoint(tmp_path_factory, inference_cache, tiny_root) -> Path:
    """The last checkpoint of a two-step ``mtpose_synthetic`` run (tools/train.py's format)."""
    from vidpose.engine import train
    from vidpose.engine.checkpoint import find_latest

    run = tmp_path_factory.mktemp("mtpose_run")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["+exp=mtpose_synthetic", f"paths.output_dir={run}", f"paths.cache_root={inference_cache}",
                       *TINY_MTPOSE],
        )
    train(cfg)
    return find_latest(run / "checkpoints")
