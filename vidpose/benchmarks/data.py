"""Benchmark ``data``: clips/s of the real training loader against the JPEG-decoding bound of the same frames.

The set is PoseTrack18-shaped and written to a temporary directory: ``--videos`` videos of
``--frames`` frames, every frame labeled, each video showing one of the three real 1920 x 1080
PoseTrack18 validation frames of ``../shared/data/posetrack18_mini`` (linked, not copied) with
its real people (14 boxes from 175 to 1090 px tall), drifting a few pixels per frame. Without
that sample, frames of the same size are generated (smooth texture plus noise, JPEG quality 92)
with people of PoseTrack-like heights. The ``frames`` column names the source.

Rows, all over the same first ``--clips`` clips of one epoch (3 frames, 256 x 192, interval 1):

- ``train``: shuffled, with training augmentation; ``loader`` is a DataLoader set up as the
  trainer's (:func:`~vidpose.data.loader.collate`, seeded workers, persistent workers, pinned
  memory when CUDA is present) over a :class:`~vidpose.data.clip.ClipDataset` with full decoding (the default),
  reduced decoding (``data.reduced_decoding=true``) and reduced decoding plus a 256 MiB frame
  cache per worker (``data.frame_cache_mb=256``), for 0, 1 and 2 workers;
- ``eval``: the validation pattern (no augmentation, sequential order, so the people of one
  frame come in a row and the frame cache serves all but the first).

Each row alternates ``--rounds`` pairs of passes over its share of the clips: first the bound,
``max(workers, 1)`` forked processes set up like loader workers
(:func:`~vidpose.data.loader.worker_init_fn`: single-threaded OpenCV, freed memory kept) doing
nothing but ``np.fromfile`` + ``cv2.imdecode`` at full resolution of each clip's distinct frames,
fed batch by batch like the loader; then the loader, whose persistent workers were started by an
untimed warm-up pass over other clips (``startup_s``), so a pass pays its pipeline fill, as
every epoch does, but not process start-up. ``clips_per_s`` and ``bound_clips_per_s`` are the
medians over the rounds and ``x_bound`` the median of the per-round ratios: measuring the bound
next to the loader, with as many processes, keeps the ratio meaningful on a machine shared with
other jobs, where either number alone moves with the neighbours' load. ``factor_1/2/4/8`` is
the share of clips decoded at each reduction.

With 0 workers both passes run in the benchmark's own process, which keeps freed memory from
the first such row on, as a trainer's process does when it loads without workers
(:func:`~vidpose.data.loader.keep_freed_memory`: otherwise every decoded frame lands on fresh
pages from the kernel and decoding costs about twice as much).

Goal: every ``train`` row at ``x_bound >= 0.8``. The loader cannot beat the bound without
reduced decoding; with it, crops of large people decode at 1/2..1/8 and the loader exceeds it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

import vidpose
from vidpose.data.clip import ClipDataset, clip_positions, training_instances
from vidpose.data.frames import REDUCTION_FACTORS, FrameReader
from vidpose.data.index import VideoPoseIndex
from vidpose.data.keypoints import POSETRACK
from vidpose.data.loader import collate, keep_freed_memory, worker_init_fn
from vidpose.data.posetrack import posetrack18
from vidpose.data.transforms import ClipTransform
from vidpose.heatmaps.geometry import Geometry

DESCRIPTION = "clips/s of the training loader (3 frames, 256x192, augmentation) vs JPEG decoding of the same frames"

GOAL = 0.8  # x the decode bound
INPUT_HW = (256, 192)
CACHE_MB = 256
IMAGE_W, IMAGE_H = 1920, 1080
_SAMPLE_VIDEOS = ("003418_mpii_test", "009473_mpii_test", "012834_mpii_test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``data`` benchmark."""
    parser.add_argument("--clips", type=int, default=None, help="clips timed per row (default 288, quick 8)")
    parser.add_argument("--rounds", type=int, default=None, help="bound/loader passes alternated per row (default 3, quick 1)")
    parser.add_argument("--batch", type=int, default=None, help="clips per batch (default 16, quick 4)")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts (default 0,1,2)")
    parser.add_argument("--videos", type=int, default=60, help="videos in the generated set (default 60)")
    parser.add_argument("--frames", type=int, default=30, help="frames per video (default 30)")
    parser.add_argument("--sample", default=None, help="PoseTrack18 sample root (default: ../shared/data/posetrack18_mini)")
    parser.add_argument("--seed", type=int, default=0)


