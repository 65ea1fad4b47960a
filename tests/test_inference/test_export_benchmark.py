"""``tools/benchmark.py export --quick`` runs, times both backends and prints a table (timings are not asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[export]'")

TOOL = Path(__file__).resolve().parents[2] / "tools" / "benchmark.py"


def test_quick_export_benchmark_prints_a_row_per_method(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("benchmark_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "export.json"
    assert tool.main(["export", "--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["method"] for row in rows] == ["deconv", "mtpose"]
    assert all(row["torch_ms"] > 0 and row["ort_ms"] > 0 and row["max_rel_diff"] < 1e-4 for row in rows)
    assert rows[1]["flow"] == "opencv_dis (input)" and "ort_ms" in capsys.readouterr().out
