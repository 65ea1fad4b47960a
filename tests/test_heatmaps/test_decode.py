import cv2
import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK
from vidpose.heatmaps import (
    Geometry,
    crop_to_image,
    decode,
    default_blur_kernel,
    flip_back,
    gaussian_np,
    merge_flip,
)
from vidpose.heatmaps.decode import _blur

MSRA = Geometry((256, 192), 4, "msra")
UDP = Geometry((256, 192), 4, "udp")


def one_map(points_values, h=64, w=48):
    m = np.zeros((1, 1, h, w))
    for (x, y), v in points_values:
        m[0, 0, y, x] = v
    return m


def test_argmax_and_quarter_offset_by_hand():
    # peak at (10, 20); right neighbour larger than left; vertical neighbours equal
    m = one_map([((10, 20), 1.0), ((11, 20), 0.5), ((9, 20), 0.2), ((10, 19), 0.3), ((10, 21), 0.3)])
    xy, score = decode(m, MSRA, refine="quarter")
    assert xy.tolist() == [[[41.0, 80.0]]] and score.tolist() == [[1.0]]  # (10.25, 20) * 4
    xy, _ = decode(m, MSRA, refine="none")
    assert xy.tolist() == [[[40.0, 80.0]]]
    assert decode(m, MSRA)[0].tolist() == [[[41.0, 80.0]]]  # quarter is msra's default


# Border peaks, hand-computed (msra, stride 4, 64 x 48 maps: x in 0..47, y in 0..63). HRNet's
# get_final_preds refines both axes only when 1 < x < 47 and 1 < y < 63; MMPose's
# refine_keypoints decides per axis (1 < x < 47 for x, 1 < y < 63 for y).
BORDER_CASES = [
    # (peak, its neighbours, hrnet input px, mmpose input px)
    ((0, 5), [((1, 5), 0.9), ((0, 6), 0.5), ((0, 4), 0.1)], (0.0, 20.0), (0.0, 21.0)),
    ((1, 5), [((2, 5), 0.9), ((0, 5), 0.1), ((1, 6), 0.5), ((1, 4), 0.1)], (4.0, 20.0), (4.0, 21.0)),
    ((2, 5), [((3, 5), 0.9), ((1, 5), 0.1), ((2, 6), 0.5), ((2, 4), 0.1)], (9.0, 21.0), (9.0, 21.0)),
    ((20, 1), [((21, 1), 0.9), ((19, 1), 0.1), ((20, 2), 0.5), ((20, 0), 0.1)], (80.0, 4.0), (81.0, 4.0)),
    ((46, 62), [((45, 62), 0.9), ((47, 62), 0.1), ((46, 61), 0.5), ((46, 63), 0.1)], (183.0, 247.0), (183.0, 247.0)),
    ((47, 63), [((46, 63), 0.9), ((47, 62), 0.9)], (188.0, 252.0), (188.0, 252.0)),
    ((30, 63), [((31, 63), 0.9), ((29, 63), 0.1), ((30, 62), 0.5)], (120.0, 252.0), (121.0, 252.0)),
]


@pytest.mark.parametrize("peak, neighbours, hrnet, mmpose", BORDER_CASES)
def test_quarter_rules_at_the_heatmap_border(peak, neighbours, hrnet, mmpose):
    m = one_map([(peak, 1.0), *neighbours])
    assert decode(m, MSRA, refine="quarter")[0].tolist() == [[list(hrnet)]]
    assert decode(m, MSRA, refine="quarter_per_axis")[0].tolist() == [[list(mmpose)]]
    assert decode(m, MSRA)[0].tolist() == [[list(hrnet)]]  # HRNet's rule is msra's default


def test_non_positive_maps_decode_to_the_origin_with_their_maximum_under_hrnets_rule():
    m = np.full((1, 2, 64, 48), -0.5)
    m[0, 0, 20, 10] = -0.1  # every value negative: HRNet masks the coordinates to (0, 0)
    m[0, 1] = 0.0
    xy, score = decode(m, MSRA, refine="quarter")
    assert xy[0].tolist() == [[0.0, 0.0], [0.0, 0.0]] and score[0].tolist() == [-0.1, 0.0]
    xy, score = decode(m, MSRA, refine="quarter_per_axis")
    assert xy[0].tolist() == [[40.0, 80.0], [0.0, 0.0]] and score[0].tolist() == [-0.1, 0.0]


