"""HANet's loss: weighted L1 on both outputs, online mutual learning, hard-coordinate term (models.md 5.1, 5.2).

Per coordinate channel ``c`` (``K * D`` of them), with ``n = B * L * K * D`` (every element of
every frame, one count for all terms, as the official code divides):

- ``l_s(c) = sum |P_s - G| / n`` over all frames (``final_weight``, code 5.0);
- ``l_t(c) = sum |P' - G| / n`` over the sampled frames (``encoder_weight``, code 1.0);
- ``l_o(c) = sum |P_s - P'| / n`` over the sampled frames (``mutual_weight``, code 1.0);
  ``mutual_distance="l2"`` uses ``(P_s - P')^2`` instead (the L2 mutual term of the paper's
  best Table 4 row). The code picks the direction by which output is closer to G but detaches
  neither side, so both outputs are pulled together; ``detach_target=True`` is the paper's
  reading (Eq. 10): per joint, the output with the larger error learns from the other, which
  is detached. Both errors are compared on the same frames, the sampled ones (``P'`` exists
  only there), not ``P_s``'s error over all frames against ``P'``'s over the sampled ones.

``hard_term="channel"`` (code) adds ``hard_weight`` x the mean of the ``2 * floor(K*D/4)``
largest channel totals ``final_weight*l_s + encoder_weight*l_t + mutual_weight*l_o``;
``hard_term="joint"`` (paper Eq. 9, with ``hard_weight=0.5``) adds, for each of ``P'`` and
``P_s`` with its weight, ``hard_weight`` x the mean of the ``floor(K/2)`` largest per-joint L1
errors, each joint's error normalised as the first term is (its mean element error, i.e.
``K`` x its share ``sum_d l(k, d)``), so that ``λ = 0.5`` weighs the hardest joints against a
first term of the same scale.
``visibility_weighted`` multiplies each GT term's element by the GT visibility ``(B, L, K)``
(PoseTrack: unannotated joints and padded frames count zero); the mutual term needs no GT.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidpose.registry import LOSSES

__all__ = ["HANetLoss", "HARD_TERMS", "MUTUAL_DISTANCES"]

HARD_TERMS = ("channel", "joint")
MUTUAL_DISTANCES = ("l1", "l2")


def _top_mean(values: Tensor, k: int) -> Tensor:
    """Mean of the ``k`` largest entries of a 1-D tensor (0 when ``k`` is 0)."""
    if k <= 0:
        return values.new_zeros(())
    return values.topk(min(k, values.numel())).values.mean()


@LOSSES.register("hanet")
class HANetLoss(nn.Module):
    """HANet's training loss on ``(B, L, K, D)`` outputs (module docstring); returns the total and its parts."""

    def __init__(
        self,
        final_weight: float = 5.0,
        encoder_weight: float = 1.0,
        mutual_weight: float = 1.0,
        hard_term: str = "channel",
        hard_weight: float = 1.0,
        detach_target: bool = False,
        visibility_weighted: bool = False,
        mutual_distance: str = "l1",
    ) -> None:
        super().__init__()
        if hard_term not in HARD_TERMS:
            raise ValueError(f"refiner.loss.hard_term: expected one of {HARD_TERMS}, got {hard_term!r}")
        if mutual_distance not in MUTUAL_DISTANCES:
            raise ValueError(
                f"refiner.loss.mutual_distance: expected one of {MUTUAL_DISTANCES}, got {mutual_distance!r}"
            )
        self.mutual_distance = mutual_distance
        self.final_weight, self.encoder_weight = float(final_weight), float(encoder_weight)
        self.mutual_weight = float(mutual_weight)
        self.hard_term, self.hard_weight = hard_term, float(hard_weight)
        self.detach_target, self.visibility_weighted = bool(detach_target), bool(visibility_weighted)

    def forward(
        self, refined: Tensor, encoder: Tensor, target: Tensor, sampled: Tensor, visible: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Loss of ``refined`` (P_s) and ``encoder`` (P') vs ``target``, all ``(B, L, K, D)``; ``sampled (L,)`` bool."""
        if refined.shape != target.shape or encoder.shape != target.shape:
            raise ValueError(
                f"HANetLoss: refined {tuple(refined.shape)}, encoder {tuple(encoder.shape)} and target "
                f"{tuple(target.shape)} must have the same shape (B, L, K, D)"
            )
        refined, encoder, target = refined.float(), encoder.float(), target.float()
        b, length, k, d = target.shape
        n = float(b * length * k * d)
        grid = sampled.to(target.dtype).view(1, length, 1, 1)
        weight = torch.ones_like(target[..., :1])
        if self.visibility_weighted:
            if visible is None or visible.shape != target.shape[:3]:
                raise ValueError(f"HANetLoss: visibility_weighted needs visible of shape {tuple(target.shape[:3])}")
            weight = visible.to(target.dtype).unsqueeze(-1)

        final_error = (refined - target).abs() * weight
        final = final_error.sum(dim=(0, 1)) / n
        coarse = ((encoder - target).abs() * weight * grid).sum(dim=(0, 1)) / n
        if self.detach_target:
            final_on_grid = (final_error * grid).sum(dim=(0, 1, 3)) / n
            final_learns = (final_on_grid > coarse.sum(-1)).view(1, 1, k, 1)
            gap = torch.where(final_learns, refined - encoder.detach(), refined.detach() - encoder)
        else:
            gap = refined - encoder
        distance = gap.abs() if self.mutual_distance == "l1" else gap.square()
        mutual = (distance * grid).sum(dim=(0, 1)) / n

        channel_total = self.final_weight * final + self.encoder_weight * coarse + self.mutual_weight * mutual
        if self.hard_term == "channel":
            hard = _top_mean(channel_total.flatten(), 2 * ((k * d) // 4))
        else:
            # sum_d l(k, d) is joint k's share of the first term; times K it is the joint's own mean
            hard = self.encoder_weight * _top_mean(k * coarse.sum(-1), k // 2) + self.final_weight * _top_mean(
                k * final.sum(-1), k // 2
            )
        hard = self.hard_weight * hard
        return {
            "loss": channel_total.sum() + hard,
            "final_l1": final.sum().detach(),
            "encoder_l1": coarse.sum().detach(),
            "mutual_l1": mutual.sum().detach(),
            "hard": hard.detach(),
        }
