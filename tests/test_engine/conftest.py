"""Helpers for engine tests: experiment configs (tiny synthetic data, CPU) and real-format PoseTrack roots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vidpose.data.keypoints import POSETRACK_TO_POSEVAL

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory) -> Path:
    """A cache root shared by the session (reuses $VIDPOSE_CACHE when set, to skip regeneration)."""
    existing = os.environ.get("VIDPOSE_CACHE")
    return Path(existing) if existing else tmp_path_factory.mktemp("vidpose_cache")


@pytest.fixture
def compose_exp(synthetic_cache, tmp_path):
    """compose_exp(name, *overrides, out=None) -> a resolved-able DictConfig writing into tmp_path."""

    def _compose(name: str, *overrides: str, out: Path | None = None):
        out = out or tmp_path / "run"
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            return compose(
                config_name="train",
                overrides=[
                    f"+exp={name}",
                    f"paths.output_dir={out}",
                    f"paths.cache_root={synthetic_cache}",
                    "trainer.num_workers=0",
                    "trainer.tensorboard=false",
                    *overrides,
                ],
            )

    return _compose


def _posetrack17_file(data: dict) -> dict:
    """A PoseTrack18 per-video JSON -> the same video as a PoseTrack17 ``annolist`` file."""
    people: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        people.setdefault(ann["image_id"], []).append(ann)
    annolist = []
    for index, image in enumerate(data["images"]):
        rects = []
        for ann in people.get(image["id"], []):
            x, y, w, h = ann["bbox_head"]
            triplets = [ann["keypoints"][3 * k : 3 * k + 3] for k in range(len(POSETRACK_TO_POSEVAL))]
            points = [
                {"id": [int(pid)], "x": [px], "y": [py], "is_visible": [1]}
                for (px, py, v), pid in zip(triplets, POSETRACK_TO_POSEVAL)
                if v > 0 and pid >= 0
            ]
            rects.append({"track_id": [ann["track_id"]], "x1": [x], "y1": [y], "x2": [x + w], "y2": [y + h],
                          "annopoints": [{"point": points}]})
        annolist.append({"image": [{"name": image["file_name"]}], "imgnum": [index + 1],
                         "is_labeled": [int(image["is_labeled"])], "annorect": rects})
    return {"annolist": annolist}


@pytest.fixture(scope="session")
def posetrack_format_root(posetrack18_mini, tmp_path_factory) -> Path:
    """A data root whose posetrack17/18/21 folders hold the real PoseTrack18 sample in each layout and format."""
    root = tmp_path_factory.mktemp("posetrack_formats")
    (root / "posetrack18").symlink_to(posetrack18_mini, target_is_directory=True)
    pt21, pt17 = root / "posetrack21", root / "posetrack17" / "posetrack_data"
    (pt21 / "posetrack_data" / "val").mkdir(parents=True)
    (pt17 / "annotations" / "val").mkdir(parents=True)
    for image_root in (pt21, pt17):
        (image_root / "images").symlink_to(posetrack18_mini / "images", target_is_directory=True)
    for path in sorted((posetrack18_mini / "annotations" / "val").glob("*.json")):
        (pt21 / "posetrack_data" / "val" / path.name).symlink_to(path)
        data = json.loads(path.read_text())
        (pt17 / "annotations" / "val" / path.name).write_text(json.dumps(_posetrack17_file(data)))
    return root
