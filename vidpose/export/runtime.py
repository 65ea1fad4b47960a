"""An exported clip graph run by onnxruntime behind the ``PoseModel`` call the evaluator makes.

:class:`OnnxClipModel` is called as ``model(frames (B, T, 3, H, W) in [0, 1], batch) ->
{"heatmaps": (B, K, h, w)}``, so :class:`vidpose.engine.evaluator.Evaluator` batches, flip-tests
(a second call on mirrored frames) and decodes its output exactly as it does a PyTorch model's.
Where the contract makes the flows a graph input, the configured estimator (OpenCV DIS) computes
them here from the same frames, as ``PoseModel`` would. A graph exported with a fixed batch runs
larger batches in chunks and pads the last chunk by repeating its last clip.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vidpose.export.contract import read_metadata
from vidpose.export.deps import require
from vidpose.models.flow.base import pair_flows
from vidpose.registry import FLOWS, load_plugins, to_plain

__all__ = ["OnnxClipModel"]


class OnnxClipModel(nn.Module):
    """An exported clip graph (``tools/export.py``) with the ``PoseModel`` call interface.

    ``threads`` sets onnxruntime's intra-op threads (default: torch's, which follows
    ``OMP_NUM_THREADS``), so both backends use the same cores.
    """

    def __init__(
        self, path: str | os.PathLike, providers: Sequence[str] = ("CPUExecutionProvider",), threads: int | None = None,
    ) -> None:
        super().__init__()
        ort = require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(f"{path}: onnxruntime cannot load it as an ONNX model ({err})") from None
        contract, config = read_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        if contract["kind"] != "clip":
            raise ValueError(
                f"{path} is an exported {contract['kind']} graph; the inference API runs clip models "
                "(frames -> heatmaps)"
            )
        self.path, self.contract = path, contract
        self.config: DictConfig = OmegaConf.create(config)
        load_plugins(to_plain(self.config.get("plugins")) or [])
        flow = contract["flow"]
        self.pairs = [tuple(pair) for pair in flow["pairs"]] if flow else []
        self.flow = FLOWS.build(flow["config"], path="flow") if flow and not flow["in_graph"] else None
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def batch(self) -> int | None:
        """The exported batch size (None: any)."""
        return self.contract["batch"]

    def _run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The graph's heatmaps for inputs of any batch (chunked and padded for a fixed batch)."""
        size = next(iter(feeds.values())).shape[0]
        if self.batch is None or size == self.batch:
            return self.session.run(None, dict(feeds))[0]
        outputs = []
        for start in range(0, size, self.batch):
            chunk = {name: value[start : start + self.batch] for name, value in feeds.items()}
            rows = next(iter(chunk.values())).shape[0]
            if rows < self.batch:
                chunk = {name: np.concatenate([value, np.repeat(value[-1:], self.batch - rows, axis=0)])
                         for name, value in chunk.items()}
            outputs.append(self.session.run(None, chunk)[0][:rows])
        return np.concatenate(outputs)

    def forward(self, frames: torch.Tensor, batch: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """Frames ``(B, T, 3, H, W)`` in [0, 1] -> ``{"heatmaps": (B, K, h, w)}`` on the frames' device."""
        frames = frames.float()
        feeds = {"frames": frames.cpu().numpy()}
        if self.flow is not None:
            with torch.no_grad():
                feeds["flows"] = pair_flows(self.flow, frames, self.pairs).cpu().numpy()
        missing = sorted(set(self.input_names) - set(feeds))
        if missing:
            raise ValueError(f"{self.path}: the graph has inputs {missing} that its contract does not explain")
        heatmaps = self._run({name: np.ascontiguousarray(feeds[name]) for name in self.input_names})
        return {"heatmaps": torch.from_numpy(heatmaps).to(frames.device)}

    def extra_repr(self) -> str:
        return f"{self.path}, batch={self.batch}, inputs={self.input_names}"
