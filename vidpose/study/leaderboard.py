"""Collect run folders into a leaderboard: per method, the mean and spread over seeds.

A run folder is any folder ``tools/train.py`` wrote (``.hydra/`` or ``checkpoints/``) or one
holding ``metrics.json``. A finished run has ``metrics.json``; a run without it (still running,
killed, failed) is listed as incomplete with what is known about it, never dropped silently.
Runs are grouped by method (the run's ``exp_name``, which the study sets to the row name);
within a group the seeds are the repetitions. Every number comes from the runs' own
``metrics.json`` (and its ``provenance``), so a user's runs on real PoseTrack give the same
table as the study's.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["RunRecord", "MethodSummary", "Column", "COLUMNS", "collect_runs", "summarise", "render_markdown",
           "render_csv", "leaderboard_json", "mean_std"]


@dataclass
class RunRecord:
    """One run folder: status (``finished`` | ``incomplete`` | ``unreadable``), method, seed, metrics."""

    path: Path
    status: str
    method: str | None = None
    seed: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] | None = None
    reason: str = ""


@dataclass(frozen=True)
class Column:
    """A leaderboard column: its heading and the metric keys it reads (the first present wins)."""

    heading: str
    keys: tuple[str, ...]
    digits: int = 1


#: the columns, in order; motion bins are added per table from the keys the runs have
COLUMNS = (
    Column("mAP", ("mAP", "refined/mAP")),
    Column("degraded AP", ("degraded/mAP", "refined/degraded/mAP")),
    Column("clean AP", ("clean/mAP", "refined/clean/mAP")),
    Column("PCK@0.2", ("refined/PCK@0.2/Avg", "PCK@0.2/Avg")),
    Column("PCK@0.05", ("refined/PCK@0.05/Avg", "PCK@0.05/Avg")),
    Column("degraded PCK@0.2", ("refined/degraded/PCK@0.2/Avg", "degraded/PCK@0.2/Avg")),
    Column("Accel (px)", ("smooth/accel_error_px", "refined/accel_error_px"), 2),
    Column("params (M)", ("parameters/total_M",), 2),
    Column("trainable (M)", ("parameters/trainable_M",), 2),
    Column("step (s)", ("time/step_s",), 3),
)

_MOTION_BIN = re.compile(r"^motion/AP/bin(\d+)$")


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _hydra_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return data if isinstance(data, dict) else None


def _is_run_dir(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra" / "config.yaml").is_file() or (
        path / "checkpoints"
    ).is_dir()


def _run_dirs(root: Path) -> list[Path]:
    """``root`` itself if it is a run folder, else every run folder below it (not inside runs)."""
    if _is_run_dir(root):
        return [root]
    found: list[Path] = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found.extend(_run_dirs(child))
    return found


def _read_run(run_dir: Path) -> RunRecord:
    config = None
    try:
        config = _hydra_config(run_dir)
    except (OSError, yaml.YAMLError) as exc:
        return RunRecord(run_dir, "unreadable", reason=f".hydra/config.yaml: {exc}")
    method = None if config is None else config.get("exp_name")
    seed = None if config is None else config.get("seed")
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        steps = sorted((run_dir / "checkpoints").glob("step_*.pt")) if (run_dir / "checkpoints").is_dir() else []
        reason = "no metrics.json (running, stopped or failed)" + (f"; last checkpoint {steps[-1].name}" if steps else "")
        return RunRecord(run_dir, "incomplete", method, seed, reason=reason)
    try:
        data = _read_json(metrics_path)
    except (OSError, ValueError) as exc:
        return RunRecord(run_dir, "unreadable", method, seed, reason=f"metrics.json: {exc}")
    provenance = data.get("provenance") if isinstance(data.get("provenance"), dict) else None
    if provenance is not None:
        method = provenance.get("exp_name", method)
        seed = provenance.get("seed", seed)
    # tools/train.py writes the numbers at the top level, tools/eval.py under "metrics"
    numbers = data["metrics"] if isinstance(data.get("metrics"), dict) else data
    metrics = {k: float(v) for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if method is None:
        return RunRecord(run_dir, "unreadable", None, seed, metrics, provenance,
                         reason="no exp_name in metrics.json provenance or .hydra/config.yaml")
    return RunRecord(run_dir, "finished", str(method), None if seed is None else int(seed), metrics, provenance)


def collect_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run folder under the given folders or glob patterns, in path order (duplicates once)."""
    roots: list[Path] = []
    for item in paths:
        text = str(item)
        candidates = [Path(p) for p in sorted(glob.glob(text))] if glob.has_magic(text) else [Path(text)]
        if not candidates:
            raise FileNotFoundError(f"leaderboard: {text!r} matches no folder")
        for candidate in candidates:
            if not candidate.is_dir():
                raise FileNotFoundError(f"leaderboard: {candidate} is not a folder of runs")
            roots.append(candidate)
    seen: set[Path] = set()
    records = []
    for root in roots:
        for run_dir in _run_dirs(root):
            resolved = run_dir.resolve()
            if resolved not in seen:
                seen.add(resolved)
                records.append(_read_run(run_dir))
    return records


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for fewer than two finite values)."""
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else math.nan


@dataclass
class MethodSummary:
    """A method's finished runs and, per metric key, the values over seeds."""

    method: str
    runs: list[RunRecord]
    values: dict[str, list[float]]
    warnings: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int | None]:
        """The seeds of the finished runs."""
        return [r.seed for r in self.runs]

    def stat(self, key: str) -> tuple[float, float]:
        """Mean and sample std of a metric over the seeds (NaN when absent)."""
        return mean_std(self.values.get(key, []))

    def first_key(self, keys: Sequence[str]) -> str | None:
        """The first of ``keys`` that every run reports."""
        return next((k for k in keys if k in self.values and len(self.values[k]) == len(self.runs)), None)


