import math

import numpy as np
import pytest

from vidpose.data.keypoints import POSETRACK
from vidpose.heatmaps import Geometry, gaussian_np, motion_aware, motion_aware_np, motion_sigmas

MSRA = Geometry((256, 192), 4, "msra")
UDP = Geometry((256, 192), 4, "udp")
BIG_UDP = Geometry((512, 512), 4, "udp")  # 128 x 128 maps: no clipping of large supports


def clip(geo, current_hm, motion_prev_hm, motion_next_hm=(0.0, 0.0)):
    """One-joint 3-frame clip (T, 1, 2) in input px whose heatmap motions are the given vectors."""
    current = np.asarray(current_hm, dtype=np.float64)
    hm = np.stack([current - motion_prev_hm, current, current - np.asarray(motion_next_hm)])
    return np.asarray(geo.to_input(hm))[:, None, :], np.ones((3, 1))


def test_sigma_anchor_points():
    # |m| = delta: both branches give sigma0; just above it they split symmetrically
    assert motion_sigmas(3.0) == (3.0, 3.0)
    par, perp = motion_sigmas(3.0 + 3e-6)
    assert par == pytest.approx(3 + 1e-6) and perp == pytest.approx(3 - 1e-6)
    assert motion_sigmas(0.0) == (2.0, 2.0)  # at rest: sigma0 - 1
    assert motion_sigmas(6.0) == (4.0, 2.0)
    assert motion_sigmas(9.0) == (5.0, 1.0)  # sigma_perp reaches sigma_min at delta * sigma0
    assert motion_sigmas(12.0) == (6.0, 1.0)  # and stays there (the formula alone would give 0)
    assert motion_sigmas(9.0, variant="sigma_only") == (5.0, 5.0)


@pytest.mark.parametrize("motion, sigma", [((3.0, 0.0), 3.0), ((0.0, -3.0), 3.0), ((0.0, 0.0), 2.0)])
def test_axis_aligned_motion_with_integer_sigma_is_the_msra_square(motion, sigma):
    xy, visible = clip(MSRA, (20.0, 30.0), motion)
    out = motion_aware_np(xy, visible, MSRA, key=1)
    expected, _ = gaussian_np(xy[1], visible[1], MSRA, sigma)
    assert np.array_equal(out["motion_prev"], expected)
    assert out["weight_prev"].tolist() == [1.0]
    standard, _ = gaussian_np(xy[1], visible[1], MSRA, 3.0)  # H_o is the sigma0 target
    at_rest, _ = gaussian_np(xy[1], visible[1], MSRA, 2.0)  # the next frame did not move
    assert np.array_equal(out["heatmap"], standard) and np.array_equal(out["motion_next"], at_rest)


def test_large_motion_hits_sigma_min_across_and_stretches_along():
    xy, visible = clip(MSRA, (20.0, 30.0), (9.0, 0.0))  # sigma_par = 5, sigma_perp = 1
    m = motion_aware_np(xy, visible, MSRA, key=1)["motion_prev"][0]
    assert m[30, 20] == 1.0
    assert m[31, 20] == pytest.approx(math.exp(-0.5)) and m[33, 20] == pytest.approx(math.exp(-4.5))
    assert m[34, 20] == 0  # |b| = 4 > 3 sigma_perp
    assert m[30, 35] == pytest.approx(math.exp(-225 / 50)) and m[30, 5] == pytest.approx(math.exp(-225 / 50))
    assert m[30, 36] == 0 and m[30, 4] == 0  # |a| = 16 > 15


