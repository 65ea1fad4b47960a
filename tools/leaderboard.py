"""Collect run folders into a leaderboard: ``python tools/leaderboard.py RUN_DIR_OR_GLOB... [--out DIR]``.

Prints the markdown table (mean ± seed std per method) and lists runs that did not finish;
``--out DIR`` also writes ``leaderboard.{md,csv,json}`` there. Works on any runs of
``tools/train.py`` (a study's or your own), grouped by their ``exp_name``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidpose.study.leaderboard import collect_runs
from vidpose.study.report import write_leaderboard


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 when at least one run finished, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders, folders of runs, or glob patterns")
    parser.add_argument("--out", type=Path, default=None, help="also write leaderboard.{md,csv,json} here")
    args = parser.parse_args(argv)
    try:
        records = collect_runs(args.runs)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    markdown, _ = write_leaderboard(records, args.out)
    print(markdown, end="")
    return 0 if any(r.status == "finished" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
