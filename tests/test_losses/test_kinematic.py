"""HANet loss against hand-computed values on a toy batch (B=1, L=3, K=2, D=2, frames 0 and 2 sampled)."""

from __future__ import annotations

import pytest
import torch

from vidpose.losses.kinematic import HANetLoss
from vidpose.registry import LOSSES

SAMPLED = torch.tensor([True, False, True])


def toy():
    """P_s, P' and G = 0, each (1, 3, 2, 2); channel c = (joint, coordinate)."""
    refined = torch.zeros(1, 3, 2, 2)
    refined[0, 0, 0, 0], refined[0, 1, 0, 1], refined[0, 2, 1, 1] = 1.0, 2.0, 3.0
    encoder = torch.zeros(1, 3, 2, 2)
    encoder[0, 0, 1, 0], encoder[0, 1, 0, 0], encoder[0, 2, 0, 1] = 4.0, 5.0, 1.0
    return refined.requires_grad_(), encoder.requires_grad_(), torch.zeros(1, 3, 2, 2)


def test_code_form_matches_hand_computation():
    refined, encoder, target = toy()
    out = LOSSES.build({"name": "hanet"})(refined, encoder, target, SAMPLED)
    # n = 1*3*2*2 = 12. Channels (0,0) (0,1) (1,0) (1,1):
    # l_s (all frames)     = [1, 2, 0, 3] / 12
    # l_t (frames 0, 2)    = [0, 1, 4, 0] / 12   (P' = 5 on frame 1 is off the grid)
    # l_o (frames 0, 2)    = [1, 1, 4, 3] / 12
    # totals 5 l_s + l_t + l_o = [6, 12, 8, 18] / 12, sum 44/12
    # hard: k = 2*floor(4/4) = 2 largest totals (18, 12) -> mean 15/12
    assert out["final_l1"].item() == pytest.approx(6 / 12)
    assert out["encoder_l1"].item() == pytest.approx(5 / 12)
    assert out["mutual_l1"].item() == pytest.approx(9 / 12)
    assert out["hard"].item() == pytest.approx(15 / 12)
    assert out["loss"].item() == pytest.approx(59 / 12)


def test_paper_joint_hard_term_matches_hand_computation():
    refined, encoder, target = toy()
    loss = HANetLoss(hard_term="joint", hard_weight=0.5, detach_target=True)
    out = loss(refined, encoder, target, SAMPLED)
    # per-joint share of l_t: joint 0 = 1/12, joint 1 = 4/12; of l_s: 3/12 and 3/12. Each joint's
    # own mean error is K = 2 times its share: l_t 8/12 for the hardest joint, l_s 6/12
    # hard = 0.5 * (1 * 8/12 + 5 * 6/12) = 19/12 (the share form gave half: 9.5/12); the rest is
    # the code form's 44/12
    assert out["hard"].item() == pytest.approx(19 / 12)
    assert out["loss"].item() == pytest.approx(63 / 12)


def test_joint_hard_term_is_on_the_scale_of_the_first_term():
    # every joint equally wrong: the hardest joints' mean error equals the first term's mean
    error = torch.full((2, 5, 17, 2), 0.3)
    out = HANetLoss(final_weight=1.0, encoder_weight=0.0, mutual_weight=0.0, hard_term="joint", hard_weight=1.0)(
        error, torch.zeros_like(error), torch.zeros_like(error), torch.ones(5, dtype=torch.bool)
    )
    assert out["final_l1"].item() == pytest.approx(0.3)  # the mean element error
    assert out["hard"].item() == pytest.approx(0.3)  # the share form gave 0.3 / 17


def test_l2_mutual_term_squares_the_gap():
    refined, encoder, target = toy()
    out = HANetLoss(mutual_distance="l2")(refined, encoder, target, SAMPLED)
    # gaps on frames 0 and 2: (0,0) 1, (1,0) -4, (0,1) -1, (1,1) 3 -> squares [1, 1, 16, 9] / 12
    assert out["mutual_l1"].item() == pytest.approx(27 / 12)
    with pytest.raises(ValueError, match="mutual_distance"):
        HANetLoss(mutual_distance="huber")


def test_mutual_term_pulls_both_outputs_in_the_code_form_and_only_the_worse_one_when_detached():
    mutual_only = {"final_weight": 0.0, "encoder_weight": 0.0, "mutual_weight": 1.0, "hard_weight": 0.0}
    refined, encoder, target = toy()
    HANetLoss(**mutual_only)(refined, encoder, target, SAMPLED)["loss"].backward()
    # d|P_s - P'|/12 at frame 0, channel (0,0): +1/12 for P_s, -1/12 for P'
    assert refined.grad[0, 0, 0, 0].item() == pytest.approx(1 / 12)
    assert encoder.grad[0, 0, 0, 0].item() == pytest.approx(-1 / 12)

    refined, encoder, target = toy()
    HANetLoss(**mutual_only, detach_target=True)(refined, encoder, target, SAMPLED)["loss"].backward()
    # errors compared on the sampled frames 0 and 2 only:
    # joint 0: l_s 1/12 (P_s's 2 on frame 1 is off the grid) vs l_t 1/12: P_s is not worse, so P'
    # learns from P_s (comparing P_s over all frames, 3/12, would have made P_s learn instead);
    # joint 1: l_s 3/12 <= l_t 4/12, so P' learns from P_s
    assert torch.all(refined.grad == 0)
    assert encoder.grad[0, 0, 0, 0].item() == pytest.approx(-1 / 12)  # sign(P' - P_s) = sign(0 - 1)
    assert encoder.grad[0, 0, 1, 0].item() == pytest.approx(1 / 12)  # sign(4 - 0)

    # make P_s worse than P' on the grid for joint 0: then P_s learns there
    refined, encoder, target = toy()
    with torch.no_grad():
        refined[0, 2, 0, 0] = 2.0  # joint 0 on the grid: l_s 3/12 > l_t 1/12
    HANetLoss(**mutual_only, detach_target=True)(refined, encoder, target, SAMPLED)["loss"].backward()
    assert refined.grad[0, 0, 0, 0].item() == pytest.approx(1 / 12)
    assert torch.all(encoder.grad[:, :, 0] == 0) and torch.all(refined.grad[:, :, 1] == 0)


def test_visibility_weights_only_the_gt_terms():
    refined, encoder, target = toy()
    visible = torch.tensor([1.0, 0.0]).expand(1, 3, 2)
    out = HANetLoss(visibility_weighted=True)(refined, encoder, target, SAMPLED, visible)
    # joint 1 leaves l_s and l_t: l_s = [1, 2, 0, 0]/12, l_t = [0, 1, 0, 0]/12, l_o unchanged [1, 1, 4, 3]/12
    # totals [6, 12, 4, 3]/12, sum 25/12, hard mean(12, 6)/12 = 9/12
    assert out["loss"].item() == pytest.approx(34 / 12)
    with pytest.raises(ValueError, match="visibility_weighted needs visible"):
        HANetLoss(visibility_weighted=True)(refined, encoder, target, SAMPLED)


def test_bad_inputs_raise():
    refined, encoder, target = toy()
    with pytest.raises(ValueError, match="same shape"):
        HANetLoss()(refined, encoder[:, :2], target, SAMPLED)
    with pytest.raises(ValueError, match="hard_term"):
        HANetLoss(hard_term="frame")
