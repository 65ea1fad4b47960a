"""The second view of the key frame (CDPose's L_s) is rendered by the clip transform code."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from vidpose.data.clip import ClipDataset
from vidpose.data.index import FrameRecord, PersonAnnotation, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import POSETRACK
from vidpose.data.loader import collate, to_device
from vidpose.data.transforms import AugmentParams, ClipTransform, SecondView
from vidpose.heatmaps import Geometry
from vidpose.heatmaps.geometry import apply_affine

GEO = Geometry((64, 48), 4, "msra")
K = POSETRACK.num_joints
IMAGE_HW = (120, 160)
BOX = np.array([60.0, 20.0, 40.0, 80.0], dtype=np.float32)  # centre (80, 60)
SPOT = np.array([84.0, 66.0])  # a bright 3x3 spot near the box centre, inside every crop


def _spot_image():
    image = np.zeros((*IMAGE_HW, 3), np.uint8)
    x, y = SPOT.astype(int)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255
    return image


def _dataset(root, second_view):
    (root / "v0").mkdir(parents=True)
    cv2.imwrite(str(root / "v0/000000.png"), _spot_image())
    keypoints = np.zeros((K, 2), np.float32)
    visible = np.zeros(K, np.float32)
    keypoints[:3], visible[:3] = [[80, 40], [75, 60], [85, 80]], 1
    person = PersonAnnotation(0, keypoints, visible, BOX.copy())
    index = VideoPoseIndex("spot", POSETRACK, str(root), [VideoRecord("v0", [FrameRecord(1, "v0/000000.png", 0, True, [person])])])
    transform = ClipTransform(GEO, POSETRACK, train=True)
    return ClipDataset(index, index.gt_instances(), GEO, transform, offsets=(-1, 0, 1), seed=3, second_view=second_view)


def _spot_position(crop):
    """Intensity-weighted centroid (x, y) of a crop's bright pixels."""
    grey = crop.astype(np.float64).sum(axis=-1)
    grey[grey < 0.25 * grey.max()] = 0
    ys, xs = np.nonzero(grey)
    return np.array([np.average(xs, weights=grey[ys, xs]), np.average(ys, weights=grey[ys, xs])])


def test_second_view_params_turn_and_magnify_the_same_crop():
    params = AugmentParams(np.array([80.0, 60.0]), np.array([50.0, 66.0]), rotation=10.0, flip=True, colour=(1.1, 1, 1))
    view = SecondView(rotation=30.0, scale=(0.75, 1.25))
    rng = np.random.default_rng(0)
    for _ in range(50):
        turned = view.sample(rng, params)
        extra_scale = params.size[0] / turned.size[0]
        assert -30.0 <= turned.rotation - params.rotation <= 30.0 and 0.75 <= extra_scale <= 1.25
        assert turned.size[1] * extra_scale == pytest.approx(params.size[1])  # one scale on both sides
        assert np.array_equal(turned.center, params.center) and turned.flip and turned.colour == params.colour


def test_second_view_affine_is_the_clip_affine_composed_with_the_extra_rotation_and_scale():
    transform = ClipTransform(GEO, POSETRACK, train=True)
    params = AugmentParams(np.array([80.0, 60.0]), np.array([45.0, 60.0]), rotation=-12.0)
    turned = SecondView().sample(np.random.default_rng(5), params)
    r = math.radians(turned.rotation - params.rotation)
    s = params.size[0] / turned.size[0]
    # Extra turn (counter-clockwise on screen, y down) and magnification about the msra crop centre (W/2, H/2).
    centre = np.array([GEO.input_hw[1] / 2, GEO.input_hw[0] / 2])
    linear = s * np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    extra = np.vstack([np.hstack([linear, (centre - linear @ centre)[:, None]]), [0, 0, 1]])
    clip_affine = np.vstack([GEO.crop_affine(params.center, params.size, params.rotation), [0, 0, 1]])
    _, view_affine = transform.render(_spot_image(), turned)
    np.testing.assert_allclose(view_affine, (extra @ clip_affine)[:2], atol=1e-9)


def test_render_places_a_bright_pixel_where_its_affine_says():
    transform = ClipTransform(GEO, POSETRACK, train=True)
    params = AugmentParams(np.array([80.0, 60.0]), np.array([45.0, 60.0]), rotation=25.0)
    crop, affine = transform.render(_spot_image(), params)
    assert crop.shape == (64, 48, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(_spot_position(crop), apply_affine(affine, SPOT), atol=0.5)


def test_dataset_adds_the_second_view_without_changing_the_clip(tmp_path):
    with_view = _dataset(tmp_path / "a", SecondView(rotation=30.0, scale=(0.75, 1.25)))
    without = _dataset(tmp_path / "b", None)
    for item in range(3):
        sample, plain = with_view[(item, 0)], without[(item, 0)]  # three epochs: three different draws
        assert "view2" not in plain
        for key in ("frames", "keypoints", "visible", "affine", "rotation", "scale"):
            np.testing.assert_array_equal(sample[key], plain[key])
        view, view_affine = sample["view2"], sample["view2_affine"]
        assert view.shape == (64, 48, 3) and view.dtype == np.uint8 and view_affine.shape == (2, 3)
        assert not np.allclose(view_affine, sample["affine"])
        np.testing.assert_allclose(_spot_position(view), apply_affine(view_affine, SPOT), atol=0.75)
        # the key frame's spot lands where the clip's own affine says
        np.testing.assert_allclose(_spot_position(sample["frames"][1]), apply_affine(sample["affine"], SPOT), atol=0.75)


def test_the_second_view_is_converted_on_the_device_like_the_frames(tmp_path):
    dataset = _dataset(tmp_path, SecondView())
    batch = to_device(collate([dataset[0], dataset[(1, 0)]]), "cpu")
    assert batch["view2"].shape == (2, 3, 64, 48) and batch["view2"].dtype == torch.float32
    raw = dataset[0]["view2"]
    assert torch.equal(batch["view2"][0], torch.from_numpy(raw).permute(2, 0, 1).float() / 255.0)
    assert batch["frames"].shape == (2, 3, 3, 64, 48)


def test_invalid_second_view_options():
    with pytest.raises(ValueError, match="scale"):
        SecondView(scale=(1.25, 0.75))
    with pytest.raises(ValueError, match="rotation"):
        SecondView(rotation=-1.0)
