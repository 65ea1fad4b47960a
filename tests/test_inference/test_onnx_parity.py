"""Every registered head and refiner exports to ONNX and onnxruntime on CPU reproduces PyTorch.

Each head is exported as its method's CPU twin (``configs/exp/<method>_synthetic.yaml``, ViT
narrowed to one block of width 96) with random weights whose BatchNorm statistics are measured
on random clips (``tools/benchmark.py export`` builds the same models). Tolerance: the largest
heatmap difference is at most 1e-4 of the largest heatmap value (docs/export.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.benchmarks.export import NARROW_VIT, calibrate_batchnorm, compose_twin, cpu_twins
from vidpose.engine import builders
from vidpose.export.graph import ClipGraph, RefinerGraph
from vidpose.registry import HEADS, REFINERS

onnx = pytest.importorskip("onnx", reason="onnx is not installed: pip install -e '.[export]'")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[export]'")

from vidpose.export.contract import CONFIG_KEY, CONTRACT_KEY  # noqa: E402
from vidpose.export.onnx_export import export_graph  # noqa: E402

RELATIVE_TOLERANCE = 1e-4
SLOW_HEADS = {"jmpose", "vremd"}  # HRNet's ~340 convolutions / VREMD's blocks: 20-45 s to export


def _twin_config(name: str, *overrides: str):
    """The CPU twin of a head or refiner (``tools/benchmark.py export`` builds the same), ViT narrowed."""
    exp = cpu_twins().get(name)
    assert exp, f"{name} has no CPU twin (configs/exp/<method>_synthetic.yaml); its export cannot be checked"
    narrow = NARROW_VIT if compose_twin(exp).backbone.name.startswith("vit") else ()
    return compose_twin(exp, *narrow, *overrides)


def _clip_graph(cfg) -> tuple[ClipGraph, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    graph = ClipGraph(model)
    example = graph.example_inputs(2, builders.build_geometry(cfg).input_hw, seed=1)
    calibrate_batchnorm(graph, example)
    return graph, example


def _run(path: Path, names: list[str], inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == names
    return session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]


def _assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    scale = float(np.abs(expected).max())
    assert scale > 1e-3, "degenerate outputs: the comparison would be meaningless"
    assert float(np.abs(got - expected).max()) <= RELATIVE_TOLERANCE * scale


@pytest.mark.parametrize(
    "head", [pytest.param(h, marks=pytest.mark.slow) if h in SLOW_HEADS else h for h in HEADS.names()]
)
def test_every_head_exports_and_onnxruntime_matches_pytorch(head, tmp_path):
    cfg = _twin_config(head)
    graph, example = _clip_graph(cfg)
    result = export_graph(graph, cfg, tmp_path / f"{head}.onnx", batch=2)
    with torch.no_grad():
        expected = graph(*example).numpy()
    # new inputs, not only the exporter's own example
    _assert_close(_run(result.path, graph.input_names(), example), expected)
    contract = result.contract
    assert contract["clip"]["num_frames"] == graph.model.num_frames
    assert contract["outputs"]["heatmaps"]["shape"] == [2, 17, *builders.build_geometry(cfg).heatmap_hw]
    # a flow the graph cannot hold (OpenCV DIS) is an input; the others need none
    assert ("flows" in contract["inputs"]) == bool(graph.model.pairs)


@pytest.mark.slow
def test_raft_runs_inside_the_graph(tmp_path):
    cfg = _twin_config("mtpose", "flow=raft_small", "flow.random_init=true", "flow.num_flow_updates=2")
    graph, example = _clip_graph(cfg)
    assert graph.input_names() == ["frames"] and len(example) == 1
    result = export_graph(graph, cfg, tmp_path / "raft.onnx", batch=2)
    flow = result.contract["flow"]
    assert flow["estimator"] == "raft_small" and flow["in_graph"] and "flows" not in result.contract["inputs"]
    with torch.no_grad():
        _assert_close(_run(result.path, ["frames"], example), graph(*example).numpy())


@pytest.mark.parametrize("refiner", REFINERS.names())
def test_every_refiner_exports_and_onnxruntime_matches_pytorch(refiner, tmp_path):
    cfg = _twin_config(refiner)
    torch.manual_seed(0)
    graph = RefinerGraph(builders.build_refiner(cfg, builders.build_layout(cfg)))
    result = export_graph(graph, cfg, tmp_path / f"{refiner}.onnx", dynamic_batch=True)
    poses = graph.example_inputs(3, seed=1)
    with torch.no_grad():
        _assert_close(_run(result.path, ["poses"], poses), graph(*poses).numpy())
    assert result.contract["kind"] == "refiner" and result.contract["batch"] is None


def test_the_contract_and_config_are_in_the_metadata(tmp_path):
    cfg = _twin_config("mtpose")
    graph, _ = _clip_graph(cfg)
    path = export_graph(graph, cfg, tmp_path / "mtpose.onnx", dynamic_batch=True).path
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    contract, config = json.loads(props[CONTRACT_KEY]), json.loads(props[CONFIG_KEY])
    assert config["head"]["name"] == "mtpose" and config["data"]["clip"]["offsets"] == [-1, 0, 1]
    assert contract["clip"] | {"frame_order": None} == {
        "num_frames": 3, "offsets": [-1, 0, 1], "interval": cfg.data.clip.interval, "key_index": 1, "frame_order": None,
    }
    assert contract["inputs"]["frames"]["shape"] == ["batch", 3, 3, 128, 96]
    assert contract["inputs"]["flows"]["shape"] == ["batch", 2, 2, 128, 96]
    assert contract["flow"]["pairs"] == [[1, 0], [1, 2]] and contract["flow"]["in_graph"] is False
    assert contract["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert contract["heatmap"] | {"sigma": None} == {
        "heatmap_hw": [32, 24], "stride": 4, "convention": "udp", "refine": "dark", "sigma": None,
        "flip_test": True, "score": "heatmap_max_x_box",
    }
    assert len(contract["layout"]["joints"]) == 17 and contract["crop"] == {"input_hw": [128, 96], "enlarge": 1.25}


def test_an_opset_without_the_exporter_is_refused(tmp_path):
    cfg = _twin_config("deconv")
    graph, _ = _clip_graph(cfg)
    with pytest.raises(ValueError, match="--opset 17: the exporter writes opset 18 or newer"):
        export_graph(graph, cfg, tmp_path / "old.onnx", opset=17)


class _TorchvisionDCNv2(torch.nn.Module):
    """torchvision's DCNv2 kernel (a deformable convolution forced to ``backend: torchvision``)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(6, 4, 3, 3))

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import deform_conv2d

        return deform_conv2d(x, offset, self.weight, padding=(2, 2), dilation=(2, 2), mask=mask)


def test_torchvisions_deformable_convolution_runs_in_onnxruntime_as_deformconv(tmp_path):
    torch.manual_seed(0)
    layer = _TorchvisionDCNv2().eval()
    inputs = (torch.randn(2, 4, 8, 6), torch.randn(2, 2 * 2 * 9, 8, 6) * 2, torch.rand(2, 2 * 9, 8, 6))
    torch.onnx.export(layer, inputs, str(tmp_path / "dcn.onnx"), dynamo=True, opset_version=19,
                      input_names=["x", "offset", "mask"], external_data=False)
    assert "DeformConv" in {node.op_type for node in onnx.load(str(tmp_path / "dcn.onnx")).graph.node}
    with torch.no_grad():
        _assert_close(_run(tmp_path / "dcn.onnx", ["x", "offset", "mask"], inputs), layer(*inputs).numpy())
