"""HANet through the one trainer: task selection, exact resume, the two-stage workflow, learning."""

from __future__ import annotations

import pytest
import torch

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluate_run import run_evaluation
from vidpose.engine.tasks import build_task

JITTERED_TINY = (
    "data=synthetic_jhmdb",
    "data.dataset.preset=tiny",
    "refiner.sequences.source=jittered_gt",
)


@pytest.fixture
def one_thread():
    """Two cores shared by several jobs: one intra-op thread runs these tiny models many times faster."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_the_task_must_match_the_refiner_group(compose_exp, tmp_path):
    with pytest.raises(ValueError, match="set task=refine"):
        build_task(compose_exp("baseline_synthetic", "refiner=hanet"), DistInfo(), tmp_path)
    with pytest.raises(ValueError, match="needs a refiner"):
        build_task(compose_exp("hanet_synthetic", "refiner=none"), DistInfo(), tmp_path)
    with pytest.raises(ValueError, match="refiner.sequences.val is not set: export stage-1 sequences"):
        build_task(compose_exp("hanet_synthetic", "data.dataset.preset=tiny"), DistInfo(), tmp_path)


def test_refiner_run_resumes_bitwise(compose_exp, tmp_path, one_thread):
    common = (*JITTERED_TINY, "refiner.hidden_dim=16", "schedule.epochs=2", "trainer.val_every=2")
    train(compose_exp("hanet_synthetic", *common, out=tmp_path / "full"))
    train(compose_exp("hanet_synthetic", *common, "trainer.max_steps=3", out=tmp_path / "part"))
    assert load_checkpoint(find_latest(tmp_path / "part" / "checkpoints"))["step"] == 3
    resume = f"resume={tmp_path / 'part' / 'checkpoints'}"
    # the part run stopped at max_steps=3; its continuation has no step limit
    allow = "resume_allow_changes=[trainer.max_steps]"
    train(compose_exp("hanet_synthetic", *common, resume, allow, out=tmp_path / "part2"))
    full = load_checkpoint(find_latest(tmp_path / "full" / "checkpoints"))["model"]
    resumed = load_checkpoint(find_latest(tmp_path / "part2" / "checkpoints"))["model"]
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


@pytest.mark.slow
def test_two_stage_workflow_on_the_synthetic_set(compose_exp, tmp_path, capsys, one_thread):
    # stage 1: a (barely) trained synthetic baseline; export its train and val sequences
    tiny = ("data.dataset.preset=tiny", "trainer.batch_size=8", "trainer.val_batch_size=16", "schedule.warmup_iters=2")
    train(compose_exp("baseline_synthetic", *tiny, "schedule.epochs=1", "trainer.max_steps=2", out=tmp_path / "stage1"))
    stage1 = find_latest(tmp_path / "stage1" / "checkpoints")
    seq = {split: tmp_path / f"seq_{split}.npz" for split in ("train", "val")}
    run_evaluation(compose_exp("baseline_synthetic", f"+ckpt={stage1}", out=tmp_path / "export_train"), DistInfo(),
                   overrides=["data.val.split=train", f"+save_sequences={seq['train']}"])
    stage1_val = run_evaluation(compose_exp("baseline_synthetic", f"+ckpt={stage1}", out=tmp_path / "export_val"),
                                DistInfo(), overrides=[f"+save_sequences={seq['val']}"])
    assert seq["train"].is_file() and seq["val"].is_file()

    # stage 2: HANet on those sequences; its input mAP is exactly the stage-1 model's
    refiner_cfg = ("data.dataset.preset=tiny", f"refiner.sequences.train={seq['train']}",
                   f"refiner.sequences.val={seq['val']}", "schedule.epochs=1", "trainer.batch_size=8")
    metrics = train(compose_exp("hanet_synthetic", *refiner_cfg, out=tmp_path / "refiner"))
    assert metrics["input/mAP"] == pytest.approx(stage1_val["mAP"], abs=1e-9)
    assert 0.0 <= metrics["refined/mAP"] <= 100.0 and metrics["refined/error_px"] > 0

    # evaluation from the refiner checkpoint prints input and refined side by side
    ckpt = find_latest(tmp_path / "refiner" / "checkpoints")
    capsys.readouterr()
    eval_cfg = compose_exp("hanet_synthetic", f"+ckpt={ckpt}", out=tmp_path / "eval")
    again = run_evaluation(eval_cfg, DistInfo(), overrides=[])
    printed = capsys.readouterr().out
    assert "input" in printed and "refined" in printed and "mAP (poseval)" in printed
    assert again["refined/mAP"] == pytest.approx(metrics["refined/mAP"], abs=1e-9)
    assert (tmp_path / "eval" / "metrics.json").is_file()


@pytest.mark.slow
def test_refiner_learns_to_clean_jittered_sequences(compose_exp, one_thread):
    # GT tracks of the tiny synthetic JHMDB twin with 30 % outlier joints; 20 noise draws per
    # training track (1440 windows), window 5 with every frame seen (hanet_synthetic's T=5, N=1)
    cfg = compose_exp(
        "hanet_synthetic", *JITTERED_TINY, "refiner.hidden_dim=64",
        "refiner.sequences.jitter.outlier_prob=0.3", "refiner.sequences.jitter.outlier_sigma=0.5",
        "refiner.sequences.jitter.train_copies=20", "schedule.epochs=15", "trainer.val_every=15",
        "trainer.validate_at_start=true",
    )
    metrics = train(cfg)
    assert metrics["refined/error_px"] < 0.8 * metrics["input/error_px"]
    assert metrics["refined/error_px"] < 0.2 * metrics["initial/refined/error_px"]
