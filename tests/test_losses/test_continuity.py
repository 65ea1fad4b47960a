"""CDPose losses: temporal triplet (corrected and literal), spatial consistency, TPDI."""

from __future__ import annotations

import math

import pytest
import torch

from vidpose.losses.continuity import (
    gather_patches,
    spatial_consistency_loss,
    temporal_triplet_loss,
    tpdi_energy,
    tpdi_loss,
)
from vidpose.registry import LOSSES

SQRT2 = math.sqrt(2.0)


def _window(*points):
    """Embeddings (1, T, 2) from 2-D points."""
    return torch.tensor([points], dtype=torch.float32)


# Unit vectors a quarter turn apart: d(Z0, Z1) = d(Z1, Z2) = sqrt(2) (near), d(Z0, Z2) = 2 (far).
ORDERED = _window((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0))
# The key frame opposite both neighbours, which coincide: near pairs 2 apart, far pair 0 apart.
SHUFFLED = _window((1.0, 0.0), (-1.0, 0.0), (1.0, 0.0))


def test_corrected_triplet_is_zero_when_near_frames_are_closer_by_the_margin():
    # each term: max(0, sqrt(2) - 2 + 0.2) = 0
    assert temporal_triplet_loss(ORDERED, key_index=1, margin=0.2).item() == 0.0
    # with margin 1 each term is sqrt(2) - 2 + 1, two terms
    assert temporal_triplet_loss(ORDERED, 1, margin=1.0).item() == pytest.approx(2 * (SQRT2 - 1.0), abs=1e-6)


def test_corrected_triplet_ranks_a_near_pair_below_a_far_pair():
    # shuffled: each term max(0, 2 - 0 + 0.2) = 2.2
    assert temporal_triplet_loss(SHUFFLED, 1, margin=0.2).item() == pytest.approx(4.4, abs=1e-6)
    assert temporal_triplet_loss(ORDERED, 1) < temporal_triplet_loss(SHUFFLED, 1)


def test_literal_form_reproduces_eq2_as_printed():
    # term 1 swaps near and far: max(0, 2 - sqrt(2) + 0.2); term 2 subtracts ||Z_t|| = 1: max(0, 2 - 1 + 0.2)
    expected = (2 - SQRT2 + 0.2) + (2 - 1 + 0.2)
    assert temporal_triplet_loss(ORDERED, 1, 0.2, form="literal").item() == pytest.approx(expected, abs=1e-6)
    # ... so, unlike the corrected form, it penalises the well-ordered window more than the shuffled one
    # (shuffled: max(0, 0 - 2 + 0.2) + max(0, 0 - 1 + 0.2) = 0)
    assert temporal_triplet_loss(SHUFFLED, 1, 0.2, form="literal").item() == 0.0


def test_triplet_averages_over_window_offsets_and_batch():
    # five frames on a line of unit steps (not unit-norm; the loss only needs distances):
    # delta 1: near 1, far 2 -> max(0, 1 - 2 + 1.5) = 0.5 per term; delta 2: near 2, far 4 -> 0
    line = _window((-2.0, 0.0), (-1.0, 0.0), (0.0, 0.0), (1.0, 0.0), (2.0, 0.0))
    assert temporal_triplet_loss(line, 2, margin=1.5).item() == pytest.approx((1.0 + 0.0) / 2, abs=1e-6)
    batch = torch.cat([line, torch.zeros_like(line)])  # the zero window: every distance 0 -> 2 x 1.5 per offset
    assert temporal_triplet_loss(batch, 2, margin=1.5).item() == pytest.approx((0.5 + 3.0) / 2, abs=1e-6)


def test_triplet_rejects_a_window_without_both_sides():
    with pytest.raises(ValueError, match="leaves no frame"):
        temporal_triplet_loss(ORDERED, key_index=0)
    with pytest.raises(ValueError, match="form"):
        temporal_triplet_loss(ORDERED, 1, form="printed")


def test_spatial_consistency_is_the_mean_euclidean_distance():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    view = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert spatial_consistency_loss(z, view).item() == pytest.approx(SQRT2 / 2, abs=1e-6)
    same = z.clone().requires_grad_(True)
    loss = spatial_consistency_loss(same, z)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(same.grad).all()


def test_gather_patches_reads_neighbourhoods_with_zero_padding():
    image = torch.arange(1, 1 + 6 * 7, dtype=torch.float32).view(1, 1, 6, 7)  # value = 1 + 7 y + x
    xy = torch.tensor([[[3, 2], [0, 0]]])
    patches = gather_patches(image, xy, 3)
    assert patches[0, 0].tolist() == image[0, 0, 1:4, 2:5].flatten().tolist()
    # top-left corner: the row above and the column to the left are padding
    assert patches[0, 1].tolist() == [0, 0, 0, 0, 1, 2, 0, 8, 9]


def _one_hot(t, h, w, points):
    """Heatmaps (1, T, 1, h, w) with value 1 at one (x, y) per frame."""
    maps = torch.zeros(1, t, 1, h, w)
    for i, (x, y) in enumerate(points):
        maps[0, i, 0, y, x] = 1.0
    return maps


def test_tpdi_is_zero_for_identical_frames_and_identical_peaks():
    frames = torch.rand(1, 1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).expand(1, 2, 3, 16, 16)
    energy, valid = tpdi_energy(_one_hot(2, 4, 4, [(1, 2), (1, 2)]), frames, (4.0, 4.0), top_k=3)
    assert valid.all() and energy.item() == 0.0


