"""Provenance records: config hash, annotation digest, git state and the full record of a run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidpose.engine.provenance import config_hash, files_digest, git_state, index_digest, run_provenance


def _cfg(**changes):
    cfg = {
        "exp_name": "baseline_synthetic", "seed": 0, "optim": {"lr": 1e-3},
        "paths": {"output_dir": "/runs/a", "cache_root": "/cache"}, "hydra": {"run": {"dir": "/runs/a"}},
        "data": {"dataset": {"name": "synthetic", "preset": "tiny"}, "val": {"boxes": "gt"}},
    }
    for key, value in changes.items():
        section, name = key.split(".")
        cfg[section] = {**cfg[section], name: value}
    return cfg


def test_config_hash_ignores_where_the_run_writes_and_sees_everything_else():
    base = config_hash(_cfg())
    assert config_hash(_cfg(**{"paths.output_dir": "/runs/b"})) == base
    assert config_hash({**_cfg(), "hydra": {"run": {"dir": "/elsewhere"}}}) == base
    assert config_hash(_cfg(**{"optim.lr": 2e-3})) != base
    assert config_hash(_cfg(**{"paths.cache_root": "/other"})) != base


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory):
    from vidpose.data.synthetic import synthetic_posetrack

    return synthetic_posetrack("val", preset="tiny", cache_root=str(tmp_path_factory.mktemp("cache")))


def test_index_digest_changes_with_one_keypoint(tiny_val):
    before = index_digest(tiny_val)
    person = next(p for v in tiny_val.videos for f in v.frames for p in f.people)
    person.keypoints[0, 0] += np.float32(0.5)
    try:
        assert index_digest(tiny_val) != before
    finally:
        person.keypoints[0, 0] -= np.float32(0.5)
    assert index_digest(tiny_val) == before


def test_git_state_reports_commit_and_dirty_tree(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    run = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}


def test_files_digest_sees_names_and_contents(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text("[]")
    files = sorted(tmp_path.iterdir())
    first = files_digest(files, tmp_path)
    (tmp_path / "b.json").write_text("[1]")
    assert files_digest(files, tmp_path) != first


def test_run_provenance_names_code_data_boxes_seed_device_and_versions(tiny_val, tmp_path):
    gt_dir = Path(tiny_val.image_root) / "annotations" / "val"
    record = run_provenance(_cfg(), tiny_val, "cpu")
    assert set(record) >= {"code", "config_hash", "data", "boxes", "seed", "device", "versions"}
    assert record["seed"] == 0 and record["device"] == "cpu" and record["boxes"] == {"source": "gt"}
    assert record["code"]["vidpose"] and "dirty" in record["code"]
    data = record["data"]
    assert data["dataset"] == "synthetic" and data["split"] == tiny_val.name
    assert data["synthetic"]["preset"] == "tiny" and len(data["synthetic"]["digest"]) == 12
    assert data["annotation_dir"] == str(gt_dir) and data["annotation_files"] == len(list(gt_dir.glob("*.json"))) > 0
    assert set(record["versions"]) == {"python", "torch", "timm", "numpy", "vidpose"}
    detector = tmp_path / "boxes.json"
    detector.write_text("[]")
    cfg = _cfg()
    cfg["data"]["val"] = {"boxes": "detections", "detections": str(detector)}
    boxes = run_provenance(cfg, None, "cpu")
    assert boxes["boxes"]["source"] == "detections" and len(boxes["boxes"]["sha256"]) == 64
