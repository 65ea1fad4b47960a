"""tools/make_figures.py on a fake training run (random model, GT files as predictions)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import cv2
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"vidpose_{name}_tool", ROOT / "tools" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_figure_is_written(tmp_path, shared_data):
    from hydra import compose, initialize_config_dir

    from vidpose import __version__
    from vidpose.data.synthetic import generate
    from vidpose.engine import builders
    from vidpose.engine.checkpoint import save_checkpoint
    from vidpose.registry import to_plain

    cache = Path(os.environ.get("VIDPOSE_CACHE") or tmp_path / "cache")
    root = generate("tiny", cache_root=cache)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "+exp=baseline_synthetic",
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.cache_root={cache}",
                "data.dataset.preset=tiny",
                "codec.flip_test=false",
            ],
        )
    torch.manual_seed(0)
    model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    run = tmp_path / "run"
    state = {"config": to_plain(cfg), "model": model.state_dict(), "vidpose_version": __version__}
    save_checkpoint(state, run / "checkpoints" / "best.pt")
    for epoch in ("epoch_003", "epoch_005"):  # GT files as predictions (no scores: -9999)
        shutil.copytree(root / "posetrack18" / "annotations" / "val", run / "predictions" / epoch)
    out = tmp_path / "figures"
    tensorboard = tmp_path / "tb"
    assert (
        _load("make_figures").main(
            [
                "--run",
                str(run),
                "--out",
                str(out),
                "--shared-data",
                str(shared_data),
                "--tensorboard",
                str(tensorboard),
            ]
        )
        == 0
    )
    expected = {
        "skeletons_synthetic.png": (272, 2 * 192 + 2),  # the tiny val split has 2 videos
        "clip_strip_synthetic.png": (272, 580),
        "motion_targets_synthetic.png": (272, None),
        "heatmaps_synthetic.png": (256, 636),
        "motion/ap_gain_vs_motion.png": (400, 700),
        "motion/ap_by_motion.png": (400, 700),
        "demo_real.png": (286, 480),
        "real_gt.png": (286, 802),
    }
    for name, (height, width) in expected.items():
        image = cv2.imread(str(out / name))
        assert image is not None, name
        assert image.shape[0] == height and (width is None or image.shape[1] == width), (
            name,
            image.shape,
        )
        assert image.std() > 10, name  # drawn content, not a blank canvas
    demo = cv2.imread(str(out / "demo_synthetic.png"))
    assert demo.shape[1] == 2 * 160 and demo.std() > 10  # the tiny preset's 160 px frames, doubled
    assert any(tensorboard.iterdir())
    table = (out / "motion" / "motion_ap.txt").read_text()
    assert "epoch 3:" in table and "epoch 5:" in table and "no motion" in table
