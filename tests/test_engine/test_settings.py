"""Numeric settings are checked up front, naming the key and its range; ``+debug=overfit`` fits every experiment."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint
from vidpose.engine.settings import SETTINGS, validate_settings
from vidpose.registry import to_plain

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "exp").glob("*.yaml"))

# one value outside the allowed range (or of the wrong type) for every setting
BAD = [
    ("trainer.batch_size", 0),
    ("trainer.batch_size", 2.5),
    ("trainer.batch_size", True),
    ("trainer.val_batch_size", 0),
    ("trainer.num_workers", -1),
    ("trainer.val_every", 0),
    ("trainer.log_every", 0),
    ("trainer.ckpt_every_steps", 0),
    ("trainer.keep_last", 0),
    ("trainer.max_skipped_steps", -1),
    ("trainer.max_steps", 0),
    ("trainer.train_max_instances", 0),
    ("trainer.val_max_instances", -4),
    ("trainer.dist_timeout_s", 0),
    ("optim.lr", 0.0),
    ("optim.lr", "fast"),
    ("optim.lr", float("nan")),
    ("optim.weight_decay", -0.1),
    ("optim.betas", [0.9]),
    ("optim.betas", [0.9, 1.0]),
    ("optim.layer_decay", 1.5),
    ("optim.clip_grad", 0),
    ("optim.accumulate", 0),
    ("optim.momentum", -1.0),
    ("schedule.epochs", 0),
    ("schedule.warmup_iters", -1),
    ("schedule.warmup_ratio", 2.0),
    ("schedule.min_lr_ratio", -0.5),
    ("schedule.milestones", [0, 5]),
    ("schedule.gamma", 0.0),
]


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=/nonexistent/run", *overrides])


@pytest.fixture(scope="module")
def plain() -> dict:
    """A resolved config that holds every setting of the table (cosine and multistep keys, SGD momentum)."""
    config = to_plain(_compose("+exp=baseline_synthetic"))
    config["schedule"].update(milestones=[10, 15], gamma=0.1)
    config["optim"]["momentum"] = 0.9
    return config


def _with(config: dict, key: str, value) -> dict:
    out = copy.deepcopy(config)
    section, name = key.split(".")
    out[section][name] = value
    return out


@pytest.mark.parametrize("key,value", BAD, ids=[f"{k}={v!r}" for k, v in BAD])
def test_a_bad_setting_is_named_with_its_allowed_range(plain, key, value):
    validate_settings(plain)  # the experiment itself is fine
    message = f"{key}: expected {SETTINGS[key].describe()}, got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_settings(_with(plain, key, value))


def test_the_table_covers_every_numeric_setting():
    assert {key for key, _ in BAD} == set(SETTINGS)
    numeric = set()
    for group in ("trainer", "optim", "schedule"):
        for path in (CONFIGS / group).glob("*.yaml"):
            for name, value in yaml.safe_load(path.read_text()).items():
                if value is None or (isinstance(value, (int, float, list)) and not isinstance(value, bool)):
                    numeric.add(f"{group}.{name}")
    assert numeric - set(SETTINGS) == set(), "numeric settings without a rule in vidpose/engine/settings.py"


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.accumulate=0", "optim.accumulate: expected an integer >= 1, got 0"),
        ("trainer.log_every=0", "trainer.log_every: expected an integer >= 1, got 0"),
        ("schedule.epochs=0", "schedule.epochs: expected an integer >= 1, got 0"),
    ],
)
def test_train_refuses_a_bad_setting_before_anything_runs(compose_exp, tmp_path, override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        train(compose_exp("baseline_synthetic", "data.dataset.preset=tiny", override))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_overfit_debug_config_fits_every_experiment(name):
    config = to_plain(_compose(f"+exp={name}", "+debug=overfit"))
    # the check train() runs first: one optimizer step must fit in the 16 kept samples
    validate_settings(config)
    trainer = config["trainer"]
    assert trainer["train_max_instances"] == 16
    assert trainer["batch_size"] * config["optim"]["accumulate"] <= 16


def test_overfit_trains_a_synthetic_twin_whose_batch_is_larger_than_16(compose_exp, tmp_path):
    # baseline_synthetic trains batches of 32: +debug=overfit must still train its 16 samples
    assert _compose("+exp=baseline_synthetic").trainer.batch_size == 32
    cfg = compose_exp(
        "baseline_synthetic", "+debug=overfit", "data.dataset.preset=tiny", "data.input_size=[64,48]",
        "backbone.embed_dim=64", "backbone.depth=2", "backbone.num_heads=2", "head.deconv_channels=16",
        "trainer.max_steps=2", "trainer.val_max_instances=8", "codec.flip_test=false",
    )
    train(cfg)
    state = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 2 and state["config"]["trainer"]["batch_size"] == 16
