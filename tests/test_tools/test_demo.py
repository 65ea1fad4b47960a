"""tools/demo.py on the real 5-frame clip (jpg folder and mp4) and on a synthetic video."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidpose.evaluation import posetrack_map as pm
from vidpose.inference.detector import TorchvisionPersonDetector
from vidpose.inference.frames import FolderFrames

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
CLIP = "000001_mpiinew_test"


def _load_demo():
    spec = importlib.util.spec_from_file_location("vidpose_demo_tool", ROOT / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from vidpose.data.synthetic import generate

    return generate(
        "tiny", cache_root=os.environ.get("VIDPOSE_CACHE") or tmp_path_factory.mktemp("cache")
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, synthetic_root):
    """A randomly initialised T=3 baseline_synthetic model saved in the trainer's checkpoint format."""
    from hydra import compose, initialize_config_dir

    from vidpose import __version__
    from vidpose.engine import builders
    from vidpose.engine.checkpoint import save_checkpoint
    from vidpose.registry import to_plain

    tmp = tmp_path_factory.mktemp("ckpt")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                "+exp=baseline_synthetic",
                f"paths.output_dir={tmp / 'run'}",
                f"paths.cache_root={synthetic_root.parent.parent}",
                "data.clip.offsets=[-1,0,1]",
                "codec.flip_test=false",
            ],
        )
    torch.manual_seed(0)
    model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    state = {
        "config": to_plain(cfg),
        "model": model.state_dict(),
        "vidpose_version": __version__,
        "step": 0,
    }
    return save_checkpoint(state, tmp / "random.pt")


def _video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _check_outputs(
    out: Path, name: str, n_frames: int, size_hw: tuple[int, int], n_people: int
) -> pm.VideoAnnotations:
    frames = _video_frames(out / f"{name}.mp4")
    assert len(frames) == n_frames and frames[0].shape[:2] == size_hw
    assert frames[0].std() > 5  # real picture content, not a blank frame
    parsed = pm.read_video_file(out / f"{name}.json", "pred")  # a valid PoseTrack18 prediction file
    assert parsed.file_format == "pt18" and parsed.n_frames == n_frames
    assert len(parsed.people.frame) == n_people and parsed.people.present.all()
    return parsed


def test_real_clip_frames_with_whole_frame_boxes(checkpoint, posetrack18_mini, tmp_path, capsys):
    clip = posetrack18_mini / "videos" / CLIP
    code = demo.main(
        ["--frames", str(clip), "--ckpt", str(checkpoint), "--whole-frame", "--out", str(tmp_path)]
    )
    assert code == 0 and "5 frames, 5 boxes in 1 tracks" in capsys.readouterr().out
    parsed = _check_outputs(tmp_path, CLIP, 5, (720, 1280), 5)
    data = json.loads((tmp_path / f"{CLIP}.json").read_text())
    assert [im["file_name"] for im in data["images"]][:2] == [
        f"{CLIP}/000000.jpg",
        f"{CLIP}/000001.jpg",
    ]
    assert {a["track_id"] for a in data["annotations"]} == {0} and len(
        data["categories"][0]["keypoints"]
    ) == 17
    # the drawn frame differs from the input frame (skeleton and box)
    original = cv2.imread(str(clip / "000000.jpg"))
    drawn = _video_frames(tmp_path / f"{CLIP}.mp4")[0]
    assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 1.0
    assert parsed.people.xy.shape == (5, 15, 2)


def test_real_clip_mp4_with_a_detection_file(checkpoint, posetrack18_mini, tmp_path):
    video = posetrack18_mini / "videos" / CLIP / f"{CLIP}.mp4"
    # two players, each moving 5 px per frame, plus a low-score box the threshold removes
    boxes = []
    for f in range(5):
        boxes.append(
            {"image_id": f, "category_id": 1, "bbox": [400 + 5 * f, 200, 200, 350], "score": 0.9}
        )
        boxes.append(
            {"image_id": f, "category_id": 1, "bbox": [700 + 5 * f, 300, 250, 300], "score": 0.8}
        )
        boxes.append({"image_id": f, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.1})
    detections = tmp_path / "boxes.json"
    detections.write_text(json.dumps(boxes))
    out = tmp_path / "out"
    summary = demo.run_demo(
        demo.parse_args(
            [
                "--video",
                str(video),
                "--ckpt",
                str(checkpoint),
                "--detections",
                str(detections),
                "--out",
                str(out),
                "--show-scores",
            ]
        )
    )
    assert summary == {
        "video": str(out / f"{CLIP}.mp4"),
        "json": str(out / f"{CLIP}.json"),
        "frames": 5,
        "people": 10,
        "tracks": 2,
    }
    _check_outputs(out, CLIP, 5, (720, 1280), 10)
    data = json.loads((out / f"{CLIP}.json").read_text())
    by_track = {}
    for ann in data["annotations"]:
        by_track.setdefault(ann["track_id"], []).append(ann["image_id"])
    assert sorted(by_track) == [0, 1] and all(
        sorted(v) == list(range(5)) for v in by_track.values()
    )