def test_tpdi_grows_with_the_patch_difference():
    # peak at heatmap (1, 2) -> input pixel (4, 8) (msra stride 4); the second frame is brighter by
    # delta on every pixel, so the 5x5x3 mean absolute difference is exactly delta.
    base = torch.full((1, 1, 3, 16, 16), 0.25)
    heatmaps = _one_hot(2, 4, 4, [(1, 2), (1, 2)])
    energies = [
        tpdi_energy(heatmaps, torch.cat([base, base + delta], dim=1), (4.0, 4.0), top_k=3)[0].item()
        for delta in (0.1, 0.2, 0.4)
    ]
    assert energies == pytest.approx([0.1, 0.2, 0.4], abs=1e-6)


def test_tpdi_is_the_pairwise_expectation_over_top_k_positions():
    # frame 0: values 0.3 at heatmap (0, 0) and 0.1 at (3, 3) -> probabilities 0.75, 0.25 (the other
    # top-k entries are 0); frame 1: one peak at (0, 0). Input pixels (0, 0) and (12, 12): far apart.
    heatmaps = torch.zeros(1, 2, 1, 4, 4)
    heatmaps[0, 0, 0, 0, 0], heatmaps[0, 0, 0, 3, 3], heatmaps[0, 1, 0, 0, 0] = 0.3, 0.1, 1.0
    frames = torch.full((1, 2, 3, 16, 16), 0.5)
    frames[0, 0, :, 10:, 10:] = 0.9  # the patch around (12, 12) of frame 0 differs by 0.4 inside the image
    # PD((0,0), (0,0)) = 0; PD((12,12), (0,0)): the 3x3 in-image corner of the (0, 0) patch is 0.5 and the
    # other 16 are padding (0); the (12, 12) patch is all 0.9 -> (9 x 0.4 + 16 x 0.9) / 25 = 0.72
    energy, _ = tpdi_energy(heatmaps, frames, (4.0, 4.0), top_k=4)
    assert energy.item() == pytest.approx(0.25 * 0.72, abs=1e-6)


def test_tpdi_skips_empty_heatmaps_and_weights_pairs_by_visibility():
    frames = torch.cat([torch.zeros(1, 1, 3, 16, 16), torch.ones(1, 1, 3, 16, 16)], dim=1)
    heatmaps = _one_hot(2, 4, 4, [(1, 1), (2, 2)]).repeat(1, 1, 2, 1, 1)  # two joints
    heatmaps[0, 1, 1] = -1.0  # joint 1 has no positive value in frame 1: undefined, skipped
    energy, valid = tpdi_energy(heatmaps, frames, (4.0, 4.0), top_k=2)
    assert valid[0, 0].tolist() == [True, False]
    assert energy[0, 0, 0].item() == pytest.approx(1.0, abs=1e-6)  # all-zero vs all-one patches
    weight = torch.ones(1, 2, 2)
    # mean over (B, pairs, K) = (1 + 0) / 2
    assert tpdi_loss(heatmaps, frames, weight, (4.0, 4.0), top_k=2).item() == pytest.approx(0.5, abs=1e-6)
    weight[0, 1, 0] = 0.0  # joint 0 not annotated in frame 1
    assert tpdi_loss(heatmaps, frames, weight, (4.0, 4.0), top_k=2).item() == 0.0


def test_tpdi_gradient_reaches_the_heatmaps_only():
    frames = torch.rand(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    heatmaps = torch.rand(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    loss = tpdi_loss(heatmaps, frames, torch.ones(2, 3, 2), (4.0, 4.0), top_k=5)
    loss.backward()
    assert loss.item() > 0 and heatmaps.grad.abs().sum() > 0 and frames.grad is None


def test_tpdi_uses_the_codec_scale_to_find_input_pixels():
    # udp at 16x16 input / 4x4 heatmap: x_in = x_hm * 15 / 3 = 5 x_hm; heatmap (3, 0) -> input (15, 0)
    frames = torch.zeros(1, 2, 3, 16, 16)
    frames[0, 1, :, 0, 15] = 1.0  # one bright pixel of frame 1 at (15, 0)
    heatmaps = _one_hot(2, 4, 4, [(3, 0), (3, 0)])
    udp, _ = tpdi_energy(heatmaps, frames, (5.0, 5.0), top_k=1)
    msra, _ = tpdi_energy(heatmaps, frames, (4.0, 4.0), top_k=1)  # input (12, 0): pixel (15, 0) is 3 away
    assert udp.item() == pytest.approx(1.0 / 25, abs=1e-6) and msra.item() == 0.0


def test_registry_forms():
    triplet = LOSSES.build({"name": "temporal_triplet", "margin": 1.0})
    assert triplet(ORDERED, 1).item() == pytest.approx(2 * (SQRT2 - 1.0), abs=1e-6)
    tpdi = LOSSES.build({"name": "tpdi", "heatmap_to_input": [4.0, 4.0], "top_k": 3})
    frames = torch.full((1, 2, 3, 16, 16), 0.25)
    assert tpdi(_one_hot(2, 4, 4, [(1, 2), (1, 2)]), frames, torch.ones(1, 2, 1)).item() == 0.0
    assert LOSSES.build({"name": "spatial_consistency"})(torch.ones(1, 2), torch.ones(1, 2)).item() == 0.0