def test_rotated_rectangle_support_and_values_by_hand():
    # motion at 45 degrees, |m| = 6: sigma_par = 4 (3 sigma = 12), sigma_perp = 2 (3 sigma = 6)
    r = 6 / math.sqrt(2)
    xy, visible = clip(MSRA, (20.0, 30.0), (r, r))
    m = motion_aware_np(xy, visible, MSRA, key=1)["motion_prev"][0]

    def at(dx, dy):
        return m[30 + dy, 20 + dx]

    # (8, 8): a = 16/sqrt2 = 11.3 <= 12, b = 0
    assert at(8, 8) == pytest.approx(math.exp(-128 / 32))
    assert at(9, 9) == 0  # a = 12.7 > 12
    # (4, -2): a^2 = 2, b^2 = 18; (3, -5): a^2 = 2, b^2 = 32 (b = 5.66 <= 6)
    assert at(4, -2) == pytest.approx(math.exp(-2 / 32 - 18 / 8))
    assert at(3, -5) == pytest.approx(math.exp(-2 / 32 - 32 / 8))
    assert at(4, -5) == 0  # b = 6.36 > 6: outside the rotated rectangle, inside its bounding box
    assert at(-8, -8) == at(8, 8) and at(-4, 2) == at(4, -2)  # symmetric under theta + pi


@pytest.mark.parametrize("degrees", [10.0, 35.0, 60.0, 100.0, 145.0, 200.0])
def test_principal_axis_follows_the_motion(degrees):
    theta = math.radians(degrees)
    xy, visible = clip(BIG_UDP, (60.3, 63.7), (6.0 * math.cos(theta), 6.0 * math.sin(theta)))
    m = motion_aware_np(xy, visible, BIG_UDP, key=1)["motion_prev"][0].astype(np.float64)
    ys, xs = np.mgrid[: m.shape[0], : m.shape[1]]
    total = m.sum()
    cx, cy = (m * xs).sum() / total, (m * ys).sum() / total
    cxx, cyy = (m * (xs - cx) ** 2).sum(), (m * (ys - cy) ** 2).sum()
    cxy = (m * (xs - cx) * (ys - cy)).sum()
    axis = 0.5 * math.degrees(math.atan2(2 * cxy, cxx - cyy))
    difference = (axis - degrees + 90) % 180 - 90
    assert abs(difference) < 2.0


def test_clamped_neighbour_means_no_motion_whatever_its_keypoints():
    xy, visible = clip(MSRA, (20.0, 30.0), (7.0, -2.0))
    xy[0] = np.nan  # the clamped neighbour's keypoints are not even looked at
    visible[0] = 0
    out = motion_aware_np(xy, visible, MSRA, key=1, clamped=np.array([True, False, False]))
    circle, _ = gaussian_np(xy[1], visible[1], MSRA, 2.0)
    assert np.array_equal(out["motion_prev"], circle) and out["weight_prev"].tolist() == [1.0]


def test_missing_neighbour_standard_or_ignore():
    xy, visible = clip(MSRA, (20.0, 30.0), (7.0, -2.0), (1.0, 1.0))
    visible[0] = 0  # previous frame: joint not labelled
    standard = motion_aware_np(xy, visible, MSRA, key=1)
    assert np.array_equal(standard["motion_prev"], standard["heatmap"])
    assert standard["weight_prev"].tolist() == [1.0]
    ignore = motion_aware_np(xy, visible, MSRA, key=1, missing_motion="ignore")
    assert not ignore["motion_prev"].any() and ignore["weight_prev"].tolist() == [0.0]
    assert ignore["weight"].tolist() == [1.0] and ignore["weight_next"].tolist() == [1.0]
    assert np.array_equal(ignore["motion_next"], standard["motion_next"]) and ignore["motion_next"].any()


def test_annotated_neighbour_outside_the_crop_still_gives_the_motion_ellipse():
    # the previous frame's joint left the crop (visible 0) but is annotated: its motion counts,
    # exactly as if it were visible; without the annotation the map falls back to the circle
    xy, visible = clip(MSRA, (20.0, 30.0), (7.0, -2.0))
    inside = motion_aware_np(xy, visible, MSRA, key=1)
    visible[0] = 0
    annotated = np.ones_like(visible)
    out = motion_aware_np(xy, visible, MSRA, key=1, annotated=annotated)
    assert np.array_equal(out["motion_prev"], inside["motion_prev"]) and out["weight_prev"].tolist() == [1.0]
    assert not np.array_equal(out["motion_prev"], out["heatmap"])
    fallback = motion_aware_np(xy, visible, MSRA, key=1)
    assert np.array_equal(fallback["motion_prev"], fallback["heatmap"])


