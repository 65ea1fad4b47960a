"""``tools/eval.py ckpt=``: this machine's paths and the command line win over the stored config, a
training run's subset limits are not inherited, and results go under the run's experiment."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vidpose.engine.checkpoint import save_checkpoint
from vidpose.engine.evaluate_run import resolve_eval_config
from vidpose.engine.run_dirs import register_resolvers
from vidpose.registry import to_plain

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _compose(config_name: str, *overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=hydra)


@pytest.fixture
def smoke_checkpoint(tmp_path) -> Path:
    """A checkpoint of an mtpose_synthetic smoke run trained on another machine (weights are not read here)."""
    stored = _compose(
        "train", "+exp=mtpose_synthetic", "+debug=smoke", "paths.data_root=/old/data", "paths.cache_root=/old/cache",
        "paths.output_dir=/old/outputs/mtpose_synthetic/run", "trainer.train_max_instances=16",
    )
    return save_checkpoint({"config": to_plain(stored), "step": 3}, tmp_path / "step_00000003.pt")


def test_paths_come_from_this_machine_and_subset_limits_stay_behind(smoke_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDPOSE_CACHE", "/new/cache")
    monkeypatch.setenv("VIDPOSE_DATA", "/new/data")
    cfg = _compose("eval", f"ckpt={smoke_checkpoint}", f"paths.output_dir={tmp_path / 'eval'}")
    merged, _ = resolve_eval_config(cfg, overrides=[])
    assert merged.paths.cache_root == "/new/cache" and merged.paths.data_root == "/new/data"
    # the synthetic set is read from this machine's cache, not regenerated into the stored path
    assert merged.data.dataset.cache_root == "/new/cache"
    assert merged.paths.output_dir == str(tmp_path / "eval")
    assert merged.trainer.val_max_instances is None and merged.trainer.train_max_instances is None
    assert merged.trainer.max_steps is None and merged.evaluation.require_coverage is True
    # what the run trained is kept
    assert merged.exp_name == "mtpose_synthetic" and merged.head.name == "mtpose"


def test_command_line_overrides_win_over_stored_and_machine_values(smoke_checkpoint, tmp_path):
    overrides = ["data.dataset.cache_root=/explicit/cache", "trainer.val_max_instances=4", "codec.flip_test=false"]
    cfg = _compose("eval", f"ckpt={smoke_checkpoint}", f"paths.output_dir={tmp_path / 'eval'}", *overrides)
    merged, _ = resolve_eval_config(cfg, overrides=overrides)
    assert merged.data.dataset.cache_root == "/explicit/cache"
    assert merged.trainer.val_max_instances == 4 and merged.codec.flip_test is False


def test_evaluation_outputs_go_under_the_evaluated_runs_experiment(smoke_checkpoint):
    register_resolvers()
    cfg = _compose("eval", f"ckpt={smoke_checkpoint}", hydra=True)
    assert cfg.exp_name == "baseline"  # what eval.yaml composes without +exp
    assert str(cfg.hydra.run.dir).startswith("outputs/mtpose_synthetic/eval_")
    without_ckpt = _compose("eval", "+exp=hanet_synthetic", hydra=True)
    assert str(without_ckpt.hydra.run.dir).startswith("outputs/hanet_synthetic/eval_")
