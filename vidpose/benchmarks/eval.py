"""Speed of the PoseTrack mAP evaluator on a PoseTrack18-val-sized set, optionally against poseval.

The set is generated in a temporary directory: per video 30 labeled frames with about 6 people
(PoseTrack18 joints, some unannotated, head boxes, ignore regions on some frames) and 10
unlabeled frames; predictions are the GT jittered by a fraction of the head size, with random
scores, some people missed and some false positives, on every frame. With ``--poseval PATH``
(a directory holding poseval's ``poseval`` package; never downloaded or vendored here) poseval's
own AP path (``load_data_dir`` + ``evaluateAP``) runs on the same files in a subprocess of
``--poseval-python`` and the row reports its time, the speedup and the largest AP difference.
Goal: at least 10x faster than poseval, identical numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from vidpose.benchmarks import time_call
from vidpose.data.keypoints import POSETRACK
from vidpose.evaluation.posetrack_map import evaluate_dirs

DESCRIPTION = (
    "PoseTrack mAP evaluator (vidpose vs poseval) on a generated PoseTrack18-val-sized set"
)

FULL_VIDEOS = 170
QUICK_VIDEOS = 10
LABELED_FRAMES = 30
UNLABELED_FRAMES = 10
PEOPLE_PER_FRAME = 6
IMAGE_W, IMAGE_H = 1920, 1080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Benchmark options: the video count, a local poseval checkout and its interpreter."""
    parser.add_argument(
        "--videos",
        type=int,
        default=None,
        help=f"number of videos (default {FULL_VIDEOS}, {QUICK_VIDEOS} with --quick)",
    )
    parser.add_argument(
        "--poseval",
        default=None,
        help="directory containing poseval's python package (a local checkout) to time it too",
    )
    parser.add_argument(
        "--poseval-python",
        default=sys.executable,
        help="interpreter with numpy, shapely, click, tqdm for poseval",
    )
    parser.add_argument("--seed", type=int, default=0)


def _person(rng: np.random.Generator) -> tuple[np.ndarray, list[float]]:
    """(17, 3) GT keypoints (x, y, v) around a random body position and a head box [x, y, w, h]."""
    head = rng.uniform(30, 110)
    cx, cy = rng.uniform(100, IMAGE_W - 100), rng.uniform(150, IMAGE_H - 150)
    offsets = rng.normal(0, 1.5 * head, size=(17, 2))
    kp = np.concatenate([np.stack([cx, cy]) + offsets, np.ones((17, 1))], axis=1)
    kp[:, :2] = np.round(kp[:, :2], 1)
    drop = rng.random(17) < 0.12
    drop[list(POSETRACK.never_annotated)] = True
    kp[drop] = 0.0
    return kp, [
        round(cx - head / 2, 1),
        round(cy - 3 * head, 1),
        round(head, 1),
        round(1.2 * head, 1),
    ]


def _prediction(rng: np.random.Generator, kp: np.ndarray, head: float) -> dict[str, Any]:
    pred = kp.copy()
    pred[:, :2] += rng.normal(0, 0.3 * head, size=(17, 2))
    scores = rng.random(17)
    pred[:, 2] = scores
    pred[list(POSETRACK.never_annotated)] = 0.0
    return {
        "keypoints": pred.reshape(-1).tolist(),
        "scores": scores.tolist(),
        "score": float(rng.random()),
    }


