"""Visibility-weighted heatmap MSE (the ViTPose/DCPose normalisation, models.md section 0.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vidpose.registry import LOSSES

__all__ = ["heatmap_mse", "HeatmapMSE"]


def heatmap_mse(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, joint_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over ``(B, K, h, w)`` of ``w_k * (pred - target)^2``; pred/target ``(B, K, h, w)``, weight ``(B, K)``.

    Leading dimensions beyond one batch axis are allowed (``(B, T, K, h, w)`` with weight
    ``(B, T, K)``). The loss is computed in float32 whatever the autocast dtype.
    """
    if pred.shape != target.shape:
        raise ValueError(f"heatmap_mse: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if weight.shape != pred.shape[:-2]:
        raise ValueError(f"heatmap_mse: weight {tuple(weight.shape)} must match {tuple(pred.shape[:-2])}")
    w = weight.float()
    if joint_weights is not None:
        w = w * joint_weights.to(w.device, w.dtype)
    sq = (pred.float() - target.float()).pow(2).mean(dim=(-2, -1))
    return (sq * w).mean()


@LOSSES.register("heatmap_mse")
class HeatmapMSE(nn.Module):
    """Module form of :func:`heatmap_mse` with optional fixed per-joint weights ``(K,)``."""

    def __init__(self, joint_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        jw = torch.as_tensor(joint_weights, dtype=torch.float32) if joint_weights is not None else None
        self.register_buffer("joint_weights", jw, persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Scalar loss for ``(B, K, h, w)`` maps and ``(B, K)`` weights."""
        return heatmap_mse(pred, target, weight, self.joint_weights)
