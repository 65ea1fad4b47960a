"""Run a study (docs/study.md): ``python tools/study.py [claims] [--quick] [--dir DIR] [--jobs N]``.

Stage 1 pretrains one single-frame model per backbone family, stage 2 trains every row from it
for each seed, stage 3 trains the refiners on stage-1 sequences; then the leaderboard, the
claims table and the figure are written to ``<dir>/report/``. Finished runs are not run again,
so the same command continues an interrupted study. ``--launcher submitit_slurm`` (with
``--launcher-override hydra.launcher.partition=...``) sends every seed to a cluster through
Hydra's submitit plugin; ``--dry-run`` prints the commands. Extra ``key=value`` arguments after
``--`` go to every training run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vidpose.study.report import write_study_report
from vidpose.study.runner import StudyRunner
from vidpose.study.spec import load_study


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", nargs="?", default="claims", help="configs/study/<name>.yaml or a path (default claims)")
    parser.add_argument("--quick", action="store_true", help="the study's smoke-test variant (its 'quick' section)")
    parser.add_argument("--dir", type=Path, default=None, help="study folder (default outputs/study/<name>[_quick])")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time on this machine (threads split among them)")
    parser.add_argument("--launcher", default=None, help="Hydra launcher for the seed sweeps, e.g. submitit_slurm")
    parser.add_argument("--launcher-override", action="append", default=[], metavar="KEY=VALUE",
                        help="an override for the launcher, e.g. hydra.launcher.partition=gpu (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a value of the study definition, e.g. seeds=[0,1] (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument("--report-only", action="store_true", help="only (re)write the report from the runs there")
    parser.add_argument("train_overrides", nargs="*", help="after --: key=value for every training run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 when every stage finished, 1 on a failed run or bad input."""
    args = _parser().parse_args(argv)
    if args.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 1
    try:
        spec = load_study(args.study, quick=args.quick, overrides=args.set)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    study_dir = args.dir or Path("outputs") / "study" / (spec.name + ("_quick" if args.quick else ""))
    runner = StudyRunner(
        spec, study_dir.resolve(), jobs=args.jobs, launcher=args.launcher,
        launcher_overrides=tuple(args.launcher_override), extra_overrides=tuple(args.train_overrides),
    )
    if args.dry_run:
        print("\n".join(runner.plan()))
        return 0
    started = time.monotonic()
    if not args.report_only:
        try:
            runner.run()
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    report = write_study_report(spec, runner.run_dirs(), study_dir / "report")
    print(report)
    print(f"study {spec.name}: report in {study_dir / 'report'} ({(time.monotonic() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
