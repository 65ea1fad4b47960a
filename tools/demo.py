"""Run a vidpose model on any video: an annotated mp4 and a PoseTrack18-format JSON.

    python tools/demo.py (--video PATH | --frames DIR) --ckpt CKPT
                         (--detections FILE | --detector-weights FILE | --whole-frame) --out OUT_DIR
                         [--backend torch|onnxruntime] [--gt-file FILE] [--box-threshold 0.5]
                         [--kp-threshold 0.3] [--show-scores] [--fps F] (``-h`` lists the rest)

A thin shell over :class:`vidpose.inference.VideoPoseEstimator`, which predicts every person
box through the evaluation path of ``tools/eval.py`` (clips of T frames cropped with the box,
the config's flip test and decoding) and gives boxes without ids track ids by IoU. Person
boxes per frame come from a detection file (COCO results format, ``image_id`` = the 0-based
frame index, or the GT file's image ids with ``--gt-file``), from a torchvision Faster R-CNN
loaded from a local weights file (never downloaded; ``--detector-arch``), or are the whole
frame. ``--ckpt`` is a training checkpoint, or with ``--backend onnxruntime`` a file
``tools/export.py`` wrote.

Writes ``OUT_DIR/<name>.mp4`` (mp4v, the input's size and frame rate; skeletons, per-track
boxes and ids) and ``OUT_DIR/<name>.json`` (PoseTrack18 per-video format: one image per frame,
``file_name`` ``<name>/<frame>.jpg``, image id = frame index, per person ``keypoints``,
``scores``, ``score`` (box score) and ``track_id``) for a PoseTrack-layout model; other layouts
get a plain JSON of the same content. ``--gt-file`` (a PoseTrack per-video GT file of the same
frames) gives the JSON that file's name, image ids and file names, so
``vidpose.evaluation.posetrack_map`` and ``vidpose.evaluation.smoothness`` can score it. A
video is decoded into memory (H x W x 3 bytes per frame).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from vidpose.data.keypoints import POSETRACK
from vidpose.data.posetrack import read_posetrack_file
from vidpose.evaluation.writers import write_posetrack18_predictions
from vidpose.inference import VideoPoseEstimator, VideoPoses
from vidpose.inference.detector import DETECTORS, TorchvisionPersonDetector
from vidpose.inference.estimator import BACKENDS, resolve_device
from vidpose.inference.frames import ArrayFrames, FolderFrames, open_frames
from vidpose.inference.render import draw_people

DEFAULT_FPS = 30.0


def gt_images(path: str | Path, n_frames: int) -> tuple[list[int], list[str]]:
    """Image ids and file names of a PoseTrack GT file (PT17 or PT18) with ``n_frames`` frames."""
    video = read_posetrack_file(path)
    if len(video.frames) != n_frames:
        raise ValueError(
            f"--gt-file {path} lists {len(video.frames)} frames but the input has {n_frames}; "
            "frames are paired by position"
        )
    return [f.image_id for f in video.frames], [f.file_name for f in video.frames]


def write_video(path: Path, source: ArrayFrames | FolderFrames, poses: VideoPoses, args: argparse.Namespace) -> Path:
    """The frames with every person drawn, as an mp4 (mp4v) at ``--fps`` or the video's rate."""
    fps = args.fps or poses.fps or DEFAULT_FPS
    writer = None
    for i, people in enumerate(poses):
        picture = draw_people(source.image(i), people, poses.layout, args.kp_threshold, args.show_scores)
        if writer is None:
            size = (picture.shape[1], picture.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
            if not writer.isOpened():
                raise OSError(f"OpenCV cannot write an mp4v video to {path}")
        writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_json(path: Path, poses: VideoPoses, file_names: Sequence[str]) -> Path:
    """PoseTrack18 per-video file ``path`` for the PoseTrack layout, else a plain JSON of the same people."""
    images = [{"id": image_id, "file_name": name} for image_id, name in zip(poses.image_ids, file_names)]
    if poses.layout.joint_names == POSETRACK.joint_names:
        with tempfile.TemporaryDirectory() as skeleton_dir:
            (Path(skeleton_dir) / path.name).write_text(json.dumps({"images": images}), encoding="utf-8")
            return write_posetrack18_predictions(poses.predictions(), skeleton_dir, path.parent)[0]
    record = {
        "layout": poses.layout.name,
        "joint_names": list(poses.layout.joint_names),
        "images": images,
        "people": [
            {"image_id": p.image_id, "track_id": p.track_id, "keypoints": p.keypoints.tolist(), "score": p.box_score}
            for p in poses.people()
        ],
    }
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Predict every box of every frame and write the annotated video and the JSON; a summary."""
    device = resolve_device(args.device)
    estimator = VideoPoseEstimator.from_checkpoint(args.ckpt, device=device, backend=args.backend,
                                                   batch_size=args.batch_size)
    source = open_frames(args.video or args.frames, fps=args.fps, max_frames=args.max_frames)
    name = source.name
    file_names = [f"{name}/{i:06d}.jpg" for i in range(len(source))]
    image_ids = None
    if args.gt_file:
        image_ids, file_names = gt_images(args.gt_file, len(source))
        name = Path(args.gt_file).stem
    boxes: Any = None
    if args.detections:
        boxes = args.detections
    elif args.detector_weights:
        boxes = TorchvisionPersonDetector(args.detector_weights, args.detector_arch, args.box_threshold, device)
    poses = estimator(source, boxes, image_ids=image_ids, box_threshold=args.box_threshold,
                      iou_threshold=args.iou_threshold, max_age=args.max_age)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "video": str(write_video(out_dir / f"{name}.mp4", source, poses, args)),
        "json": str(write_json(out_dir / f"{name}.json", poses, file_names)),
        "frames": len(poses),
        "people": len(poses.people()),
        "tracks": len(poses.track_ids()),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video file (anything OpenCV decodes)")
    source.add_argument("--frames", help="a folder of frames (jpg/png, name order)")
    parser.add_argument(
        "--ckpt", required=True, help="a vidpose checkpoint, or an exported .onnx with --backend onnxruntime"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--detections", help="COCO-results JSON with image_id = 0-based frame index")
    boxes.add_argument("--detector-weights", help="local torchvision Faster R-CNN state dict (COCO classes)")
    boxes.add_argument("--whole-frame", action="store_true", help="one box covering each frame")
    parser.add_argument(
        "--gt-file",
        help="a PoseTrack GT file of this video: its image ids (also those of --detections) and "
        "file names are used and the outputs take its name, so the evaluator can score the JSON",
    )
    parser.add_argument("--detector-arch", choices=DETECTORS, default="fasterrcnn_resnet50_fpn")
    parser.add_argument("--box-threshold", type=float, default=0.5, help="minimum box score (detections, detector)")
    parser.add_argument("--iou-threshold", type=float, default=0.3, help="tracker: minimum IoU to continue a track")
    parser.add_argument("--max-age", type=int, default=1, help="tracker: frames a track survives unmatched")
    parser.add_argument("--kp-threshold", type=float, default=0.3, help="draw joints scored above this")
    parser.add_argument("--show-scores", action="store_true", help="write each drawn joint's score")
    parser.add_argument(
        "--fps", type=float, default=None, help=f"output frame rate (default: the video's, or {DEFAULT_FPS:g})"
    )
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", required=True, help="output directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the demo and print where the outputs are."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = run_demo(parse_args(argv))
    print(
        f"{summary['frames']} frames, {summary['people']} boxes in {summary['tracks']} tracks\n"
        f"  video: {summary['video']}\n  json:  {summary['json']}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
