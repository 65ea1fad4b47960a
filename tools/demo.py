"""Run a vidpose checkpoint on any video: an annotated mp4 and a PoseTrack18-format JSON.

    python tools/demo.py (--video PATH | --frames DIR) --ckpt CKPT
                         (--detections FILE | --detector-weights FILE | --whole-frame) --out OUT_DIR
                         [--gt-file FILE] [--box-threshold 0.5] [--kp-threshold 0.3]
                         [--show-scores] [--fps F] (``-h`` lists the rest)

Person boxes per frame come from a detection file (COCO results format, ``image_id`` = the
0-based frame index, or the GT file's image ids with ``--gt-file``), from a torchvision Faster
R-CNN loaded from a local weights file (never downloaded; ``--detector-arch``), or are the
whole frame. An IoU tracker (:mod:`vidpose.tracking`) gives the boxes of one person the same
track id across frames.
Every box then goes through the evaluation path of ``tools/eval.py``: the model is rebuilt
from the checkpoint's stored config, a clip of T frames around the box's frame is cropped
with the box (:class:`vidpose.data.clip.ClipDataset`, its shared-affine ``ClipTransform``, no
augmentation), heatmaps are predicted (with the config's flip test) and decoded by
:mod:`vidpose.heatmaps` into image pixels (:class:`vidpose.engine.evaluator.Evaluator`).

Writes ``OUT_DIR/<name>.mp4`` (mp4v, the input's size and frame rate; skeletons, per-track
boxes and ids) and ``OUT_DIR/<name>.json`` (PoseTrack18 per-video format: one image per frame,
``file_name`` ``<name>/<frame>.jpg``, image id = frame index, per person ``keypoints``,
``scores``, ``score`` (box score) and ``track_id``) for a PoseTrack-layout model; other layouts
get a plain JSON of the same content. ``--gt-file`` (a PoseTrack per-video GT file of the same
frames) gives the JSON that file's name, image ids and file names, so
``vidpose.evaluation.posetrack_map`` and ``vidpose.evaluation.smoothness`` can score it. A video is decoded into memory (H x W x 3 bytes per frame).
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
import numpy as np
import torch
from omegaconf import OmegaConf

from vidpose.data.detections import load_detections
from vidpose.data.frames import decode_image
from vidpose.data.index import FrameRecord, Instance, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import POSETRACK, KeypointLayout
from vidpose.data.posetrack import read_posetrack_file
from vidpose.engine import builders
from vidpose.engine.checkpoint import load_checkpoint
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluator import Evaluator
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions
from vidpose.registry import load_plugins, to_plain
from vidpose.tracking import IouTracker
from vidpose.viz import draw_skeleton

log = logging.getLogger("vidpose.demo")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DETECTORS = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
)
COCO_PERSON = 1


class VideoFrames:
    """The frames of a video file decoded into memory; ``read`` has the FrameReader interface."""

    def __init__(self, path: str | Path, max_frames: int | None = None) -> None:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise FileNotFoundError(f"cannot open video {path}")
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
        self.frames: list[np.ndarray] = []
        while max_frames is None or len(self.frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            self.frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        capture.release()
        if not self.frames:
            raise ValueError(f"video {path} has no decodable frame")
        self.names = [f"{i:06d}" for i in range(len(self.frames))]

    def read(self, file_name: str, max_downscale: float = 1.0) -> tuple[np.ndarray, int]:
        """RGB frame ``(H, W, 3) uint8`` named by its index, at full size (factor 1)."""
        return self.frames[int(file_name)], 1

    def image(self, i: int) -> np.ndarray:
        """Frame ``i``."""
        return self.frames[i]


class FolderFrames:
    """The image files of a folder, in name order."""

    def __init__(self, folder: str | Path, fps: float, max_frames: int | None = None) -> None:
        self.root = Path(folder)
        if not self.root.is_dir():
            raise FileNotFoundError(f"frame folder {folder} does not exist")
        self.names = sorted(
            p.name for p in self.root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if max_frames is not None:
            self.names = self.names[:max_frames]
        if not self.names:
            raise ValueError(f"frame folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} images")
        self.fps = fps

    def image(self, i: int) -> np.ndarray:
        """Frame ``i`` (RGB)."""
        return decode_image(str(self.root / self.names[i]))


def frame_index(
    name: str,
    source: VideoFrames | FolderFrames,
    layout: KeypointLayout,
    image_ids: Sequence[int] | None = None,
) -> VideoPoseIndex:
    """An unlabelled one-video annotation index; image ids are ``image_ids`` or the frame indices."""
    first = source.image(0)
    frames = [
        FrameRecord(
            image_id=i if image_ids is None else image_ids[i],
            file_name=file_name,
            frame_index=i,
            is_labeled=False,
            width=first.shape[1],
            height=first.shape[0],
        )
        for i, file_name in enumerate(source.names)
    ]
    root = str(source.root) if isinstance(source, FolderFrames) else ""
    return VideoPoseIndex(
        name=name, layout=layout, image_root=root, videos=[VideoRecord(name, frames)]
    )


def whole_frame_boxes(index: VideoPoseIndex) -> dict[int, list[tuple[np.ndarray, float]]]:
    """One box ``[0, 0, W, H]`` per frame, score 1."""
    return {
        f.image_id: [(np.array([0.0, 0.0, f.width, f.height], dtype=np.float32), 1.0)]
        for f in index.videos[0].frames
    }


@torch.no_grad()
def detector_boxes(
    source: VideoFrames | FolderFrames,
    weights: str | Path,
    arch: str = "fasterrcnn_resnet50_fpn",
    threshold: float = 0.5,
    device: str | torch.device = "cpu",
) -> dict[int, list[tuple[np.ndarray, float]]]:
    """Person boxes ``[x, y, w, h]`` with scores ``>= threshold`` per frame from a torchvision
    detector built without weights and loaded from the local file ``weights`` (COCO labels)."""
    from torchvision.models import detection

    if arch not in DETECTORS:
        raise ValueError(f"--detector-arch: expected one of {DETECTORS}, got {arch!r}")
    model = getattr(detection, arch)(weights=None, weights_backbone=None)
    state = torch.load(str(weights), map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"detector weights {weights} do not fit torchvision's {arch}: {err}"
        ) from None
    model.eval().to(device)
    boxes = {}
    for i in range(len(source.names)):
        image = torch.from_numpy(source.image(i)).permute(2, 0, 1).float().div(255.0).to(device)
        found = model([image])[0]
        keep = (found["labels"] == COCO_PERSON) & (found["scores"] >= threshold)
        xyxy = found["boxes"][keep].cpu().numpy().astype(np.float64)
        scores = found["scores"][keep].cpu().numpy()
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float32)
        boxes[i] = [(b, float(s)) for b, s in zip(xywh, scores) if b[2] > 0 and b[3] > 0]
    return boxes


def tracked_instances(
    index: VideoPoseIndex, boxes: dict[int, list[tuple[np.ndarray, float]]], tracker: IouTracker
) -> list[Instance]:
    """One instance per box, frame by frame, with the tracker's ids as track ids."""
    instances = []
    for f, frame in enumerate(index.videos[0].frames):
        found = boxes.get(frame.image_id, [])
        ids = tracker.update(np.array([b for b, _ in found], dtype=np.float64).reshape(-1, 4))
        for (box, score), track in zip(found, ids):
            instances.append(
                Instance(
                    video=0, frame=f, bbox_xywh=box, box_score=float(score), track_id=int(track)
                )
            )
    return instances


