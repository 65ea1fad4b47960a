"""Reduced-resolution JPEG decoding and the per-process frame cache (vidpose/data/frames.py).

Stated tolerances (docs/data.md "Decoding speed"): with reduced decoding, keypoints, visibility
and the crop affine are identical to full-resolution decoding (they never depend on the decoded
pixels), the content of a crop lies within 0.1 input pixels of where the affine puts it, and
crops of a smooth textured frame differ from full-resolution crops by less than 2 grey levels on
average (the reduced decoder averages f x f blocks where the full-resolution warp samples
bilinearly without prefiltering, so the two cannot be identical).
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch

from vidpose.data.clip import ClipDataset
from vidpose.data.frames import FrameReader
from vidpose.data.index import FrameRecord, Instance, PersonAnnotation, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import POSETRACK
from vidpose.data.transforms import ClipTransform
from vidpose.heatmaps import Geometry
from vidpose.heatmaps.geometry import apply_affine

GEO = Geometry((256, 192), 4, "udp")
K = POSETRACK.num_joints
W, H = 1920, 1080
CROP_TOLERANCE = 2.0  # mean absolute grey-level difference to full-resolution crops
POSITION_TOLERANCE = 0.1  # input pixels; a decoded grid misplaced by (f - 1) / 2 is off by 0.2-0.4
DOT = np.array([960.0, 540.0])
# box heights whose 1.25x crop spans f..2f image pixels per input pixel: the factor each must get
BOX_HEIGHTS = {1: 180.0, 2: 480.0, 4: 900.0, 8: 1700.0}


def _texture(rng: np.random.Generator) -> np.ndarray:
    small = rng.uniform(0, 255, size=(H // 30, W // 30, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _person(height: float, centre: np.ndarray, shift: float = 0.0) -> PersonAnnotation:
    width = 0.5 * height
    box = np.array([centre[0] - width / 2, centre[1] - height / 2, width, height], dtype=np.float32)
    rng = np.random.default_rng(int(height))
    keypoints = (box[:2] + rng.uniform(0.1, 0.9, size=(K, 2)) * box[2:] + [shift, 0.0]).astype(np.float32)
    visible = np.ones(K, dtype=np.float32)
    visible[list(POSETRACK.never_annotated)] = 0
    keypoints[visible == 0] = 0
    return PersonAnnotation(0, keypoints, visible, box)


def _index(root, image_for_frame) -> VideoPoseIndex:
    """One video of 3 JPEG frames, one person per box height on every frame, all centred on DOT."""
    frames = []
    for n in range(3):
        name = f"v/{n:06d}.jpg"
        (root / "v").mkdir(exist_ok=True)
        cv2.imwrite(str(root / name), image_for_frame(n), [cv2.IMWRITE_JPEG_QUALITY, 95])
        people = [_person(h, DOT, shift=2.0 * n) for h in BOX_HEIGHTS.values()]
        for i, p in enumerate(people):
            p.track_id = i
        frames.append(FrameRecord(100 + n, name, n, True, people))
    return VideoPoseIndex("frames", POSETRACK, str(root), [VideoRecord("v", frames)])


def _datasets(index, train: bool):
    instances = [Instance(0, 1, p.bbox_xywh, 1.0, p.track_id, i) for i, p in enumerate(index.videos[0].frames[1].people)]
    out = []
    for reduced in (False, True):
        reader = FrameReader(index.image_root, reduced_decoding=reduced)
        transform = ClipTransform(GEO, POSETRACK, train=train)
        out.append(ClipDataset(index, instances, GEO, transform, seed=3, frame_reader=reader))
    return out


def test_factor_is_the_largest_reduction_keeping_input_resolution():
    reader = FrameReader("/nowhere", reduced_decoding=True)
    wanted = {0.5: 1, 1.0: 1, 1.99: 1, 2.0: 2, 3.9: 2, 4.0: 4, 7.99: 4, 8.0: 8, 30.0: 8}
    assert {m: reader.factor("a/b.jpg", m) for m in wanted} == wanted
    assert reader.factor("a/b.JPEG", 5.0) == 4
    assert reader.factor("a/b.png", 30.0) == 1  # OpenCV would decode fully and resize: no saving
    assert FrameReader("/nowhere").factor("a/b.jpg", 30.0) == 1  # off by default


@pytest.mark.parametrize("train", [False, True])
def test_reduced_decoding_keeps_geometry_exact_and_crops_within_tolerance(tmp_path, train):
    rng = np.random.default_rng(0)
    texture = _texture(rng)
    index = _index(tmp_path, lambda n: np.roll(texture, 3 * n, axis=1))
    full, reduced = _datasets(index, train)
    for i, expected_factor in enumerate(BOX_HEIGHTS):
        a, b = full[i], reduced[i]
        for key in ("keypoints", "visible", "affine", "center", "scale", "clamped"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        error = float(np.abs(a["frames"].astype(np.float64) - b["frames"].astype(np.float64)).mean())
        assert error < CROP_TOLERANCE, (expected_factor, error)
        if not train:  # augmentation rescales the crop, which may change the factor
            assert reduced.frame_reader.factor_counts[expected_factor] > 0
    assert full.frame_reader.factor_counts[1] == full.frame_reader.decodes  # never reduced when off


def test_a_crop_that_needs_full_resolution_is_decoded_at_full_resolution(tmp_path):
    index = _index(tmp_path, lambda n: _texture(np.random.default_rng(n)))
    _, reduced = _datasets(index, train=False)
    reduced[0]  # the 180 px box: its crop magnifies the frame
    assert reduced.frame_reader.factor_counts == {1: 3, 2: 0, 4: 0, 8: 0}


def test_crop_content_sits_where_the_affine_maps_it(tmp_path):
    def dot_image(n: int) -> np.ndarray:
        image = np.zeros((H, W, 3), np.uint8)
        cv2.circle(image, (int(DOT[0]), int(DOT[1])), 40, (255, 255, 255), -1, lineType=cv2.LINE_AA)
        return image

    index = _index(tmp_path, dot_image)
    full, reduced = _datasets(index, train=False)
    for i, factor in enumerate(BOX_HEIGHTS):
        sample = reduced[i]
        assert reduced.frame_reader.factor_counts[factor] > 0
        expected = apply_affine(sample["affine"].astype(np.float64), DOT[None])[0]
        for crops in (sample["frames"], full[i]["frames"]):
            weight = crops[1, :, :, 0].astype(np.float64)
            ys, xs = np.mgrid[: weight.shape[0], : weight.shape[1]]
            centroid = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
            assert np.abs(centroid - expected).max() < POSITION_TOLERANCE, (factor, centroid, expected)


def test_cache_is_bounded_in_bytes_keyed_by_factor_and_empty_in_each_worker(tmp_path):
    index = _index(tmp_path, lambda n: _texture(np.random.default_rng(n)))
    frame_bytes = H * W * 3
    reader = FrameReader(index.image_root, reduced_decoding=True, cache_bytes=2 * frame_bytes)
    names = [f.file_name for f in index.videos[0].frames]
    for name in names:
        reader.read(name)
    assert reader.decodes == 3 and reader.cached_bytes == 2 * frame_bytes  # the oldest went
    reader.read(names[2])
    assert reader.hits == 1
    image, factor = reader.read(names[2], max_downscale=4.0)  # another factor: its own entry
    assert factor == 4 and image.shape == (H // 4, W // 4, 3) and reader.decodes == 4
    worker_copy = pickle.loads(pickle.dumps(reader))
    assert worker_copy.cached_bytes == 0 and worker_copy.cache_bytes == reader.cache_bytes
    assert reader.cached_bytes > 0  # the original keeps its frames
    with pytest.raises(ValueError, match="cache_bytes"):
        FrameReader(index.image_root, cache_bytes=-1)


def test_samples_do_not_depend_on_workers_or_what_the_cache_holds(tmp_path):
    from vidpose.data.loader import build_loader, set_epoch

    index = _index(tmp_path, lambda n: _texture(np.random.default_rng(n)))
    instances = [Instance(0, f, p.bbox_xywh, 1.0, p.track_id, i)
                 for f in range(3) for i, p in enumerate(index.videos[0].frames[f].people)]

    def batches(workers: int, cache_bytes: int) -> list[dict]:
        reader = FrameReader(index.image_root, reduced_decoding=True, cache_bytes=cache_bytes)
        dataset = ClipDataset(index, instances, GEO, ClipTransform(GEO, POSETRACK, train=True), seed=5,
                              frame_reader=reader)
        loader = build_loader(dataset, 4, shuffle=True, num_workers=workers, seed=1, drop_last=False, timeout=60)
        set_epoch(loader, 0)
        return list(loader)

    reference = batches(0, 0)
    for workers, cache_bytes in ((0, 64 * 2**20), (2, 64 * 2**20)):
        for a, b in zip(reference, batches(workers, cache_bytes), strict=True):
            assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["keypoints"], b["keypoints"])
