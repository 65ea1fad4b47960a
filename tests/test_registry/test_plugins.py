"""An out-of-tree package registers a target generator and a dataset through ``plugins:``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose import registry
from vidpose.engine import builders
from vidpose.heatmaps import Geometry
from vidpose.registry import DATASETS, TARGETS, load_plugins

PLUGIN_PATH = Path(__file__).resolve().parents[1] / "plugin_pkg"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def plugin_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_PATH))


def test_plugin_registers_target_and_dataset(plugin_on_path):
    assert load_plugins(["vidpose_plugin_example"]) == ["vidpose_plugin_example"]
    gen = TARGETS.build({"name": "plugin_wide_gaussian", "width": 3.0}, geometry=Geometry((32, 32), 4))
    kp = torch.full((1, 1, 17, 2), 16.0)
    out = gen(kp, torch.ones(1, 1, 17), torch.zeros(1, 1, dtype=torch.bool), 0, names=("heatmap",))
    # sigma 3 at the centre pixel's neighbour two columns away: exp(-4 / 18)
    assert out["heatmap"][0, 0, 4, 6].item() == pytest.approx(torch.exp(torch.tensor(-4 / 18)).item(), rel=1e-5)
    index = DATASETS.build({"name": "plugin_one_person"}, split="val")
    assert index.name == "plugin/val" and index.num_people() == 1
    assert "plugin_wide_gaussian" in TARGETS.names() and "plugin_one_person" in DATASETS.names()


def test_plugins_key_in_a_config_reaches_the_builders(plugin_on_path):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "plugins=[vidpose_plugin_example]", "data.dataset.name=plugin_one_person",
            "~data.dataset.preset", "~data.dataset.cache_root",
        ])
    load_plugins(cfg.plugins)
    assert builders.build_index(cfg, "train").num_people() == 1


def test_entry_point_plugins_load_on_first_lookup(monkeypatch, plugin_on_path):
    class EntryPoint:
        name, value = "example", "vidpose_plugin_example"

        def load(self):
            import vidpose_plugin_example

            return vidpose_plugin_example

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [EntryPoint()] if group == "vidpose.plugins" else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    fresh = registry.Registry("targets-copy", builtins=[])
    fresh.names()
    assert "plugin_wide_gaussian" in TARGETS.names()


def test_broken_entry_point_is_reported(monkeypatch):
    class Broken:
        name, value = "broken", "nowhere:thing"

        def load(self):
            raise ImportError("no module named nowhere")

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [Broken()])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    with pytest.raises(ImportError, match="plugin entry point 'broken'"):
        registry.Registry("x", builtins=[]).names()
