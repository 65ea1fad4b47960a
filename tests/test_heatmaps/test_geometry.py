import cv2
import numpy as np
import pytest

from vidpose.heatmaps import Geometry, apply_affine, box_to_center_scale, invert_affine


def test_box_to_center_scale_fixes_aspect_then_enlarges():
    center, size = box_to_center_scale([10, 20, 30, 80], aspect_ratio=0.75, enlarge=1.25)
    assert np.allclose(center, [25, 60])
    assert np.allclose(size, [60 * 1.25, 80 * 1.25])  # width grown to 0.75 * 80
    center, size = box_to_center_scale([0, 0, 120, 80], aspect_ratio=0.75)
    assert np.allclose(size, [150, 200])  # height grown to 120 / 0.75
    for bad in ([0, 0, 0, 5], [0, 0, -1, 5], [np.nan, 0, 3, 3]):
        with pytest.raises(ValueError, match="box"):
            box_to_center_scale(bad, 0.75)


def test_msra_crop_maps_centre_and_box_edges():
    geo = Geometry((256, 192), 4, "msra")
    m = geo.crop_affine([500, 300], [96, 128])
    assert np.allclose(apply_affine(m, [[500, 300], [452, 236], [548, 364]]), [[96, 128], [0, 0], [192, 256]])


def test_udp_crop_maps_box_to_last_pixel_centres():
    geo = Geometry((256, 192), 4, "udp")
    m = geo.crop_affine([500, 300], [96, 128])
    assert np.allclose(apply_affine(m, [[500, 300], [452, 236], [548, 364]]), [[95.5, 127.5], [0, 0], [191, 255]])


def test_heatmap_scales():
    assert Geometry((256, 192), 4, "msra").heatmap_hw == (64, 48)
    sx, sy = Geometry((256, 192), 4, "udp").input_to_heatmap_scale()
    assert sx == pytest.approx(47 / 191) and sy == pytest.approx(63 / 255)
    geo = Geometry((256, 192), 4, "udp")
    xy = np.array([[191.0, 255.0]])
    assert np.allclose(geo.to_heatmap(xy), [[47, 63]]) and np.allclose(geo.to_input(geo.to_heatmap(xy)), xy)
    with pytest.raises(ValueError, match="convention"):
        Geometry((256, 192), 4, "center")
    with pytest.raises(ValueError, match="divisible"):
        Geometry((250, 192), 4)


def test_to_heatmap_works_on_torch_tensors():
    torch = pytest.importorskip("torch")
    geo = Geometry((256, 192), 4, "msra")
    out = geo.to_heatmap(torch.tensor([[8.0, 4.0]], dtype=torch.float64))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.tolist() == [[2.0, 1.0]]


@pytest.mark.parametrize("convention", ["msra", "udp"])
def test_rotation_flip_and_inverse(convention):
    geo = Geometry((64, 48), 4, convention)
    center, size = np.array([30.0, 40.0]), np.array([24.0, 32.0])
    m = geo.crop_affine(center, size, rotation=90)
    # a point above the centre (smaller y) ends up to the left of the centre after a
    # counter-clockwise quarter turn
    above = apply_affine(m, [30.0, 30.0]) - apply_affine(m, center)
    assert above[0] < -1 and abs(above[1]) < 1e-9
    mf = geo.crop_affine(center, size, rotation=0, flip=True)
    p = np.array([[31.0, 45.0]])
    assert np.allclose(apply_affine(mf, p)[:, 0], 47 - apply_affine(geo.crop_affine(center, size), p)[:, 0])
    img_pts = np.random.default_rng(0).uniform(0, 60, size=(5, 2))
    back = geo.input_to_image(geo.image_to_input(img_pts, center, size, 30, True), center, size, 30, True)
    assert np.allclose(back, img_pts)
    assert np.allclose(invert_affine(invert_affine(m)), m)


def test_crop_affine_agrees_with_cv2_warp():
    # a single bright pixel lands where the affine says
    geo = Geometry((32, 24), 4, "msra")
    img = np.zeros((100, 100), np.uint8)
    img[40, 55] = 255
    m = geo.crop_affine([50, 50], [24, 32], rotation=20)
    crop = cv2.warpAffine(img.astype(np.float32), m, (24, 32), flags=cv2.INTER_LINEAR)
    y, x = np.unravel_index(np.argmax(crop), crop.shape)
    px, py = apply_affine(m, [55, 40])
    assert abs(x - px) <= 0.5 and abs(y - py) <= 0.5
