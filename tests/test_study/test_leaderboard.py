"""Leaderboard: run folders -> per-method mean/std; incomplete and unreadable runs are listed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vidpose.study.leaderboard import collect_runs, leaderboard_json, mean_std, render_csv, render_markdown, summarise

REPO = Path(__file__).resolve().parents[2]


def write_run(root: Path, method: str, seed: int, metrics: dict | None, digest: str = "d1", dataset: str = "synthetic") -> Path:
    """A run folder as the trainer leaves it: .hydra/config.yaml, checkpoints/ and (if finished) metrics.json."""
    run = root / method / f"seed{seed}"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(f"exp_name: {method}\nseed: {seed}\n")
    (run / "checkpoints").mkdir()
    if metrics is not None:
        provenance = {"exp_name": method, "seed": seed, "boxes": {"source": "gt"},
                      "data": {"dataset": dataset, "split": "val", "index_digest": digest}}
        (run / "metrics.json").write_text(json.dumps({"step": 10, **metrics, "provenance": provenance}))
    return run


def test_mean_and_sample_std():
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)
    assert math.isnan(mean_std([4.0])[1]) and math.isnan(mean_std([])[0])
    assert mean_std([1.0, float("nan"), 3.0]) == (2.0, pytest.approx(math.sqrt(2)))


def test_methods_are_grouped_over_seeds_and_unfinished_runs_listed(tmp_path):
    for seed, (ap, degraded) in enumerate([(50.0, 20.0), (52.0, 24.0), (54.0, 22.0)]):
        write_run(tmp_path, "baseline", seed, {"mAP": ap, "degraded/mAP": degraded, "motion/AP/bin0": 60.0,
                                               "motion/AP/bin1": 40.0})
    write_run(tmp_path, "mtpose", 0, {"mAP": 55.0, "degraded/mAP": 30.0})
    write_run(tmp_path, "mtpose", 1, None)  # killed: no metrics.json
    broken = write_run(tmp_path, "vremd", 0, {"mAP": 1.0})
    (broken / "metrics.json").write_text("{not json")
    records = collect_runs([tmp_path])
    assert [r.status for r in records] == ["finished"] * 4 + ["incomplete", "unreadable"]
    summaries = summarise(records)
    assert [s.method for s in summaries] == ["baseline", "mtpose"]
    baseline = summaries[0]
    assert baseline.seeds == [0, 1, 2] and baseline.stat("mAP") == (52.0, pytest.approx(2.0))
    table = render_markdown(summaries, records)
    assert "| baseline | 0,1,2 | 52.0 ± 2.0 | 22.0 ± 2.0 |" in table
    assert "AP motion bin 1" in table and "| mtpose | 0 | 55.0 | 30.0 |" in table
    assert "mtpose/seed1: incomplete (mtpose): no metrics.json" in table
    assert "vremd/seed0: unreadable (vremd): metrics.json:" in table
    csv_lines = render_csv(summaries).splitlines()
    assert csv_lines[0].startswith("method,seeds,mAP mean,mAP std") and csv_lines[1].startswith("baseline,0 1 2,52.0,2.0")
    payload = leaderboard_json(summaries, records)
    assert payload["methods"]["baseline"]["metrics"]["degraded/mAP"]["values"] == [20.0, 24.0, 22.0]
    assert len(payload["runs"]) == 6


def test_globs_and_a_single_run_folder(tmp_path):
    run = write_run(tmp_path, "baseline", 0, {"mAP": 50.0})
    write_run(tmp_path, "other", 0, {"mAP": 40.0})
    assert [r.method for r in collect_runs([run])] == ["baseline"]
    assert [r.method for r in collect_runs([str(tmp_path / "*" / "seed0")])] == ["baseline", "other"]
    with pytest.raises(FileNotFoundError, match="matches no folder"):
        collect_runs([str(tmp_path / "nothing*")])
    with pytest.raises(FileNotFoundError, match="not a folder of runs"):
        collect_runs([tmp_path / "absent"])


def test_runs_on_different_data_or_repeated_seeds_are_flagged(tmp_path):
    write_run(tmp_path / "a", "baseline", 0, {"mAP": 50.0}, digest="d1")
    write_run(tmp_path / "b", "baseline", 0, {"mAP": 51.0}, digest="d2")
    write_run(tmp_path / "c", "hanet", 0, {"refined/PCK@0.2/Avg": 80.0}, digest="j1", dataset="synthetic_jhmdb")
    summaries = summarise(collect_runs([tmp_path]))
    assert any("different data or boxes" in w for w in summaries[0].warnings)
    assert any("seed repeated" in w for w in summaries[0].warnings)
    # another dataset is not a disagreement; two annotation sets of one split are
    assert sum("different annotation sets" in w for w in summaries[0].warnings) == 1
    assert "synthetic val" in next(w for w in summaries[0].warnings if "annotation sets" in w)


def test_the_command_line_writes_every_format(tmp_path):
    import subprocess
    import sys

    write_run(tmp_path / "runs", "baseline", 0, {"mAP": 50.0})
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "leaderboard.py"), str(tmp_path / "runs"), "--out", str(tmp_path / "lb")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| baseline | 0 | 50.0 |" in done.stdout
    assert {p.name for p in (tmp_path / "lb").iterdir()} == {"leaderboard.md", "leaderboard.csv", "leaderboard.json"}
