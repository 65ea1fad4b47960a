"""What clusters do to long runs: SIGKILL (also inside a checkpoint write), preemption signals,
non-finite losses and gradients, and a DDP rank that fails or hangs.

Faults come from the test-only plugin ``tests/plugin_pkg/vidpose_fault_plugin`` (loaded with
``plugins=[vidpose_fault_plugin]``), so no library code knows about them. Training runs as
``tools/train.py`` subprocesses on the tiny synthetic set (CPU, fixed seeds); an interrupted
and resumed run must end with the uninterrupted run's weights, bitwise.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint
from vidpose.engine.trainer import PREEMPTED_EXIT_CODE, NonFiniteError

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugin_pkg"
# 32 people in batches of 4: 8 steps per epoch, 2 epochs, a checkpoint after every step
TINY = (
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=32",
    "trainer.num_workers=0",
    "trainer.tensorboard=false",
    "trainer.batch_size=4",
    "trainer.device=cpu",
    "trainer.ckpt_every_steps=1",
    "trainer.keep_last=3",
    "trainer.val_every=2",
    "schedule.epochs=2",
    "schedule.warmup_iters=1",
    "codec.flip_test=false",
    "plugins=[vidpose_fault_plugin]",
)
TOTAL_STEPS = 16


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPOSE_FAULT_")}
    path = os.pathsep.join([str(ROOT), str(PLUGINS), env.get("PYTHONPATH", "")])
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **extra}


def _command(run_dir: Path, cache: Path, *overrides: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "tools" / "train.py"), "+exp=baseline_synthetic", *TINY,
        f"paths.cache_root={cache}", f"hydra.run.dir={run_dir}", *overrides,
    ]


def _run(run_dir: Path, cache: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(run_dir, cache, *overrides), cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=300
    )


class _Paused:
    """A training subprocess stopped at a known point by the fault plugin (the marker file appears)."""

    def __init__(self, run_dir: Path, cache: Path, *overrides: str, **env: str) -> None:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        self.marker = run_dir.parent / f"{run_dir.name}.marker"
        self.marker.unlink(missing_ok=True)
        # output goes to a file: a full pipe would block the child before it reaches the fault
        self.log = run_dir.parent / f"{run_dir.name}.{time.monotonic_ns()}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                _command(run_dir, cache, *overrides), cwd=ROOT, env=_env(VIDPOSE_FAULT_MARKER=str(self.marker), **env),
                stdout=out, stderr=subprocess.STDOUT,
            )

    def wait_for_marker(self, timeout: float = 240.0) -> str:
        """The marker's content once it exists; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"training ended (exit {self.proc.returncode}) before the fault point:\n"
                            f"{self.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("the fault point was not reached in time")
            time.sleep(0.05)
        time.sleep(0.05)  # the marker is written just before the pause begins
        return self.marker.read_text()

    def send(self, sig: int, timeout: float = 120.0) -> tuple[int, str]:
        """Deliver ``sig`` and wait; returns the exit code and the output."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.log.read_text()


def _final_model(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(find_latest(run_dir / "checkpoints"))
    assert state["step"] == TOTAL_STEPS and state["epoch"] == 2
    return state["model"]


def _assert_bitwise_equal(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, synthetic_cache) -> dict[str, torch.Tensor]:
    """Final weights of one uninterrupted run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    done = _run(run_dir, synthetic_cache)
    assert done.returncode == 0, done.stderr[-4000:]
    return _final_model(run_dir)


