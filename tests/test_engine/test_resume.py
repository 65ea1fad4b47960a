"""``resume`` continues only the run it should: identities, refusals, finished runs, stop conditions.

One finished tiny run (2 epochs of 3 steps, a checkpoint after every step) is trained once; each
test copies the checkpoints it needs into a folder of its own (copies of the first steps are an
interrupted run of the same identity).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint, save_checkpoint
from vidpose.engine.resume import ResumeError
from vidpose.engine.run_identity import ACCUMULATION_KEY, MAY_CHANGE_ON_RESUME, identity_differences, run_identity
from vidpose.registry import to_plain

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = (
    "+exp=baseline_synthetic",
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=24",
    "trainer.val_max_instances=8",
    "trainer.batch_size=8",
    "trainer.num_workers=0",
    "trainer.tensorboard=false",
    "trainer.device=cpu",
    "trainer.ckpt_every_steps=1",
    "trainer.keep_last=10",
    "trainer.val_every=2",
    "schedule.epochs=2",
    "schedule.warmup_iters=1",
    "codec.flip_test=false",
)
STEPS = 6


def _compose(cache: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(
            config_name="train", overrides=[*TINY, f"paths.cache_root={cache}", f"paths.output_dir={out}", *overrides]
        )


@pytest.fixture(scope="module")
def finished(tmp_path_factory, synthetic_cache) -> tuple[Path, dict]:
    """The folder of a finished run and its final metrics."""
    run = tmp_path_factory.mktemp("finished") / "run"
    metrics = _train_one_thread(_compose(synthetic_cache, run))
    return run, metrics


def _train_one_thread(cfg) -> dict:
    """``train`` with one intra-op thread: fastest for this tiny model on shared cores, and bitwise
    comparisons need the same thread count in both runs (reductions split by thread differ)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg)
    finally:
        torch.set_num_threads(threads)


def _copy_run(source: Path, target: Path, steps: range) -> Path:
    """A run folder holding ``source``'s step checkpoints of ``steps`` (fresh mtimes)."""
    (target / "checkpoints").mkdir(parents=True)
    for step in steps:
        name = f"step_{step:08d}.pt"
        shutil.copy(source / "checkpoints" / name, target / "checkpoints" / name)
    return target


def test_resume_auto_continues_the_run_of_the_same_identity_and_names_it(finished, tmp_path, synthetic_cache):
    run, _ = finished
    interrupted = _copy_run(run, tmp_path / "exp" / "interrupted", range(1, 5))
    # keys that may change on resume (logging, checkpoint cadence, failure policy) do change
    changed = ("trainer.log_every=1", "trainer.keep_last=3", "trainer.val_batch_size=4", "trainer.nan_policy=skip")
    _train_one_thread(_compose(synthetic_cache, tmp_path / "exp" / "requeued", "resume=auto", *changed))
    log = (tmp_path / "exp" / "requeued" / "train.log").read_text()
    assert f"resuming from {interrupted / 'checkpoints' / 'step_00000004.pt'}" in log
    final = load_checkpoint(find_latest(tmp_path / "exp" / "requeued" / "checkpoints"))
    assert (final["step"], final["epoch"]) == (STEPS, 2)
    uninterrupted = load_checkpoint(find_latest(run / "checkpoints"))["model"]
    assert all(torch.equal(uninterrupted[k], final["model"][k]) for k in uninterrupted)


def test_resume_auto_refuses_a_run_of_another_identity_listing_the_keys(finished, tmp_path, synthetic_cache):
    run, _ = finished
    _copy_run(run, tmp_path / "exp" / "interrupted", range(1, 3))
    cfg = _compose(synthetic_cache, tmp_path / "exp" / "new", "resume=auto", "optim.lr=0.002", "seed=3")
    expected = (
        r"resume=auto: no run of this identity under \S+exp; the nearest, \S+interrupted, differs in "
        r"optim\.lr: 0\.001 -> 0\.002; seed: 0 -> 3\. .*resume_allow_changes=\[optim\.lr,seed\]"
    )
    with pytest.raises(ResumeError, match=expected):
        train(cfg)
    assert not (tmp_path / "exp" / "new" / "checkpoints").exists()


def test_explicit_resume_refuses_other_identities_unless_the_keys_are_allowed(finished, tmp_path, synthetic_cache):
    run, _ = finished
    source = _copy_run(run, tmp_path / "interrupted", range(1, 5)) / "checkpoints"
    with pytest.raises(ResumeError, match=r"belongs to a run of another identity; differing keys \(stored -> now\): "
                                          r"optim\.lr: 0\.001 -> 0\.002\. Continue it anyway with .*"
                                          r"resume_allow_changes=\[optim\.lr\]"):
        train(_compose(synthetic_cache, tmp_path / "refused", f"resume={source}", "optim.lr=0.002"))
    assert not (tmp_path / "refused" / "checkpoints").exists()
    train(_compose(synthetic_cache, tmp_path / "allowed", f"resume={source}", "optim.lr=0.002",
                   "resume_allow_changes=[optim.lr]"))
    final = load_checkpoint(find_latest(tmp_path / "allowed" / "checkpoints"))
    assert final["step"] == STEPS and final["config"]["optim"]["lr"] == 0.002


