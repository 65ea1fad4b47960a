"""JM-Pose's information-orthogonality estimators: KL/JS on spatial softmaxes, the three terms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidpose.losses.mutual_information import (
    InformationOrthogonalityLoss,
    information_orthogonality_terms,
    js_divergence,
    kl_divergence,
    spatial_log_softmax,
)
from vidpose.registry import LOSSES

LOG2 = math.log(2.0)


def log_probs(*rows: list[float]) -> torch.Tensor:
    """Hand-written distributions (rows) -> log-probabilities ``(1, R, N)``."""
    return torch.tensor(rows, dtype=torch.float64).log().unsqueeze(0)


def test_spatial_log_softmax_is_a_distribution_per_channel_and_sharpens_with_temperature():
    x = torch.zeros(2, 3, 4, 5)
    x[:, :, 1, 2] = 1.0
    for tau in (1.0, 0.05):
        log_p = spatial_log_softmax(x, tau)
        assert log_p.shape == (2, 3, 20)
        torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(2, 3))
    # one position at 1/tau above 19 others: p_peak = e^(1/tau) / (e^(1/tau) + 19)
    peak = spatial_log_softmax(x, 0.5).exp()[0, 0, 1 * 5 + 2]
    assert peak.item() == pytest.approx(math.exp(2) / (math.exp(2) + 19), rel=1e-6)
    assert spatial_log_softmax(x, 0.05).exp()[0, 0, 7].item() > 0.999
    with pytest.raises(ValueError, match="temperature"):
        spatial_log_softmax(x, 0.0)
    with pytest.raises(ValueError, match=r"\(B, C, h, w\)"):
        spatial_log_softmax(x[0], 1.0)


def test_kl_of_hand_built_distributions():
    p, q = log_probs([0.5, 0.5]), log_probs([0.9, 0.1])
    # KL(p||q) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.5 ln(25/9)
    expected = 0.5 * math.log(25 / 9)
    assert kl_divergence(p, q, "distribution").item() == pytest.approx(expected, rel=1e-12)
    # element-wise mean over the 2 positions (PyTorch 'mean', the group's reduction)
    assert kl_divergence(p, q, "mean").item() == pytest.approx(expected / 2, rel=1e-12)
    # asymmetric: KL(q||p) = 0.9 ln 1.8 + 0.1 ln 0.2
    assert kl_divergence(q, p, "distribution").item() == pytest.approx(
        0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-12
    )
    assert kl_divergence(p, p).item() == 0.0


def test_kl_is_the_true_kl_not_the_group_codes_probability_input():
    # the group's code passed probabilities as kl_div's input, computing sum q (log q - p);
    # vidpose's value must equal sum p (log p - log q) instead
    p, q = log_probs([0.7, 0.2, 0.1]), log_probs([0.2, 0.3, 0.5])
    true_kl = sum(a * math.log(a / b) for a, b in zip((0.7, 0.2, 0.1), (0.2, 0.3, 0.5)))
    buggy = F.kl_div(q.exp(), p.exp(), reduction="sum").item()
    ours = kl_divergence(p, q, "distribution").item()
    assert ours == pytest.approx(true_kl, rel=1e-12)
    assert abs(buggy - true_kl) > 0.5


def test_js_of_hand_built_distributions_is_symmetric_and_bounded():
    p, q = log_probs([0.8, 0.2]), log_probs([0.2, 0.8])
    # m = (0.5, 0.5); KL(p||m) = 0.8 ln 1.6 + 0.2 ln 0.4 = KL(q||m) by symmetry
    expected = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    assert js_divergence(p, q, "distribution").item() == pytest.approx(expected, rel=1e-12)
    assert js_divergence(q, p, "distribution").item() == pytest.approx(expected, rel=1e-12)
    assert js_divergence(p, p).item() == pytest.approx(0.0, abs=1e-15)
    # nearly disjoint supports approach the bound log 2 from below
    a = F.log_softmax(torch.tensor([[[40.0, -40.0]]], dtype=torch.float64), -1)
    b = F.log_softmax(torch.tensor([[[-40.0, 40.0]]], dtype=torch.float64), -1)
    js = js_divergence(a, b, "distribution").item()
    assert LOG2 - 1e-9 < js <= LOG2


def test_divergences_on_random_distributions_respect_their_bounds():
    g = torch.Generator().manual_seed(0)
    p = F.log_softmax(torch.randn(3, 4, 50, generator=g) * 3, -1)
    q = F.log_softmax(torch.randn(3, 4, 50, generator=g) * 3, -1)
    assert kl_divergence(p, q, "distribution") > 0 and kl_divergence(q, p, "distribution") > 0
    js = js_divergence(p, q, "distribution")
    assert 0 < js <= LOG2
    # 'mean' divides each distribution's divergence by its 50 positions
    assert js_divergence(p, q, "mean").item() == pytest.approx(js.item() / 50, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        kl_divergence(p, q, "sum")
    with pytest.raises(ValueError, match="differ in shape"):
        js_divergence(p, q[:, :2])


def _maps(seed: int = 0, b: int = 2, c: int = 6, k: int = 3, h: int = 5, w: int = 4):
    g = torch.Generator().manual_seed(seed)
    joint = torch.randn(b, c, h, w, generator=g)
    motion = torch.randn(b, c, h, w, generator=g)
    heatmap = torch.rand(b, k, h, w, generator=g)
    weight = torch.randn(k, c, 1, 1, generator=g) * 0.2
    bias = torch.randn(k, generator=g) * 0.1
    return joint, motion, heatmap, weight, bias


def test_terms_have_the_documented_signs_and_ranges():
    joint, motion, heatmap, weight, bias = _maps()
    terms = information_orthogonality_terms(joint, motion, heatmap, weight, bias, 0.05, "distribution")
    assert set(terms) == {"complement", "redundancy", "relevancy"}
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in terms.values())
    assert terms["complement"] > 0 and terms["redundancy"] > 0
    assert -LOG2 <= terms["relevancy"] < 0


def test_terms_vanish_when_the_compared_maps_agree():
    joint, _, _, weight, bias = _maps()
    # H = phi(J): P(H) == P(J), complement 0; M == J: redundancy and relevancy 0
    heatmap = F.conv2d(joint, weight, bias)
    terms = information_orthogonality_terms(joint, joint.clone(), heatmap, weight, bias, 0.05)
    for name in ("complement", "redundancy", "relevancy"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-6), name


def test_teachers_are_detached_and_relevancy_reaches_both_sides():
    joint, motion, heatmap, weight, bias = _maps()
    joint.requires_grad_(True)
    motion.requires_grad_(True)
    heatmap.requires_grad_(True)

    def grads(term: str):
        for t in (joint, motion, heatmap):
            t.grad = None
        information_orthogonality_terms(joint, motion, heatmap, weight, bias)[term].backward()
        return [t.grad is not None and t.grad.abs().sum().item() > 0 for t in (joint, motion, heatmap)]

    assert grads("complement") == [True, False, False]  # teacher P(H) detached
    assert grads("redundancy") == [False, True, False]  # teacher P(J) detached
    assert grads("relevancy") == [True, True, False]


def test_shape_errors_name_what_is_expected():
    joint, motion, heatmap, weight, bias = _maps()
    with pytest.raises(ValueError, match="one shape"):
        information_orthogonality_terms(joint, motion[:, :3], heatmap, weight, bias)
    with pytest.raises(ValueError, match=r"projection weight must be \(K, 6, 1, 1\)"):
        information_orthogonality_terms(joint, motion, heatmap, weight[:, :3], bias)
    with pytest.raises(ValueError, match="sequence heatmap"):
        information_orthogonality_terms(joint, motion, heatmap[:, :2], weight, bias)


def test_registered_module_sums_the_terms():
    loss = LOSSES.build({"name": "information_orthogonality", "temperature": 0.1})
    assert isinstance(loss, InformationOrthogonalityLoss)
    joint, motion, heatmap, weight, bias = _maps(seed=3)
    out = loss(joint, motion, heatmap, weight, bias)
    expected = information_orthogonality_terms(joint, motion, heatmap, weight, bias, 0.1)
    for name, value in expected.items():
        assert out[name].item() == pytest.approx(value.item(), rel=1e-6)
    total = expected["complement"] + expected["redundancy"] + expected["relevancy"]
    assert out["total"].item() == pytest.approx(total.item(), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        InformationOrthogonalityLoss(temperature=-1.0)
