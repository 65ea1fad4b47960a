"""`torchrun` with two gloo processes trains exactly like one process with the same global batch.

The sampler splits each global batch into contiguous per-rank blocks, so DDP with per-rank
batch b on 2 ranks sees the same micro-batches (and batch-norm statistics) as one process with
batch b and optim.accumulate=2. Gradients are averaged in a different order (all-reduce vs
accumulation), so parameters agree to float32 rounding: tolerance 1e-5 absolute after 4 steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose.engine import train
from vidpose.engine.checkpoint import find_latest, load_checkpoint
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluate_run import run_evaluation

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
COMMON = (
    "+exp=baseline_synthetic",
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=32",
    "trainer.num_workers=0",
    "trainer.tensorboard=false",
    "trainer.val_max_instances=7",  # odd: the two ranks evaluate uneven shards
    "trainer.batch_size=4",
    "schedule.epochs=1",
    "schedule.warmup_iters=1",
    "codec.flip_test=false",
    "trainer.device=cpu",
)


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def _torchrun(overrides: list[str], run_dir: Path) -> dict:
    """Run ``torchrun --nproc_per_node=2 tools/train.py`` (gloo on CPU); returns rank 0's metrics.json."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "tools" / "train.py"), *overrides, f"hydra.run.dir={run_dir}", "trainer.dist_timeout_s=120",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_accumulation(tmp_path, synthetic_cache):
    paths = (f"paths.cache_root={synthetic_cache}",)
    single = _compose((*COMMON, *paths, f"paths.output_dir={tmp_path / 'single'}", "optim.accumulate=2"))
    torch.set_num_threads(1)
    train(single)

    ddp_metrics = _torchrun([*COMMON, *paths], tmp_path / "ddp")

    ref = load_checkpoint(find_latest(tmp_path / "single" / "checkpoints"))
    ddp = load_checkpoint(find_latest(tmp_path / "ddp" / "checkpoints"))
    assert ref["step"] == ddp["step"] == 4  # 32 people / (4 x 2) per step
    # BN running statistics are per rank by design (DDP broadcasts rank 0's); compare the rest
    compared = [k for k in ref["model"] if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(compared) > 10
    for key in compared:
        assert torch.allclose(ref["model"][key], ddp["model"][key], atol=1e-5, rtol=0), key
    # evaluation gathered uneven shards (4 + 3 boxes) without duplicates or drops: scoring the
    # same checkpoint in one process gives the number the two ranks reported
    eval_cfg = _compose((*COMMON, *paths, f"paths.output_dir={tmp_path / 'eval'}", f"+ckpt={find_latest(tmp_path / 'ddp' / 'checkpoints')}"))
    alone = run_evaluation(eval_cfg, DistInfo(), overrides=["trainer.val_max_instances=7"])
    assert ddp_metrics["mAP"] == pytest.approx(alone["mAP"], abs=1e-9)
    assert ddp_metrics["n_frames_evaluated"] == alone["n_frames_evaluated"]



def test_a_one_process_torchrun_launch_still_runs_a_process_group(tmp_path):
    # torchrun --nproc_per_node=1 (one GPU) must take the multi-GPU path: process group + DDP
    script = tmp_path / "probe.py"
    script.write_text(
        "import torch.distributed as dist\n"
        "from vidpose.engine.distributed import cleanup, init_distributed\n"
        "info = init_distributed('cpu')\n"
        "print(info.distributed, dist.is_initialized(), dist.get_world_size() if dist.is_initialized() else 0)\n"
        "cleanup()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(script)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK")}
    plain = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert plain.stdout.split() == ["False", "False", "0"], plain.stderr[-2000:]
