"""``torchrun`` of ``tools/train.py`` on every visible GPU: train, evaluate, resume, end equal."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vidpose.benchmarks._gpu.context import Context, Outcome, finite
from vidpose.benchmarks.train import CONFIGS

ROOT = CONFIGS.parent
# a small ViT on 64 x 48 crops of the tiny synthetic set (as tests/test_engine/test_ddp.py); a
# checkpoint after every step, so the second launch can resume from step 1
TINY_EXPERIMENT = (
    "+exp=baseline_synthetic",
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.tensorboard=false",
    "trainer.batch_size=4",
    "schedule.epochs=1",
    "schedule.warmup_iters=1",
    "trainer.max_steps=2",
    "trainer.ckpt_every_steps=1",
    "trainer.keep_last=3",
    "trainer.dist_timeout_s=120",
)
TORCHRUN_TIMEOUT_S = 180


def _torchrun(nproc: int, overrides: Sequence[str], run_dir: Path) -> dict[str, Any]:
    """``tools/train.py`` on ``nproc`` processes; rank 0's ``metrics.json`` (raises on failure)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        str(ROOT / "tools" / "train.py"), *overrides, f"hydra.run.dir={run_dir}",
    ]
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TORCHRUN_TIMEOUT_S
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"torchrun exited with {done.returncode}:\n{tail}")
    return json.loads((run_dir / "metrics.json").read_text())


def _checkpoint_at(directory: Path, step: int) -> Path:
    """The checkpoint of ``step`` in a run's checkpoint folder."""
    from vidpose.engine.checkpoint import load_checkpoint

    for path in sorted(directory.glob("*.pt")):
        if int(load_checkpoint(path)["step"]) == step:
            return path
    raise FileNotFoundError(f"no checkpoint of step {step} in {directory}")


def _final_weights_difference(first: Path, resumed: Path) -> float:
    """Largest absolute difference between the two runs' last checkpointed weights."""
    from vidpose.engine.checkpoint import find_latest, load_checkpoint

    want = load_checkpoint(find_latest(first / "checkpoints"))["model"]
    got = load_checkpoint(find_latest(resumed / "checkpoints"))["model"]
    return max(float((got[k].double() - want[k].double()).abs().max()) for k in want)


def torchrun_train_and_resume(ctx: Context) -> Outcome:
    """The visible GPUs train 2 steps and evaluate; a relaunch resumes from step 1, ends equal."""
    nproc = torch.cuda.device_count() if ctx.cuda else 1
    overrides = [
        *TINY_EXPERIMENT, f"trainer.device={ctx.device.type}",
        f"trainer.num_workers={0 if ctx.quick else 2}",
        # odd, so the ranks evaluate uneven shards, and at least two boxes per rank
        f"trainer.val_max_instances={max(7, 2 * nproc + 1)}",
    ]
    first, resumed = ctx.run_dir("ddp_first"), ctx.run_dir("ddp_resumed")
    first_metrics = _torchrun(nproc, overrides, first)
    start = _checkpoint_at(first / "checkpoints", 1)
    resumed_metrics = _torchrun(nproc, [*overrides, f"resume={start}"], resumed)
    difference = _final_weights_difference(first, resumed)
    # CPU kernels are deterministic (README: bitwise resume); CUDA ones may sum in another order
    limit = 1e-4 if ctx.cuda else 0.0
    backend = "nccl" if ctx.cuda else "gloo"
    numbers = {
        "nproc_per_node": nproc,
        "process_group": backend if nproc > 1 else "none (the engine needs WORLD_SIZE > 1)",
        "steps": [first_metrics.get("step"), resumed_metrics.get("step")],
        "mAP": [first_metrics.get("mAP"), resumed_metrics.get("mAP")],
        "resumed_vs_uninterrupted_max_weight_diff": difference,
    }
    problems = []
    if first_metrics.get("step") != 2 or resumed_metrics.get("step") != 2:
        problems.append("a run did not end at step 2")
    if not finite([first_metrics.get("mAP", math.nan), resumed_metrics.get("mAP", math.nan)]):
        problems.append("an evaluation gave no finite mAP")
    if not difference <= limit:
        problems.append(f"resumed weights differ from the uninterrupted run's by {difference:.3g}")
    return Outcome(not problems, numbers, "; ".join(problems))