def _identity(record: RunRecord) -> tuple[Any, Any]:
    provenance = record.provenance or {}
    data = provenance.get("data") or {}
    return data.get("index_digest"), json.dumps(provenance.get("boxes"), sort_keys=True)


def summarise(records: Sequence[RunRecord]) -> list[MethodSummary]:
    """Group finished runs by method (in first-seen order); warn where a method's runs disagree
    on the evaluation data or boxes, or repeat a seed."""
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.status == "finished" and record.method is not None:
            groups.setdefault(record.method, []).append(record)
    summaries = []
    for method, runs in groups.items():
        values: dict[str, list[float]] = {}
        for run in runs:
            for key, value in run.metrics.items():
                values.setdefault(key, []).append(value)
        summary = MethodSummary(method, runs, values)
        identities = {_identity(r) for r in runs}
        if len(identities) > 1:
            summary.warnings.append(f"{method}: runs evaluated on different data or boxes ({len(identities)} kinds)")
        seeds = [r.seed for r in runs]
        if len(set(seeds)) != len(seeds):
            summary.warnings.append(f"{method}: seed repeated among its runs {seeds}")
        summaries.append(summary)
    # methods scored on the same dataset split must have seen the same annotations
    digests: dict[tuple[Any, Any], set[Any]] = {}
    for summary in summaries:
        for run in summary.runs:
            data = (run.provenance or {}).get("data") or {}
            digests.setdefault((data.get("dataset"), data.get("split")), set()).add(data.get("index_digest"))
    for (dataset, split), found in digests.items():
        if len(found) > 1 and summaries:
            summaries[0].warnings.append(
                f"runs on {dataset} {split} were evaluated on {len(found)} different annotation sets; "
                "compare those rows with care"
            )
    return summaries


def motion_columns(summaries: Sequence[MethodSummary]) -> list[Column]:
    """One column per motion bin the runs report (slowest first)."""
    bins = sorted({int(m.group(1)) for s in summaries for k in s.values if (m := _MOTION_BIN.match(k))})
    return [Column(f"AP motion bin {b}", (f"motion/AP/bin{b}",)) for b in bins]


def _cell(summary: MethodSummary, column: Column) -> str:
    key = summary.first_key(column.keys)
    if key is None:
        return "–"
    mean, std = summary.stat(key)
    if not math.isfinite(mean):
        return "–"
    text = f"{mean:.{column.digits}f}"
    return text if not math.isfinite(std) else f"{text} ± {std:.{column.digits}f}"


def _used_columns(summaries: Sequence[MethodSummary]) -> list[Column]:
    columns = [*COLUMNS[:3], *motion_columns(summaries), *COLUMNS[3:]]
    return [c for c in columns if any(s.first_key(c.keys) is not None for s in summaries)]


def render_markdown(summaries: Sequence[MethodSummary], records: Sequence[RunRecord]) -> str:
    """The leaderboard (mean ± sample std over seeds) and the runs that did not finish."""
    columns = _used_columns(summaries)
    lines = [
        "| method | seeds | " + " | ".join(c.heading for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for summary in summaries:
        seeds = ",".join("?" if s is None else str(s) for s in summary.seeds)
        lines.append(f"| {summary.method} | {seeds} | " + " | ".join(_cell(summary, c) for c in columns) + " |")
    unfinished = [r for r in records if r.status != "finished"]
    if unfinished:
        lines += ["", f"Runs not in the table ({len(unfinished)}):", ""]
        lines += [f"- {r.path}: {r.status}{' (' + r.method + ')' if r.method else ''}: {r.reason}" for r in unfinished]
    warnings = [w for s in summaries for w in s.warnings]
    if warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def render_csv(summaries: Sequence[MethodSummary]) -> str:
    """One line per method: seeds, then mean and std of every column."""
    columns = _used_columns(summaries)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "seeds", *[f"{c.heading} {part}" for c in columns for part in ("mean", "std")]])
    for summary in summaries:
        row: list[Any] = [summary.method, " ".join(str(s) for s in summary.seeds)]
        for column in columns:
            key = summary.first_key(column.keys)
            mean, std = summary.stat(key) if key is not None else (math.nan, math.nan)
            row += [mean, std]
        writer.writerow(row)
    return buffer.getvalue()


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def leaderboard_json(summaries: Sequence[MethodSummary], records: Sequence[RunRecord]) -> dict[str, Any]:
    """Machine-readable leaderboard: per method every metric's mean, std and per-seed values, plus every run."""
    methods = {}
    for summary in summaries:
        methods[summary.method] = {
            "seeds": summary.seeds,
            "runs": [str(r.path) for r in summary.runs],
            "metrics": {
                key: {"mean": _finite_or_none(summary.stat(key)[0]), "std": _finite_or_none(summary.stat(key)[1]),
                      "values": [_finite_or_none(v) for v in values]}
                for key, values in sorted(summary.values.items())
            },
            "warnings": summary.warnings,
        }
    runs = [
        {"path": str(r.path), "status": r.status, "method": r.method, "seed": r.seed, "reason": r.reason}
        for r in records
    ]
    return {"methods": methods, "runs": runs}


def metric_values(summary: MethodSummary, key: str) -> list[float]:
    """The per-seed values of a metric (empty when a run lacks it)."""
    values = summary.values.get(key, [])
    return list(values) if len(values) == len(summary.runs) else []


def by_method(summaries: Sequence[MethodSummary]) -> Mapping[str, MethodSummary]:
    """Summaries keyed by method name."""
    return {s.method: s for s in summaries}
