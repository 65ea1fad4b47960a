import random

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, DistributedSampler

from vidpose.data.clip import ClipDataset
from vidpose.data.index import FrameRecord, Instance, PersonAnnotation, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import POSETRACK
from vidpose.data.loader import EpochSampler, build_loader, collate, make_sampler, set_epoch, to_device
from vidpose.data.transforms import ClipTransform
from vidpose.heatmaps import Geometry

GEO = Geometry((32, 24), 4, "msra")
K = POSETRACK.num_joints


def _fake_sample(i):
    frames = np.zeros((3, 8, 4, 3), dtype=np.uint8)
    frames[:, 0, 0] = [255, 0, 0]  # one pure red pixel
    return {
        "frames": frames,
        "keypoints": np.full((3, K, 2), i, dtype=np.float32),
        "visible": np.ones((3, K), dtype=np.float32),
        "clamped": np.array([i == 0, False, False]),
        "rotation": 1.5 * i,
        "flipped": i % 2 == 1,
        "image_id": 100 + i,
        "video_id": f"video{i}",
    }


def test_collate_stacks_arrays_and_keeps_strings_as_lists():
    batch = collate([_fake_sample(0), _fake_sample(1)])
    assert batch["frames"].dtype == torch.uint8 and batch["frames"].shape == (2, 3, 8, 4, 3)
    assert batch["keypoints"].shape == (2, 3, K, 2) and batch["keypoints"][1, 0, 0, 0] == 1
    assert batch["clamped"].dtype == torch.bool and batch["clamped"][:, 0].tolist() == [True, False]
    assert batch["flipped"].tolist() == [False, True] and batch["flipped"].dtype == torch.bool
    assert batch["image_id"].dtype == torch.int64 and batch["image_id"].tolist() == [100, 101]
    assert batch["rotation"].dtype == torch.float32 and batch["rotation"].tolist() == [0.0, 1.5]
    assert batch["video_id"] == ["video0", "video1"]
    with pytest.raises(ValueError, match="keys"):
        collate([_fake_sample(0), {"frames": np.zeros(1)}])
    with pytest.raises(TypeError, match="'meta'"):
        collate([{"meta": object()}])


def test_to_device_converts_frames_to_unit_rgb_on_the_device():
    batch = to_device(collate([_fake_sample(0), _fake_sample(1)]), "cpu")
    frames = batch["frames"]
    assert frames.dtype == torch.float32 and frames.shape[:3] == (2, 3, 3)
    # the fake sample's first pixel is R = 255, G = 0, B = 0
    assert frames[0, 0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="uint8"):
        to_device({"frames": frames}, "cpu")


def test_distributed_sampler_splits_the_dataset_between_ranks():
    dataset = list(range(10))
    ranks = [make_sampler(dataset, True, seed=1, distributed=True, num_replicas=2, rank=r) for r in (0, 1)]
    assert all(isinstance(s.distributed_sampler, DistributedSampler) for s in ranks)
    pairs = [list(s) for s in ranks]
    assert all(epoch == 0 for part in pairs for epoch, _ in part)
    indices = [[i for _, i in part] for part in pairs]
    assert len(indices[0]) == len(indices[1]) == 5 and sorted(indices[0] + indices[1]) == list(range(10))
    for s in ranks:
        s.set_epoch(1)
    later = [[i for _, i in s] for s in ranks]
    assert later != indices and all(epoch == 1 for epoch, _ in ranks[0])
    with pytest.raises(RuntimeError, match="torch.distributed"):
        make_sampler(dataset, True, seed=1, distributed=True)


def test_local_sampler_order_depends_on_seed_and_epoch_only():
    a, b = EpochSampler(20, True, seed=5), EpochSampler(20, True, seed=5)
    assert a.distributed_sampler is None and a.indices() == b.indices() and sorted(a.indices()) == list(range(20))
    first = a.indices()
    a.set_epoch(1)
    assert a.indices() != first and next(iter(a)) == (1, a.indices()[0])
    assert EpochSampler(4, False, seed=5).indices() == [0, 1, 2, 3]


def _tiny_clip_dataset(root):
    frames = []
    rng = np.random.default_rng(0)
    for n in range(4):
        cv2.imwrite(str(root / f"{n:06d}.png"), rng.integers(0, 256, (40, 48, 3)).astype(np.uint8))
        keypoints = np.tile([[24.0, 22.0]], (K, 1)).astype(np.float32) + np.arange(K)[:, None]
        person = PersonAnnotation(0, keypoints, np.ones(K, np.float32), np.array([14, 10, 18, 24], np.float32))
        frames.append(FrameRecord(n, f"{n:06d}.png", n, True, [person]))
    index = VideoPoseIndex("tiny", POSETRACK, str(root), [VideoRecord("v", frames)])
    instances = [Instance(0, n, frames[n].people[0].bbox_xywh, 1.0, 0, 0) for n in range(4)] * 2
    transform = ClipTransform(GEO, POSETRACK, train=True, colour_jitter=0.2)
    return ClipDataset(index, instances, GEO, transform, interval_range=(1, 2), seed=7)


def _epochs(loader, epochs=2):
    out = []
    for epoch in range(epochs):
        set_epoch(loader, epoch)
        out.extend(loader)
    return out


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path):
    dataset = _tiny_clip_dataset(tmp_path)
    # A large warp starts OpenCV's thread pool in this process before the workers fork: the
    # workers must still run OpenCV (cv2.setNumThreads(1) in a forked worker hung here).
    big = np.zeros((1500, 1500, 3), np.uint8)
    cv2.warpAffine(big, np.array([[0.9, 0.1, 0.0], [-0.1, 0.9, 0.0]]), (1500, 1500))
    serial = build_loader(dataset, batch_size=3, shuffle=True, num_workers=0, seed=1, drop_last=False)
    parallel = build_loader(dataset, batch_size=3, shuffle=True, num_workers=2, seed=1, drop_last=False, timeout=60)
    assert parallel.persistent_workers  # the epoch must still reach the workers through the sampler
    a, b = _epochs(serial), _epochs(parallel)
    assert len(a) == len(b) == 6
    for x, y in zip(a, b):
        assert x["instance"].tolist() == y["instance"].tolist()
        for key in ("frames", "keypoints", "visible", "rotation", "scale", "interval"):
            assert torch.equal(x[key], y[key]), key
    # the two epochs really differ (order and augmentation)
    assert not all(torch.equal(a[i]["frames"], a[i + 3]["frames"]) for i in range(3))


class _GlobalRandom(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, item):
        return {"np": float(np.random.random()), "py": random.random()}


def test_workers_seed_numpy_and_random_from_the_loader_seed():
    def draws(seed):
        loader = build_loader(
            _GlobalRandom(),
            batch_size=1,
            shuffle=False,
            num_workers=2,
            seed=seed,
            drop_last=False,
            persistent_workers=False,
        )
        return [(float(b["np"]), float(b["py"])) for b in loader]

    first = draws(3)
    assert first == draws(3) and first != draws(4)
    # the two workers (samples 0 and 1 come from different workers) draw different numbers
    assert first[0] != first[1]


def test_set_epoch_needs_an_epoch_sampler():
    loader = torch.utils.data.DataLoader([1, 2])
    with pytest.raises(TypeError, match="EpochSampler"):
        set_epoch(loader, 1)
