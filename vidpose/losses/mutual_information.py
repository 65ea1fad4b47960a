"""JM-Pose's information-orthogonality loss with VSD-style estimators (models.md section 3.3).

Every channel of a map ``(B, C, h, w)`` becomes a distribution over its ``h * w`` positions: a
softmax at temperature ``tau``. Mutual-information terms are then estimated the way Variational
Self-Distillation does it: "Z keeps the task information of V" is the KL divergence from V's
distribution (detached, the teacher) to Z's. For block ``i`` with joint features ``J``, motion
features ``M`` (both ``C`` channels) and the sequence heatmap ``H`` (``K`` joints):

- ``P(X)``: per joint k, ``softmax_positions(phi(X)_k / tau)`` with ``phi`` the frozen pose-HRNet
  final 1x1 conv ``C -> K``; for ``H`` itself ``softmax_positions(H_k / tau)``;
- ``Q(X)``: per channel c, ``softmax_positions(X_c / tau)``;
- complement ``KL(P(H).detach || P(J))`` (>= 0; raises I(J; H));
- redundancy ``KL(P(J).detach || P(M))`` (>= 0; lowers I(H; J | M): J's joint evidence must be
  explainable by M);
- relevancy ``-JS(Q(M) || Q(J))`` (in ``[-log 2, 0]`` per distribution; lowers I(M; J)); a
  bounded divergence because maximising a KL has no optimum; both sides get gradients.

``L_IO = complement + redundancy + relevancy``.

Reductions: ``"mean"`` is PyTorch's element-wise mean over ``(B, C, positions)``, i.e. each
distribution's divergence divided by the number of positions, averaged over ``(B, C)`` -- the
reduction of the JM-Pose group's code and the default. ``"distribution"`` averages the full
divergences over ``(B, C)`` (so a JS lies in ``[0, log 2]``).

Unlike the group's code, the KL here is the true KL: ``F.kl_div`` receives log-probabilities
as its input (the group passed probabilities, which computes ``sum q (log q - p)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.registry import LOSSES

__all__ = [
    "REDUCTIONS",
    "spatial_log_softmax",
    "kl_divergence",
    "js_divergence",
    "information_orthogonality_terms",
    "InformationOrthogonalityLoss",
]

REDUCTIONS = ("mean", "distribution")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"information orthogonality: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(pointwise: Tensor, reduction: str) -> Tensor:
    """``(..., N)`` pointwise divergence terms -> scalar with the named reduction."""
    _check_reduction(reduction)
    if reduction == "mean":
        return pointwise.mean()
    return pointwise.sum(dim=-1).mean()


def spatial_log_softmax(x: Tensor, temperature: float) -> Tensor:
    """``(B, C, h, w)`` -> ``(B, C, h*w)`` float32 log-probabilities of ``softmax_positions(x / tau)``."""
    if x.dim() != 4:
        raise ValueError(f"spatial_log_softmax: expected a (B, C, h, w) map, got shape {tuple(x.shape)}")
    if not temperature > 0:
        raise ValueError(f"spatial_log_softmax: temperature must be > 0, got {temperature!r}")
    return F.log_softmax(x.float().flatten(2) / temperature, dim=-1)


def _check_pair(log_p: Tensor, log_q: Tensor, name: str) -> None:
    if log_p.shape != log_q.shape:
        raise ValueError(f"{name}: distributions differ in shape, {tuple(log_p.shape)} vs {tuple(log_q.shape)}")


def kl_divergence(log_p: Tensor, log_q: Tensor, reduction: str = "mean") -> Tensor:
    """``KL(p || q)`` of log-probabilities ``(..., N)`` (distributions over the last axis) -> scalar."""
    _check_pair(log_p, log_q, "kl_divergence")
    pointwise = F.kl_div(log_q, log_p, reduction="none", log_target=True)  # p (log p - log q)
    return _reduce(pointwise, reduction)


def js_divergence(log_p: Tensor, log_q: Tensor, reduction: str = "mean") -> Tensor:
    """Jensen-Shannon divergence of log-probabilities ``(..., N)`` -> scalar (``<= log 2`` per distribution)."""
    _check_pair(log_p, log_q, "js_divergence")
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    pointwise = 0.5 * (
        F.kl_div(log_m, log_p, reduction="none", log_target=True)
        + F.kl_div(log_m, log_q, reduction="none", log_target=True)
    )
    return _reduce(pointwise, reduction)


def information_orthogonality_terms(
    joint: Tensor,
    motion: Tensor,
    sequence_heatmap: Tensor,
    projection_weight: Tensor,
    projection_bias: Tensor | None = None,
    temperature: float = 0.05,
    reduction: str = "mean",
) -> dict[str, Tensor]:
    """One block's terms ``{"complement", "redundancy", "relevancy"}`` (scalars, float32).

    ``joint``, ``motion``: ``(B, C, h, w)``; ``sequence_heatmap``: ``(B, K, h, w)``;
    ``projection_weight``: the frozen ``(K, C, 1, 1)`` 1x1 conv ``phi`` (``projection_bias``
    ``(K,)``). The sum of the three is the block's ``L_IO``.
    """
    if joint.dim() != 4 or joint.shape != motion.shape:
        raise ValueError(
            f"information orthogonality: joint {tuple(joint.shape)} and motion {tuple(motion.shape)} "
            "must be (B, C, h, w) maps of one shape"
        )
    k, c = projection_weight.shape[:2]
    if projection_weight.shape != (k, c, 1, 1) or c != joint.shape[1]:
        raise ValueError(
            f"information orthogonality: projection weight must be (K, {joint.shape[1]}, 1, 1), "
            f"got {tuple(projection_weight.shape)}"
        )
    if sequence_heatmap.shape != (joint.shape[0], k, *joint.shape[-2:]):
        raise ValueError(
            f"information orthogonality: sequence heatmap must be {(joint.shape[0], k, *joint.shape[-2:])}, "
            f"got {tuple(sequence_heatmap.shape)}"
        )
    weight = projection_weight.float()
    bias = None if projection_bias is None else projection_bias.float()

    def joint_distribution(x: Tensor) -> Tensor:
        return spatial_log_softmax(F.conv2d(x.float(), weight, bias), temperature)

    p_heatmap = spatial_log_softmax(sequence_heatmap, temperature)
    p_joint = joint_distribution(joint)
    p_motion = joint_distribution(motion)
    return {
        "complement": kl_divergence(p_heatmap.detach(), p_joint, reduction),
        "redundancy": kl_divergence(p_joint.detach(), p_motion, reduction),
        "relevancy": -js_divergence(
            spatial_log_softmax(motion, temperature), spatial_log_softmax(joint, temperature), reduction
        ),
    }


@LOSSES.register("information_orthogonality")
class InformationOrthogonalityLoss(nn.Module):
    """Module form of :func:`information_orthogonality_terms`; adds ``"total"`` (their sum)."""

    def __init__(self, temperature: float = 0.05, reduction: str = "mean") -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"information orthogonality: temperature must be > 0, got {temperature!r}")
        _check_reduction(reduction)
        self.temperature = float(temperature)
        self.reduction = reduction

    def forward(
        self,
        joint: Tensor,
        motion: Tensor,
        sequence_heatmap: Tensor,
        projection_weight: Tensor,
        projection_bias: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``(B, C, h, w)`` x2, ``(B, K, h, w)``, ``(K, C, 1, 1)`` -> the three terms and ``"total"``."""
        terms = information_orthogonality_terms(
            joint, motion, sequence_heatmap, projection_weight, projection_bias, self.temperature, self.reduction
        )
        terms["total"] = terms["complement"] + terms["redundancy"] + terms["relevancy"]
        return terms

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"