# --- SIGKILL -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_anywhere_leaves_a_loadable_checkpoint_and_resume_auto_ends_bitwise_equal(
    tmp_path, synthetic_cache, reference
):
    run_dir = tmp_path / "exp" / "run"
    ckpts = run_dir / "checkpoints"

    # 1. killed in the middle of the training loop, five steps in
    paused = _Paused(run_dir, synthetic_cache, VIDPOSE_FAULT_PAUSE_MICRO="5")
    assert paused.wait_for_marker() == "5"
    assert paused.send(signal.SIGKILL)[0] == -signal.SIGKILL
    assert load_checkpoint(find_latest(ckpts))["step"] == 5

    # 2. resumed, then killed with half of the third new checkpoint (step 8) in its temporary file
    paused = _Paused(run_dir, synthetic_cache, "resume=auto", VIDPOSE_FAULT_CKPT="tmp:3")
    assert paused.wait_for_marker() == "tmp:3"
    assert paused.send(signal.SIGKILL)[0] == -signal.SIGKILL
    assert [p.name for p in ckpts.glob(".step_00000008.pt.*.tmp")], "the kill did not land inside the write"
    assert not (ckpts / "step_00000008.pt").exists()
    assert load_checkpoint(find_latest(ckpts))["step"] == 7

    # 3. a checkpoint is one file holding its own checksum: there is no later write (a sidecar)
    # that a kill could separate from it. Resumed at 7 in the same folder, the half-written
    # temporary file of kill 2 is cleaned up and the run ends as an uninterrupted one
    done = _run(run_dir, synthetic_cache, "resume=auto")
    assert done.returncode == 0, done.stderr[-4000:]
    assert "removed 1 partial checkpoint writes of an interrupted run: ['.step_00000008.pt." in done.stderr
    assert not list(ckpts.glob(".*.tmp")) and not list(ckpts.glob("*.sha256"))
    assert re.search(r"resuming from \S*step_00000007\.pt", done.stderr)
    _assert_bitwise_equal(reference, _final_model(run_dir))


def test_corrupt_newest_checkpoint_is_skipped_by_resume(tmp_path, compose_exp):
    # test_checkpoint.py covers find_latest itself; this is the same fallback as resume=<dir> sees it
    common = [o for o in TINY if not o.startswith(("plugins", "schedule.epochs"))] + ["schedule.epochs=1"]
    train(compose_exp("baseline_synthetic", *common, "trainer.max_steps=3", out=tmp_path / "first"))
    ckpts = tmp_path / "first" / "checkpoints"
    newest = ckpts / "step_00000003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, sidecar intact
    train(compose_exp("baseline_synthetic", *common, "trainer.max_steps=4", f"resume={ckpts}",
                      "resume_allow_changes=[trainer.max_steps]", out=tmp_path / "second"))
    log = (tmp_path / "second" / "train.log").read_text()
    assert re.search(r"skipping checkpoint: checkpoint \S*step_00000003\.pt does not match its checksum", log)
    assert re.search(r"resuming from \S*step_00000002\.pt", log)
    assert load_checkpoint(find_latest(tmp_path / "second" / "checkpoints"))["step"] == 4


# --- preemption --------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_and_sigint_finish_the_step_checkpoint_and_exit_75(tmp_path, synthetic_cache, reference):
    run_dir = tmp_path / "exp" / "run"
    ckpts = run_dir / "checkpoints"
    # the signal arrives while step 3 is about to run; it is finished, so the checkpoint is step 4
    paused = _Paused(run_dir, synthetic_cache, VIDPOSE_FAULT_PAUSE_MICRO="3", VIDPOSE_FAULT_PAUSE_S="120")
    assert paused.wait_for_marker() == "3"
    code, err = paused.send(signal.SIGTERM)
    assert code == PREEMPTED_EXIT_CODE == 75, err[-4000:]
    assert "stopped by signal 15 after step 4; checkpoint written" in err
    latest = load_checkpoint(find_latest(ckpts))
    assert (latest["step"], latest["micro_in_epoch"]) == (4, 4)
    assert not (run_dir / "metrics.json").exists()  # a preempted run reports nothing final

    # resumed at step 4; SIGINT (Ctrl-C) during step 4 + 6 = 10, in the second epoch
    paused = _Paused(
        run_dir, synthetic_cache, "resume=auto", VIDPOSE_FAULT_PAUSE_MICRO="6", VIDPOSE_FAULT_PAUSE_S="120"
    )
    assert paused.wait_for_marker() == "10"
    code, err = paused.send(signal.SIGINT)
    assert code == 75, err[-4000:]
    latest = load_checkpoint(find_latest(ckpts))
    assert (latest["step"], latest["epoch"], latest["micro_in_epoch"]) == (11, 1, 3)

    done = _run(run_dir, synthetic_cache, "resume=auto")
    assert done.returncode == 0, done.stderr[-4000:]
    _assert_bitwise_equal(reference, _final_model(run_dir))


