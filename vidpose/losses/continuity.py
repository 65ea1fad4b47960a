"""CDPose's auxiliary losses (``specs/models.md`` section 4.3): temporal triplet, spatial consistency, TPDI.

All three are pure functions of tensors; the module classes at the bottom are their registry
(``LOSSES``) forms with the options as constructor arguments.

- :func:`temporal_triplet_loss` (``L_c``): embeddings of a symmetric window ``(B, T, M)``. For
  each window offset ``delta`` the two outer frames ``t - delta`` and ``t + delta`` act as
  anchors; the key frame ``t`` is the near frame and the opposite outer frame the far one.
  ``corrected`` (default)::

      max(0, d(Z_{t-δ}, Z_t) - d(Z_{t-δ}, Z_{t+δ}) + α) + max(0, d(Z_{t+δ}, Z_t) - d(Z_{t+δ}, Z_{t-δ}) + α)

  ``literal`` is Eq. 2 as printed (near and far swapped in the first term; the second term
  subtracts the norm of the single embedding ``Z_t``)::

      max(0, d(Z_{t-δ}, Z_{t+δ}) - d(Z_{t-δ}, Z_t) + α) + max(0, d(Z_{t+δ}, Z_{t-δ}) - ||Z_t|| + α)

  ``d`` is the Euclidean distance; both forms are averaged over offsets and the batch.
- :func:`spatial_consistency_loss` (``L_s``): ``||Z - Z'||_2`` between a frame's embedding and
  that of a rotated/scaled copy, averaged over the batch.
- :func:`tpdi_energy` / :func:`tpdi_loss` (``L_t``, trajectory probability difference
  integration): for every joint and consecutive frame pair, the expected patch difference
  ``E = sum_{a,b} p_i(a) p_{i+1}(b) PD(a, b)`` over the ``top_k`` most probable positions of
  each frame's heatmap, ``PD`` the mean absolute difference of the ``patch x patch`` RGB
  neighbourhoods of the two positions (zero padding). Images are constants: gradients reach
  the heatmaps only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidpose.registry import LOSSES

__all__ = [
    "CONTRASTIVE_FORMS",
    "temporal_triplet_loss",
    "spatial_consistency_loss",
    "gather_patches",
    "tpdi_energy",
    "tpdi_loss",
    "TemporalTripletLoss",
    "SpatialConsistencyLoss",
    "TPDILoss",
]

CONTRASTIVE_FORMS = ("corrected", "literal")


def _distance(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distance of ``(B, M)`` rows -> ``(B,)``."""
    return torch.linalg.vector_norm(a - b, dim=-1)


def temporal_triplet_loss(
    embeddings: Tensor, key_index: int, margin: float = 0.2, form: str = "corrected"
) -> Tensor:
    """``L_c`` of embeddings ``(B, T, M)`` around ``key_index``, averaged over offsets and batch -> scalar.

    Offsets ``delta = 1 .. min(key_index, T - 1 - key_index)``; at least one is needed.
    """
    if form not in CONTRASTIVE_FORMS:
        raise ValueError(f"temporal_triplet_loss: form must be one of {CONTRASTIVE_FORMS}, got {form!r}")
    if embeddings.dim() != 3:
        raise ValueError(f"temporal_triplet_loss: embeddings must be (B, T, M), got {tuple(embeddings.shape)}")
    num_frames = embeddings.shape[1]
    reach = min(key_index, num_frames - 1 - key_index)
    if reach < 1:
        raise ValueError(
            f"temporal_triplet_loss: key_index {key_index} of a {num_frames}-frame window leaves no frame on one side"
        )
    z = embeddings.float()
    key = z[:, key_index]
    terms = []
    for delta in range(1, reach + 1):
        before, after = z[:, key_index - delta], z[:, key_index + delta]
        far = _distance(before, after)
        if form == "corrected":
            first = F.relu(_distance(before, key) - far + margin)
            second = F.relu(_distance(after, key) - far + margin)
        else:
            first = F.relu(far - _distance(before, key) + margin)
            second = F.relu(far - torch.linalg.vector_norm(key, dim=-1) + margin)
        terms.append(first + second)
    return torch.stack(terms).mean()


def spatial_consistency_loss(embeddings: Tensor, view_embeddings: Tensor) -> Tensor:
    """``L_s``: mean over the batch of ``||Z - Z'||_2`` for embeddings ``(B, M)`` of two views -> scalar."""
    if embeddings.shape != view_embeddings.shape or embeddings.dim() != 2:
        raise ValueError(
            f"spatial_consistency_loss: expected two (B, M) embeddings of one shape, got "
            f"{tuple(embeddings.shape)} and {tuple(view_embeddings.shape)}"
        )
    return _distance(embeddings.float(), view_embeddings.float()).mean()


def gather_patches(images: Tensor, xy: Tensor, patch: int) -> Tensor:
    """``patch x patch`` neighbourhoods of integer pixels; zero outside the image.

    ``images (N, C, H, W)``, ``xy (N, P, 2)`` integer (x, y) pixel centres -> ``(N, P, C * patch * patch)``.
    """
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"gather_patches: patch must be a positive odd size, got {patch}")
    n, c, _, width = images.shape
    half = patch // 2
    padded = F.pad(images, (half, half, half, half))
    padded_width = width + 2 * half
    steps = torch.arange(patch, device=images.device)
    # Padded coordinates of the patch's top-left pixel are the centre itself (shift by half).
    rows = xy[..., 1, None, None] + steps[:, None]  # (N, P, patch, 1)
    cols = xy[..., 0, None, None] + steps[None, :]  # (N, P, 1, patch)
    flat_index = (rows * padded_width + cols).reshape(n, 1, -1).expand(n, c, -1)
    values = padded.flatten(2).gather(2, flat_index)  # (N, C, P * patch * patch)
    return values.view(n, c, xy.shape[1], patch * patch).permute(0, 2, 1, 3).reshape(n, xy.shape[1], -1)


