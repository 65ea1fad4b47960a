"""Pictures: sizes, drawn content, and motion-aware ellipses whose extents follow the target equations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidpose import viz
from vidpose.data.keypoints import POSETRACK
from vidpose.heatmaps import Geometry


def _colour_mask(image: np.ndarray, colour: tuple[int, int, int], tol: float = 80.0) -> np.ndarray:
    return np.linalg.norm(image.astype(np.float64) - np.asarray(colour, np.float64), axis=-1) < tol


def test_skeleton_with_scores_writes_text_and_respects_the_threshold():
    image = np.zeros((120, 100, 3), np.uint8)
    kp = np.array([[50.0, 20.0]] * 17)
    kp[5], kp[7] = (30.0, 50.0), (30.0, 80.0)  # left shoulder -> left elbow
    scores = np.zeros(17)
    scores[[5, 7]] = 0.9
    plain = viz.draw_skeleton(image, kp, scores, POSETRACK, threshold=0.5)
    labelled = viz.draw_skeleton(image, kp, scores, POSETRACK, threshold=0.5, show_scores=True)
    assert plain.shape == image.shape and image.max() == 0  # the input is not modified
    # only the two scored joints and their bone are drawn, in the left-side colour
    assert _colour_mask(plain, viz.LEFT)[50:81, 28:33].any() and plain[15:25, 45:55].max() == 0
    assert (labelled > 0).sum() > (plain > 0).sum()  # the "0.90" labels


def test_clip_strip_marks_the_key_frame():
    frames = np.zeros((3, 40, 30, 3), np.uint8)
    strip = viz.clip_strip(frames, np.zeros((3, 17, 2)), np.zeros((3, 17)), POSETRACK, key_index=1)
    assert strip.shape == (40, 3 * 30 + 2 * 2, 3)
    key = strip[:, 32:62]
    assert (key[0] == 255).all() and (strip[:, :30] == 0).all()  # white frame on the key frame only


def test_heatmap_grid_overlay_and_caption():
    pred = np.zeros((2, 8, 6))
    pred[0, 4, 3] = 1.0
    grid = viz.heatmap_grid(pred, np.ones((2, 8, 6)), scale=2)
    assert grid.shape == (8 * 2 * 2 + 2, 6 * 2 * 2 + 2, 3)
    crop = np.full((32, 24, 3), 100, np.uint8)
    overlay = viz.heatmap_overlay(crop, pred, alpha=0.5)
    assert overlay.shape == crop.shape
    # the peak (map pixel (3, 4) -> crop pixels 12..15 x 16..19) turns red-ish, the rest blue-ish
    assert overlay[17, 13, 0] > overlay[17, 13, 2] and overlay[2, 2, 2] > overlay[2, 2, 0]
    captioned = viz.caption(crop, "hello", height=12)
    assert captioned.shape == (44, 24, 3) and captioned[:12].max() > 0


@pytest.mark.parametrize("convention", ["msra", "udp"])
def test_motion_ellipse_extents_follow_motion_sigmas(convention):
    geo = Geometry((128, 96), 4, convention)
    sx, sy = geo.input_to_heatmap_scale()
    key_xy = np.asarray(
        geo.to_input(np.array([12.0, 16.0]))
    )  # a heatmap pixel centre: msra rounding is exact
    clip = np.zeros((3, 1, 2))
    clip[1, 0] = key_xy
    clip[0, 0] = key_xy - np.asarray(
        geo.to_input(np.array([6.0, 0.0]))
    )  # 6 heatmap px of motion along x
    visible = np.array([[1.0], [1.0], [0.0]])  # next frame missing: standard circle
    image = np.zeros((128, 96, 3), np.uint8)
    out = viz.motion_ellipses(image, clip, visible, geo, key=1, n_sigma=1.0)
    # |m| = 6 > delta = 3: r = 1, sigma_par = 4 along x, sigma_perp = 2 across (heatmap px)
    prev = _colour_mask(out, viz.PREV_COLOUR)
    ys, xs = np.nonzero(prev)
    assert xs.max() == pytest.approx(key_xy[0] + 4 / sx, abs=1.5)
    assert ys.max() == pytest.approx(key_xy[1] + 2 / sy, abs=1.5)
    assert ys.min() == pytest.approx(key_xy[1] - 2 / sy, abs=1.5)
    # the missing neighbour: a sigma0 = 3 circle in grey
    grey = _colour_mask(out, viz.MISSING_COLOUR, tol=40)
    ys, xs = np.nonzero(grey)
    assert ys.max() == pytest.approx(key_xy[1] + 3 / sy, abs=1.5)
    assert not _colour_mask(out, viz.NEXT_COLOUR).any()


def test_motion_ellipse_rotates_with_the_motion_and_handles_clamping():
    geo = Geometry((128, 96), 4, "msra")
    clip = np.zeros((3, 1, 2))
    clip[:, 0] = [(48.0, 40.0), (48.0, 64.0), (48.0, 64.0)]  # prev 24 input px (6 hm px) above
    out = viz.motion_ellipses(
        np.zeros((128, 96, 3), np.uint8),
        clip,
        np.ones((3, 1)),
        geo,
        key=1,
        clamped=np.array([False, False, True]),
        n_sigma=1.0,
    )
    ys, xs = np.nonzero(_colour_mask(out, viz.PREV_COLOUR))
    # vertical motion: the long axis (4 hm px = 16 input px) is vertical now
    assert ys.max() == pytest.approx(64 + 16, abs=1.5) and xs.max() == pytest.approx(
        48 + 8, abs=1.5
    )
    # a clamped next frame: m = 0, a circle of sigma0 - 1 = 2 hm px = 8 input px
    ys, xs = np.nonzero(_colour_mask(out, viz.NEXT_COLOUR))
    assert xs.max() == pytest.approx(48 + 8, abs=1.5) and ys.max() == pytest.approx(64 + 8, abs=1.5)
    with pytest.raises(ValueError, match="next frame index 3"):
        viz.motion_ellipses(out, clip, np.ones((3, 1)), geo, key=2)


def test_save_png_round_trip(tmp_path):
    image = np.zeros((10, 12, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    viz.save_png(str(tmp_path / "a.png"), image)
    back = cv2.imread(str(tmp_path / "a.png"))
    assert back.shape == (10, 12, 3) and back[0, 0, 2] == 200 and back[0, 0, 0] == 0
