"""A few real training steps of one method: the ``Trainer`` of ``tools/train.py``, its model in DDP.

The engine wraps the model in ``DistributedDataParallel`` only when ``WORLD_SIZE > 1``; here a
process group of one rank (NCCL on CUDA, gloo on CPU) runs the same wrapper on one device, so
parameter broadcast, gradient buckets and unused-parameter detection are exercised for every
method. The steps run with the experiment's own autocast setting (``trainer.amp``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidpose.benchmarks._gpu.context import Context, Outcome, finite, sync
from vidpose.benchmarks._gpu.experiments import Method, experiment_config
from vidpose.engine.logging import RunLogger

TRAIN_OVERRIDES = (
    "trainer.batch_size=2",
    "trainer.num_workers=0",
    "trainer.tensorboard=false",
    "trainer.log_every=1",
    "trainer.val_max_instances=2",
)
MAX_WARMUP_STEPS = 8


class ScalarRecorder(RunLogger):
    """The trainer's logger, TensorBoard off, keeping every step's scalars (``log_every=1``)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir, enabled=False)
        self.steps: list[dict[str, float]] = []

    def scalars(self, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
        """Record one step's means (the trainer's loss terms, ``lr``, ``data_wait_fraction``)."""
        if prefix == "train/":
            self.steps.append({k: float(v) for k, v in values.items()})

    def loss_terms(self) -> list[dict[str, float]]:
        """Per step: the loss and its parts (``lr`` and the data-wait share left out)."""
        skipped = ("lr", "data_wait_fraction")
        return [{k: v for k, v in s.items() if k not in skipped} for s in self.steps]


@contextlib.contextmanager
def world_of_one(device: torch.device, store: Path) -> Iterator[str]:
    """A process group of one rank (NCCL on CUDA, gloo on CPU) for the block; yields the backend."""
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, store=dist.FileStore(str(store), 1), rank=0, world_size=1,
        device_id=device if device.type == "cuda" else None,
    )
    try:
        yield backend
    finally:
        dist.destroy_process_group()


@dataclass
class TrainingRun:
    """What a training check saw: config, trainer after its steps, parameters before, timing."""

    cfg: Any
    trainer: Any
    recorder: ScalarRecorder
    before: dict[str, torch.Tensor]
    backend: str
    step_s: float = math.nan
    step_peak_bytes: float = math.nan


def train_steps(ctx: Context, method: Method, amp: str) -> Outcome:
    """Warm-up, then timed steps of the method through the real ``Trainer`` with ``amp``."""
    from torch.nn.parallel import DistributedDataParallel

    from vidpose.engine.distributed import init_distributed
    from vidpose.engine.trainer import Trainer, seed_everything

    run_dir = ctx.run_dir(f"train_{method.name}_{amp}")
    cfg = experiment_config(method, ctx.quick, [
        *TRAIN_OVERRIDES, f"trainer.amp={amp}", f"trainer.device={ctx.device.type}",
        f"paths.output_dir={run_dir}",
    ])
    with world_of_one(ctx.device, run_dir / "store") as backend:
        info = init_distributed(ctx.device.type)
        seed_everything(int(cfg.seed))
        trainer = Trainer(cfg, info, run_dir)
        device_ids = [info.device.index] if ctx.cuda else None
        trainer.ddp_model = DistributedDataParallel(trainer.model, device_ids=device_ids)
        trainer.logger = ScalarRecorder(run_dir / "tb")
        before = {
            n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad
        }
        run = TrainingRun(cfg, trainer, trainer.logger, before, backend)
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats(info.device)
        # lazy CUDA init, kernel selection and allocator growth stay out of the timing
        _warm_up(run)
        run.step_s, run.step_peak_bytes = _timed_steps(trainer, 1 if ctx.quick else 2)
    return _verdict(ctx, run)


def _parameters_moved(run: TrainingRun) -> bool:
    named = run.trainer.model.named_parameters()
    return any(not torch.equal(run.before[n], p.detach()) for n, p in named if n in run.before)