def write_benchmark_set(root: Path, n_videos: int, seed: int = 0) -> tuple[Path, Path, int]:
    """Write GT and prediction directories under ``root``; returns (gt_dir, pred_dir, n_frames)."""
    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    category = [{"id": 1, "name": "person", "keypoints": list(POSETRACK.joint_names)}]
    n_frames = 0
    for v in range(n_videos):
        name = f"{v + 1:06d}_mpii_test"
        images, gt_anns, pred_anns = [], [], []
        n_total = LABELED_FRAMES + UNLABELED_FRAMES
        labeled = set(rng.choice(n_total, LABELED_FRAMES, replace=False).tolist())
        for f in range(n_total):
            image_id = 10_000_000_000 + (v + 1) * 10_000 + f
            image = {
                "id": image_id,
                "file_name": f"images/val/{name}/{f:06d}.jpg",
                "is_labeled": f in labeled,
            }
            if f in labeled and rng.random() < 0.3:
                polygons = [
                    rng.uniform([0, 0], [IMAGE_W, IMAGE_H], size=(2, 2))
                    for _ in range(rng.integers(1, 4))
                ]
                corners = [
                    np.array([[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]]).round(0)
                    for a, b in polygons
                ]
                image["ignore_regions_x"] = [c[:, 0].tolist() for c in corners]
                image["ignore_regions_y"] = [c[:, 1].tolist() for c in corners]
            images.append(image)
            people = (
                [_person(rng) for _ in range(rng.poisson(PEOPLE_PER_FRAME))] if f in labeled else []
            )
            for track, (kp, head_box) in enumerate(people):
                gt_anns.append(
                    {
                        "image_id": image_id,
                        "track_id": track,
                        "keypoints": kp.reshape(-1).tolist(),
                        "bbox_head": head_box,
                        "scores": [],
                    }
                )
            predicted = [(kp, box[2]) for kp, box in people if rng.random() < 0.9]
            predicted += [(_person(rng)[0], 60.0) for _ in range(rng.integers(0, 3))]
            for track, (kp, head) in enumerate(predicted):
                pred_anns.append(
                    {"image_id": image_id, "track_id": track, **_prediction(rng, kp, head)}
                )
        n_frames += n_total
        for directory, anns in ((gt_dir, gt_anns), (pred_dir, pred_anns)):
            with open(directory / f"{name}.json", "w") as fh:
                json.dump({"images": images, "annotations": anns, "categories": category}, fh)
    return gt_dir, pred_dir, n_frames


# Runs in poseval's interpreter: times its AP path on the GT files sorted by name (vidpose's order).
_POSEVAL_DRIVER = textwrap.dedent(
    """
    import contextlib, glob, io, json, sys, time
    sys.path.insert(0, sys.argv[1])
    _glob = glob.glob
    glob.glob = lambda pattern, *a, **k: sorted(_glob(pattern, *a, **k))
    from poseval import eval_helpers
    from poseval.evaluateAP import evaluateAP
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        gt, pred = eval_helpers.load_data_dir(["", sys.argv[2], sys.argv[3].rstrip("/") + "/"])
        ap, _, _ = evaluateAP(gt, pred, sys.argv[4], False, False)
    seconds = time.perf_counter() - start
    ap = [None if v != v else float(v) for v in ap.flatten()]
    print(json.dumps({"seconds": seconds, "ap": ap}))
    """
)


def _run_poseval(
    python: str, poseval_dir: str, gt_dir: Path, pred_dir: Path, work: Path
) -> dict[str, Any]:
    driver = work / "poseval_driver.py"
    driver.write_text(_POSEVAL_DRIVER)
    proc = subprocess.run(
        [
            python,
            str(driver),
            str(Path(poseval_dir).resolve()),
            str(gt_dir),
            str(pred_dir),
            str(work),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"poseval run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> list[dict]:
    """Generate the set, time ``evaluate_dirs`` (and poseval when given), one row."""
    n_videos = args.videos or (QUICK_VIDEOS if args.quick else FULL_VIDEOS)
    with tempfile.TemporaryDirectory(prefix="vidpose_eval_bench_") as tmp:
        work = Path(tmp)
        gt_dir, pred_dir, n_frames = write_benchmark_set(work, n_videos, args.seed)
        result = evaluate_dirs(gt_dir, pred_dir)
        seconds = time_call(lambda: evaluate_dirs(gt_dir, pred_dir), repeats=3, warmup=0)
        row: dict[str, Any] = {
            "set": "posetrack18-val-like" + (" (quick)" if args.quick else ""),
            "videos": n_videos,
            "frames": n_frames,
            "frames_evaluated": result.n_frames_evaluated,
            "total_ap": result.total,
            "seconds": seconds,
            "poseval_seconds": float("nan"),
            "speedup": float("nan"),
            "max_abs_ap_diff": float("nan"),
        }
        if args.poseval:
            ref = _run_poseval(args.poseval_python, args.poseval, gt_dir, pred_dir, work)
            ours = np.append(result.ap_per_joint, result.total)
            theirs = np.array([np.nan if v is None else v for v in ref["ap"]])
            both = ~(np.isnan(ours) | np.isnan(theirs))
            if (np.isnan(ours) != np.isnan(theirs)).any():
                raise RuntimeError(
                    f"NaN pattern differs from poseval: ours {ours}, poseval {theirs}"
                )
            row["poseval_seconds"] = ref["seconds"]
            row["speedup"] = ref["seconds"] / seconds
            row["max_abs_ap_diff"] = (
                float(np.abs(ours[both] - theirs[both]).max()) if both.any() else 0.0
            )
    return [row]
