"""GPU readiness: ``python tools/gpu_check.py [--out DIR] [--quick] [--device D] [--only ..]``.

On one GPU (about 6 minutes with start-up): a few training steps of every method at its paper
input size (bf16 autocast; fp16 + grad scaler for MTPose), the CUDA deformable convolution vs
the grid_sample kernel, CUDA vs CPU targets and decoding, ``torchrun`` training + evaluation +
resume, and the GPU goals of docs/benchmarks.md. Writes ``gpu_check.json`` and
``gpu_check.md`` into ``--out`` (default ``outputs/gpu_check/<time>/``) and exits with 1 if a
check failed. ``--quick --device cpu`` runs what exists on a CPU at CPU-twin sizes (the test
suite does); CUDA-only checks are reported as SKIPPED. The checks and their criteria:
``vidpose/benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before torch is imported: the wall-time check counts start-up

import argparse  # noqa: E402
import sys  # noqa: E402

from vidpose.benchmarks import gpu_check  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the checks, write the reports; 1 if a check failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None,
                        help="report folder (default outputs/gpu_check/<time>/)")
    parser.add_argument("--quick", action="store_true",
                        help="CPU-twin sizes and small batches (the CPU test)")
    gpu_check.add_arguments(parser)
    return gpu_check.check_and_report(parser.parse_args(argv), STARTED)


if __name__ == "__main__":
    sys.exit(main())
