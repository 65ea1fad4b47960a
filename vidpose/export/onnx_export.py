"""Export a checkpoint's model as one ONNX graph with its input contract, checked with onnxruntime.

A clip model (``task: pose``) becomes ``frames [, flows] -> heatmaps`` (:class:`ClipGraph`), a
refiner (``task: refine``, HANet) ``poses -> refined`` (:class:`RefinerGraph`). The graph is
traced by ``torch.export`` (``torch.onnx.export(dynamo=True)``) on the CPU, where a deformable
convolution with the ``auto`` backend takes its ``grid_sample`` form and exports as
``GridSample`` plus a contraction; one forced to torchvision's kernel exports as ONNX
``DeformConv`` (opset 19). Both run in onnxruntime on CPU.
After writing, onnxruntime runs the file on the example inputs and the largest difference
from PyTorch is reported (``ExportResult``). Models whose weights exceed 1.5 GiB keep them
in ``<out>.data`` next to the file (protobuf's 2 GiB limit).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from vidpose.engine import builders
from vidpose.export.contract import clip_contract, metadata, refiner_contract
from vidpose.export.deps import require
from vidpose.export.graph import ClipGraph, RefinerGraph
from vidpose.inference.loading import load_state_strictly, read_checkpoint

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportResult", "load_graph", "export_graph", "export_checkpoint"]

DEFAULT_OPSET = 19  # the first with DeformConv
MIN_OPSET = 18  # the oldest the torch.export-based exporter writes
_EXTERNAL_BYTES = 3 * 2**29  # 1.5 GiB: leaves protobuf's 2 GiB limit room for the graph itself


@dataclass
class ExportResult:
    """What an export wrote and how closely onnxruntime reproduces PyTorch on the example inputs."""

    path: Path
    contract: dict[str, Any]
    max_abs_diff: float  # onnxruntime vs PyTorch, over every output element
    max_abs_output: float  # the largest PyTorch output magnitude (the scale of the difference)
    seconds: float  # export time

    def describe(self) -> str:
        """One line: file, kind, batch, opset and the parity check."""
        batch = "dynamic" if self.contract["batch"] is None else self.contract["batch"]
        return (
            f"{self.path}: {self.contract['kind']} graph, batch {batch}, opset {self.contract['opset']}, "
            f"inputs {list(self.contract['inputs'])}; onnxruntime vs PyTorch max |diff| {self.max_abs_diff:.3g} "
            f"(outputs up to {self.max_abs_output:.3g}); exported in {self.seconds:.1f} s"
        )


def load_graph(path: str | os.PathLike) -> tuple[ClipGraph | RefinerGraph, DictConfig]:
    """The exportable module of a ``tools/train.py`` checkpoint (clip model or refiner) and its config."""
    state, cfg = read_checkpoint(path)
    layout = builders.build_layout(cfg)
    if str(cfg.get("task", "pose")) == "refine":
        module: torch.nn.Module = builders.build_refiner(cfg, layout)
        graph: ClipGraph | RefinerGraph = RefinerGraph(module)
    else:
        module = builders.build_model(cfg, layout, builders.build_geometry(cfg))
        graph = ClipGraph(module)
    load_state_strictly(module, state["model"], path)
    return graph.eval(), cfg


def export_graph(
    graph: ClipGraph | RefinerGraph,
    cfg: DictConfig,
    out: str | os.PathLike,
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Write ``graph`` to ``out`` with its contract and configuration; check it with onnxruntime.

    ``batch`` fixes the leading dimension of every input; ``dynamic_batch`` leaves it free (the
    example then has at least 2 samples, since ``torch.export`` specialises a batch of 1).
    """
    require("onnx")
    require("onnxscript")  # torch.onnx's exporter translates with it
    ort = require("onnxruntime")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    if opset < MIN_OPSET:
        raise ValueError(f"--opset {opset}: the exporter writes opset {MIN_OPSET} or newer")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = graph.eval()
    fixed_batch = None if dynamic_batch else batch
    if isinstance(graph, RefinerGraph):
        example = graph.example_inputs(max(batch, 2) if dynamic_batch else batch)
        output, contract = "refined", refiner_contract(cfg, graph.refiner, fixed_batch, opset)
    else:
        example = graph.example_inputs(max(batch, 2) if dynamic_batch else batch, builders.build_geometry(cfg).input_hw)
        output, contract = "heatmaps", clip_contract(cfg, graph.model, fixed_batch, opset)
    names = graph.input_names()
    dynamic_shapes = {name: {0: torch.export.Dim("batch")} for name in names} if dynamic_batch else None
    start = time.perf_counter()
    with torch.no_grad():
        try:
            program = torch.onnx.export(
                graph, example, dynamo=True, opset_version=opset, input_names=names, output_names=[output],
                dynamic_shapes=dynamic_shapes, optimize=True, verbose=False,
            )
        except Exception as err:
            raise RuntimeError(f"exporting {_describe(cfg)} at opset {opset} failed: {err}") from err
    program.model.metadata_props.update(metadata(contract, cfg))
    weight_bytes = sum(t.numel() * t.element_size() for t in graph.state_dict().values())
    program.save(str(out), external_data=weight_bytes > _EXTERNAL_BYTES)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        expected = graph(*example).numpy()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: x.numpy() for name, x in zip(names, example)})[0]
    return ExportResult(out, contract, float(np.abs(got - expected).max()), float(np.abs(expected).max()), seconds)


def _describe(cfg: DictConfig) -> str:
    if str(cfg.get("task", "pose")) == "refine":
        return f"refiner {cfg.refiner.name}"
    return f"head {cfg.head.name} on {cfg.backbone.name} (flow {cfg.flow.name})"


def export_checkpoint(
    ckpt: str | os.PathLike, out: str | os.PathLike, batch: int = 1, dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export the model of a ``tools/train.py`` checkpoint (:func:`load_graph`, :func:`export_graph`)."""
    graph, cfg = load_graph(ckpt)
    return export_graph(graph, cfg, out, batch, dynamic_batch, opset)