def tpdi_energy(
    heatmaps: Tensor,
    frames: Tensor,
    heatmap_to_input: Sequence[float],
    top_k: int = 25,
    patch: int = 5,
) -> tuple[Tensor, Tensor]:
    """Expected patch difference of consecutive frames per joint, and where it is defined.

    ``heatmaps (B, T, K, h, w)`` (any sign; ReLU is applied), ``frames (B, T, 3, H, W)`` in
    [0, 1], ``heatmap_to_input = (sx, sy)`` input pixels per heatmap pixel (the codec's scale).
    Returns ``energy (B, T-1, K)`` float32 and ``valid (B, T-1, K)`` bool (False where either
    frame's top-k values sum to 0).
    """
    if heatmaps.dim() != 5 or frames.dim() != 5 or heatmaps.shape[:2] != frames.shape[:2] or frames.shape[2] != 3:
        raise ValueError(
            f"tpdi_energy: expected heatmaps (B, T, K, h, w) and frames (B, T, 3, H, W) of the same clips, got "
            f"{tuple(heatmaps.shape)} and {tuple(frames.shape)}"
        )
    b, t, k, h, w = heatmaps.shape
    if t < 2:
        raise ValueError(f"tpdi_energy: needs at least two frames, got {t}")
    if not 1 <= top_k <= h * w:
        raise ValueError(f"tpdi_energy: top_k must be in [1, {h * w}] for {h}x{w} heatmaps, got {top_k}")
    height, width = frames.shape[-2:]
    values, index = F.relu(heatmaps.float()).flatten(-2).topk(top_k, dim=-1)  # (B, T, K, k)
    total = values.sum(dim=-1, keepdim=True)
    defined = total.squeeze(-1) > 0
    probability = values / torch.where(total > 0, total, torch.ones_like(total))

    with torch.no_grad():
        sx, sy = (float(v) for v in heatmap_to_input)
        x = torch.round((index % w).float() * sx).clamp_(0, width - 1)
        y = torch.round(torch.div(index, w, rounding_mode="floor").float() * sy).clamp_(0, height - 1)
        xy = torch.stack((x, y), dim=-1).long().view(b * t, k * top_k, 2)
        patches = gather_patches(frames.float().flatten(0, 1), xy, patch).view(b, t, k, top_k, -1)
        first, second = patches[:, :-1].flatten(0, 2), patches[:, 1:].flatten(0, 2)
        difference = torch.cdist(first, second, p=1) / first.shape[-1]  # (B*(T-1)*K, k, k)

    p_first = probability[:, :-1].flatten(0, 2)
    p_second = probability[:, 1:].flatten(0, 2)
    energy = torch.einsum("na,nab,nb->n", p_first, difference, p_second).view(b, t - 1, k)
    valid = defined[:, :-1] & defined[:, 1:]
    return energy, valid


def tpdi_loss(
    heatmaps: Tensor,
    frames: Tensor,
    weight: Tensor,
    heatmap_to_input: Sequence[float],
    top_k: int = 25,
    patch: int = 5,
) -> Tensor:
    """``L_t``: mean over ``(B, T-1, K)`` of ``w_i w_{i+1} E`` with joint weights ``weight (B, T, K)`` -> scalar."""
    energy, valid = tpdi_energy(heatmaps, frames, heatmap_to_input, top_k, patch)
    if weight.shape != heatmaps.shape[:3]:
        raise ValueError(f"tpdi_loss: weight {tuple(weight.shape)} must be {tuple(heatmaps.shape[:3])}")
    w = weight.float()
    pair_weight = w[:, :-1] * w[:, 1:] * valid
    return (energy * pair_weight).mean()


@LOSSES.register("temporal_triplet")
class TemporalTripletLoss(nn.Module):
    """Module form of :func:`temporal_triplet_loss`."""

    def __init__(self, margin: float = 0.2, form: str = "corrected") -> None:
        super().__init__()
        if form not in CONTRASTIVE_FORMS:
            raise ValueError(f"temporal_triplet: form must be one of {CONTRASTIVE_FORMS}, got {form!r}")
        self.margin, self.form = float(margin), form

    def forward(self, embeddings: Tensor, key_index: int) -> Tensor:
        """Scalar loss of ``(B, T, M)`` embeddings."""
        return temporal_triplet_loss(embeddings, key_index, self.margin, self.form)


@LOSSES.register("spatial_consistency")
class SpatialConsistencyLoss(nn.Module):
    """Module form of :func:`spatial_consistency_loss`."""

    def forward(self, embeddings: Tensor, view_embeddings: Tensor) -> Tensor:
        """Scalar loss of two ``(B, M)`` embeddings."""
        return spatial_consistency_loss(embeddings, view_embeddings)


@LOSSES.register("tpdi")
class TPDILoss(nn.Module):
    """Module form of :func:`tpdi_loss` with the codec's heatmap -> input scale fixed at construction."""

    def __init__(self, heatmap_to_input: Sequence[float], top_k: int = 25, patch: int = 5) -> None:
        super().__init__()
        self.heatmap_to_input = tuple(float(v) for v in heatmap_to_input)
        self.top_k, self.patch = int(top_k), int(patch)

    def forward(self, heatmaps: Tensor, frames: Tensor, weight: Tensor) -> Tensor:
        """Scalar loss of ``(B, T, K, h, w)`` heatmaps on ``(B, T, 3, H, W)`` frames with ``(B, T, K)`` weights."""
        return tpdi_loss(heatmaps, frames, weight, self.heatmap_to_input, self.top_k, self.patch)