def _warm_up(run: TrainingRun) -> None:
    """Train until an optimizer step moved a parameter (fp16 drops steps that overflow)."""
    from vidpose.benchmarks.train import train_until

    for _ in range(MAX_WARMUP_STEPS):
        train_until(run.trainer, run.trainer.step + 1)
        if _parameters_moved(run):
            return


def _timed_steps(trainer: Any, steps: int) -> tuple[float, float]:
    """Seconds per optimizer step and the steps' peak memory growth in bytes (as ``models``)."""
    from vidpose.benchmarks.models import PeakMemory
    from vidpose.benchmarks.train import train_until

    memory = PeakMemory(trainer.device.type)
    with memory.step():
        tic = time.perf_counter()
        train_until(trainer, trainer.step + steps)
        sync(trainer.device)
        seconds = time.perf_counter() - tic
    return seconds / steps, memory.peak


def _changed_by_module(run: TrainingRun) -> dict[str, tuple[int, int]]:
    """``{top-level module: (changed, trainable)}`` parameter tensors after training."""
    counts: dict[str, list[int]] = {}
    for name, param in run.trainer.model.named_parameters():
        if name in run.before:
            entry = counts.setdefault(name.split(".")[0], [0, 0])
            entry[0] += int(not torch.equal(run.before[name], param.detach()))
            entry[1] += 1
    return {k: (changed, total) for k, (changed, total) in counts.items()}


def _numbers(
    ctx: Context, run: TrainingRun, changed: Mapping[str, tuple[int, int]]
) -> dict[str, Any]:
    """The report's numbers: sizes, precision, losses, changed tensors, step time and memory."""
    trainer, model = run.trainer, run.trainer.model
    amp = trainer.amp_dtype
    numbers = {
        "experiment": str(run.cfg.exp_name),
        "input": "x".join(str(v) for v in run.cfg.data.input_size),
        "T": getattr(model, "num_frames", getattr(model, "window", 1)),
        "batch": int(run.cfg.trainer.batch_size),
        "amp": str(amp).removeprefix("torch.") if amp is not None else "fp32",
        "ddp": f"{run.backend}, world of 1",
        "steps": len(run.recorder.steps),
        "loss": [round(s["loss"], 6) for s in run.recorder.steps],
        "changed_tensors": {k: f"{c}/{n}" for k, (c, n) in changed.items()},
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "trainable_M": round(sum(p.numel() for p in run.before.values()) / 1e6, 2),
        "step_s": run.step_s,
        "step_peak_mem_MB": run.step_peak_bytes / 2**20,
    }
    if ctx.cuda:
        numbers["max_allocated_MB"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
    if trainer.scaler.is_enabled():
        numbers["loss_scale"] = trainer.scaler.get_scale()
    return numbers


def _verdict(ctx: Context, run: TrainingRun) -> Outcome:
    """PASS: finite losses and weights, every module changed, finite fp16 scale, bf16 by default."""
    changed = _changed_by_module(run)
    numbers = _numbers(ctx, run, changed)
    losses = run.recorder.loss_terms()
    problems = []
    if not losses or not all(finite(list(s.values())) for s in losses):
        problems.append("a loss term is not finite (or no step was logged)")
    if not all(bool(torch.isfinite(p).all()) for p in run.trainer.model.parameters()):
        problems.append("a parameter is not finite")
    unchanged = sorted(k for k, (c, _) in changed.items() if c == 0)
    if unchanged:
        problems.append(f"no trainable parameter of {unchanged} changed")
    if "loss_scale" in numbers and not 0 < numbers["loss_scale"] < math.inf:
        problems.append(f"the fp16 loss scale is {numbers['loss_scale']}")
    if ctx.cuda and str(run.cfg.trainer.amp) == "auto" and numbers["amp"] != "bfloat16":
        problems.append(f"trainer.amp=auto on CUDA gave {numbers['amp']}, not bfloat16")
    return Outcome(not problems, numbers, "; ".join(problems))
