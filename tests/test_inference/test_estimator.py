"""VideoPoseEstimator: predictions equal tools/eval.py's, every input form agrees, bad inputs are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose import __version__
from vidpose.engine import builders
from vidpose.engine.checkpoint import load_checkpoint, save_checkpoint
from vidpose.inference import VideoPoseEstimator, VideoPoses
from vidpose.registry import to_plain

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def estimator(mtpose_checkpoint) -> VideoPoseEstimator:
    return VideoPoseEstimator.from_checkpoint(mtpose_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def val_videos(tiny_root):
    """Per val video: its frame folder, image ids and GT boxes per frame ``(n, 6)`` with track ids."""
    from vidpose.data.posetrack import read_posetrack_file

    videos = []
    for gt_file in sorted((tiny_root / "annotations" / "val").glob("*.json")):
        video = read_posetrack_file(gt_file)
        folder = tiny_root / Path(video.frames[0].file_name).parent
        assert [f.file_name for f in video.frames] == [str(Path(folder.relative_to(tiny_root)) / p.name)
                                                       for p in sorted(folder.iterdir())]
        boxes = [np.array([[*p.bbox_xywh, 1.0, p.track_id] for p in f.people]).reshape(-1, 6) for f in video.frames]
        videos.append((folder, [f.image_id for f in video.frames], boxes))
    return videos


def _keypoints(poses: VideoPoses) -> np.ndarray:
    return np.stack([p.keypoints for p in poses.people()])


def test_predictions_equal_tools_eval_on_the_synthetic_val_set(mtpose_checkpoint, estimator, val_videos,
                                                               inference_cache, tmp_path):
    from vidpose.engine.trainer import evaluate

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[f"ckpt={mtpose_checkpoint}", f"paths.output_dir={tmp_path}",
                                                     f"paths.cache_root={inference_cache}", "trainer.device=cpu"])
    metrics = evaluate(cfg)  # what tools/eval.py runs
    written = {}
    for path in Path(metrics["predictions_dir"]).glob("*.json"):
        for ann in json.loads(path.read_text())["annotations"]:
            written[(ann["image_id"], ann["track_id"])] = np.reshape(ann["keypoints"], (-1, 3))
    compared = 0
    for folder, image_ids, boxes in val_videos:
        poses = estimator(folder, boxes, image_ids=image_ids)
        for person in poses.people():
            expected = written.pop((person.image_id, person.track_id))
            np.testing.assert_array_equal(person.keypoints, expected)
            compared += 1
    assert compared == metrics["n_predictions"] and not written


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope="module")
def one_video(val_videos, tmp_path_factory):
    """A val video as an mp4, the mp4's decoded frames as an array and as a PNG folder, and its GT boxes."""
    from vidpose.data.frames import decode_image

    folder, _, boxes = val_videos[0]
    tmp = tmp_path_factory.mktemp("one_video")
    video = tmp / "clip.mp4"
    _write_video(video, [decode_image(str(p)) for p in sorted(folder.iterdir())])
    capture, decoded = cv2.VideoCapture(str(video)), []
    while (read := capture.read())[0]:
        decoded.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    (tmp / "png").mkdir()
    for i, frame in enumerate(decoded):
        cv2.imwrite(str(tmp / "png" / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return video, np.stack(decoded), tmp / "png", boxes


def test_video_path_frame_folder_and_arrays_agree(estimator, one_video):
    video, array, png_folder, boxes = one_video
    results = [estimator(frames, boxes) for frames in (video, png_folder, array, list(array))]
    for other in results[1:]:
        np.testing.assert_array_equal(_keypoints(other), _keypoints(results[0]))
    assert results[0].fps == pytest.approx(10.0) and results[0].name == "clip"
    assert len(results[0]) == len(array) and len(results[0].people()) == sum(len(b) for b in boxes)


def test_box_forms_agree_and_the_tracker_follows_the_people(estimator, one_video, tmp_path):
    _, array, _, boxes = one_video
    given = estimator(array, boxes)
    mapping = estimator(array, {f: b for f, b in enumerate(boxes) if len(b)})
    np.testing.assert_array_equal(_keypoints(mapping), _keypoints(given))
    # no track ids: the IoU tracker assigns one per synthetic person (they move smoothly; only every
    # 4th val frame has boxes, so a track must survive 3 frames without one)
    tracked = estimator(array, [b[:, :5] for b in boxes], max_age=3)
    np.testing.assert_array_equal(_keypoints(tracked), _keypoints(given))
    pairs = {(p.track_id, q.track_id) for p, q in zip(given.people(), tracked.people())}
    assert len(pairs) == len(given.track_ids()) == len(tracked.track_ids())
    # a detector callable and a COCO-results detection file give the same boxes
    detector_calls = []

    def detector(image: np.ndarray) -> np.ndarray:
        detector_calls.append(image.shape)
        return next(b[:, :5] for frame, b in zip(array, boxes) if np.array_equal(frame, image))

    detected = estimator(array, detector)
    np.testing.assert_array_equal(_keypoints(detected), _keypoints(given))
    assert len(detector_calls) == len(array)
    detections = [{"image_id": f, "bbox": row[:4].tolist(), "score": 1.0} for f, b in enumerate(boxes) for row in b]
    (tmp_path / "boxes.json").write_text(json.dumps(detections))
    from_file = estimator(array, tmp_path / "boxes.json")
    np.testing.assert_array_equal(_keypoints(from_file), _keypoints(given))
    # without boxes: the whole frame, one track
    whole = estimator(array[:3])
    assert [len(frame) for frame in whole] == [1, 1, 1] and whole.track_ids() == [0]
    np.testing.assert_array_equal(whole[0][0].box_xywh, [0, 0, array.shape[2], array.shape[1]])


def test_bad_frames_are_clear_errors(estimator, tmp_path):
    no_frame = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(no_frame), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120)).release()
    (tmp_path / "zero.mp4").touch()  # a file with no byte
    for path in (no_frame, tmp_path / "zero.mp4"):
        with pytest.raises(ValueError, match=rf"video \S+{path.name} has no decodable frame"):
            estimator(path)
    with pytest.raises(FileNotFoundError, match="missing.mp4 does not exist"):
        estimator(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match=r"frames: no frames"):
        estimator(np.zeros((0, 120, 160, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frames\[1\]: expected an RGB frame \(H, W, 3\) uint8, got shape \(120,"):
        estimator([np.zeros((120, 160, 3), np.uint8), np.zeros((120, 160), np.uint8)])
    (tmp_path / "no_images").mkdir()
    with pytest.raises(ValueError, match="no_images holds no"):
        estimator(tmp_path / "no_images")


def test_bad_boxes_are_clear_errors(estimator, tmp_path):
    frames = np.zeros((4, 120, 160, 3), np.uint8)
    box = [10.0, 10.0, 50.0, 80.0]
    with pytest.raises(ValueError, match=r"boxes: frame 4 does not exist \(the input has 4 frames, 0\.\.3\)"):
        estimator(frames, {0: [box], 4: [box]})
    with pytest.raises(ValueError, match=r"boxes: 5 entries for 4 frames; frames 4\.\.4 do not exist"):
        estimator(frames, [[box]] * 5)
    detections = tmp_path / "boxes.json"
    detections.write_text(json.dumps([{"image_id": 7, "bbox": box, "score": 1.0}]))
    with pytest.raises(ValueError, match=r"boxes\.json: 1 of 1 boxes have image ids that index .* does not contain"):
        estimator(frames, detections)
    with pytest.raises(ValueError, match=r"boxes\[2\]\[0\]: a box needs .* positive width and height"):
        estimator(frames, [[box], [], [[0, 0, 0, 10]], []])
    with pytest.raises(ValueError, match=r"boxes\[1\]: expected \(n, 4\) \[x, y, w, h\]"):
        estimator(frames, [[box], [[1, 2, 3]], [], []])
    with pytest.raises(ValueError, match=r"track ids \(e\.g\. in frame 0\) and some do not \(e\.g\. in frame 1\)"):
        estimator(frames, [[[*box, 1.0, 3]], [box], [], []])


def _save(cfg, model_state: dict, path: Path) -> Path:
    return save_checkpoint({"config": to_plain(cfg), "model": model_state, "vidpose_version": __version__}, path)


def test_checkpoints_of_another_layout_are_clear_errors(mtpose_checkpoint, tmp_path, inference_cache):
    with pytest.raises(ValueError, match=r"plain\.pt is not a vidpose checkpoint"):
        torch.save({"backbone.weight": torch.zeros(1)}, tmp_path / "plain.pt")
        VideoPoseEstimator.from_checkpoint(tmp_path / "plain.pt")
    # the weights of one model under the config of another
    state = load_checkpoint(mtpose_checkpoint)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        baseline = compose(config_name="train", overrides=["+exp=baseline_synthetic", f"paths.output_dir={tmp_path}"])
        refiner = compose(config_name="train", overrides=["+exp=hanet_synthetic", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ValueError, match=r"other\.pt: its weights do not fit the PoseModel its stored config builds"):
        VideoPoseEstimator.from_checkpoint(_save(baseline, state["model"], tmp_path / "other.pt"))
    hanet = builders.build_refiner(refiner, builders.build_layout(refiner))
    with pytest.raises(ValueError, match=r"refiner\.pt is a hanet refiner \(task=refine\)"):
        VideoPoseEstimator.from_checkpoint(_save(refiner, hanet.state_dict(), tmp_path / "refiner.pt"))
    with pytest.raises(ValueError, match="backend: expected one of"):
        VideoPoseEstimator.from_checkpoint(mtpose_checkpoint, backend="tensorrt")
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model\.onnx is an exported ONNX model: run it with backend='onnxruntime'"):
        VideoPoseEstimator.from_checkpoint(tmp_path / "model.onnx")