def test_synthetic_video_with_gt_boxes(checkpoint, synthetic_root, tmp_path):
    ann_dir = synthetic_root / "posetrack18" / "annotations" / "train"
    gt_file = min(ann_dir.glob("*.json"))
    gt = json.loads(gt_file.read_text())
    frames = [
        cv2.imread(str(synthetic_root / "posetrack18" / im["file_name"])) for im in gt["images"]
    ]
    h, w = frames[0].shape[:2]
    video = tmp_path / "synthetic.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    frame_of = {im["id"]: f for f, im in enumerate(gt["images"])}
    boxes = [
        {"image_id": frame_of[a["image_id"]], "bbox": a["bbox"], "score": 1.0}
        for a in gt["annotations"]
        if a["bbox"][2] > 0 and a["bbox"][3] > 0
    ]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    summary = demo.run_demo(
        demo.parse_args(
            [
                "--video",
                str(video),
                "--ckpt",
                str(checkpoint),
                "--detections",
                str(tmp_path / "boxes.json"),
                "--out",
                str(out),
                "--fps",
                "5",
            ]
        )
    )
    assert summary["frames"] == len(frames) and summary["people"] == len(boxes)
    # the synthetic people move smoothly: the IoU tracker follows each GT track
    assert summary["tracks"] == len({a["track_id"] for a in gt["annotations"]})
    _check_outputs(out, "synthetic", len(frames), (h, w), len(boxes))
    assert cv2.VideoCapture(str(out / "synthetic.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)
    # every frame predicted with tracked ids: the jitter of the predictions is defined
    from vidpose.evaluation.smoothness import smoothness_from_dirs

    assert smoothness_from_dirs(None, out).jitter_entries > 0


def test_gt_file_makes_the_output_evaluable(checkpoint, synthetic_root, tmp_path):
    # a synthetic val video (every 4th frame labelled) with the set's detector boxes, which use
    # the GT image ids
    root = synthetic_root / "posetrack18"
    gt_file = min((root / "annotations" / "val").glob("*.json"))
    gt = json.loads(gt_file.read_text())
    ids = {im["id"] for im in gt["images"]}
    boxes = [
        b
        for b in json.loads((root / "detections" / "val_boxes.json").read_text())
        if b["image_id"] in ids
    ]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    frames = (root / gt["images"][0]["file_name"]).parent
    out = tmp_path / "out"
    demo.main(
        [
            "--frames",
            str(frames),
            "--ckpt",
            str(checkpoint),
            "--detections",
            str(tmp_path / "boxes.json"),
            "--gt-file",
            str(gt_file),
            "--box-threshold",
            "0",
            "--out",
            str(out),
        ]
    )
    written = json.loads((out / gt_file.name).read_text())
    assert [im["id"] for im in written["images"]] == [im["id"] for im in gt["images"]]
    assert len(written["annotations"]) == len(boxes)
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / gt_file.name).write_text(gt_file.read_text())
    result = pm.evaluate_dirs(tmp_path / "gt", out)
    assert result.counts.pred_people == sum(
        1
        for a in written["annotations"]
        if a["image_id"] in {im["id"] for im in gt["images"] if im["is_labeled"]}
    )
    from vidpose.evaluation.smoothness import smoothness_from_dirs

    # every frame predicted, every 4th annotated: jitter on the others, no acceleration error
    smooth = smoothness_from_dirs(tmp_path / "gt", out)
    assert smooth.jitter_entries > 0 and smooth.accel_entries == 0
    with pytest.raises(ValueError, match="frames are paired by position"):
        demo.main(
            [
                "--frames",
                str(frames),
                "--ckpt",
                str(checkpoint),
                "--whole-frame",
                "--max-frames",
                "3",
                "--gt-file",
                str(gt_file),
                "--out",
                str(out),
            ]
        )


@pytest.mark.slow
def test_detector_weights_from_a_local_file(checkpoint, posetrack18_mini, tmp_path):
    from torchvision.models import detection

    weights = tmp_path / "detector.pt"
    torch.manual_seed(0)
    torch.save(
        detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None
        ).state_dict(),
        weights,
    )
    clip = posetrack18_mini / "videos" / CLIP
    out = tmp_path / "out"
    summary = demo.run_demo(
        demo.parse_args(
            [
                "--frames",
                str(clip),
                "--ckpt",
                str(checkpoint),
                "--detector-weights",
                str(weights),
                "--detector-arch",
                "fasterrcnn_mobilenet_v3_large_320_fpn",
                "--max-frames",
                "2",
                "--out",
                str(out),
            ]
        )
    )
    # an untrained detector finds whatever it finds; the outputs cover both frames regardless
    assert summary["frames"] == 2
    _check_outputs(out, CLIP, 2, (720, 1280), summary["people"])
    wrong = tmp_path / "wrong.pt"
    torch.save({"not": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="do not fit"):
        TorchvisionPersonDetector(wrong, "fasterrcnn_mobilenet_v3_large_320_fpn")


def test_bad_inputs_are_clear_errors(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="none.mp4 does not exist"):
        demo.run_demo(
            demo.parse_args(
                [
                    "--video",
                    str(tmp_path / "none.mp4"),
                    "--ckpt",
                    str(checkpoint),
                    "--whole-frame",
                    "--out",
                    str(tmp_path),
                ]
            )
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        FolderFrames(tmp_path / "empty")
    with pytest.raises(SystemExit):
        demo.parse_args(["--frames", "x", "--ckpt", "c", "--out", "o"])  # no box source
