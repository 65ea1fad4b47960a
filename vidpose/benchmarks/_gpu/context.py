"""What a GPU check receives and returns, and the rules every check shares."""

from __future__ import annotations

import gc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Context:
    """Where and how the checks run: device, workload size, scratch folder, start time."""

    device: torch.device
    quick: bool
    work_dir: Path
    started: float

    @property
    def cuda(self) -> bool:
        """Whether the checks run on a GPU."""
        return self.device.type == "cuda"

    @property
    def judges_goals(self) -> bool:
        """Speed goals are stated for GPUs at paper sizes: judged on CUDA without ``--quick``."""
        return self.cuda and not self.quick

    def run_dir(self, name: str) -> Path:
        """A fresh folder for one check's runs."""
        path = self.work_dir / name.replace("/", "_")
        path.mkdir(parents=True, exist_ok=False)
        return path


@dataclass(frozen=True)
class Outcome:
    """What a check found: whether its criterion holds, its numbers, and a note for the report."""

    passed: bool
    numbers: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finite(values: Sequence[float]) -> bool:
    """Whether every value is a finite number."""
    return all(math.isfinite(float(v)) for v in values)


def goal_outcome(
    ctx: Context, met: bool, numbers: dict[str, Any], measured: Sequence[float]
) -> Outcome:
    """PASS if a speed goal is met on a judging run, elsewhere if the measurements are finite."""
    if ctx.judges_goals:
        return Outcome(met, numbers, "" if met else "goal not met")
    note = "measured only: speed goals are judged on CUDA without --quick"
    return Outcome(finite(measured), {**numbers, "goal_met": met}, note)


def release_memory(ctx: Context) -> None:
    """Drop what the last check left: Python garbage and the CUDA allocator's cached blocks."""
    gc.collect()
    if ctx.cuda:
        torch.cuda.empty_cache()
