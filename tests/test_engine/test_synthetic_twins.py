"""Every experiment of a real benchmark has a ``*_synthetic`` twin that runs the same method on CPU.

The twin of ``<method>_<benchmark>[_variant]`` is ``<method>_synthetic`` for PoseTrack
experiments and ``<method>_jhmdb_synthetic`` for Sub-JHMDB ones: same task and head (the method),
same benchmark protocol (mAP or PCK), the embedded synthetic data instead of a real root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vidpose.engine import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "exp").glob("*.yaml"))
REAL = [name for name in EXPERIMENTS if "synthetic" not in name]


def _twin_name(name: str) -> str:
    method = name.split("_")[0]
    return f"{method}_jhmdb_synthetic" if "jhmdb" in name else f"{method}_synthetic"


def _compose(name: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=[f"+exp={name}"])


def test_the_real_experiments_are_found():
    assert {"mtpose_pt18", "baseline_jhmdb", "hanet_jhmdb", "continuity_pt18_hrnet"} <= set(REAL)


@pytest.mark.parametrize("name", REAL)
def test_real_experiment_has_a_synthetic_twin_of_the_same_method(name):
    twin_name = _twin_name(name)
    assert twin_name in EXPERIMENTS, f"configs/exp/{name}.yaml has no synthetic twin configs/exp/{twin_name}.yaml"
    real, twin = _compose(name), _compose(twin_name)
    assert twin.data.dataset.name.startswith("synthetic"), twin.data.dataset.name
    assert twin.data.benchmark == real.data.benchmark
    assert twin.get("task", "pose") == real.get("task", "pose")
    assert twin.head.name == real.head.name
    assert twin.refiner.name == real.refiner.name


def test_jhmdb_twin_trains_and_reports_pck(compose_exp):
    cfg = compose_exp(
        "mtpose_jhmdb_synthetic",
        "data.dataset.preset=tiny",
        "data.input_size=[64,48]",
        "backbone.embed_dim=64",
        "backbone.depth=2",
        "backbone.num_heads=2",
        "head.num_heads=2",
        "head.deconv_channels=16",
        "trainer.train_max_instances=16",
        "trainer.val_max_instances=16",
        "trainer.batch_size=8",
        "schedule.epochs=1",
        "schedule.warmup_iters=1",
        "codec.flip_test=false",
    )
    metrics = train(cfg)
    pck = [key for key in metrics if key.lower().startswith("pck")]
    assert pck, sorted(metrics)
    assert all(0.0 <= metrics[key] <= 100.0 for key in pck)
