"""The modules that become exported graphs: a clip model without its Python plumbing, a refiner.

:class:`ClipGraph` is ``PoseModel`` seen as ``frames (B, T, 3, H, W) in [0, 1] [, flows] ->
heatmaps (B, K, h, w)``: normalisation, backbone and head run as in ``PoseModel.forward``; a
traceable flow estimator (RAFT) runs inside the graph through its ``estimate`` (the value range
check of ``FlowEstimator.forward`` reads tensor values, which a graph cannot), any other
(OpenCV DIS) is replaced by the ``flows (B, P, 2, H, W)`` input. :class:`RefinerGraph` is a
refiner seen as ``poses (B, L, K, 2) -> refined (B, L, K, 2)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidpose.models.flow.base import pair_flows
from vidpose.models.pose_model import PoseModel

__all__ = ["ClipGraph", "RefinerGraph"]


class ClipGraph(nn.Module):
    """``frames [, flows] -> heatmaps`` of a :class:`PoseModel` in eval mode (module docstring)."""

    def __init__(self, model: PoseModel) -> None:
        super().__init__()
        self.model = model.eval()

    @property
    def flow_input(self) -> bool:
        """Whether the graph takes the flows as an input (an estimator that cannot be traced)."""
        return bool(self.model.pairs) and not self.model.flow.traceable

    def input_names(self) -> list[str]:
        """Names of the graph inputs, in ``forward``'s order."""
        return ["frames", "flows"] if self.flow_input else ["frames"]

    def example_inputs(self, batch: int, input_hw: tuple[int, int], seed: int = 0) -> tuple[Tensor, ...]:
        """Random frames ``(batch, T, 3, H, W)`` in [0, 1] and, for a flow input, their real flows."""
        frames = torch.rand(batch, self.model.num_frames, 3, *input_hw, generator=torch.Generator().manual_seed(seed))
        if not self.flow_input:
            return (frames,)
        return frames, self.model.compute_flows(frames)

    def forward(self, frames: Tensor, flows: Tensor | None = None) -> Tensor:
        """Frames ``(B, T, 3, H, W)`` in [0, 1] (and flows ``(B, P, 2, H, W)``) -> heatmaps ``(B, K, h, w)``."""
        if flows is None and self.model.pairs:
            flows = pair_flows(self.model.flow.estimate, frames, self.model.pairs)
        return self.model(frames, None, flows=flows)["heatmaps"]


class RefinerGraph(nn.Module):
    """``poses (B, L, K, D) -> refined (B, L, K, D)`` of a refiner in eval mode."""

    def __init__(self, refiner: nn.Module) -> None:
        super().__init__()
        self.refiner = refiner.eval()

    def input_names(self) -> list[str]:
        """Names of the graph inputs."""
        return ["poses"]

    def example_inputs(self, batch: int, seed: int = 0) -> tuple[Tensor]:
        """Random poses ``(batch, L, K, D)`` in [0, 1]."""
        shape = (batch, self.refiner.window, self.refiner.num_joints, self.refiner.coord_dim)
        return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)),)

    def forward(self, poses: Tensor) -> Tensor:
        """The refined window ``(B, L, K, D)``."""
        return self.refiner(poses)["refined"]
