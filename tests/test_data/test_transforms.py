import json

import cv2
import numpy as np
import pytest

from vidpose.data.frames import FrameReader
from vidpose.data.keypoints import POSETRACK
from vidpose.data.transforms import AugmentParams, ClipTransform, half_body_box
from vidpose.heatmaps import Geometry

GEO = Geometry((32, 24), 4, "msra")  # input H=32, W=24, aspect 0.75
K = POSETRACK.num_joints
LEFT_WRIST, RIGHT_WRIST = POSETRACK.index("left_wrist"), POSETRACK.index("right_wrist")
# Box [40, 36, 18, 24] already has aspect 18/24 = 0.75: centre (49, 48), size 1.25 * (18, 24).
BOX = np.array([40.0, 36.0, 18.0, 24.0])
CENTER, SIZE = np.array([49.0, 48.0]), np.array([22.5, 30.0])


def _transform(train=False, **kwargs):
    return ClipTransform(GEO, POSETRACK, train=train, **kwargs)


def _smooth_image(seed=0, hw=(100, 100)):
    noise = np.random.default_rng(seed).integers(0, 256, (*hw, 3)).astype(np.uint8)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2), None, 0, 255, cv2.NORM_MINMAX)


@pytest.mark.parametrize("flip", [False, True])
def test_bright_pixel_lands_on_its_keypoint_in_every_frame(flip):
    # One bright pixel per frame, at a different place each frame, labelled as the left wrist.
    points = np.array([[50.0, 50.0], [54.0, 44.0], [45.0, 55.0]])
    frames = []
    for x, y in points.astype(int):
        frame = np.zeros((100, 100, 3), dtype=np.uint8)
        frame[y, x] = 255
        frames.append(frame)
    keypoints = np.zeros((3, K, 2))
    visible = np.zeros((3, K))
    keypoints[:, LEFT_WRIST] = points
    visible[:, LEFT_WRIST] = 1
    params = AugmentParams(CENTER, SIZE * 0.9, rotation=30.0, flip=flip)
    crops, out, vis, _, _ = _transform().apply(frames, keypoints, visible, params)
    slot = RIGHT_WRIST if flip else LEFT_WRIST  # a flipped left wrist is drawn as a right wrist
    assert vis[:, slot].tolist() == [1, 1, 1] and vis.sum() == 3
    for t in range(3):
        y, x = np.unravel_index(crops[t, :, :, 0].argmax(), crops.shape[1:3])
        # the bilinear peak is the crop pixel nearest the exact point: within 1 px
        assert np.hypot(x - out[t, slot, 0], y - out[t, slot, 1]) <= 1.0, (t, (x, y), out[t, slot])
    # the three points are far apart, so the three peaks must be too (one affine, three places)
    assert np.linalg.norm(out[0, slot] - out[1, slot]) > 5


def test_flip_mirrors_columns_and_swaps_left_right_slots():
    frames = [_smooth_image(0), _smooth_image(1)]
    keypoints = np.zeros((2, K, 2))
    visible = np.zeros((2, K))
    keypoints[:, LEFT_WRIST] = [[45.0, 40.0], [47.0, 41.0]]
    visible[:, LEFT_WRIST] = 1
    keypoints[:, 0] = [[49.0, 48.0], [50.0, 49.0]]  # nose: no flip partner
    visible[:, 0] = 1
    plain = AugmentParams(CENTER, SIZE, rotation=30.0, flip=False)
    flipped = AugmentParams(CENTER, SIZE, rotation=30.0, flip=True)
    crops, kp, _, _, _ = _transform().apply(frames, keypoints, visible, plain)
    crops_f, kp_f, vis_f, _, _ = _transform().apply(frames, keypoints, visible, flipped)
    # warpAffine's 1/32-px fixed-point map may round the mirrored samples differently: 1 level
    assert np.abs(crops[:, :, ::-1].astype(int) - crops_f).max() <= 1
    assert vis_f[:, RIGHT_WRIST].tolist() == [1, 1] and vis_f[:, LEFT_WRIST].tolist() == [0, 0]
    assert np.allclose(kp_f[:, RIGHT_WRIST, 0], 23 - kp[:, LEFT_WRIST, 0], atol=1e-4)  # W - 1 - x, W = 24
    assert np.allclose(kp_f[:, RIGHT_WRIST, 1], kp[:, LEFT_WRIST, 1], atol=1e-4)
    assert np.allclose(kp_f[:, 0, 0], 23 - kp[:, 0, 0], atol=1e-4) and vis_f[:, 0].tolist() == [1, 1]


