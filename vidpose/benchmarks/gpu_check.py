"""GPU readiness: one command, ``tools/gpu_check.py``, runs every CUDA path of vidpose in minutes.

The checks are data (:func:`checks`): a name, a function ``(Context) -> Outcome`` (the modules
of :mod:`vidpose.benchmarks._gpu`), the PASS criterion in words, a time budget in seconds for
the full run on one GPU (budgets plus start-up fit the six minutes a lent GPU allows; an
overrun is reported, not enforced) and whether the check needs CUDA. One training check per
method comes from ``configs/exp`` (every ``<method>_synthetic`` twin), so a new method is
covered without editing this file; ``registry/coverage`` fails when a registered head or
refiner has no such experiment.

Without CUDA (``--device cpu``) the CUDA-only checks are SKIPPED with the reason and the others
run the same code on the CPU; ``--quick`` shrinks every workload (CPU twins, small batches).
Speed goals are judged on CUDA without ``--quick`` only. ``tools/benchmark.py gpu_check``
prints the verdicts as a table; ``tools/gpu_check.py`` also writes the reports and sets the
exit code.
"""

from __future__ import annotations

import argparse
import fnmatch
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import torch

from vidpose.benchmarks._gpu import kernels, launch, speed
from vidpose.benchmarks._gpu.context import Context, Outcome, release_memory
from vidpose.benchmarks._gpu.experiments import method_named, methods, registry_coverage
from vidpose.benchmarks._gpu.report import environment, write_reports
from vidpose.benchmarks._gpu.training import train_steps

DESCRIPTION = "GPU readiness: every method trains, CUDA vs CPU kernels, torchrun + resume, goals"

PASS, FAIL, SKIPPED = "PASS", "FAIL", "SKIPPED"
FP16_METHOD = "mtpose"  # also trained with fp16 and the grad scaler: the README's main job
TRAIN_BUDGET_S = 25.0
TRAIN_CRITERION = (
    "finite loss terms every step and finite parameters; every top-level module with trainable "
    "parameters changed; trainer.amp={amp} ({precision}); the model in DDP (NCCL on CUDA, gloo "
    "on CPU)"
)
CRITERIA = {
    "registry/coverage": "every HEADS and REFINERS entry is trained by a <method>_synthetic "
    "experiment's check",
    "kernels/deform_conv": "torchvision DCNv2 vs the grid_sample kernel (on a GPU also vs "
    "torchvision on the CPU), output and 5 gradients at MTPose's dilations: max relative error "
    "<= 1e-9 in float64, <= 1e-4 in float32",
    "kernels/targets": "every TARGETS generator, msra and udp: CUDA maps within 1e-5 of CPU maps",
    "kernels/decode": "flip-back, merge and every refinement: CUDA and CPU heatmaps decode within "
    "1e-5 px",
    "ddp/torchrun": "torchrun --nproc_per_node=<visible GPUs> tools/train.py: 2 steps and an "
    "evaluation exit 0 with a finite mAP; resumed from its step-1 checkpoint it ends with the same "
    "weights (CPU: bitwise, CUDA: within 1e-4)",
    "perf/targets": "motion-aware targets (batch 64) within 2x writing their outputs on CUDA",
    "perf/mtpose_inference": "MTPose ViT-B + RAFT-large batched bf16 inference > "
    f"{speed.INFERENCE_GOAL_FPS:g} key frames/s on CUDA",
    "perf/data_wait": "MTPose training (batch 32) waits for the real loader <= "
    f"{speed.DATA_WAIT_GOAL:.0%} of a step on CUDA",
    "total/wall_time": f"the whole check within {speed.WALL_GOAL_S:g} s of the tool's start on one "
    "GPU",
}


@dataclass(frozen=True)
class Check:
    """One check: what runs, what PASS means, its time on one GPU, whether it needs CUDA."""

    name: str
    run: Callable[[Context], Outcome]
    criterion: str
    budget_s: float
    cuda_only: bool = False


@dataclass(frozen=True)
class Result:
    """A check's verdict with its numbers, for the reports."""

    name: str
    status: str
    criterion: str
    seconds: float
    budget_s: float
    numbers: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    detail: str = ""

    @property
    def over_budget(self) -> bool:
        """Whether the check took longer than its budget."""
        return self.seconds > self.budget_s


def _check(name: str, run: Callable[[Context], Outcome], budget_s: float,
           cuda_only: bool = False) -> Check:
    """A check whose criterion is in :data:`CRITERIA`."""
    return Check(name, run, CRITERIA[name], budget_s, cuda_only)


def _training_checks() -> list[Check]:
    """A bf16 check per method (``trainer.amp=auto``), then fp16 + grad scaler for one method."""
    auto = TRAIN_CRITERION.format(amp="auto", precision="bf16 autocast on CUDA, fp32 on CPU")
    fp16 = TRAIN_CRITERION.format(amp="fp16", precision="fp16 autocast + GradScaler")
    fp16 += "; a finite loss scale"
    listed = [
        Check(f"train/{m.name}", partial(train_steps, method=m, amp="auto"), auto, TRAIN_BUDGET_S)
        for m in methods()
    ]
    run_fp16 = partial(train_steps, method=method_named(FP16_METHOD), amp="fp16")
    return [*listed, Check(f"train/{FP16_METHOD}/fp16", run_fp16, fp16, TRAIN_BUDGET_S)]