def load_model(ckpt: str | Path, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The model of a vidpose checkpoint, rebuilt from its stored config, in eval mode; and the config."""
    state = load_checkpoint(str(ckpt))
    cfg = OmegaConf.create(state["config"])
    load_plugins(to_plain(cfg.get("plugins")) or [])
    model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    model.load_state_dict(state["model"])
    return model.eval().to(device), cfg


def _track_colour(track: int) -> tuple[int, int, int]:
    hue = (track * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[2]), int(bgr[1]), int(bgr[0])


def annotate_frame(
    image: np.ndarray,
    people: Sequence[tuple[Instance, PosePrediction]],
    layout: KeypointLayout,
    kp_threshold: float,
    show_scores: bool,
) -> np.ndarray:
    """The frame with each person's box, track id and skeleton (joints scored above ``kp_threshold``)."""
    out = np.ascontiguousarray(image.copy())
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for inst, pred in people:
        x, y, w, h = (round(float(v)) for v in inst.bbox_xywh)
        colour = _track_colour(inst.track_id)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        cv2.putText(
            out,
            f"id {inst.track_id}",
            (x + 2, y + 14 * thickness),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * thickness,
            colour,
            thickness,
            cv2.LINE_AA,
        )
        out = draw_skeleton(
            out,
            pred.keypoints[:, :2],
            pred.keypoints[:, 2],
            layout,
            threshold=kp_threshold,
            show_scores=show_scores,
        )
    return out


def write_video(
    path: Path, source: VideoFrames | FolderFrames, pictures: Sequence[np.ndarray]
) -> Path:
    """Write RGB frames as an mp4 (mp4v) at the source's frame rate."""
    h, w = pictures[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(source.fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an mp4v video to {path}")
    for picture in pictures:
        writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def gt_images(path: str | Path, n_frames: int) -> tuple[list[int], list[str]]:
    """Image ids and file names of a PoseTrack GT file (PT17 or PT18) with ``n_frames`` frames."""
    video = read_posetrack_file(path)
    if len(video.frames) != n_frames:
        raise ValueError(
            f"--gt-file {path} lists {len(video.frames)} frames but the input has {n_frames}; "
            "frames are paired by position"
        )
    return [f.image_id for f in video.frames], [f.file_name for f in video.frames]


def write_json(
    path: Path,
    index: VideoPoseIndex,
    predictions: Sequence[PosePrediction],
    layout: KeypointLayout,
    file_names: Sequence[str],
) -> Path:
    """PoseTrack18 per-video file ``path`` (through :func:`write_posetrack18_predictions`) for
    the PoseTrack layout; otherwise a plain JSON with the same people."""
    frames = index.videos[0].frames
    images = [{"id": f.image_id, "file_name": name} for f, name in zip(frames, file_names)]
    if layout.joint_names == POSETRACK.joint_names:
        with tempfile.TemporaryDirectory() as skeleton_dir:
            (Path(skeleton_dir) / path.name).write_text(
                json.dumps({"images": images}), encoding="utf-8"
            )
            return write_posetrack18_predictions(predictions, skeleton_dir, path.parent)[0]
    record = {
        "layout": layout.name,
        "joint_names": list(layout.joint_names),
        "images": images,
        "people": [
            {
                "image_id": p.image_id,
                "track_id": p.track_id,
                "keypoints": p.keypoints.tolist(),
                "score": p.box_score,
            }
            for p in predictions
        ],
    }
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Predict every box of every frame and write the annotated video and the JSON; a summary."""
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    model, cfg = load_model(args.ckpt, device)
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    if args.video:
        source = VideoFrames(args.video, args.max_frames)
        name = Path(args.video).stem
    else:
        source = FolderFrames(args.frames, args.fps or 30.0, args.max_frames)
        name = Path(args.frames).resolve().name
    if args.fps:
        source.fps = args.fps
    file_names = [f"{name}/{i:06d}.jpg" for i in range(len(source.names))]
    image_ids = None
    if args.gt_file:
        image_ids, file_names = gt_images(args.gt_file, len(source.names))
        name = Path(args.gt_file).stem
    index = frame_index(name, source, layout, image_ids)
    if args.detections:
        boxes = load_detections(args.detections, index, score_threshold=args.box_threshold)
    elif args.detector_weights:
        boxes = detector_boxes(
            source, args.detector_weights, args.detector_arch, args.box_threshold, device
        )
    else:
        boxes = whole_frame_boxes(index)
    instances = tracked_instances(index, boxes, IouTracker(args.iou_threshold, args.max_age))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions: list[PosePrediction] = []
    if instances:
        dataset = builders.build_dataset(cfg, index, instances, geometry, layout, False)
        if isinstance(source, VideoFrames):
            dataset.frame_reader = source
        evaluator = Evaluator(
            index,
            instances,
            dataset,
            geometry,
            layout,
            "posetrack",
            out_dir,
            DistInfo(device=device),
            batch_size=args.batch_size,
            num_workers=0,
            flip_test=bool(cfg.codec.flip_test),
            refine=str(cfg.codec.refine),
            score=str(cfg.evaluation.score),
            sigma=builders.target_sigma(cfg),
        )
        predictions = evaluator.predict(model)
    by_frame: dict[int, list[tuple[Instance, PosePrediction]]] = {}
    for inst, pred in zip(instances, predictions):
        by_frame.setdefault(inst.frame, []).append((inst, pred))
    pictures = [
        annotate_frame(
            source.image(f), by_frame.get(f, []), layout, args.kp_threshold, args.show_scores
        )
        for f in range(len(source.names))
    ]
    video_path = write_video(out_dir / f"{name}.mp4", source, pictures)
    json_path = write_json(out_dir / f"{name}.json", index, predictions, layout, file_names)
    return {
        "video": str(video_path),
        "json": str(json_path),
        "frames": len(source.names),
        "people": len(instances),
        "tracks": len({inst.track_id for inst in instances}),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The demo's command line (module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video file (anything OpenCV decodes)")
    source.add_argument("--frames", help="a folder of frames (jpg/png, name order)")
    parser.add_argument("--ckpt", required=True, help="a vidpose checkpoint (model and config)")
    boxes = parser.add_mutually_exclusive_group(required=True)
    boxes.add_argument("--detections", help="COCO-results JSON with image_id = 0-based frame index")
    boxes.add_argument(
        "--detector-weights", help="local torchvision Faster R-CNN state dict (COCO classes)"
    )
    boxes.add_argument("--whole-frame", action="store_true", help="one box covering each frame")
    parser.add_argument(
        "--gt-file",
        help="a PoseTrack GT file of this video: its image ids (also those of --detections) and "
        "file names are used and the outputs take its name, so the evaluator can score the JSON",
    )
    parser.add_argument("--detector-arch", choices=DETECTORS, default="fasterrcnn_resnet50_fpn")
    parser.add_argument(
        "--box-threshold", type=float, default=0.5, help="minimum box score (detections, detector)"
    )
    parser.add_argument(
        "--iou-threshold", type=float, default=0.3, help="tracker: minimum IoU to continue a track"
    )
    parser.add_argument(
        "--max-age", type=int, default=1, help="tracker: frames a track survives unmatched"
    )
    parser.add_argument(
        "--kp-threshold", type=float, default=0.3, help="draw joints scored above this"
    )
    parser.add_argument("--show-scores", action="store_true", help="write each drawn joint's score")
    parser.add_argument(
        "--fps", type=float, default=None, help="output frame rate (default: the video's, or 30)"
    )
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out", required=True, help="output directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the demo and print where the outputs are."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    summary = run_demo(args)
    print(
        f"{summary['frames']} frames, {summary['people']} boxes in {summary['tracks']} tracks\n"
        f"  video: {summary['video']}\n  json:  {summary['json']}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
