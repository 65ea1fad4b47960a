"""The reports of ``tools/gpu_check.py``: the machine and every verdict, as JSON and markdown."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

import vidpose

if TYPE_CHECKING:
    from vidpose.benchmarks.gpu_check import Result

ROOT = Path(vidpose.__file__).resolve().parents[1]
STATUSES = ("PASS", "FAIL", "SKIPPED")
TRAIN_COLUMNS = (
    "experiment", "input", "T", "batch", "amp", "step_s", "step_peak_mem_MB", "max_allocated_MB",
)


def _first_line(command: Sequence[str]) -> str | None:
    """First line of a command's output, or None when it cannot run or fails."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=20, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[dict[str, Any]]:
    """Every visible GPU: name, compute capability and memory."""
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append({"name": props.name, "capability": f"{props.major}.{props.minor}",
                     "memory_GiB": round(props.total_memory / 2**30, 1)})
    return gpus


def _nccl() -> str | None:
    """NCCL's version as ``major.minor.patch``, None where torch has none."""
    try:
        version = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def environment(device: torch.device) -> dict[str, Any]:
    """Device, driver and library versions, CPU, and the vidpose commit the checks ran."""
    import torchvision

    cuda = torch.cuda.is_available()
    driver = _first_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({_cpu_model()})"
    return {
        "device": name,
        "gpus": _gpus() if cuda else [],
        "driver": driver or ("unknown (nvidia-smi failed)" if cuda else "none (no CUDA device)"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "nccl": _nccl() if cuda else None,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores": cores,
        "vidpose": vidpose.__version__,
        "commit": _first_line(["git", "describe", "--always", "--dirty"]),
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, tuples lists, other objects their str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _rounded(value: Any) -> Any:
    """The value with every float, nested ones too, at 4 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, Mapping):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    """A number with 4 significant digits, a string as is, anything else as compact JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(_plain(_rounded(value)), separators=(", ", ": "))


def _cell(text: str) -> str:
    """Text that stays inside one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def counts(results: Sequence[Result]) -> dict[str, int]:
    """How many checks passed, failed and were skipped."""
    return {s: sum(r.status == s for r in results) for s in STATUSES}


def report_json(env: Mapping[str, Any], results: Sequence[Result], args: Mapping[str, Any],
                wall_s: float) -> dict[str, Any]:
    """The JSON report: verdict, counts, wall time, arguments, environment and every check."""
    checks = [
        {"name": r.name, "status": r.status, "criterion": r.criterion, "seconds": r.seconds,
         "budget_s": r.budget_s, "over_budget": r.over_budget, "reason": r.reason,
         "numbers": r.numbers, "detail": r.detail}
        for r in results
    ]
    return _plain({
        "ok": not any(r.status == "FAIL" for r in results), "counts": counts(results),
        "wall_s": wall_s, "arguments": dict(args), "environment": dict(env), "checks": checks,
    })


def _command_line(args: Mapping[str, Any]) -> str:
    """The command that produced the report."""
    flags = [f"--device {args.get('device')}"] + (["--quick"] if args.get("quick") else [])
    if args.get("only"):
        flags.append(f"--only '{args['only']}'")
    return "python tools/gpu_check.py " + " ".join(flags)


def _machine_table(env: Mapping[str, Any]) -> list[str]:
    """Markdown rows naming the device, driver, library versions, CPU and commit."""
    gpus = _fmt(env["gpus"]) if env["gpus"] else "none"
    versions = f"{env['torch']} / {env['cuda']} / {env['cudnn']} / {env['nccl']}"
    return [
        "| machine | |",
        "| --- | --- |",
        f"| device | {env['device']}; GPUs: {gpus} |",
        f"| driver | {env['driver']} |",
        f"| torch / CUDA / cuDNN / NCCL | {versions} |",
        f"| torchvision, Python | {env['torchvision']}, {env['python']} ({env['platform']}) |",
        f"| CPU | {env['cpu']}, {env['cpu_cores']} cores |",
        f"| vidpose | {env['vidpose']} ({env['commit']}) |",
    ]


def _check_rows(results: Sequence[Result]) -> list[str]:
    """One markdown row per check: status, name, seconds against the budget, numbers, reason."""
    rows = ["| status | check | seconds (budget) | numbers | reason |", "|" + " --- |" * 5]
    for r in results:
        numbers = "; ".join(f"{k}={_fmt(v)}" for k, v in r.numbers.items())
        late = " **over budget**" if r.over_budget else ""
        time_cell = f"{r.seconds:.1f} ({r.budget_s:g}){late}"
        cells = [r.status, f"`{r.name}`", time_cell, _cell(numbers), _cell(r.reason)]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _training_rows(results: Sequence[Result]) -> list[str]:
    """Markdown table of the training checks' step time and memory, one row per method."""
    trained = [r for r in results if r.name.startswith("train/") and r.numbers]
    if not trained:
        return []
    rows = ["", "## Training step per method", "", "| check | " + " | ".join(TRAIN_COLUMNS) + " |",
            "| --- |" + " --- |" * len(TRAIN_COLUMNS)]
    for r in trained:
        cells = [f"`{r.name}`", *(_fmt(r.numbers.get(c, "")) for c in TRAIN_COLUMNS)]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def report_markdown(env: Mapping[str, Any], results: Sequence[Result], args: Mapping[str, Any],
                    wall_s: float) -> str:
    """The markdown report: verdict, machine, checks, skipped reasons, training steps, criteria."""
    n = counts(results)
    verdict = "FAIL" if n["FAIL"] else "PASS"
    tally = f"{n['PASS']} passed, {n['FAIL']} failed, {n['SKIPPED']} skipped"
    lines = [
        f"# vidpose GPU check: {verdict} ({tally})",
        "",
        f"`{_command_line(args)}` on {env['device']}, {env['time']}; wall {wall_s:.1f} s.",
        "",
        *_machine_table(env),
        "",
        "## Checks",
        "",
        "Budgets are for the full run on one GPU; speed goals are judged on CUDA without --quick.",
        "",
        *_check_rows(results),
    ]
    skipped = [f"- `{r.name}`: {r.reason}" for r in results if r.status == "SKIPPED"]
    if skipped:
        lines += ["", "## Skipped", "", *skipped]
    lines += _training_rows(results)
    lines += ["", "## Criteria", "", *(f"- `{r.name}`: {r.criterion}" for r in results)]
    return "\n".join(lines) + "\n"


def write_reports(out: Path, env: Mapping[str, Any], results: Sequence[Result],
                  args: Mapping[str, Any], wall_s: float) -> tuple[Path, Path]:
    """Write ``gpu_check.json`` and ``gpu_check.md`` into ``out``; returns their paths."""
    json_path, md_path = out / "gpu_check.json", out / "gpu_check.md"
    json_path.write_text(json.dumps(report_json(env, results, args, wall_s), indent=2) + "\n")
    md_path.write_text(report_markdown(env, results, args, wall_s))
    return json_path, md_path
