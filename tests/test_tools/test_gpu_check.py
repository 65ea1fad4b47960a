"""``tools/gpu_check.py``: the CPU mode runs every check that exists on a CPU, and the report logic.

The CPU run (``--quick --device cpu``) keeps the GPU check from rotting between the rare GPU
loans: every method trains through the real trainer, the kernels and torchrun paths run, and
the CUDA-only checks are reported as SKIPPED with the reason. Speed goals are not asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from vidpose.benchmarks import gpu_check
from vidpose.benchmarks._gpu import experiments
from vidpose.benchmarks._gpu.context import Outcome
from vidpose.benchmarks.gpu_check import FAIL, PASS, SKIPPED, Check

TOOL = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.py"


def _tool():
    spec = importlib.util.spec_from_file_location("gpu_check_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(out: Path) -> tuple[dict, str]:
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


# ----------------------------------------------------------------------------------- report logic


def _passes(ctx):
    return Outcome(True, {"value": 1.5})


def _misses(ctx):
    return Outcome(False, {"value": 3.0}, "value 3 > 2")


def _raises(ctx):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


FAKE_CHECKS = [
    Check("fake/passes", _passes, "always", 1),
    Check("fake/misses", _misses, "value <= 2", 1),
    Check("fake/raises", _raises, "does not raise", 1),
    Check("fake/cuda_only", _passes, "CUDA only", 1, cuda_only=True),
]


def test_a_failing_check_fails_the_run_and_every_verdict_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "checks", lambda: FAKE_CHECKS)
    out = tmp_path / "report"
    assert _tool().main(["--device", "cpu", "--out", str(out)]) == 1
    report, markdown = _report(out)
    verdicts = {c["name"]: (c["status"], c["reason"]) for c in report["checks"]}
    assert verdicts["fake/passes"] == (PASS, "")
    assert verdicts["fake/misses"] == (FAIL, "value 3 > 2")
    status, reason = verdicts["fake/raises"]
    assert status == FAIL and reason.startswith("RuntimeError: CUDA error")
    assert verdicts["fake/cuda_only"] == (SKIPPED, "needs CUDA; this run uses --device cpu")
    assert report["ok"] is False and report["counts"] == {PASS: 1, FAIL: 2, SKIPPED: 1}
    detail = next(c["detail"] for c in report["checks"] if c["name"] == "fake/raises")
    assert "Traceback" in detail and "illegal memory access" in detail
    assert report["environment"]["torch"] == torch.__version__
    assert markdown.startswith("# vidpose GPU check: FAIL (1 passed, 2 failed, 1 skipped)")
    assert "## Skipped\n\n- `fake/cuda_only`: needs CUDA; this run uses --device cpu" in markdown


def test_passed_and_skipped_checks_exit_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "checks", lambda: [FAKE_CHECKS[0], FAKE_CHECKS[3]])
    assert _tool().main(["--device", "cpu", "--out", str(tmp_path)]) == 0
    report, _ = _report(tmp_path)
    assert report["ok"] is True and report["counts"] == {PASS: 1, FAIL: 0, SKIPPED: 1}


def test_only_selects_checks_by_name_or_glob():
    chosen = gpu_check.select(FAKE_CHECKS, "fake/passes,fake/r*")
    assert [c.name for c in chosen] == ["fake/passes", "fake/raises"]
    with pytest.raises(ValueError, match="matches no check"):
        gpu_check.select(FAKE_CHECKS, "train/*")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="--quick --device cpu"):
        _tool().main(["--out", str(tmp_path)])


def test_every_synthetic_twin_gets_a_training_check(tmp_path, monkeypatch):
    twins = [experiments.TWIN.match(p.stem) for p in experiments.EXP_DIR.glob("*_synthetic.yaml")]
    names = [c.name for c in gpu_check.checks()]
    assert {f"train/{t.group(1)}" for t in twins if t} <= set(names)
    assert f"train/{gpu_check.FP16_METHOD}/fp16" in names and names[-1] == "total/wall_time"
    # a new method is covered by adding its twin, without touching the check list
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    (exp_dir / "newpose_synthetic.yaml").write_text(
        "# @package _global_\ndefaults:\n  - newpose_pt18\n  - override /data: synthetic\n"
    )
    monkeypatch.setattr(experiments, "EXP_DIR", exp_dir)
    new = experiments.Method("newpose", "newpose_synthetic", "newpose_pt18", "synthetic")
    assert experiments.methods() == [new]


def test_registry_coverage_requires_vidpose_entries_and_lists_plugin_ones(monkeypatch):
    from vidpose.registry import HEADS, REFINERS

    own = {("HEADS", n) for n in HEADS.names()} | {("REFINERS", n) for n in REFINERS.names()}
    own = {k for k in own if (HEADS if k[0] == "HEADS" else REFINERS).get(k[1]).__module__.startswith("vidpose.")}
    plugin_head = type("PluginHead", (), {"__module__": "someone_elses_plugin"})
    monkeypatch.setitem(HEADS._entries, "plugin_only_head", plugin_head)
    fake = [experiments.Method(f"m{i}", f"m{i}_synthetic", f"m{i}_pt18", "synthetic") for i in range(len(own))]
    trained = dict(zip((m.name for m in fake), sorted(own)))
    monkeypatch.setattr(experiments, "methods", lambda: fake)
    monkeypatch.setattr(experiments, "trained_module", lambda m: trained[m.name])
    outcome = experiments.registry_coverage(None)
    # other tests' plugins (the fault head) may be registered in this process too
    assert outcome.passed and "HEADS:plugin_only_head" in outcome.numbers["plugin_entries_not_checked"]
    assert not {f"{g}:{n}" for g, n in own} & set(outcome.numbers["plugin_entries_not_checked"])
    dropped = sorted(own)[0]
    trained[fake[0].name] = sorted(own)[1]
    outcome = experiments.registry_coverage(None)
    assert not outcome.passed and outcome.numbers["untrained"] == [f"{dropped[0]}:{dropped[1]}"]


# ----------------------------------------------------------------------------------- the CPU mode


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> tuple[int, Path]:
    """One ``--quick --device cpu`` run of the real checks ($VIDPOSE_CACHE's data if set)."""
    out = tmp_path_factory.mktemp("gpu_check_cpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDPOSE_CACHE", os.environ.get("VIDPOSE_CACHE") or str(out / "cache"))
        code = _tool().main(["--quick", "--device", "cpu", "--out", str(out / "report")])
    return code, out / "report"


@pytest.mark.slow
def test_cpu_mode_runs_every_check_that_exists_on_a_cpu(cpu_run):
    code, out = cpu_run
    report, markdown = _report(out)
    failed = {c["name"]: c["reason"] for c in report["checks"] if c["status"] == FAIL}
    assert code == 0 and not failed, failed
    expected = {c.name: c.cuda_only for c in gpu_check.checks()}
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {name: SKIPPED if cuda else PASS for name, cuda in expected.items()}
    for check in report["checks"]:
        if check["status"] == SKIPPED:
            assert "needs CUDA" in check["reason"] and f"`{check['name']}`: needs CUDA" in markdown
    trained = [c for c in report["checks"] if c["name"].startswith("train/")]
    assert all(c["numbers"]["steps"] == 2 for c in trained)
    assert all(c["numbers"]["ddp"] == "gloo, world of 1" for c in trained)
    assert report["environment"]["device"].startswith("CPU")
    assert "## Training step per method" in markdown
