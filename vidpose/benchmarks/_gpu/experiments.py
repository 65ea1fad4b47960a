"""The methods the GPU check trains, found in ``configs/exp``, and their composed configs.

Every ``<method>_synthetic.yaml`` twin (the README's naming rule; ``<method>_jhmdb_synthetic``
twins are Sub-JHMDB variants of the same methods) inherits the paper experiment it shrinks, so
a new method with a twin is trained by the check without code changes. Full mode composes the
paper experiment (its backbone, flow and input size) on the twin's synthetic data; ``--quick``
composes the twin itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vidpose.benchmarks._gpu.context import Context, Outcome
from vidpose.benchmarks.train import CONFIGS

EXP_DIR = CONFIGS / "exp"
TWIN = re.compile(r"^([a-z0-9]+)_synthetic$")


@dataclass(frozen=True)
class Method:
    """A method: its CPU twin, the paper experiment the twin inherits, the twin's data group."""

    name: str
    twin: str
    paper: str
    data: str


def methods() -> list[Method]:
    """Every ``<method>_synthetic`` twin in ``configs/exp``, sorted by name."""
    found = []
    for path in sorted(EXP_DIR.glob("*_synthetic.yaml")):
        match = TWIN.match(path.stem)
        if match:
            found.append(_method(match.group(1), path))
    return found


def method_named(name: str) -> Method:
    """The method ``name`` (e.g. ``mtpose``); an error lists the known ones."""
    known = {m.name: m for m in methods()}
    if name not in known:
        raise ValueError(f"no experiment {name}_synthetic in {EXP_DIR}; methods: {sorted(known)}")
    return known[name]


def _method(name: str, path: Path) -> Method:
    defaults = yaml.safe_load(path.read_text()).get("defaults", [])
    parents = [d for d in defaults if isinstance(d, str) and d != "_self_"]
    data = [d["override /data"] for d in defaults if isinstance(d, dict) and "override /data" in d]
    if len(parents) != 1 or len(data) != 1:
        raise ValueError(
            f"{path}: a synthetic twin inherits one experiment and overrides /data, got {defaults}"
        )
    return Method(name, path.stem, parents[0], data[0])


def compose(overrides: Sequence[str]) -> Any:
    """The training config ``tools/train.py`` would resolve from these overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=list(overrides))


def experiment_config(method: Method, quick: bool, extra: Sequence[str]) -> Any:
    """The paper experiment on the tiny synthetic set (``quick``: the CPU twin); no downloads."""
    exp = [f"+exp={method.twin}"] if quick else [f"+exp={method.paper}", f"data={method.data}"]
    base = [*exp, "data.dataset.preset=tiny", *extra]
    cfg = compose(base)
    needed = []
    if "random_init" in cfg.flow:
        needed.append("flow.random_init=true")  # RAFT weights are never downloaded
    if str(cfg.get("task", "pose")) == "refine":
        # no stage-1 model exists to export sequences from
        needed.append("refiner.sequences.source=jittered_gt")
    return compose([*base, *needed]) if needed else cfg


def trained_module(method: Method) -> tuple[str, str]:
    """(registry, name) a method trains: ``("HEADS", "mtpose")`` or ``("REFINERS", "hanet")``."""
    cfg = compose([f"+exp={method.twin}"])
    if str(cfg.get("task", "pose")) == "refine":
        return "REFINERS", str(cfg.refiner.name)
    return "HEADS", str(cfg.head.name)


def registry_coverage(ctx: Context) -> Outcome:
    """Every head and refiner vidpose registers is trained by some method's check.

    Entries a plugin registered (``plugins:``, entry points, a test's fault head) live outside
    this project's configs, so they are listed but not required to have a synthetic experiment.
    """
    from vidpose.registry import HEADS, REFINERS

    found = methods()
    trained = {trained_module(m) for m in found}
    registered = {("HEADS", n, HEADS.get(n)) for n in HEADS.names()}
    registered |= {("REFINERS", n, REFINERS.get(n)) for n in REFINERS.names()}
    own = {(group, name) for group, name, obj in registered if obj.__module__.startswith("vidpose.")}
    plugins = sorted(f"{group}:{name}" for group, name, obj in registered if (group, name) not in own)
    missing = sorted(f"{group}:{name}" for group, name in own - trained)
    numbers = {
        "methods": [m.name for m in found], "registered": len(own), "untrained": missing,
        "plugin_entries_not_checked": plugins,
    }
    note = f"add a <method>_synthetic experiment for {missing}" if missing else ""
    return Outcome(not missing, numbers, note)