def test_unrotated_crop_keypoints_by_hand():
    keypoints = np.zeros((1, K, 2))
    visible = np.zeros((1, K))
    keypoints[0, 0] = [52.0, 45.0]
    visible[0, 0] = 1
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    _, kp, _, affine, _ = _transform().apply([frame], keypoints, visible, AugmentParams(CENTER, SIZE))
    # msra: x_in = (x - 49) * 24 / 22.5 + 12, y_in = (y - 48) * 32 / 30 + 16
    assert np.allclose(kp[0, 0], [15.2, 12.8], atol=1e-4)
    assert np.allclose(affine, [[24 / 22.5, 0, 12 - 49 * 24 / 22.5], [0, 32 / 30, 16 - 48 * 32 / 30]])


def test_joints_outside_the_crop_become_invisible_per_frame():
    frames = [np.zeros((100, 100, 3), dtype=np.uint8)] * 3
    keypoints = np.zeros((3, K, 2))
    visible = np.zeros((3, K))
    keypoints[:, 0] = [49.0, 48.0]
    keypoints[:, 5] = [[50.0, 52.0], [50.0, 52.0], [95.0, 95.0]]  # leaves the crop in frame 2
    # x_in = (x - 49) * 24/22.5 + 12: x = 37.28 -> -0.5 (edge, kept), x = 37.0 -> -0.8 (out)
    keypoints[:, 7] = [[37.3, 48.0], [37.0, 48.0], [37.3, 48.0]]
    visible[:, [0, 5, 7]] = 1
    visible[1, 0] = 0  # unannotated stays unannotated, with zero coordinates
    _, kp, vis, _, annotated = _transform().apply(frames, keypoints, visible, AugmentParams(CENTER, SIZE))
    assert vis[:, 0].tolist() == [1, 0, 1] and kp[1, 0].tolist() == [0, 0]
    assert annotated[:, 0].tolist() == [1, 0, 1]
    assert vis[:, 5].tolist() == [1, 1, 0] and vis[:, 7].tolist() == [1, 0, 1]
    # out of the crop but annotated: the position is kept (the motion-aware target needs it)
    assert annotated[:, 5].tolist() == [1, 1, 1] and annotated[:, 7].tolist() == [1, 1, 1]
    assert np.allclose(kp[2, 5], [(95 - 49) * 24 / 22.5 + 12, (95 - 48) * 32 / 30 + 16], atol=1e-4)
    assert np.allclose(kp[1, 7, 0], (37.0 - 49) * 24 / 22.5 + 12, atol=1e-4)


def _half_body_person():
    keypoints = np.zeros((K, 2))
    # upper joints 0..10: five at (40, 10), five at (60, 40), one at (50, 25) -> mean (50, 25),
    # extent 20 x 30, widened to 22.5 x 30 (aspect 0.75), x1.5 -> (33.75, 45)
    keypoints[0:5] = [40.0, 10.0]
    keypoints[5:10] = [60.0, 40.0]
    keypoints[10] = [50.0, 25.0]
    # lower joints 11..16: three at (45, 60), three at (55, 90) -> mean (50, 75), extent 10 x 30
    # -> 22.5 x 30 -> (33.75, 45)
    keypoints[11:14] = [45.0, 60.0]
    keypoints[14:17] = [55.0, 90.0]
    return keypoints, np.ones(K)


@pytest.mark.parametrize("upper_prob, half, center", [(1.0, "upper", [50, 25]), (0.0, "lower", [50, 75])])
def test_half_body_rebuilds_the_box_from_the_chosen_half(upper_prob, half, center):
    keypoints, visible = _half_body_person()
    transform = _transform(
        train=True,
        half_body_prob=1.0,
        half_body_upper_prob=upper_prob,
        scale_factor=0.0,
        rotation_prob=0.0,
        flip_prob=0.0,
    )
    params = transform.sample(np.random.default_rng(0), [30, 0, 40, 100], keypoints, visible)
    assert params.half_body == half
    assert np.allclose(params.center, center) and np.allclose(params.size, [33.75, 45.0])
    assert params.rotation == 0.0 and not params.flip