# --- non-finite losses and gradients -----------------------------------------------------------


@pytest.fixture
def fault_run(compose_exp, tmp_path, monkeypatch):
    """fault_run(fault, step, *overrides) trains one epoch (8 steps) in-process with a fault injected."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    base = [o for o in TINY if not o.startswith("schedule.epochs")] + ["schedule.epochs=1"]

    def _run_fault(fault: str, step: int, *overrides: str) -> dict:
        cfg = compose_exp(
            "baseline_synthetic", *base, "head.name=fault_deconv", f"+head.fault={fault}", f"+head.fault_step={step}",
            *overrides,
        )
        return train(cfg)

    return _run_fault


def _all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


def _checkpoints(run_dir: Path) -> dict[str, dict]:
    return {p.name: load_checkpoint(p) for p in sorted((run_dir / "checkpoints").glob("*.pt"))}


@pytest.mark.parametrize(
    "fault,message",
    [
        ("loss", r"non-finite loss at step 3: terms \['loss', 'heatmap'\] \(trainer\.nan_policy=stop\)"),
        (
            "grad",
            r"non-finite gradient at step 3 in 1 parameters: \['head\.decoder\.final_layer\.weight'\] "
            r"\(trainer\.nan_policy=stop\)",
        ),
        # NaN activations also poison BatchNorm running statistics, which the message names
        ("features", r"non-finite loss at step 3: terms \['loss', 'heatmap'\]; non-finite model tensors: "
                     r"\['head\.decoder\.deconv_layers\.1\.running_mean'"),
    ],
)
def test_nan_policy_stop_names_the_term_or_parameters_at_the_step(fault_run, tmp_path, fault, message):
    with pytest.raises(NonFiniteError, match=message):
        fault_run(fault, 3, "trainer.nan_policy=stop")
    written = _checkpoints(tmp_path / "run")
    # steps 1-3 were good and written; nothing after the fault, and nothing non-finite
    assert sorted(written) == ["step_00000001.pt", "step_00000002.pt", "step_00000003.pt"]
    assert all(_all_finite(state["model"]) for state in written.values())


@pytest.mark.parametrize("fault", ["loss", "grad", "features"])
def test_nan_policy_skip_drops_exactly_that_step_and_keeps_checkpoints_finite(fault_run, tmp_path, fault):
    metrics = fault_run(fault, 3, "trainer.nan_policy=skip")
    assert "mAP" in metrics
    log = (tmp_path / "run" / "train.log").read_text()
    assert "at step 3" in log and "step 3 skipped (1 skipped so far)" in log
    written = _checkpoints(tmp_path / "run")
    assert {"best.pt", "step_00000008.pt"} <= written.keys()
    for name, state in written.items():
        assert _all_finite(state["model"]), name
    final = written["step_00000008.pt"]
    assert final["step"] == 8
    # Adam ran 7 of the 8 steps: the skipped one never reached the optimizer
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {7}
    # 8 training forwards, but the skipped step's BatchNorm update was rolled back
    tracked = [v for k, v in final["model"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == 7 for v in tracked)


def test_too_many_skipped_steps_stop(fault_run):
    expected = r"more than trainer\.max_skipped_steps=0 non-finite steps; stopping at step 2$"
    with pytest.raises(NonFiniteError, match=expected):
        fault_run("loss", 2, "trainer.nan_policy=skip", "trainer.max_skipped_steps=0")


def test_unknown_nan_policy_is_rejected_before_training(fault_run):
    with pytest.raises(ValueError, match=r"trainer\.nan_policy: expected stop or skip, got 'ignore'"):
        fault_run("none", -1, "trainer.nan_policy=ignore")


def test_fp16_overflow_lowers_the_loss_scale_instead_of_stopping(fault_run, tmp_path):
    # with a GradScaler a non-finite gradient is first taken for a loss-scale overflow
    fault_run("grad", 3, "trainer.nan_policy=stop", "trainer.amp=fp16")
    final = _checkpoints(tmp_path / "run")["step_00000008.pt"]
    assert final["scaler"]["scale"] == 65536.0 / 2
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {7}


def test_a_checkpoint_with_non_finite_weights_is_never_written(compose_exp, tmp_path):
    from vidpose.engine.distributed import DistInfo
    from vidpose.engine.trainer import Trainer

    cfg = compose_exp("baseline_synthetic", *[o for o in TINY if not o.startswith("plugins")])
    trainer = Trainer(cfg, DistInfo(), tmp_path / "run")
    with torch.no_grad():
        trainer.model.head.decoder.final_layer.bias[2] = float("inf")
    bad = r"non-finite values in 1 model tensors \['head\.decoder\.final_layer\.bias'\]"
    with pytest.raises(NonFiniteError, match=bad):
        trainer.save(is_best=True)
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


# --- DDP: a failing or hanging rank ------------------------------------------------------------


def _torchrun_with_fault(run_dir: Path, cache: Path, fault: str, timeout_s: int, *extra: str) -> tuple[int, str, float]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        *_command(run_dir, cache, "schedule.epochs=1", "head.name=fault_deconv", f"+head.fault={fault}",
                  "+head.fault_step=2", "+head.fault_rank=1", f"trainer.dist_timeout_s={timeout_s}", *extra)[1:],
    ]
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job with a {fault!r} rank hung for 240 s")
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


@pytest.mark.slow
def test_ddp_rank_raising_mid_epoch_ends_the_job_with_its_error(tmp_path, synthetic_cache):
    code, output, _ = _torchrun_with_fault(tmp_path / "run", synthetic_cache, "raise", timeout_s=600)
    assert code != 0
    assert "RuntimeError: injected fault on rank 1 at training step 2" in output
    # torchrun's summary points at the culprit; rank 0, cut off mid-collective, says what happened
    assert re.search(r"Root Cause \(first observed failure\):\n\[0\]:\n(.*\n){2}\s*rank\s*: 1", output)
    assert "rank 0 of 2 stopped" in output or "exitcode  : -15" in output
    # steps 0 and 1 finished on both ranks: the job can be resumed from there
    assert load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))["step"] == 2


@pytest.mark.slow
def test_ddp_hanging_rank_times_out_after_dist_timeout_s(tmp_path, synthetic_cache):
    code, output, elapsed = _torchrun_with_fault(tmp_path / "run", synthetic_cache, "hang", timeout_s=10)
    assert code != 0
    # the healthy rank gave up after the configured 10 s, not the default 30 minutes
    assert "Timed out waiting 10000ms" in output
    assert "rank 0 of 2 stopped: RuntimeError" in output and "trainer.dist_timeout_s=10 s" in output
    assert elapsed < 200


@pytest.mark.slow
def test_ddp_nan_on_one_rank_is_skipped_by_both_without_deadlock(tmp_path, synthetic_cache):
    # rank 1 alone sees the NaN loss; if it skipped backward, rank 0 would wait in the gradient
    # all-reduce until the timeout. Both ranks must drop the same step and go on.
    code, output, _ = _torchrun_with_fault(tmp_path / "run", synthetic_cache, "loss", 60, "trainer.nan_policy=skip")
    assert code == 0, output[-4000:]
    assert output.count("step 2 skipped (1 skipped so far)") == 2  # logged by each rank
    final = load_checkpoint(find_latest(tmp_path / "run" / "checkpoints"))
    # 32 people, 2 ranks x 4 per step: 4 steps, one of them skipped
    assert final["step"] == 4 and {int(s["step"]) for s in final["optimizer"]["state"].values()} == {3}
