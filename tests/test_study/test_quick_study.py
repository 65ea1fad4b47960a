"""``tools/study.py --quick`` end to end: every stage runs, the report lists every row and claim.

It checks the machinery (stage order, init_from wiring, sequences, refiners, leaderboard,
claims, figure) on the tiny degraded preset with two training steps per run, not the claims.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidpose.study.spec import load_study

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_study_runs_every_stage_and_reports(tmp_path):
    env = {**os.environ, "VIDPOSE_CACHE": os.environ.get("VIDPOSE_CACHE", str(tmp_path / "cache"))}
    done = subprocess.run(
        [sys.executable, "tools/study.py", "--quick", "--dir", str(tmp_path / "study")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1500, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    spec = load_study("claims", quick=True)
    report = tmp_path / "study" / "report"
    board = json.loads((report / "leaderboard.json").read_text())
    assert set(board["methods"]) == set(spec.rows) | set(spec.refine)
    for method, entry in board["methods"].items():
        assert entry["seeds"] == list(spec.seeds), method
    assert all(r["status"] == "finished" for r in board["runs"])
    assert board["methods"]["mtpose"]["metrics"]["degraded/mAP"]["mean"] is not None
    assert "motion/AP/bin4" in board["methods"]["mtpose"]["metrics"]
    assert "refined/accel_error_px" in board["methods"]["hanet"]["metrics"]
    claims = {c["name"]: c["status"] for c in board["claims"]}
    assert len(claims) == 4 + 1 + 2 and set(claims.values()) <= {"PASS", "FAIL", "NOT MEASURED"}
    assert (report / "degraded_ap.png").stat().st_size > 0 and (report / "claims.md").is_file()
    provenance = json.loads((tmp_path / "study" / "rows" / "jmpose" / "seed1" / "metrics.json").read_text())["provenance"]
    assert provenance["seed"] == 1 and provenance["data"]["synthetic"]["preset"] == "degraded_tiny"
    # a second call finds everything finished and only rewrites the report
    again = subprocess.run(
        [sys.executable, "tools/study.py", "--quick", "--dir", str(tmp_path / "study")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert again.returncode == 0 and "[study]" not in again.stdout, again.stdout[-2000:]