def test_annotation_of_a_neighbour_never_gives_weight_to_an_invisible_key_joint():
    xy, visible = clip(MSRA, (20.0, 30.0), (7.0, -2.0))
    visible[1] = 0  # the key joint left the crop
    out = motion_aware_np(xy, visible, MSRA, key=1, annotated=np.ones_like(visible))
    assert out["weight"].tolist() == out["weight_prev"].tolist() == out["weight_next"].tolist() == [0.0]
    assert not out["motion_prev"].any()


def test_invisible_current_joint_gives_zero_maps_and_weights():
    xy, visible = clip(MSRA, (20.0, 30.0), (1.0, 0.0))
    xy[1] = np.nan
    visible[1] = 0
    out = motion_aware_np(xy, visible, MSRA, key=1)
    for name in ("heatmap", "motion_prev", "motion_next"):
        assert not out[name].any()
    assert out["weight"].tolist() == out["weight_prev"].tolist() == out["weight_next"].tolist() == [0.0]


def test_each_map_is_judged_on_its_own_support():
    # H_o (sigma0 = 3, |d| <= 9) of a joint at x = -12 hm px misses the map; the motion map,
    # stretched along x (|m| = 12: sigma_par = 6, 3 sigma = 18), reaches columns 0..6
    xy, visible = clip(MSRA, (-12.0, 30.0), (12.0, 0.0))
    out = motion_aware_np(xy, visible, MSRA, key=1)
    assert out["weight"].tolist() == [0.0] and not out["heatmap"].any()
    assert out["weight_prev"].tolist() == [1.0]
    row = out["motion_prev"][0][30]
    assert row[6] == pytest.approx(math.exp(-(18**2) / 72)) and row[7] == 0


def test_variants_sigma_only_and_standard():
    xy, visible = clip(MSRA, (20.0, 30.0), (0.0, 9.0))  # r = 2
    sigma_only = motion_aware_np(xy, visible, MSRA, key=1, variant="sigma_only")
    circle, _ = gaussian_np(xy[1], visible[1], MSRA, 5.0)
    assert np.array_equal(sigma_only["motion_prev"], circle)
    standard = motion_aware_np(xy, visible, MSRA, key=1, variant="standard")
    assert np.array_equal(standard["motion_prev"], standard["heatmap"])
    assert np.array_equal(standard["motion_next"], standard["heatmap"])


def test_sigma_max_caps_and_oversized_counts():
    xy, visible = clip(MSRA, (20.0, 30.0), (60.0, 0.0), (0.0, 60.0))  # sigma_par = 22: 3 sigma = 66 > 64
    uncapped = motion_aware_np(xy, visible, MSRA, key=1)
    assert uncapped["oversized"] == 2
    capped = motion_aware_np(xy, visible, MSRA, key=1, sigma_max=5.0)
    assert capped["oversized"] == 2  # counted before the cap
    row = capped["motion_prev"][0][30]
    assert row[35] > 0 and row[36] == 0  # 3 * 5 = 15 px along x
    with pytest.raises(ValueError, match="sigma_max"):
        motion_aware_np(xy, visible, MSRA, key=1, sigma_max=0.5)


