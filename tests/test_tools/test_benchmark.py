"""Every ``tools/benchmark.py`` subcommand runs in its CI-sized mode and prints a table.

Only that they run and produce rows is asserted: timings belong in docs/benchmarks.md, never in
unit tests (the machine running the tests may be loaded by anything).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "benchmark.py"
SUBCOMMANDS = ("targets", "eval", "data", "models", "train")


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_module_is_a_subcommand():
    assert set(SUBCOMMANDS) <= set(_tool()._available())


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "models" else n for n in SUBCOMMANDS]
)
def test_quick_run_prints_a_table_and_writes_json(name, tmp_path, capsys, monkeypatch):
    # the train benchmark generates the tiny synthetic set there (reused when the session has one)
    monkeypatch.setenv("VIDPOSE_CACHE", os.environ.get("VIDPOSE_CACHE") or str(tmp_path / "cache"))
    out = tmp_path / f"{name}.json"
    assert _tool().main([name, "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["benchmark"] == name and result["rows"]
    header = printed.splitlines()
    keys = list(result["rows"][0])
    assert any(all(k in line for k in keys) for line in header), printed