@pytest.mark.parametrize("how", ["auto", "fewer epochs"])
def test_resuming_a_finished_run_reports_its_stored_metrics_and_trains_nothing(
    finished, tmp_path, synthetic_cache, capsys, how
):
    run, metrics = finished
    source = _copy_run(run, tmp_path / "exp" / "done", range(STEPS, STEPS + 1))
    overrides = {
        "auto": ("resume=auto",),
        # a run that trained 2 epochs, resumed by a config of 1 epoch, has nothing left to do
        "fewer epochs": (
            f"resume={source / 'checkpoints'}", "schedule.epochs=1", "resume_allow_changes=[schedule.epochs]"
        ),
    }[how]
    requeued = tmp_path / "exp" / "requeued"
    result = train(_compose(synthetic_cache, requeued, *overrides))
    assert result["mAP"] == pytest.approx(metrics["mAP"])
    assert result["n_frames_evaluated"] == metrics["n_frames_evaluated"]
    printed = capsys.readouterr().out
    assert f"run {run} already finished (step {STEPS}, epoch 2): nothing trained" in printed
    assert f"final mAP on posetrack18/val: {metrics['mAP']:.2f}" in printed
    assert not (requeued / "checkpoints").exists()
    record = json.loads((requeued / "metrics.json").read_text())
    assert record["step"] == STEPS and record["mAP"] == pytest.approx(metrics["mAP"])


def test_max_steps_holds_across_a_resume(finished, tmp_path, synthetic_cache):
    # step 2's checkpoint, as left by a run with max_steps=2 killed before its final validation
    run, _ = finished
    state = load_checkpoint(run / "checkpoints" / "step_00000002.pt")
    assert state["finished"] is False and state["metrics"] is None
    folder = tmp_path / "stopped"
    save_checkpoint(state, folder / "checkpoints" / "step_00000002.pt")
    metrics = train(_compose(synthetic_cache, folder, f"resume={folder / 'checkpoints'}", "trainer.max_steps=2",
                             "resume_allow_changes=[trainer.max_steps]"))
    final = load_checkpoint(find_latest(folder / "checkpoints"))
    # scored, not trained: no third optimizer step
    assert final["step"] == 2 and final["finished"] is True and "mAP" in metrics
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {2}


def _plain(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+exp=baseline_synthetic", "paths.output_dir=/runs/a",
                                                      "paths.data_root=/mnt/a/data", "paths.cache_root=/mnt/a/cache",
                                                      *overrides])
    return to_plain(cfg)


@pytest.mark.parametrize(
    "overrides,world_size,expected",
    [
        # may change on resume
        (("trainer.log_every=1", "trainer.tensorboard=false", "trainer.num_workers=0", "trainer.device=cpu",
          "trainer.val_batch_size=8", "trainer.keep_last=9", "trainer.ckpt_every_steps=5", "trainer.nan_policy=skip",
          "trainer.val_every=3", "trainer.dist_timeout_s=60", "resume=auto"), 1, set()),
        # another machine: other roots, the same data under them
        (("paths.data_root=/scratch/data", "paths.cache_root=/scratch/cache", "paths.output_dir=/other/b"), 1, set()),
        # 2 processes equal 1 process accumulating 2 micro-batches (the sampler's contract)
        (("optim.accumulate=1",), 2, set()),
        # what is trained
        (("optim.lr=0.002",), 1, {"optim.lr"}),
        (("seed=1",), 1, {"seed"}),
        (("trainer.batch_size=16",), 1, {"trainer.batch_size"}),
        (("trainer.max_steps=48",), 1, {"trainer.max_steps"}),
        (("schedule.epochs=3", "trainer.train_max_instances=16"), 1,
         {"schedule.epochs", "trainer.train_max_instances"}),
        (("data.dataset.preset=tiny",), 1, {"data.dataset.preset"}),
        (("optim.accumulate=2",), 2, {ACCUMULATION_KEY}),
    ],
)
def test_identity_ignores_exactly_the_keys_that_may_change(overrides, world_size, expected):
    reference = run_identity(_plain("optim.accumulate=2"), 1)
    other = run_identity(_plain("optim.accumulate=2", *overrides), world_size)
    assert set(identity_differences(reference, other)) == expected


def test_the_keys_that_may_change_exist_in_the_config():
    keys = _plain()
    for key in MAY_CHANGE_ON_RESUME:
        node = keys
        for part in key.split("."):
            assert part in node, f"MAY_CHANGE_ON_RESUME names {key}, which the config does not have"
            node = node[part]


def test_allowed_changes_must_name_config_keys(finished, tmp_path, synthetic_cache):
    run, _ = finished
    with pytest.raises(ResumeError, match=r"resume_allow_changes: \['optim\.lrr'\] name no config key"):
        train(_compose(synthetic_cache, tmp_path / "x", f"resume={run / 'checkpoints'}",
                       "resume_allow_changes=[optim.lrr]"))
    with pytest.raises(ResumeError, match="applies to an explicit resume"):
        train(_compose(synthetic_cache, tmp_path / "y", "resume=auto", "resume_allow_changes=[optim.lr]"))
