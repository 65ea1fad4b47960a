"""Run a benchmark and print its table: ``python tools/benchmark.py <name> [--quick] [--json OUT]``.

Available benchmarks are the modules of ``vidpose.benchmarks``; ``python tools/benchmark.py -h``
lists them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys

import vidpose.benchmarks as benchmarks
from vidpose.benchmarks import format_table


def _available() -> dict[str, object]:
    mods = {}
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if not info.name.startswith("_"):
            mods[info.name] = importlib.import_module(f"vidpose.benchmarks.{info.name}")
    return mods


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen benchmark, print its table and optionally write JSON."""
    mods = _available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    for name, mod in sorted(mods.items()):
        p = sub.add_parser(name, help=getattr(mod, "DESCRIPTION", ""))
        p.add_argument("--quick", action="store_true", help="CI-sized run")
        p.add_argument("--json", default=None, help="also write the rows to this JSON file")
        mod.add_arguments(p)
    args = parser.parse_args(argv)
    mod = mods[args.name]
    rows = mod.run(args)
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    print(format_table(rows, title=f"{args.name}: {getattr(mod, 'DESCRIPTION', '')} [{machine}]"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"benchmark": args.name, "machine": machine, "rows": rows}, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