def test_first_maximum_wins_and_empty_map_scores_zero():
    m = np.zeros((1, 2, 64, 48))
    m[0, 1, 3, 7] = m[0, 1, 30, 2] = 0.8
    xy, score = decode(m, MSRA, refine="none")
    assert xy[0].tolist() == [[0.0, 0.0], [28.0, 12.0]] and score.tolist() == [[0.0, 0.8]]


def test_default_blur_kernel_and_blur_match_opencv():
    assert default_blur_kernel(2.0) == 11 and default_blur_kernel(3.0) == 17 and default_blur_kernel(1.0) == 5
    rng = np.random.default_rng(0)
    maps = rng.uniform(size=(1, 2, 64, 48))
    for kernel in (11, 17):
        border = kernel // 2
        padded = [cv2.GaussianBlur(np.pad(m, border), (kernel, kernel), 0) for m in maps[0]]
        expected = np.stack([p[border:-border, border:-border] for p in padded])
        expected *= maps[0].max(axis=(1, 2), keepdims=True) / expected.max(axis=(1, 2), keepdims=True)
        assert np.abs(_blur(maps, kernel)[0] - expected).max() < 1e-12


def test_dark_udp_recovers_sub_pixel_positions():
    rng = np.random.default_rng(1)
    xy = np.asarray(UDP.to_input(rng.uniform([6, 6], [41, 57], size=(17, 2))))  # >= 6 px from every border
    maps, _ = gaussian_np(xy, np.ones(17), UDP, sigma=2.0)
    decoded, scores = decode(maps[None], UDP)  # DARK-UDP is udp's default
    assert np.abs(decoded[0] - xy).max() < 0.01
    plain, _ = decode(maps[None], UDP, refine="none")
    assert np.abs(plain[0] - xy).max() > 1.0  # the refinement is what gets there
    assert np.allclose(scores, maps.reshape(17, -1).max(axis=1))


def test_dark_msra_newton_step_on_a_continuous_gaussian():
    # a Gaussian (sigma 2) centred at the sub-pixel point (20.3, 30.6): the argmax is (20, 31)
    ys, xs = np.mgrid[:64, :48]
    m = np.exp(-((xs - 20.3) ** 2 + (ys - 30.6) ** 2) / 8)[None, None]
    xy, _ = decode(m, MSRA, refine="dark", sigma=2.0)
    assert np.abs(xy[0, 0] / 4 - [20.3, 30.6]).max() < 0.05
    # within 2 px of a border DARK leaves the argmax alone
    m = np.exp(-((xs - 1.3) ** 2 + (ys - 30.6) ** 2) / 8)[None, None]
    assert decode(m, MSRA, refine="dark", sigma=2.0)[0][0, 0].tolist() == [4.0, 124.0]


def test_msra_targets_decode_to_their_rounded_centre():
    # msra encodes round(x / 4): no refinement can recover more (an unclipped map is symmetric
    # about it); the points are >= 9 px (3 sigma) from the borders
    xy = np.array([[41.0, 50.0], [101.7, 155.2], [88.0, 212.5]])
    maps, _ = gaussian_np(xy, np.ones(3), MSRA, sigma=3.0)
    expected = 4 * np.floor(xy / 4 + 0.5)
    for refine in ("none", "quarter", "dark"):
        assert np.allclose(decode(maps[None], MSRA, refine=refine)[0][0], expected, atol=1e-9)


