"""Study runner: stage order, the commands each stage issues, skipping finished runs, failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vidpose.study.runner import StudyRunner
from vidpose.study.spec import load_study

# Stands in for the interpreter: records its argv and writes what tools/train.py / tools/eval.py
# would leave behind (metrics.json, a verified step checkpoint, the sequence file).
FAKE_PYTHON = '''#!{python}
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from vidpose.engine.checkpoint import save_checkpoint
argv = sys.argv[1:]
with open({log!r}, "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
opts = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
if "FAIL" in opts.get("exp_name", ""):
    sys.exit(3)
if argv[0].endswith("eval.py"):
    Path(opts["save_sequences"]).parent.mkdir(parents=True, exist_ok=True)
    Path(opts["save_sequences"]).write_text("sequences")
    sys.exit(0)
dirs = ([Path(opts["hydra.run.dir"])] if "hydra.run.dir" in opts else
        [Path(opts["hydra.sweep.dir"]) / f"seed{{s}}" for s in opts["seed"].split(",")])
for d in dirs:
    (d / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_checkpoint({{"model": {{}}, "step": 1}}, d / "checkpoints" / "step_1.pt")
    (d / "metrics.json").write_text(json.dumps({{"mAP": 1.0}}))
'''


@pytest.fixture
def fake_python(tmp_path):
    repo = str(Path(__file__).resolve().parents[2])
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "python"
    script.write_text(FAKE_PYTHON.format(python=sys.executable, repo=repo, log=str(log)))
    script.chmod(0o755)
    return script, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_stages_run_in_order_with_the_protocol_wired_in(tmp_path, fake_python):
    script, log = fake_python
    spec = load_study("claims", overrides=["seeds=[0,1]"])
    runner = StudyRunner(spec, tmp_path / "study", python=str(script), echo=lambda _: None)
    runner.run()
    argvs = calls(log)
    assert len(argvs) == 3 + len(spec.rows) + 2 + 1
    pretrain = [a for a in argvs if any(x.startswith("exp_name=pretrain_") for x in a)]
    assert {a[1] for a in pretrain} == {"+exp=baseline_synthetic", "+exp=baseline_hrnet_synthetic",
                                        "+exp=baseline_jhmdb_synthetic"}
    rows = [a for a in argvs if a[1] == "-m" and "+exp=hanet_jhmdb_synthetic" not in a]
    assert len(rows) == len(spec.rows)
    # every run after what it needs: a row after its family's stage-1 model, HANet after both sequence files
    position = {json.dumps(a): i for i, a in enumerate(argvs)}
    first = {name: position[json.dumps(a)] for a in pretrain for name in ("vit", "hrnet", "vit_jhmdb")
             if f"exp_name=pretrain_{name}" in a}
    for a in rows:
        family = "hrnet" if "pretrain/hrnet/" in " ".join(a) else "vit"
        assert position[json.dumps(a)] > first[family]
    evals = [position[json.dumps(a)] for a in argvs if a[0].endswith("eval.py")]
    assert len(evals) == 2 and min(evals) > first["vit_jhmdb"] and position[json.dumps(argvs[-1])] > max(evals)
    jmpose = next(a for a in rows if "+exp=jmpose_synthetic" in a)
    # started from the HRNet pretrain's final checkpoint, frozen, both seeds in one multirun
    assert f"init_from={tmp_path / 'study' / 'pretrain' / 'hrnet' / 'checkpoints' / 'step_1.pt'}" in jmpose
    assert "head.freeze_backbone=true" in jmpose and "seed=0,1" in jmpose and "exp_name=jmpose" in jmpose
    assert "schedule.epochs=2" in jmpose and "data=synthetic_degraded" in jmpose
    refine = argvs[-1]
    assert "+exp=hanet_jhmdb_synthetic" in refine
    assert f"refiner.sequences.train={tmp_path / 'study' / 'sequences' / 'vit_jhmdb' / 'train.npz'}" in refine
    assert len(runner.run_dirs()) == 2 * (len(spec.rows) + 1)
    assert all((d / "metrics.json").is_file() for d in runner.run_dirs())


def test_finished_runs_are_skipped_and_unfinished_seeds_moved_aside(tmp_path, fake_python):
    script, log = fake_python
    spec = load_study("claims", overrides=["seeds=[0,1]"])
    runner = StudyRunner(spec, tmp_path / "study", python=str(script), echo=lambda _: None)
    runner.run()
    first = len(calls(log))
    stale = runner.row_dir("rows", "mtpose") / "seed1"
    (stale / "metrics.json").unlink()  # as if seed 1 had been killed
    runner.run()
    again = calls(log)[first:]
    assert len(again) == 1 and "seed=1" in again[0] and "exp_name=mtpose" in again[0]
    assert any(p.name.startswith("seed1.incomplete-") for p in stale.parent.iterdir())


def test_a_failed_run_stops_the_study_and_names_its_log(tmp_path, fake_python):
    script, _ = fake_python
    spec = load_study("claims", overrides=["seeds=[0]", "rows.baseline.overrides=[exp_name=FAIL]"])
    runner = StudyRunner(spec, tmp_path / "study", python=str(script), echo=lambda _: None)
    with pytest.raises(RuntimeError, match=r"rows baseline seeds \[0\] failed \(exit 3.*baseline.log"):
        runner.run()


def test_launcher_and_dry_run_plan(tmp_path):
    spec = load_study("claims")
    runner = StudyRunner(spec, tmp_path / "study", launcher="submitit_slurm",
                         launcher_overrides=("hydra.launcher.partition=gpu",))
    plan = runner.plan()
    assert len(plan) == len(spec.pretrain) + len(spec.rows)
    assert all("hydra/launcher=submitit_slurm hydra.launcher.partition=gpu" in line for line in plan[3:])
    assert "pretrain/vit/checkpoints/<latest>" in plan[3]


def test_parallel_jobs_split_rows_into_seeds(tmp_path, fake_python):
    script, log = fake_python
    spec = load_study("claims", overrides=["seeds=[0,1]"])
    runner = StudyRunner(spec, tmp_path / "study", jobs=2, python=str(script), echo=lambda _: None)
    runner.run()
    rows = [a for a in calls(log) if "-m" in a and "+exp=hanet_jhmdb_synthetic" not in a]
    assert len(rows) == 2 * len(spec.rows) and all(("seed=0" in a) != ("seed=1" in a) for a in rows)
    assert all((d / "metrics.json").is_file() for d in runner.run_dirs())
