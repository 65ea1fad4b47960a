"""Benchmark ``export``: every method's CPU twin exported to ONNX, onnxruntime vs PyTorch CPU latency.

One row per registered head and refiner, built as its method's CPU twin (``<method>_synthetic``
in ``configs/exp``, so a new method with a twin gets a row without editing this file) with
random weights, exported by :func:`vidpose.export.onnx_export.export_graph` and timed on the
same random inputs: PyTorch eager (``inference_mode``) against an onnxruntime CPU session, both
with ``--threads`` intra-op threads (default: torch's, i.e. ``OMP_NUM_THREADS``). Timed is the
graph alone: a flow that is a graph input (OpenCV DIS) is computed once beforehand and its own
time, the same for both backends, is the ``flow_ms`` column. The full run adds MTPose with
torchvision RAFT-small inside the graph (random weights, 12 updates). Columns:

- ``torch_ms`` / ``ort_ms``: median wall time of one forward of ``--batch`` clips (or windows);
- ``speedup``: ``torch_ms / ort_ms``;
- ``max_rel_diff``: ``max |ort - torch| / max |torch|`` over the outputs;
- ``export_s``: time of the export (tracing, conversion, optimisation, writing), ``onnx_MB``: file size.

``--quick`` (CI): the baseline and MTPose twins only, their ViT narrowed to one block of width
96, 2 timed runs.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpose.benchmarks import time_call
from vidpose.benchmarks._gpu.experiments import compose, methods, trained_module
from vidpose.engine import builders
from vidpose.export.deps import require
from vidpose.export.graph import ClipGraph, RefinerGraph
from vidpose.export.onnx_export import export_graph

DESCRIPTION = "ONNX export of every method's CPU twin: onnxruntime vs PyTorch CPU latency, parity"

NARROW_VIT = ("backbone.embed_dim=96", "backbone.depth=1")  # vit_tiny's 3 heads divide 96
QUICK_METHODS = ("deconv", "mtpose")
RAFT_ROW = ("flow=raft_small", "flow.random_init=true")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Batch, repeats, threads, opset and the methods to run."""
    parser.add_argument("--batch", type=int, default=1, help="clips (windows) per forward (default 1: latency)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per backend (default 20, 2 with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads of both (default: torch's)")
    parser.add_argument("--opset", type=int, default=19)
    parser.add_argument("--methods", nargs="*", default=None,
                        help="head / refiner names (default: all; --quick: deconv mtpose)")


def compose_twin(exp: str, *overrides: str) -> Any:
    """The training config of experiment ``exp`` as ``tools/train.py +exp=<exp>`` composes it."""
    return compose([f"+exp={exp}", "paths.output_dir=unused", *overrides])


@cache
def cpu_twins() -> dict[str, str]:
    """Head or refiner name -> its method's CPU twin ``<method>_synthetic`` (the GPU check's methods)."""
    return {trained_module(method)[1]: method.twin for method in methods()}


def _graph(cfg: Any) -> ClipGraph | RefinerGraph:
    """The exportable module of a config's model (random weights)."""
    layout = builders.build_layout(cfg)
    if cfg.get("task", "pose") == "refine":
        return RefinerGraph(builders.build_refiner(cfg, layout))
    return ClipGraph(builders.build_model(cfg, layout, builders.build_geometry(cfg)))


def calibrate_batchnorm(graph: ClipGraph | RefinerGraph, example: tuple[torch.Tensor, ...]) -> None:
    """Every BatchNorm's running statistics from one pass over ``example``, the rest in eval mode.

    With random weights and a BatchNorm's initial statistics a network's activations grow layer
    by layer (a random HRNet's reach ~1e8), so heatmaps and their differences would be noise.
    """
    norms = [m for m in graph.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: exactly this batch's statistics
        norm.train()
    with torch.no_grad():
        graph(*example)
    for norm in norms:
        norm.eval()


def _flow_ms(graph: ClipGraph | RefinerGraph, frames: torch.Tensor, repeats: int) -> float:
    """Time of the flows a graph takes as an input (NaN when it takes none)."""
    if not (isinstance(graph, ClipGraph) and graph.flow_input):
        return float("nan")
    return 1e3 * time_call(lambda: graph.model.compute_flows(frames), repeats=repeats)


def _row(name: str, label: str, cfg: Any, args: argparse.Namespace, repeats: int, threads: int) -> dict[str, Any]:
    ort = require("onnxruntime")
    torch.manual_seed(0)
    graph = _graph(cfg).eval()
    refiner = isinstance(graph, RefinerGraph)
    if refiner:
        example = graph.example_inputs(args.batch, seed=1)
    else:
        example = graph.example_inputs(args.batch, builders.build_geometry(cfg).input_hw, seed=1)
    calibrate_batchnorm(graph, example)
    with tempfile.TemporaryDirectory(prefix="vidpose_export_bench_") as tmp:
        result = export_graph(graph, cfg, Path(tmp) / f"{name}.onnx", batch=args.batch, opset=args.opset)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
        feeds = {n: x.numpy() for n, x in zip(graph.input_names(), example)}
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20

        def torch_forward() -> Any:
            with torch.inference_mode():
                return graph(*example)

        torch_s = time_call(torch_forward, repeats=repeats)
        ort_s = time_call(lambda: session.run(None, feeds), repeats=repeats)
        expected, got = torch_forward().numpy(), session.run(None, feeds)[0]
    input_shape = list(example[0].shape)
    return {
        "method": label,
        "experiment": cfg.exp_name,
        "backbone": "-" if refiner else str(cfg.backbone.name),
        "input": "x".join(str(v) for v in input_shape[1:]),
        "flow": _flow_label(cfg, graph),
        "batch": args.batch,
        "opset": args.opset,
        "export_s": result.seconds,
        "onnx_MB": size_mb,
        "torch_ms": 1e3 * torch_s,
        "ort_ms": 1e3 * ort_s,
        "speedup": torch_s / ort_s,
        "flow_ms": _flow_ms(graph, example[0], repeats),
        "max_rel_diff": float(np.abs(got - expected).max() / np.abs(expected).max()),
    }


def _flow_label(cfg: Any, graph: ClipGraph | RefinerGraph) -> str:
    if not (isinstance(graph, ClipGraph) and graph.model.pairs):
        return "none"
    return f"{cfg.flow.name} ({'input' if graph.flow_input else 'in graph'})"


def _cases(args: argparse.Namespace) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(row key, method label, experiment, overrides) of every row to run."""
    wanted = args.methods or (QUICK_METHODS if args.quick else None)
    twins = cpu_twins()
    unknown = sorted(set(wanted or ()) - set(twins))
    if unknown:
        raise ValueError(f"--methods: no CPU twin for {unknown}; known: {sorted(twins)}")
    cases = []
    for name, exp in sorted(twins.items()):
        if wanted is None or name in wanted:
            narrow = NARROW_VIT if args.quick and compose_twin(exp).backbone.name.startswith("vit") else ()
            cases.append((name, name, exp, narrow))
            if name == "mtpose" and not args.quick:
                cases.append(("mtpose_raft", "mtpose (raft_small)", exp, RAFT_ROW))
    return cases


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Export and time every selected method (module docstring); one row each."""
    repeats = args.repeats or (2 if args.quick else 20)
    threads = args.threads or torch.get_num_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = []
        for key, label, exp, overrides in _cases(args):
            rows.append(_row(key, label, compose_twin(exp, *overrides), args, repeats, threads))
        return rows
    finally:
        torch.set_num_threads(previous)
