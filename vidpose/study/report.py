"""Write a leaderboard (and, for a study, its claims and figure) into a folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidpose.study.claims import evaluate_claims, render_claims
from vidpose.study.leaderboard import (
    RunRecord,
    collect_runs,
    leaderboard_json,
    render_csv,
    render_markdown,
    summarise,
)
from vidpose.study.plots import plot_metric_by_method
from vidpose.study.spec import StudySpec

__all__ = ["write_leaderboard", "write_study_report"]


def write_leaderboard(records: Sequence[RunRecord], out_dir: Path | None) -> tuple[str, dict[str, Any]]:
    """Markdown text and JSON of the runs; with ``out_dir``, also ``leaderboard.{md,csv,json}`` there."""
    summaries = summarise(records)
    markdown = render_markdown(summaries, records)
    payload = leaderboard_json(summaries, records)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "leaderboard.md").write_text(markdown, encoding="utf-8")
        (out_dir / "leaderboard.csv").write_text(render_csv(summaries), encoding="utf-8")
        (out_dir / "leaderboard.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return markdown, payload


def write_study_report(spec: StudySpec, run_dirs: Sequence[Path], out_dir: Path) -> str:
    """Leaderboard, claims table and the degraded-AP figure of a study; returns the markdown."""
    records = collect_runs([d for d in run_dirs if d.exists()])
    known = {r.path.resolve() for r in records}
    missing = [RunRecord(d, "incomplete", reason="not run") for d in run_dirs if d.resolve() not in known]
    records = [*records, *missing]
    markdown, payload = write_leaderboard(records, out_dir)
    summaries = summarise(records)
    claims = evaluate_claims(spec, summaries)
    claims_md = render_claims(claims)
    (out_dir / "claims.md").write_text(claims_md, encoding="utf-8")
    payload["claims"] = [{"name": c.name, "status": c.status, "evidence": c.evidence} for c in claims]
    (out_dir / "leaderboard.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    pose_rows = [s for s in summaries if s.method in spec.rows]
    if any("degraded/mAP" in s.values for s in pose_rows):
        plot_metric_by_method(pose_rows, "degraded/mAP", out_dir / "degraded_ap.png",
                              f"study {spec.name}: degraded-subset AP per method (bar = mean, dots = seeds)")
    return f"## Leaderboard\n\n{markdown}\n## Claims\n\n{claims_md}"
