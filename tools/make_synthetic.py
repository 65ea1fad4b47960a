"""Generate (or reuse) the synthetic video pose data set and print where it is.

    python tools/make_synthetic.py --preset tiny|default [--cache-root DIR] [--seed N] [--force]
                                   [--preview sheet.png]

The data set lands in ``<cache-root>/synthetic/<preset>-<hash>/`` (default cache root:
``$VIDPOSE_CACHE``, else ``~/.cache/vidpose``). ``--preview`` writes a contact sheet of a few
consecutive frames of some videos with the ground-truth skeletons drawn from the written
PoseTrack18 files (left limbs green, right limbs red, other joints yellow).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vidpose.data.keypoints import POSETRACK
from vidpose.data.synthetic import (
    PRESETS,
    default_cache_root,
    detections_path,
    generate,
    load_manifest,
)

_LEFT, _RIGHT, _CENTRE = (60, 220, 60), (60, 60, 230), (40, 220, 230)  # BGR


def _joint_colour(name: str) -> tuple[int, int, int]:
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _CENTRE


def draw_skeletons(image: np.ndarray, annotations: list[dict]) -> np.ndarray:
    """Draw PT18 annotations (17x3 keypoints, bbox) onto a copy of an (H, W, 3) BGR image."""
    out = image.copy()
    names = POSETRACK.joint_names
    for ann in annotations:
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        cv2.rectangle(out, (int(x), int(y)), (int(x + w), int(y + h)), (200, 200, 200), 1)
        for a, b in POSETRACK.skeleton:
            if kps[a, 2] > 0 and kps[b, 2] > 0:
                colour = _joint_colour(names[b]) if names[b] != names[a] else _CENTRE
                cv2.line(
                    out,
                    tuple(np.round(kps[a, :2]).astype(int)),
                    tuple(np.round(kps[b, :2]).astype(int)),
                    colour,
                    1,
                    cv2.LINE_AA,
                )
        for k, (jx, jy, v) in enumerate(kps):
            if v > 0:
                cv2.circle(
                    out,
                    (int(round(jx)), int(round(jy))),
                    2,
                    _joint_colour(names[k]),
                    -1,
                    cv2.LINE_AA,
                )
    return out


def write_preview(
    root: Path, out: Path, split: str = "train", videos: int = 3, frames: int = 4
) -> Path:
    """Contact sheet: ``videos`` rows of ``frames`` consecutive frames with GT skeletons -> PNG."""
    ann_dir = root / "posetrack18" / "annotations" / split
    files = sorted(ann_dir.glob("*.json"))[:videos]
    if not files:
        raise FileNotFoundError(f"{ann_dir}: no annotation files to preview")
    rows = []
    for path in files:
        data = json.loads(path.read_text())
        labeled = [im for im in data["images"] if im["is_labeled"]]
        start = max(0, len(labeled) // 2 - frames // 2)
        tiles = []
        for im in labeled[start : start + frames]:
            image = cv2.imread(str(root / "posetrack18" / im["file_name"]))
            people = [a for a in data["annotations"] if a["image_id"] == im["id"]]
            tile = draw_skeletons(image, people)
            cv2.putText(
                tile,
                f"{path.stem[:6]} f{im['file_name'][-10:-4]}",
                (3, 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            tiles.append(tile)
        while len(tiles) < frames:
            tiles.append(np.zeros_like(tiles[0]))
        rows.append(np.concatenate(tiles, axis=1))
    sheet = np.concatenate(rows, axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the data set, print its root and counts."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument(
        "--cache-root", default=None, help=f"cache folder (default: {default_cache_root()})"
    )
    parser.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    parser.add_argument(
        "--force", action="store_true", help="regenerate even if a cached copy exists"
    )
    parser.add_argument("--preview", type=Path, default=None, help="write a contact sheet PNG here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    root = generate(args.preset, args.cache_root, seed=args.seed, force=args.force)
    elapsed = time.perf_counter() - start
    manifest = load_manifest(root)
    print(f"root: {root}")
    print(f"time: {elapsed:.1f} s")
    print(f"posetrack18: {root / 'posetrack18'}")
    print(f"val detections: {detections_path(root)}")
    print(f"jhmdb: {root / 'jhmdb'}")
    for key, value in manifest["stats"].items():
        print(f"  {key}: {value}")
    if args.preview is not None:
        print(f"preview: {write_preview(root, args.preview)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