def checks() -> list[Check]:
    """Every check in running order: fast correctness, training, DDP, speed, total time."""
    return [
        _check("registry/coverage", registry_coverage, 10),
        _check("kernels/deform_conv", kernels.deform_conv_parity, 10),
        _check("kernels/targets", kernels.targets_cuda_vs_cpu, 5, cuda_only=True),
        _check("kernels/decode", kernels.decode_cuda_vs_cpu, 5, cuda_only=True),
        *_training_checks(),
        _check("ddp/torchrun", launch.torchrun_train_and_resume, 60),
        _check("perf/targets", speed.targets_speed, 10),
        _check("perf/mtpose_inference", speed.mtpose_inference_speed, 20),
        _check("perf/data_wait", speed.data_wait_share, 40),
        _check("total/wall_time", speed.total_wall_time, speed.WALL_GOAL_S),
    ]


def select(listed: Sequence[Check], patterns: str | None) -> list[Check]:
    """The checks whose name matches one of the comma-separated names or globs (all when None)."""
    if not patterns:
        return list(listed)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in listed if any(fnmatch.fnmatchcase(c.name, p) for p in wanted)]
    if not chosen:
        names = [c.name for c in listed]
        raise ValueError(f"--only {patterns!r} matches no check; checks: {names}")
    return chosen


def run_check(check: Check, ctx: Context) -> Result:
    """Run one check: an exception is a FAIL naming it; CUDA-only without CUDA is SKIPPED."""
    if check.cuda_only and not ctx.cuda:
        reason = f"needs CUDA; this run uses --device {ctx.device.type}"
        return Result(check.name, SKIPPED, check.criterion, 0.0, check.budget_s, reason=reason)
    tic = time.perf_counter()
    try:
        outcome = check.run(ctx)
    except Exception as exc:  # noqa: BLE001 - a failing check is its verdict; the others still run
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return Result(
            check.name, FAIL, check.criterion, time.perf_counter() - tic, check.budget_s,
            reason=f"{type(exc).__name__}: {first_line}", detail=traceback.format_exc()[-4000:],
        )
    finally:
        release_memory(ctx)
    status = PASS if outcome.passed else FAIL
    reason = outcome.note or ("" if outcome.passed else "criterion not met")
    seconds = time.perf_counter() - tic
    return Result(
        check.name, status, check.criterion, seconds, check.budget_s, outcome.numbers, reason
    )


def run_checks(listed: Sequence[Check], ctx: Context,
               echo: Callable[[str], None] = print) -> list[Result]:
    """Run the checks in order, echoing one line per verdict."""
    results = []
    for check in listed:
        result = run_check(check, ctx)
        late = f" (over its {result.budget_s:g} s budget)" if result.over_budget else ""
        line = f"{result.status:7s} {result.name}  {result.seconds:.1f} s{late}  {result.reason}"
        echo(line.rstrip())
        results.append(result)
    return results


def exit_code(results: Sequence[Result]) -> int:
    """1 when any check failed, else 0."""
    return int(any(r.status == FAIL for r in results))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``tools/gpu_check.py`` and ``tools/benchmark.py gpu_check``."""
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default; an error without a GPU) or cpu (CUDA checks SKIPPED)")
    parser.add_argument("--only", default=None,
                        help="comma-separated check names or globs, e.g. 'train/*,ddp/torchrun'")


def context(args: argparse.Namespace, work_dir: Path, started: float) -> Context:
    """The run's context; ``--device cuda`` without a visible GPU is an error."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda, but no CUDA device is visible; "
                         "the CPU mode is --quick --device cpu")
    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    return Context(device, bool(args.quick), work_dir, started)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``tools/benchmark.py gpu_check``: one row per check (no report files, exit code 0)."""
    with tempfile.TemporaryDirectory(prefix="vidpose_gpu_check_") as tmp:
        ctx = context(args, Path(tmp), time.perf_counter())
        results = run_checks(select(checks(), args.only), ctx)
    return [
        {"check": r.name, "status": r.status, "seconds": r.seconds, "budget_s": r.budget_s,
         "reason": r.reason}
        for r in results
    ]


def check_and_report(args: argparse.Namespace, started: float) -> int:
    """Run the selected checks, write the reports into ``args.out``; returns the exit code."""
    out = Path(args.out or f"outputs/gpu_check/{datetime.now():%Y-%m-%d_%H-%M-%S}")
    ctx = context(args, out / "work", started)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(ctx.device)
    mode = "quick" if ctx.quick else "full"
    print(f"gpu_check on {env['device']} ({mode}); reports in {out}", flush=True)
    results = run_checks(select(checks(), args.only), ctx, partial(print, flush=True))
    json_path, md_path = write_reports(out, env, results, vars(args), time.perf_counter() - started)
    code = exit_code(results)
    print(f"{'FAIL' if code else 'PASS'}: {json_path} and {md_path}", flush=True)
    return code