def test_torch_input_gives_torch_output():
    torch = pytest.importorskip("torch")
    maps, _ = gaussian_np(np.array([[60.0, 70.0]]), np.ones(1), UDP, 2.0)
    xy, _ = decode(torch.tensor(maps[None]), UDP)
    assert isinstance(xy, torch.Tensor) and xy.dtype == torch.float32 and xy.shape == (1, 1, 2)
    assert torch.allclose(xy, torch.tensor([[[60.0, 70.0]]]), atol=0.02)
    with pytest.raises(ValueError, match="refine"):
        decode(maps[None], UDP, refine="subpixel")
    with pytest.raises(ValueError, match="blur_kernel"):
        decode(maps[None], UDP, blur_kernel=10)
    with pytest.raises(ValueError, match=r"\(B, K, 64, 48\)"):
        decode(maps, UDP)
    maps[0, 30, 20] = np.nan
    with pytest.raises(ValueError, match="joint 0 of sample 0 has NaN"):
        decode(maps[None], UDP)


def _mirrored(geo, xy, visible):
    perm = POSETRACK.flip_permutation()
    return np.asarray(geo.flip_input_x(xy))[perm], visible[perm]


def test_udp_flip_back_of_the_mirrored_crop_target_is_exact():
    rng = np.random.default_rng(3)
    xy = rng.uniform([10, 10], [180, 245], size=(17, 2))
    visible = np.ones(17)
    maps, _ = gaussian_np(xy, visible, UDP, 2.0)
    flipped, _ = gaussian_np(*_mirrored(UDP, xy, visible), UDP, 2.0)
    back = flip_back(flipped[None], POSETRACK, UDP)[0]
    assert np.abs(back - maps).max() < 1e-6
    torch = pytest.importorskip("torch")
    back_t = flip_back(torch.tensor(flipped[None]), POSETRACK.flip_pairs, UDP)
    assert np.array_equal(back_t.numpy()[0], back)


def test_msra_flip_back_shift():
    # mirrored, the heatmap centre x/4 becomes 47.75 - x/4: the flipped-back map sits 0.75 px to
    # the left; the one-pixel shift brings the rounded peak back unless frac(x/4) is in (0.25, 0.5)
    xs = 4 * (20 + np.array([0.0, 0.1, 0.2, 0.6, 0.9, 0.3, 0.4]))
    xy = np.stack([xs, np.full(7, 100.0)], axis=1)
    visible = np.ones(7)
    perm = np.arange(7)
    maps, _ = gaussian_np(xy, visible, MSRA, 2.0)
    flipped, _ = gaussian_np(np.asarray(MSRA.flip_input_x(xy)), visible, MSRA, 2.0)
    back = flip_back(flipped[None], perm, MSRA)[0]
    assert np.array_equal(back[:5], maps[:5])
    assert np.array_equal(back[5:, :, 21], maps[5:, :, 20])  # one pixel to the right


def test_merge_flip_averages_and_validates_pairs():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(size=(2, 1, 17, 64, 48))
    merged = merge_flip(a, flip_back(b, POSETRACK, UDP))
    assert np.allclose(merged, 0.5 * (a + flip_back(b, POSETRACK, UDP)))
    with pytest.raises(ValueError, match="shapes differ"):
        merge_flip(a, b[:, :16])
    assert np.array_equal(flip_back(b, POSETRACK, UDP)[0, 5], b[0, 6, :, ::-1])  # left shoulder <- right
    with pytest.raises(ValueError, match="permutation"):
        flip_back(b, [0, 0, *range(2, 17)], UDP)


def test_crop_to_image_inverts_each_crop():
    centers = np.array([[300.0, 200.0], [50.0, 60.0]])
    sizes = np.array([[150.0, 200.0], [30.0, 40.0]])
    image_xy = np.array([[[310.0, 190.0], [250.0, 120.0]], [[40.0, 55.0], [60.0, 75.0]]])
    for geo in (MSRA, UDP):
        crop_xy = np.stack([geo.image_to_input(p, c, s) for p, c, s in zip(image_xy, centers, sizes, strict=True)])
        assert np.allclose(crop_to_image(crop_xy, centers, sizes, geo), image_xy)
    with pytest.raises(ValueError, match="2 crops"):
        crop_to_image(crop_xy, centers[:1], sizes, UDP)
