"""Benchmark ``train``: a short real training run of a synthetic experiment under ``torch.profiler``.

The experiment (``--exp``, default ``mtpose_synthetic``, the README's main job) is composed from
``configs/`` exactly as ``tools/train.py +exp=<name>`` would, on the synthetic set
(``--quick``: the ``tiny`` preset, batch 4), and trained by the real
:class:`~vidpose.engine.trainer.Trainer`: loader workers, device transfer, targets generated on
the device, forward, loss, backward, optimizer step. ``--warmup`` steps run first, unprofiled
(worker start-up, first-call overheads); the next ``--steps`` run under the profiler.

Rows: ``[wall]`` (wall time per step, samples/s), ``[data wait]`` (the DataLoader's
``__next__``, i.e. time the step waited for a batch), ``[stage]`` rows (the ``vidpose::``
``record_function`` ranges: targets, backbone, flow, head; their ``self_ms_per_step`` is their
total, children included), then the ``--top`` operators by self time (CPU, or CUDA when the run
is on a GPU), per step and as a share of the profiled wall time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import vidpose

DESCRIPTION = "short real training run of a synthetic exp: time per step, data wait and the top operators (torch.profiler)"

CONFIGS = Path(vidpose.__file__).resolve().parents[1] / "configs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``train`` benchmark."""
    parser.add_argument("--exp", default="mtpose_synthetic", help="experiment in configs/exp (default mtpose_synthetic)")
    parser.add_argument("--steps", type=int, default=None, help="profiled optimizer steps (default 10, quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="unprofiled steps first (default 2, quick 1)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: the exp's; quick 0)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the exp's; quick 4)")
    parser.add_argument("--top", type=int, default=15, help="operators listed (default 15)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")


def compose_config(args: argparse.Namespace, out_dir: Path) -> Any:
    """The experiment's resolved training config, writing into ``out_dir``."""
    from hydra import compose, initialize_config_dir

    steps = _steps(args)
    overrides = [
        f"+exp={args.exp}",
        f"paths.output_dir={out_dir}",
        "trainer.tensorboard=false",
        f"trainer.device={args.device}",
        f"trainer.max_steps={steps[0] + steps[1]}",
        "trainer.log_every=1000000",
    ]
    if os.environ.get("VIDPOSE_CACHE"):
        overrides.append(f"paths.cache_root={os.environ['VIDPOSE_CACHE']}")
    if args.quick:
        overrides += ["data.dataset.preset=tiny", "trainer.batch_size=4"]
    workers = args.workers if args.workers is not None else (0 if args.quick else None)
    if workers is not None:
        overrides.append(f"trainer.num_workers={workers}")
    if args.batch is not None:
        overrides.append(f"trainer.batch_size={args.batch}")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, *args.override])


def _steps(args: argparse.Namespace) -> tuple[int, int]:
    """(warm-up steps, profiled steps)."""
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    steps = args.steps if args.steps is not None else (2 if args.quick else 10)
    return int(warmup), int(steps)


def train_until(trainer: Any, step: int) -> None:
    """Run the trainer's epochs until it has made ``step`` optimizer steps (no validation)."""
    trainer.tcfg["max_steps"] = step
    while trainer.step < step:
        if trainer.train_epoch():
            trainer.epoch += 1
            trainer.micro_in_epoch = 0


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train warm-up steps, profile the next ones, tabulate wall time, data wait and top operators."""
    from torch.profiler import ProfilerActivity, profile

    from vidpose.engine.distributed import cleanup, init_distributed
    from vidpose.engine.trainer import Trainer, seed_everything

    if args.threads:
        torch.set_num_threads(int(args.threads))
    warmup, steps = _steps(args)
    with tempfile.TemporaryDirectory(prefix="vidpose_train_bench_") as tmp:
        cfg = compose_config(args, Path(tmp) / "run")
        info = init_distributed(str(cfg.trainer.device))
        try:
            seed_everything(int(cfg.seed))
            trainer = Trainer(cfg, info, Path(tmp) / "run")
            train_until(trainer, warmup)
            cuda = info.device.type == "cuda"
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with profile(activities=activities) as prof:
                start = time.perf_counter()
                train_until(trainer, warmup + steps)
                if cuda:
                    torch.cuda.synchronize()
                wall = time.perf_counter() - start
            batch = int(trainer.batch_size) * int(trainer.accumulate)
            del trainer
        finally:
            cleanup()
    return _rows(prof.key_averages(), wall, steps, batch, int(args.top), cuda, str(cfg.exp_name), str(info.device))


def _rows(events: Any, wall: float, steps: int, batch: int, top: int, cuda: bool, exp: str, device: str) -> list[dict[str, Any]]:
    """Summary rows and the top operators by self time, per step."""
    def self_us(e: Any) -> float:
        return float(e.self_device_time_total if cuda else e.self_cpu_time_total)

    wait = sum(float(e.cpu_time_total) for e in events if e.key.startswith("enumerate(DataLoader)"))
    per_step_ms = 1e3 * wall / steps
    rows = [
        {"exp": exp, "device": device, "operator": f"[wall] {steps} steps of {batch} samples ({batch * steps / wall:.3g} samples/s)",
         "calls_per_step": 1.0, "self_ms_per_step": per_step_ms, "share_of_wall": 1.0, "total_ms_per_step": per_step_ms},
        {"exp": exp, "device": device, "operator": "[data wait] DataLoader __next__", "calls_per_step": 1.0,
         "self_ms_per_step": wait / 1e3 / steps, "share_of_wall": wait / 1e6 / wall, "total_ms_per_step": wait / 1e3 / steps},
    ]
    # vidpose's own ranges (record_function in PoseModel and PoseTask): stages, by total time
    stages = sorted((e for e in events if e.key.startswith("vidpose::")), key=lambda e: -float(e.cpu_time_total))
    for e in stages:
        total = float(e.device_time_total if cuda else e.cpu_time_total)
        rows.append({
            "exp": exp, "device": device, "operator": f"[stage] {e.key}", "calls_per_step": e.count / steps,
            "self_ms_per_step": total / 1e3 / steps, "share_of_wall": total / 1e6 / wall, "total_ms_per_step": total / 1e3 / steps,
        })
    operators = [e for e in events if not e.key.startswith(("enumerate(DataLoader)", "ProfilerStep", "vidpose::"))]
    operators.sort(key=self_us, reverse=True)
    for e in operators[:top]:
        rows.append({
            "exp": exp, "device": device, "operator": e.key, "calls_per_step": e.count / steps,
            "self_ms_per_step": self_us(e) / 1e3 / steps, "share_of_wall": self_us(e) / 1e6 / wall,
            "total_ms_per_step": float(e.device_time_total if cuda else e.cpu_time_total) / 1e3 / steps,
        })
    return rows