def default_sample_root() -> Path:
    """Where the real PoseTrack18 sample lives: ``$VIDPOSE_SHARED_DATA`` or ``<repo>/../shared/data``."""
    shared = os.environ.get("VIDPOSE_SHARED_DATA") or Path(vidpose.__file__).resolve().parents[2] / "shared" / "data"
    return Path(shared) / "posetrack18_mini"


def _real_sources(sample: Path) -> list[tuple[Path, list[dict]]] | None:
    """(frame path, PT18 annotations) of the sample's three labeled frames, or None when absent."""
    sources = []
    for name in _SAMPLE_VIDEOS:
        ann_file = sample / "annotations" / "val" / f"{name}.json"
        if not ann_file.is_file():
            return None
        data = json.loads(ann_file.read_text())
        image = data["images"][0]
        sources.append((sample / image["file_name"], data["annotations"]))
    return sources


def _generated_sources(root: Path, rng: np.random.Generator) -> list[tuple[Path, list[dict]]]:
    """Three generated 1920 x 1080 JPEG frames with people of PoseTrack-like heights (no real sample)."""
    sources = []
    for s in range(3):
        small = rng.uniform(0, 255, size=(IMAGE_H // 24, IMAGE_W // 24, 3)).astype(np.float32)
        image = cv2.resize(small, (IMAGE_W, IMAGE_H), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 6.0, size=image.shape).astype(np.float32)
        path = root / "sources" / f"{s}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
        people = []
        for track in range(int(rng.integers(2, 8))):
            height = float(rng.uniform(150, 800))
            width = 0.45 * height
            x0, y0 = rng.uniform(0, IMAGE_W - width), rng.uniform(0, IMAGE_H - height)
            xy = np.stack([rng.uniform(x0, x0 + width, 17), rng.uniform(y0, y0 + height, 17)], axis=1)
            kp = np.concatenate([xy, np.ones((17, 1))], axis=1)
            kp[list(POSETRACK.never_annotated)] = 0
            people.append({"track_id": track, "keypoints": kp.reshape(-1).tolist(), "bbox": [x0, y0, width, height]})
        sources.append((path, people))
    return sources


def write_benchmark_set(root: Path, n_videos: int, n_frames: int, sample: Path | None, seed: int = 0) -> tuple[VideoPoseIndex, str]:
    """Write the PT18-layout set under ``root`` (train split); returns its index and the frame source label."""
    rng = np.random.default_rng(seed)
    sources = _real_sources(sample) if sample is not None else None
    label = "posetrack18 1920x1080 (real)"
    if sources is None:
        sources = _generated_sources(root, rng)
        label = "generated 1920x1080"
    ann_dir = root / "annotations" / "train"
    ann_dir.mkdir(parents=True)
    category = [{"id": 1, "name": "person", "keypoints": list(POSETRACK.joint_names)}]
    for v in range(n_videos):
        name = f"{v + 1:06d}_bench"
        source, people = sources[v % len(sources)]
        image_dir = root / "images" / "train" / name
        image_dir.mkdir(parents=True)
        drift = rng.normal(0, 3.0, size=(len(people), 2))
        images, annotations = [], []
        for f in range(n_frames):
            (image_dir / f"{f:06d}.jpg").symlink_to(source.resolve())
            image_id = 10_000_000_000 + (v + 1) * 10_000 + f
            images.append({"id": image_id, "file_name": f"images/train/{name}/{f:06d}.jpg", "is_labeled": True,
                           "frame_id": image_id})
            for p, person in enumerate(people):
                kp = np.asarray(person["keypoints"], dtype=np.float64).reshape(-1, 3)
                shown = kp[:, 2] > 0
                kp[shown, :2] += drift[p] * f
                x, y, w, h = person["bbox"]
                annotations.append({
                    "image_id": image_id, "track_id": int(person["track_id"]), "keypoints": kp.reshape(-1).tolist(),
                    "bbox": [x + drift[p, 0] * f, y + drift[p, 1] * f, w, h], "scores": [],
                })
        with open(ann_dir / f"{name}.json", "w") as fh:
            json.dump({"images": images, "annotations": annotations, "categories": category}, fh)
    return posetrack18(str(root), "train"), label


def _dataset(index: VideoPoseIndex, train: bool, reduced: bool, cache_mb: int, seed: int,
             input_hw: tuple[int, int] = INPUT_HW, offsets: tuple[int, ...] = (-1, 0, 1)) -> ClipDataset:
    """The real clip dataset over ``index`` with the given decoding options."""
    geometry = Geometry(input_hw, 4, "udp")
    instances = training_instances(index) if train else index.gt_instances(min_visible=0)
    reader = FrameReader(index.image_root, reduced_decoding=reduced, cache_bytes=cache_mb * 2**20)
    return ClipDataset(index, instances, geometry, ClipTransform(geometry, POSETRACK, train=train),
                       offsets=offsets, seed=seed, frame_reader=reader)


def clip_dataset(root: Path, input_hw: tuple[int, int], offsets: tuple[int, ...], seed: int = 0,
                 reduced: bool = False, cache_mb: int = 0) -> ClipDataset:
    """The training clip dataset (augmented) over a set written by :func:`write_benchmark_set`."""
    return _dataset(posetrack18(str(root), "train"), True, reduced, cache_mb, seed, input_hw, offsets)


def _order(dataset: ClipDataset, shuffle: bool, seed: int) -> list[int]:
    """The dataset indices of epoch 0 in the loader's order (EpochSampler's recipe)."""
    if not shuffle:
        return list(range(len(dataset)))
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(dataset), generator=generator).tolist()


def clip_paths(dataset: ClipDataset, indices: list[int]) -> list[list[str]]:
    """Per clip, the paths of its distinct frames (what a loader that decodes once per frame reads)."""
    paths = []
    for i in indices:
        inst = dataset.instances[i]
        video = dataset.index.videos[inst.video]
        positions, _ = clip_positions(inst.frame, len(video), dataset.offsets, dataset.interval)
        paths.append([dataset.frame_reader.path(video.frames[p].file_name) for p in sorted(set(positions.tolist()))])
    return paths


def _decode_clips(clips: list[list[str]]) -> int:
    """Decode every frame of ``clips`` at full resolution; returns the number of clips."""
    for clip in clips:
        for path in clip:
            cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    return len(clips)


class DecodeBound:
    """Clips/s of ``max(workers, 1)`` processes that only decode clips' frames, batch by batch like a loader.

    The pool is started (and warmed) once; :meth:`measure` can then be interleaved with loader passes.
    """

    def __init__(self, workers: int, batch: int) -> None:
        self.batch = batch
        # set up as a loader worker is (worker_init_fn): single-threaded OpenCV, freed memory kept
        self.pool = mp.get_context("fork").Pool(workers, initializer=worker_init_fn, initargs=(0,)) if workers > 0 else None
        if self.pool is not None:
            self.pool.map(_decode_clips, [[]] * workers)

    def measure(self, clips: list[list[str]]) -> float:
        """Clips/s of decoding ``clips`` (full resolution, distinct frames)."""
        start = time.perf_counter()
        if self.pool is None:
            _decode_clips(clips)
        else:
            batches = [clips[i : i + self.batch] for i in range(0, len(clips), self.batch)]
            self.pool.map(_decode_clips, batches, chunksize=1)
        return len(clips) / (time.perf_counter() - start)

    def close(self) -> None:
        """End the pool's processes once they are idle."""
        if self.pool is not None:
            # close(), not terminate(): terminate can kill a worker while it holds the task
            # queue's lock, and the pool's handler may already have started a replacement that
            # then waits on that lock forever, so join() never returns (seen in CI)
            self.pool.close()
            self.pool.join()


def factor_histogram(dataset: ClipDataset, indices: list[int]) -> dict[int, float]:
    """Share of clips decoded at each reduction factor (the key frame's crop decides all T frames)."""
    counts = dict.fromkeys(REDUCTION_FACTORS, 0)
    for i in indices:
        inst = dataset.instances[i]
        video = dataset.index.videos[inst.video]
        keypoints, visible = dataset._clip_keypoints(inst, np.array([inst.frame]))
        params = dataset.transform.sample(dataset.rng(0, i), inst.bbox_xywh, keypoints[0], visible[0])
        counts[dataset.frame_reader.factor(video.frames[inst.frame].file_name, dataset.transform.max_downscale(params))] += 1
    return {f: c / max(1, len(indices)) for f, c in counts.items()}


class LoaderTimer:
    """The loader of one row, its persistent workers started by an untimed warm-up pass over other clips.

    After the warm-up the workers are idle, so each timed pass (:meth:`measure`) pays its pipeline
    fill, as every epoch does, but neither process start-up nor work prefetched before the clock.
    """

    def __init__(self, dataset: ClipDataset, warmup: list[int], batch: int, workers: int, seed: int) -> None:
        if workers == 0:
            keep_freed_memory()  # as the trainer's and evaluator's loaders do without workers
        self.sampler = _PassSampler(warmup)
        self.loader = DataLoader(
            _Items(dataset), batch_size=batch, sampler=self.sampler, num_workers=workers, collate_fn=collate,
            pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0, worker_init_fn=worker_init_fn,
            generator=torch.Generator().manual_seed(seed),
        )
        start = time.perf_counter()
        for _ in self.loader:
            pass
        self.startup = time.perf_counter() - start

    def measure(self, indices: list[int]) -> float:
        """Clips/s of one pass over ``indices``."""
        self.sampler.indices = list(indices)
        clips = 0
        start = time.perf_counter()
        for item in self.loader:
            clips += len(item["frames"])
        return clips / (time.perf_counter() - start)

    def close(self) -> None:
        """End the persistent workers before the next row starts its own."""
        del self.loader


class _PassSampler(torch.utils.data.Sampler):
    """Yields ``(0, index)`` for the indices of the current pass (changed between passes)."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = list(indices)

    def __iter__(self):
        return iter([(0, i) for i in self.indices])

    def __len__(self) -> int:
        return len(self.indices)


class _Items(torch.utils.data.Dataset):
    """The clip dataset seen through ``(epoch, index)`` items only (what the samplers yield)."""

    def __init__(self, dataset: ClipDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        return self.dataset[item]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Build the set; per row, alternate decode-bound and loader passes over the same clips, report medians."""
    n_clips = args.clips or (8 if args.quick else 288)
    rounds = args.rounds or (1 if args.quick else 3)
    batch = args.batch or (4 if args.quick else 16)
    workers_list = [int(w) for w in str(args.workers).split(",") if w.strip()]
    n_videos, n_frames = (6, 6) if args.quick else (args.videos, args.frames)
    sample = Path(args.sample) if args.sample else default_sample_root()
    options = [("full decoding (default)", False, 0), ("reduced decoding", True, 0),
               (f"reduced + {CACHE_MB} MiB frame cache", True, CACHE_MB)]
    if args.quick:
        options = [options[0], options[2]]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vidpose_data_bench_") as tmp:
        index, source = write_benchmark_set(Path(tmp), n_videos, n_frames, sample if sample.exists() else None, args.seed)
        for order, train in (("train", True), ("eval", False)):
            reference = _dataset(index, train, False, 0, args.seed)
            order_all = _order(reference, train, args.seed)
            indices = order_all[:n_clips]
            chunks = [indices[r::rounds] if train else indices[r * len(indices) // rounds : (r + 1) * len(indices) // rounds]
                      for r in range(rounds)]
            # other clips for the warm-up pass: two batches per worker
            warmup = order_all[n_clips : n_clips + batch * 2 * max(1, max(workers_list))]
            _decode_clips(clip_paths(reference, indices[: max(1, len(indices) // 8)]))  # page cache, decoder
            for name, reduced, cache_mb in options:
                if not train and reduced and not cache_mb:
                    continue
                dataset = _dataset(index, train, reduced, cache_mb, args.seed)
                factors = factor_histogram(dataset, indices) if reduced else None
                for workers in workers_list if train else sorted({0, max(workers_list)}):
                    bound, loader = DecodeBound(workers, batch), LoaderTimer(dataset, warmup, batch, workers, args.seed)
                    try:
                        pairs = [(bound.measure(clip_paths(reference, chunk)), loader.measure(chunk)) for chunk in chunks]
                    finally:
                        bound.close()
                        loader.close()
                    ratio = statistics.median(l / b for b, l in pairs)
                    rows.append({
                        "order": "train: shuffled, augmented" if train else "eval: sequential, no augmentation",
                        "loader": name,
                        "workers": workers,
                        "clips_per_s": statistics.median(l for _, l in pairs),
                        "bound_clips_per_s": statistics.median(b for b, _ in pairs),
                        "x_bound": ratio,
                        "startup_s": loader.startup,
                        "factor_1/2/4/8": "/".join(f"{factors[f]:.2f}" for f in REDUCTION_FACTORS) if factors else "all 1",
                        "goal": (f">= {GOAL}: " + ("met" if ratio >= GOAL else "NOT met")) if train else "",
                        "frames": source,
                    })
    return rows
