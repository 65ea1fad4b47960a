"""Every experiment composes, sets only keys its groups define, and names registered entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vidpose.engine import builders
from vidpose.registry import BACKBONES, DATASETS, FLOWS, HEADS, REFINERS, TARGETS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "exp").glob("*.yaml"))
GROUPS = ("data", "backbone", "flow", "head", "refiner", "target", "optim", "schedule", "trainer")


def compose_cfg(overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1]


def plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.fixture(scope="module", params=EXPERIMENTS)
def exp_cfg(request):
    return request.param, compose_cfg([f"+exp={request.param}"])


def test_every_experiment_composes_with_registered_names(exp_cfg):
    name, cfg = exp_cfg
    assert cfg.exp_name == name
    assert cfg.backbone.name in BACKBONES and cfg.head.name in HEADS and cfg.target.name in TARGETS
    assert cfg.data.dataset.name in DATASETS
    assert cfg.flow.name == "none" or cfg.flow.name in FLOWS
    first = (CONFIGS / "exp" / f"{name}.yaml").read_text().splitlines()[0]
    assert first == "# @package _global_", "the package line must be the first line (DESIGN section 4)"


def test_experiment_sets_only_keys_its_groups_define(exp_cfg):
    # Hydra merges a misspelled key inside a yaml file silently; compare against the base
    # composition with the same group choices, without the experiment's own values.
    name, cfg = exp_cfg
    choices = cfg.hydra.runtime.choices
    base = compose_cfg([f"{g}={choices[g]}" for g in GROUPS])
    known = set(leaves(plain(base)))
    extra = sorted(k for k in leaves(plain(cfg)) if not k.startswith("hydra") and k not in known)
    assert not extra, f"{name} sets keys no config group defines: {extra}"


def test_every_experiment_builds_its_model_on_the_meta_device(exp_cfg):
    name, cfg = exp_cfg
    if cfg.task == "refine":
        # a second-stage exp trains only its coordinate refiner (vidpose.engine.tasks.RefinerTask)
        layout = builders.build_layout(cfg)
        with torch.device("meta"):
            refiner = builders.build_refiner(cfg, layout)
        assert type(refiner) is REFINERS.get(str(cfg.refiner.name)), name
        assert refiner.num_joints == layout.num_joints
        return
    assert cfg.refiner.name == "none", f"{name}: a refiner is trained with task=refine"
    if str(cfg.flow.name).startswith("raft"):
        cfg.flow.random_init = True  # no RAFT weights file in tests; real runs must give flow.checkpoint
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    with torch.device("meta"):
        model = builders.build_model(cfg, layout, geometry)
    builders.build_target(cfg, geometry)
    assert set(model.head.targets) <= set(builders.build_target(cfg, geometry).outputs)
    builders.clip_spec(cfg)


DATA_OPTIONS = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))


@pytest.mark.parametrize("option", DATA_OPTIONS)
def test_every_data_config_composes(option):
    cfg = compose_cfg([f"data={option}", "paths.output_dir=/nonexistent/run"])
    assert cfg.data.dataset.name in DATASETS
    layout = builders.build_layout(cfg)
    assert layout.num_joints == (15 if "jhmdb" in option else 17)
    assert cfg.data.benchmark == ("jhmdb" if "jhmdb" in option else "posetrack")
    assert builders.clip_spec(cfg).key_index == 1


def test_posetrack18_config_reads_the_real_sample_from_vidpose_data(posetrack18_mini, tmp_path, monkeypatch):
    (tmp_path / "posetrack18").symlink_to(posetrack18_mini)
    monkeypatch.setenv("VIDPOSE_DATA", str(tmp_path))
    cfg = compose_cfg(["data=posetrack18", "paths.output_dir=/nonexistent/run"])
    index = builders.build_index(cfg, "val")
    assert len(index.videos) == 3 and index.num_people() == 14


REAL_MSRA = [e for e in EXPERIMENTS if "synthetic" not in e and e.split("_")[0] not in ("hanet",)]


@pytest.mark.parametrize("name", REAL_MSRA)
def test_real_msra_experiments_scale_sigma_with_the_heatmap(name):
    # DCPose: sigma 3 at 96x72; the COCO HRNet 256x192 recipe: sigma 2 at 64x48. Both are
    # sigma = heatmap height / 32, so a heatmap size change must change sigma with it.
    cfg = compose_cfg([f"+exp={name}"])
    if cfg.codec.convention != "msra":
        pytest.skip(f"{name} uses the {cfg.codec.convention} codec")
    heatmap_h = cfg.data.input_size[0] // cfg.codec.stride
    sigma = cfg.target.get("sigma", cfg.target.get("sigma0"))
    assert sigma * 32 == heatmap_h, f"{name}: sigma {sigma} at a {heatmap_h}-row heatmap"
