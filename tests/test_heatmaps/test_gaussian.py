import math

import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK
from vidpose.heatmaps import Geometry, gaussian, gaussian_np, support_radius

MSRA = Geometry((256, 192), 4, "msra")
UDP = Geometry((256, 192), 4, "udp")


def test_msra_centre_is_rounded_and_window_is_3_sigma():
    # x/4 = 10.25 -> mu_x = 10; y/4 = 7.5 -> mu_y = floor(8.0) = 8
    maps, weight = gaussian_np(np.array([[41.0, 30.0]]), np.array([1.0]), MSRA, sigma=2.0)
    m = maps[0]
    assert maps.shape == (1, 64, 48) and maps.dtype == np.float32 and weight.tolist() == [1.0]
    assert m[8, 10] == 1.0 and m.max() == 1.0
    assert m[8, 11] == pytest.approx(math.exp(-1 / 8))
    assert m[9, 12] == pytest.approx(math.exp(-5 / 8))
    # |dx| <= 3 sigma = 6: columns 4..16 and rows 2..14, nothing else
    assert m[8, 16] == pytest.approx(math.exp(-36 / 8)) and m[8, 4] == pytest.approx(math.exp(-36 / 8))
    assert m[8, 17] == 0 and m[8, 3] == 0 and m[15, 10] == 0 and m[1, 10] == 0
    assert m[14, 16] == pytest.approx(math.exp(-72 / 8))  # the square's corner is inside
    assert np.count_nonzero(m) == 13 * 13


def test_udp_window_is_rounded_but_kernel_is_centred_at_the_exact_point():
    # heatmap point (10.3, 20.6): mu = (10, 21), window columns 4..16, rows 15..27
    xy = np.array([[10.3 * 191 / 47, 20.6 * 255 / 63]])
    m = gaussian_np(xy, np.array([1.0]), UDP, sigma=2.0)[0][0]
    assert m[21, 10] == pytest.approx(math.exp(-(0.3**2 + 0.4**2) / 8), rel=1e-6)
    assert m.max() < 1.0  # the peak pixel is not the exact centre
    # column 4 is 6.3 px from the centre but inside the window taken from the rounded centre
    assert m[21, 4] == pytest.approx(math.exp(-(6.3**2 + 0.4**2) / 8), rel=1e-5)
    assert m[21, 3] == 0 and m[21, 17] == 0 and m[14, 10] == 0 and m[28, 10] == 0
    assert np.count_nonzero(m) == 13 * 13


def test_non_integer_sigma_keeps_a_symmetric_window():
    assert support_radius(2.0) == 6 and support_radius(2.5) == 7 and support_radius(1 / 3) == 1
    m = gaussian_np(np.array([[80.0, 120.0]]), np.array([1.0]), MSRA, sigma=2.5)[0][0]  # mu = (20, 30)
    assert m[30, 13] > 0 and m[30, 27] > 0  # |d| = 7 <= 7.5
    assert m[30, 12] == 0 and m[30, 28] == 0  # |d| = 8


def test_weight_zero_when_invisible_or_window_outside():
    xy = np.array([[80.0, 120.0], [-28.0, 100.0], [-24.0, 100.0], [80.0, 300.0]])
    maps, weight = gaussian_np(xy, np.array([0.0, 1.0, 1.0, 1.0]), MSRA, sigma=2.0)
    # joint 1: mu_x = -7, window -13..-1 lies left of the map; joint 2: mu_x = -6 reaches column 0;
    # joint 3: mu_y = 75, window rows 69..81 below the 64-row map
    assert weight.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert not maps[[0, 1, 3]].any()
    assert maps[2][25, 0] == pytest.approx(math.exp(-36 / 8)) and maps[2][:, 1:].max() == 0


def test_nan_on_a_visible_joint_names_it():
    xy = np.zeros((17, 2))
    xy[9] = np.nan
    with pytest.raises(ValueError, match=r"joint 9 \(left_wrist\)"):
        gaussian_np(xy, np.ones(17), MSRA, 2.0, joint_names=POSETRACK)
    with pytest.raises(ValueError, match="joint 9"):
        gaussian_np(xy, np.ones(17), MSRA, 2.0)
    visible = np.ones(17)
    visible[9] = 0
    maps, weight = gaussian_np(xy, visible, MSRA, 2.0)  # NaN on an invisible joint is ignored
    assert weight[9] == 0 and not maps[9].any() and weight.sum() == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_np(np.zeros((1, 2)), np.ones(1), MSRA, sigma=0.0)
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        gaussian_np(np.zeros((1, 3)), np.ones(1), MSRA)


def _random_batch(rng, batch, joints):
    xy = rng.uniform([-40, -40], [232, 296], size=(batch, joints, 2))
    visible = (rng.uniform(size=(batch, joints)) > 0.2).astype(np.float32)
    return xy, visible


@pytest.mark.parametrize("geo", [MSRA, UDP], ids=["msra", "udp"])
@pytest.mark.parametrize("sigma", [2.0, 3.0, 2.5])
def test_torch_matches_numpy_reference(geo, sigma):
    torch = pytest.importorskip("torch")
    xy, visible = _random_batch(np.random.default_rng(int(sigma * 10)), 8, 17)
    maps, weight = gaussian(torch.tensor(xy, dtype=torch.float32), torch.tensor(visible), geo, sigma)
    assert maps.shape == (8, 17, 64, 48) and maps.dtype == torch.float32 and weight.dtype == torch.float32
    for b in range(8):
        ref_maps, ref_weight = gaussian_np(xy[b], visible[b], geo, sigma)
        assert np.abs(maps[b].numpy() - ref_maps).max() < 1e-5
        assert weight[b].numpy().tolist() == ref_weight.tolist()
    assert 0 < weight.sum() < visible.sum()  # some visible joints fell outside


def test_torch_nan_error_names_sample_and_joint():
    torch = pytest.importorskip("torch")
    xy = torch.zeros(2, 17, 2)
    xy[1, 5, 0] = float("nan")
    with pytest.raises(ValueError, match=r"joint 5 \(left_shoulder\) at sample 1"):
        gaussian(xy, torch.ones(2, 17), MSRA, joint_names=POSETRACK)


def test_torch_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xy, visible = _random_batch(np.random.default_rng(0), 4, 17)
    maps, _ = gaussian(torch.tensor(xy, device="cuda"), torch.tensor(visible, device="cuda"), UDP, 2.0)
    cpu_maps, _ = gaussian(torch.tensor(xy), torch.tensor(visible), UDP, 2.0)
    assert maps.device.type == "cuda" and torch.allclose(maps.cpu(), cpu_maps, atol=1e-6)