def test_half_body_needs_more_than_min_joints_and_enough_joints_in_a_half():
    keypoints, visible = _half_body_person()
    visible[9:] = 0  # 9 visible (> 8) but all in the upper half: lower has none -> upper
    center, size, name = half_body_box(keypoints, visible, POSETRACK, 0.75, choose_upper=False)
    assert name == "upper"
    # joints 0..4 at (40, 10), 5..8 at (60, 40): mean (48.888.., 23.333..)
    assert np.allclose(center, [440 / 9, 210 / 9])
    visible[8:] = 0  # exactly 8 visible: not more than half_body_min_joints
    transform = _transform(train=True, half_body_prob=1.0, scale_factor=0.0, rotation_prob=0.0, flip_prob=0.0)
    params = transform.sample(np.random.default_rng(0), BOX, keypoints, visible)
    assert params.half_body is None and np.allclose(params.center, CENTER) and np.allclose(params.size, SIZE)
    # a single row of joints (zero height) still gives a box; a single point gives none
    row = np.array([[10.0 * i, 5.0] for i in range(K)])
    _, size, _ = half_body_box(row, np.ones(K), POSETRACK, 0.75, choose_upper=True)
    assert np.allclose(size, [100 * 1.5, 100 / 0.75 * 1.5])
    assert half_body_box(np.ones((K, 2)), np.ones(K), POSETRACK, 0.75, choose_upper=True) is None


def test_eval_mode_uses_the_box_and_draws_nothing():
    rng = np.random.default_rng(5)
    keypoints, visible = _half_body_person()
    params = _transform(train=False, half_body_prob=1.0).sample(rng, BOX, keypoints, visible)
    assert np.allclose(params.center, CENTER) and np.allclose(params.size, SIZE)
    assert params.rotation == 0.0 and params.flip is False and params.colour is None and params.half_body is None
    assert rng.random() == np.random.default_rng(5).random()  # the generator was not advanced


def test_training_draws_follow_the_dcpose_distributions():
    keypoints, visible = np.zeros((K, 2)), np.zeros(K)
    rng = np.random.default_rng(0)
    transform = _transform(train=True)
    draws = [transform.sample(rng, BOX, keypoints, visible) for _ in range(4000)]
    ratio = np.array([p.size[1] / SIZE[1] for p in draws])
    rotation = np.array([p.rotation for p in draws])
    flips = np.array([p.flip for p in draws])
    assert ratio.min() == pytest.approx(0.65) and ratio.max() == pytest.approx(1.35)
    # clip(N(0,1) * 0.35 + 1, ...): P(|N| > 1) = 0.317, half of it at each bound
    assert abs(np.isclose(ratio, 1.35).mean() - 0.159) < 0.03
    assert abs((rotation != 0).mean() - 0.6) < 0.03 and np.abs(rotation).max() == pytest.approx(45.0)
    # rotation clipped at 45 = 1 sigma: 0.6 * 0.317 of all draws sit on a bound
    assert abs(np.isclose(np.abs(rotation), 45.0).mean() - 0.19) < 0.03
    assert abs(flips.mean() - 0.5) < 0.03
    wide = _transform(train=True, rotation_clip=90.0)
    rng = np.random.default_rng(0)
    wide_rotation = np.array([wide.sample(rng, BOX, keypoints, visible).rotation for _ in range(2000)])
    assert 45.0 < np.abs(wide_rotation).max() <= 90.0


def test_colour_jitter_is_one_map_for_the_whole_clip():
    frames = [np.full((100, 100, 3), 100, np.uint8), np.full((100, 100, 3), 200, np.uint8)]
    keypoints, visible = np.zeros((2, K, 2)), np.zeros((2, K))
    # brightness 1.5 on grey: 100 -> 150, 200 -> 300 -> clipped 255
    crops, *_ = _transform().apply(frames, keypoints, visible, AugmentParams(CENTER, SIZE, colour=(1.5, 1.0, 1.0)))
    assert crops[0].min() == crops[0].max() == 150 and crops[1].min() == 255
    # contrast 0.5 around the CLIP's grey mean 150: 100 -> 125, 200 -> 175 (per-frame means
    # would leave both frames unchanged)
    crops, *_ = _transform().apply(frames, keypoints, visible, AugmentParams(CENTER, SIZE, colour=(1.0, 0.5, 1.0)))
    assert crops[0].min() == crops[0].max() == 125 and crops[1].min() == crops[1].max() == 175
    # identical frames stay identical under a random jitter
    same = [_smooth_image(3)] * 3
    params = _transform(train=True, colour_jitter=0.4).sample(np.random.default_rng(1), BOX, keypoints[0], visible[0])
    assert params.colour is not None and all(0.6 <= f <= 1.4 for f in params.colour)
    jittered, *_ = _transform().apply(same, np.zeros((3, K, 2)), np.zeros((3, K)), params)
    plain, *_ = _transform().apply(
        same,
        np.zeros((3, K, 2)),
        np.zeros((3, K)),
        AugmentParams(params.center, params.size, params.rotation, params.flip),
    )
    assert (jittered[0] == jittered[1]).all() and (jittered[0] == jittered[2]).all()
    assert np.abs(jittered.astype(int) - plain).mean() > 2