def test_bad_options_and_inputs():
    xy, visible = clip(MSRA, (20.0, 30.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="variant"):
        motion_aware_np(xy, visible, MSRA, key=1, variant="motion_sigma")
    with pytest.raises(ValueError, match="missing_motion"):
        motion_aware_np(xy, visible, MSRA, key=1, missing_motion="drop")
    with pytest.raises(ValueError, match="next frame index 3"):
        motion_aware_np(xy, visible, MSRA, key=2)
    xy[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"joint 0 \(nose\) at frame 0"):
        motion_aware_np(xy, visible, MSRA, key=1, joint_names=POSETRACK)


def _random_clips(rng, batch, frames, joints):
    base = rng.uniform([-30, -30], [222, 286], size=(batch, 1, joints, 2))
    xy = base + rng.normal(0.0, 14.0, size=(batch, frames, joints, 2))
    # exact axis-aligned motions and rests also occur (integer annotations)
    xy[:, 0, :4, 0] = xy[:, 1, :4, 0]
    xy[:, 2, 4:6] = xy[:, 1, 4:6]
    visible = (rng.uniform(size=(batch, frames, joints)) > 0.15).astype(np.float32)
    clamped = rng.uniform(size=(batch, frames)) < 0.2
    return xy, visible, clamped


@pytest.mark.parametrize("geo", [MSRA, UDP], ids=["msra", "udp"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"missing_motion": "ignore"},
        {"variant": "sigma_only"},
        {"variant": "standard"},
        {"sigma_max": 4.0, "sigma_min": 1.5},
    ],
    ids=["default", "ignore", "sigma_only", "standard", "capped"],
)
def test_torch_matches_numpy_reference(geo, options):
    torch = pytest.importorskip("torch")
    xy, visible, clamped = _random_clips(np.random.default_rng(len(options) + len(geo.convention)), 6, 3, 17)
    clamped[:, 1] = False
    # joints that left the crop: annotated, not visible (only neighbours matter for the motion)
    annotated = visible.copy()
    visible = visible * (np.random.default_rng(7).uniform(size=visible.shape) > 0.2)
    xy_t, visible_t = torch.tensor(xy, dtype=torch.float32), torch.tensor(visible)
    out = motion_aware(
        xy_t, visible_t, geo, 1, clamped=torch.tensor(clamped), annotated=torch.tensor(annotated), **options
    )
    for b in range(6):
        ref = motion_aware_np(xy[b], visible[b], geo, key=1, clamped=clamped[b], annotated=annotated[b], **options)
        for name in ("heatmap", "motion_prev", "motion_next"):
            assert out[name][b].dtype == torch.float32
            assert np.abs(out[name][b].numpy() - ref[name]).max() < 1e-5, (b, name)
        for name in ("weight", "weight_prev", "weight_next"):
            assert out[name][b].numpy().tolist() == ref[name].tolist(), (b, name)
        assert int(out["oversized"][b]) == ref["oversized"]


def test_torch_five_frame_clip_with_explicit_neighbours():
    torch = pytest.importorskip("torch")
    xy, visible, clamped = _random_clips(np.random.default_rng(5), 4, 5, 17)
    clamped[:, 2] = False
    out = motion_aware(
        torch.tensor(xy), torch.tensor(visible), UDP, 2, prev_index=0, next_index=4, clamped=torch.tensor(clamped)
    )
    for b in range(4):
        ref = motion_aware_np(xy[b], visible[b], UDP, key=2, prev=0, next=4, clamped=clamped[b])
        assert np.abs(out["motion_next"][b].numpy() - ref["motion_next"]).max() < 1e-5


def test_torch_nan_error_names_sample_frame_and_joint():
    torch = pytest.importorskip("torch")
    xy = torch.zeros(2, 3, 17, 2)
    xy[1, 2, 16, 1] = float("inf")
    with pytest.raises(ValueError, match=r"joint 16 \(right_ankle\) at sample 1, frame 2"):
        motion_aware(xy, torch.ones(2, 3, 17), MSRA, 1, joint_names=POSETRACK)


def test_torch_on_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    xy, visible, clamped = _random_clips(np.random.default_rng(7), 4, 3, 17)
    clamped[:, 1] = False
    inputs = [torch.tensor(xy, dtype=torch.float32), torch.tensor(visible), torch.tensor(clamped)]
    cpu = motion_aware(inputs[0], inputs[1], UDP, 1, clamped=inputs[2])
    cuda = motion_aware(*(t.cuda() for t in inputs[:2]), UDP, 1, clamped=inputs[2].cuda())
    for name, value in cpu.items():
        assert cuda[name].device.type == "cuda"
        assert torch.allclose(cuda[name].cpu().to(value.dtype), value, atol=1e-5), name
