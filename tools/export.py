"""Export a checkpoint as one ONNX graph with its input contract (docs/export.md).

    python tools/export.py CKPT out.onnx [--batch N] [--dynamic-batch] [--opset K]

A clip model becomes ``frames (B, T, 3, H, W) RGB in [0, 1] [, flows (B, P, 2, H, W)] ->
heatmaps (B, K, h, w)`` (normalisation, backbone, head and a torch flow estimator such as RAFT
inside the graph; the flows of OpenCV DIS are an input); a refiner checkpoint (HANet) becomes
``poses (B, L, K, 2) -> refined``. The contract (T, frame order, input size, normalisation,
heatmap geometry and codec) and the model's configuration are stored in the file's metadata;
``VideoPoseEstimator.from_checkpoint("out.onnx", backend="onnxruntime")`` runs it. The file
is checked with onnxruntime on random inputs and the largest difference from PyTorch printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from vidpose.export.onnx_export import DEFAULT_OPSET, export_checkpoint


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a checkpoint tools/train.py wrote")
    parser.add_argument("out", help="the ONNX file to write")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="fixed batch size of the graph (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--print-contract", action="store_true", help="also print the stored contract (JSON)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Export, check with onnxruntime and print where the file is."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    result = export_checkpoint(
        args.ckpt, args.out, batch=args.batch, dynamic_batch=args.dynamic_batch, opset=args.opset
    )
    print(result.describe(), flush=True)
    if args.print_contract:
        print(json.dumps(result.contract, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
