"""Convert an official / mmpose pose checkpoint into vidpose's backbone (+head) layout.

    python tools/convert_checkpoint.py IN.pth OUT.pth [--layout auto|vitpose|hrnet|<layout>]
        [--arch vit_b --input-hw 256 192]

The output is ``{"state_dict": {"backbone.vit.*" | "backbone.hrnet.*": trunk in timm names,
"head.*": classic pose-head weights}, "meta": {...}}``; any vidpose backbone's ``checkpoint:``
option reads it like the original. ``--arch`` also checks every key and shape against that
backbone (built on the meta device, nothing allocated) and resamples a ViT position embedding to
``--input-hw``. The key report is printed; a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from vidpose.models.backbones.pretrained import (
    LAYOUTS,
    VIDPOSE_HEAD_PREFIX,
    VIDPOSE_TRUNK_PREFIX,
    CheckpointError,
    KeyReport,
    PretrainedParts,
    compare_keys,
    read_pretrained,
)
from vidpose.registry import BACKBONES, RegistryError

FAMILY_CHOICES = {"vitpose": "vit", "hrnet": "hrnet"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", type=Path, help="official / mmpose / MAE checkpoint (.pth)")
    parser.add_argument("output", type=Path, help="where to write the vidpose-layout checkpoint")
    parser.add_argument(
        "--layout",
        default="auto",
        choices=["auto", *FAMILY_CHOICES, *LAYOUTS],
        help="auto-detect (default), require a family (vitpose, hrnet), or force an exact layout",
    )
    parser.add_argument(
        "--arch", default=None, help="backbone registry key to check against, e.g. vit_b, hrnet_w48"
    )
    parser.add_argument(
        "--input-hw",
        type=int,
        nargs=2,
        default=(256, 192),
        metavar=("H", "W"),
        help="input size of --arch (ViT: the position-embedding grid); default 256 192",
    )
    return parser


def _check_against_arch(
    parts: PretrainedParts, arch: str, input_hw: tuple[int, int]
) -> tuple[dict[str, torch.Tensor], KeyReport]:
    """Build ``arch`` on the meta device and compare; returns the (adapted) trunk and the report."""
    with torch.device("meta"):
        backbone = BACKBONES.build({"name": arch}, path="--arch", input_hw=tuple(input_hw))
    if backbone.checkpoint_family != parts.family:
        raise CheckpointError(
            f"--arch {arch} takes {backbone.checkpoint_family} weights, but {parts.source} is a "
            f"{parts.layout} checkpoint ({parts.family})"
        )
    trunk = backbone.adapt_trunk_state(parts)
    expected = {k: v.shape for k, v in backbone.trunk.state_dict().items()}
    report = compare_keys(expected, trunk, source=parts.source, layout=parts.layout)
    return trunk, report


def convert(args: argparse.Namespace) -> KeyReport:
    """Read, convert, optionally check, and write; returns the key report (raises on errors)."""
    exact = args.layout if args.layout in LAYOUTS else None
    parts = read_pretrained(args.input, layout=exact)
    wanted_family = FAMILY_CHOICES.get(args.layout)
    if wanted_family is not None and parts.family != wanted_family:
        raise CheckpointError(
            f"{args.input}: --layout {args.layout} expects {wanted_family} weights, "
            f"but the file is a {parts.layout} checkpoint ({parts.family})"
        )
    if args.arch is not None:
        trunk, report = _check_against_arch(parts, args.arch, args.input_hw)
    else:
        trunk = parts.trunk
        report = KeyReport(source=parts.source, layout=parts.layout, loaded=list(trunk))
    report.dropped = list(parts.dropped)
    report.head = sorted(parts.head)
    report.notes = list(parts.notes)
    report.raise_for_errors()

    prefix = VIDPOSE_TRUNK_PREFIX[parts.family]
    state = {prefix + k: v.contiguous() for k, v in trunk.items()}
    state.update({VIDPOSE_HEAD_PREFIX + k: v.contiguous() for k, v in parts.head.items()})
    meta = {
        "format": f"vidpose_{parts.family}",
        "source": str(args.input),
        "source_layout": parts.layout,
        "arch": args.arch or "",
    }
    _atomic_save({"state_dict": state, "meta": meta}, args.output)
    return report


def _atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints the key report; 0 on success, 1 on a checkpoint error."""
    args = _parser().parse_args(argv)
    try:
        report = convert(args)
    except (CheckpointError, RegistryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"wrote {args.output} ({len(report.loaded)} backbone + {len(report.head)} head entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
