"""Bad configuration and weights reach the user as errors naming the key or file and the expected
form: through ``tools/train.py`` (Hydra composition included) and through ``train``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from vidpose.engine import builders, train
from vidpose.engine.checkpoint import save_checkpoint
from vidpose.engine.trainer import TRAINER_KEYS, check_trainer_keys
from vidpose.registry import to_plain

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
TINY = (
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=8",
    "trainer.batch_size=4",
    "trainer.device=cpu",
    "schedule.epochs=1",
)


@pytest.mark.parametrize(
    "override,message",
    [
        ("head.name=deconvv", r"head\.name: heads: unknown name 'deconvv'\. Did you mean 'deconv'\? Known heads: "),
        (
            "+head.deconv_chanels=16",
            r"head: unknown argument 'deconv_chanels' \(did you mean 'deconv_channels'\?\) for heads 'deconv'",
        ),
    ],
    ids=["unknown name", "misspelled argument"],
)
def test_train_tool_names_the_bad_key_and_what_it_accepts(tmp_path, synthetic_cache, override, message):
    command = [
        sys.executable, str(ROOT / "tools" / "train.py"), "+exp=baseline_synthetic", *TINY,
        f"paths.cache_root={synthetic_cache}", f"hydra.run.dir={tmp_path / 'run'}", override,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert re.search(message, done.stderr), done.stderr[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists()  # it failed before training


def _trainer_yaml_keys() -> set[str]:
    return set(yaml.safe_load((CONFIGS / "trainer" / "default.yaml").read_text()))


def test_trainer_keys_are_the_trainer_config_keys():
    assert TRAINER_KEYS == _trainer_yaml_keys()


def test_misspelled_trainer_setting_stops_train_before_anything_runs(compose_exp, tmp_path):
    # `+` adds a key Hydra does not know; without this check the run would use nan_policy=stop
    cfg = compose_exp("baseline_synthetic", *TINY, "+trainer.nan_polcy=skip")
    with pytest.raises(ValueError, match=r"unknown trainer setting trainer\.nan_polcy \(did you mean nan_policy\?\)"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_setting_in_the_wrong_section_is_pointed_to_its_place():
    with pytest.raises(ValueError, match=r"trainer\.epochs \(did you mean schedule\.epochs\?\)"):
        check_trainer_keys({"batch_size": 4, "epochs": 3})


@pytest.mark.parametrize("debug", sorted(p.stem for p in (CONFIGS / "debug").glob("*.yaml")))
def test_debug_configs_set_only_keys_the_trainer_reads(debug):
    # debug configs once set trainer.epochs, which nothing read
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+exp=mtpose_synthetic", f"+debug={debug}"])
    check_trainer_keys(to_plain(cfg.trainer))
    # appended after the experiment, the debug values win over the experiment's own
    assert cfg.schedule.epochs == {"smoke": 1, "overfit": 50}[debug]


def test_init_from_a_checkpoint_of_another_backbone_is_refused(compose_exp, tmp_path):
    wider = compose_exp("baseline_synthetic", *TINY, "backbone.embed_dim=96")
    layout, geometry = builders.build_layout(wider), builders.build_geometry(wider)
    path = save_checkpoint({"model": builders.build_model(wider, layout, geometry).state_dict()}, tmp_path / "w.pt")
    cfg = compose_exp("baseline_synthetic", *TINY, f"init_from={path}")
    with pytest.raises(
        ValueError,
        match=r"init_from: \S+w\.pt holds another backbone than this model: \d+ backbone tensors are missing or "
        r"differ in shape \(file vs model\), e\.g\. \['backbone\.\S+ \(1, \d+, 96\) vs \(1, \d+, 64\)'",
    ):
        train(cfg)


def test_init_from_a_checkpoint_with_another_head_loads_the_backbone(compose_exp, tmp_path):
    other_head = compose_exp("baseline_synthetic", *TINY, "head.deconv_channels=8")
    layout, geometry = builders.build_layout(other_head), builders.build_geometry(other_head)
    model = builders.build_model(other_head, layout, geometry)
    path = save_checkpoint({"model": model.state_dict()}, tmp_path / "w.pt")
    cfg = compose_exp("baseline_synthetic", *TINY, f"init_from={path}", "trainer.max_steps=1")
    train(cfg)
    log = (tmp_path / "run" / "train.log").read_text()
    assert sum(1 for k in model.state_dict() if k.startswith("backbone.")) == 29
    # 29 backbone tensors + the final layer's bias + 2 BatchNorm step counters; the rest of the
    # 8-channel decoder keeps its initialisation
    assert "vidpose checkpoint: 32 tensors loaded, 11 kept their initialisation" in log
