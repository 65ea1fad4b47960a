"""End-to-end training on the tiny synthetic set: outputs, evaluation from a checkpoint, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluate_run import run_evaluation

# a CPU-second-sized run: tiny synthetic preset, 64x48 crops, a 2-block ViT, 40 training people
TINY = (
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=40",
    "trainer.batch_size=8",
    "trainer.val_batch_size=16",
    "schedule.warmup_iters=2",
)


def test_smoke_run_writes_outputs_and_eval_rebuilds_from_checkpoint(compose_exp, tmp_path, capsys):
    cfg = compose_exp("baseline_synthetic", *TINY, "schedule.epochs=1", "trainer.tensorboard=true")
    metrics = train(cfg)
    run = tmp_path / "run"
    assert 0.0 <= metrics["mAP"] <= 100.0 and metrics["n_frames_evaluated"] == 6  # tiny val: 2 videos x 3 labeled
    printed = capsys.readouterr().out
    assert "final mAP on posetrack18/val" in printed and "predictions.png" in printed
    assert (run / "predictions.png").stat().st_size > 1000
    assert any((run / "tb").iterdir())
    ckpt = find_latest(run / "checkpoints")
    state = load_checkpoint(ckpt)
    assert state["config"]["exp_name"] == "baseline_synthetic" and state["epoch"] == 1
    pred_files = sorted((run / "predictions" / "epoch_001").glob("*.json"))
    assert len(pred_files) == 2 and "annotations" in json.loads(pred_files[0].read_text())

    eval_cfg = compose_exp("baseline_synthetic", f"+ckpt={ckpt}", out=tmp_path / "eval")
    eval_metrics = run_evaluation(eval_cfg, DistInfo(), overrides=[])
    # same weights, same validation boxes, same decoding: the same number
    assert eval_metrics["mAP"] == pytest.approx(metrics["mAP"], abs=1e-9)
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert record["metrics"]["mAP"] == pytest.approx(metrics["mAP"], abs=1e-9)


def test_eval_overrides_apply_on_top_of_the_stored_config(compose_exp, tmp_path, capsys):
    # a smoke-style run scored on 8 validation boxes
    cfg = compose_exp(
        "baseline_synthetic", *TINY, "schedule.epochs=1", "trainer.max_steps=1", "trainer.val_max_instances=8"
    )
    train(cfg)
    ckpt = find_latest(tmp_path / "run" / "checkpoints")
    capsys.readouterr()
    eval_cfg = compose_exp("baseline_synthetic", f"+ckpt={ckpt}", out=tmp_path / "eval")
    metrics = run_evaluation(eval_cfg, DistInfo(), overrides=["codec.flip_test=false"])
    # the run's subset limit is not inherited: every GT person of the tiny val set is scored
    assert metrics["n_predictions"] == 18
    assert "subset" not in capsys.readouterr().out
    subset_cfg = compose_exp("baseline_synthetic", f"+ckpt={ckpt}", out=tmp_path / "subset")
    metrics = run_evaluation(subset_cfg, DistInfo(), overrides=["codec.flip_test=false", "trainer.val_max_instances=4"])
    record = json.loads((tmp_path / "subset" / "metrics.json").read_text())
    assert record["config"]["codec"]["flip_test"] is False and record["config"]["trainer"]["val_max_instances"] == 4
    assert "mAP" in metrics and metrics["n_predictions"] == 4
    note = "a subset (trainer.val_max_instances=4: 4 of 18 validation boxes); not comparable with full-set numbers"
    assert f"evaluated on {note}" in capsys.readouterr().out and record["subset"] == note


def _final_parameters(run_dir):
    return load_checkpoint(find_latest(run_dir / "checkpoints"))["model"]


def test_resume_continues_bitwise(compose_exp, tmp_path):
    # a stopped-and-resumed run equals an uninterrupted one, parameters and buffers, bitwise on CPU
    common = (*TINY, "schedule.epochs=2", "trainer.val_every=2", "codec.flip_test=false")
    train(compose_exp("baseline_synthetic", *common, out=tmp_path / "full"))
    train(compose_exp("baseline_synthetic", *common, "trainer.max_steps=5", out=tmp_path / "part"))
    part = load_checkpoint(find_latest(tmp_path / "part" / "checkpoints"))
    assert part["step"] == 5 and part["epoch"] == 0 and part["micro_in_epoch"] == 5
    # the part run stopped at max_steps=5; its continuation has no step limit
    train(compose_exp("baseline_synthetic", *common, f"resume={tmp_path / 'part' / 'checkpoints'}",
                      "resume_allow_changes=[trainer.max_steps]", out=tmp_path / "part2"))
    full, resumed = _final_parameters(tmp_path / "full"), _final_parameters(tmp_path / "part2")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