def test_apply_rejects_bad_shapes_and_nan_on_visible_joints():
    frame = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match=r"expected keypoints \(1, 17, 2\)"):
        _transform().apply([frame], np.zeros((1, 15, 2)), np.zeros((1, 15)), AugmentParams(CENTER, SIZE))
    keypoints, visible = np.zeros((1, K, 2)), np.zeros((1, K))
    keypoints[0, LEFT_WRIST] = np.nan
    visible[0, LEFT_WRIST] = 1
    with pytest.raises(ValueError, match="left_wrist"):
        _transform().apply([frame], keypoints, visible, AugmentParams(CENTER, SIZE))
    with pytest.raises(ValueError, match="probability"):
        _transform(flip_prob=1.5)


def test_max_downscale_is_image_pixels_per_input_pixel():
    # 22.5 image px across 24 input px, whatever the rotation
    assert _transform().max_downscale(AugmentParams(CENTER, SIZE, rotation=30.0)) == pytest.approx(22.5 / 24)
    assert _transform().max_downscale(AugmentParams(CENTER, SIZE * 8)) == pytest.approx(7.5)


def _mean_abs_error(reference, other):
    return float(np.abs(reference.astype(np.float64) - other.astype(np.float64)).mean())


@pytest.mark.parametrize(
    "video_name, expected_factor, tolerance",
    # 351 x 751 box -> crop 704 x 939 px for 192 x 256: 3.67 image px per input px -> 1/2;
    # 1358 x 1092 box -> crop 1698 x 2263: 8.8 px per input px -> 1/8
    [("009473_mpii_test", 2, 1.0), ("003418_mpii_test", 8, 5.0)],
)
def test_reduced_decoding_changes_real_crops_by_little(posetrack18_mini, video_name, expected_factor, tolerance):
    """Crops from frames decoded at 1/f differ from full-resolution crops by < 1 (f=2) / < 5 (f=8) grey levels.

    The reduced decoder averages f x f blocks while the full-resolution warp samples bilinearly
    without prefiltering (aliasing), so the two differ more as f grows; a misplaced reduced grid
    (without the (f-1)/2 shift) makes the difference clearly larger.
    """
    video = json.loads((posetrack18_mini / f"annotations/val/{video_name}.json").read_text())
    file_name = video["images"][0]["file_name"]
    geometry = Geometry((256, 192), 4, "msra")
    transform = ClipTransform(geometry, POSETRACK, train=False)
    params = transform.sample(None, video["annotations"][0]["bbox"], np.zeros((K, 2)), np.zeros(K))
    full, factor_full = FrameReader(str(posetrack18_mini)).read(file_name, transform.max_downscale(params))
    reader = FrameReader(str(posetrack18_mini), reduced_decoding=True)
    reduced, factor = reader.read(file_name, transform.max_downscale(params))
    assert factor_full == 1 and factor == expected_factor
    assert reduced.shape == (1080 // factor, 1920 // factor, 3)
    zeros = (np.zeros((1, K, 2)), np.zeros((1, K)))
    crop_full, *_ = transform.apply([full], *zeros, params)
    crop_reduced, *_ = transform.apply([reduced], *zeros, params, frame_factors=[factor])
    error = _mean_abs_error(crop_full, crop_reduced)
    assert error < tolerance, error
    # the same reduced frame warped as if decoded pixel j sat at full-resolution pixel f*j
    unshifted = transform.affine(params) @ np.array([[factor, 0, 0], [0, factor, 0], [0, 0, 1.0]])
    misplaced = cv2.warpAffine(reduced, unshifted, (192, 256), flags=cv2.INTER_LINEAR)
    assert _mean_abs_error(crop_full[0], misplaced) > 1.3 * error
