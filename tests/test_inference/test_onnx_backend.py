"""tools/export.py on a trained checkpoint, and the inference API running the file with onnxruntime."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from vidpose import __version__
from vidpose.engine import builders
from vidpose.engine.checkpoint import save_checkpoint
from vidpose.inference import VideoPoseEstimator
from vidpose.registry import to_plain

pytest.importorskip("onnx", reason="onnx is not installed: pip install -e '.[export]'")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install -e '.[export]'")

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"vidpose_{name}_tool", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(mtpose_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """The checkpoint exported with a fixed batch of 2 and with a free batch, through tools/export.py."""
    out = tmp_path_factory.mktemp("onnx")
    export = _tool("export")
    assert export.main([str(mtpose_checkpoint), str(out / "fixed.onnx"), "--batch", "2"]) == 0
    assert export.main([str(mtpose_checkpoint), str(out / "dynamic.onnx"), "--dynamic-batch"]) == 0
    return {"fixed": out / "fixed.onnx", "dynamic": out / "dynamic.onnx"}


@pytest.fixture(scope="module")
def val_video(tiny_root):
    """A tiny val video's frame folder and its GT boxes per frame ``(n, 6)`` with track ids."""
    from vidpose.data.posetrack import read_posetrack_file

    video = read_posetrack_file(min((tiny_root / "annotations" / "val").glob("*.json")))
    boxes = [np.array([[*p.bbox_xywh, 1.0, p.track_id] for p in f.people]).reshape(-1, 6) for f in video.frames]
    return tiny_root / Path(video.frames[0].file_name).parent, boxes


@pytest.mark.parametrize("kind,batch_size", [("fixed", 5), ("dynamic", 3)])
def test_onnxruntime_backend_decodes_like_pytorch(mtpose_checkpoint, exported, val_video, kind, batch_size):
    folder, boxes = val_video
    torch_poses = VideoPoseEstimator.from_checkpoint(mtpose_checkpoint, device="cpu")(folder, boxes)
    onnx_poses = VideoPoseEstimator.from_checkpoint(exported[kind], backend="onnxruntime", batch_size=batch_size)(
        folder, boxes
    )
    expected = np.stack([p.keypoints for p in torch_poses.people()])
    got = np.stack([p.keypoints for p in onnx_poses.people()])
    # heatmaps equal to ~1e-6 relative, decoded by the same code (measured: 1e-5 px)
    np.testing.assert_allclose(got[..., :2], expected[..., :2], rtol=0, atol=1e-4)
    np.testing.assert_allclose(got[..., 2], expected[..., 2], rtol=1e-4, atol=1e-7)
    assert [p.track_id for p in onnx_poses.people()] == [p.track_id for p in torch_poses.people()]


def test_demo_runs_the_exported_file(exported, val_video, tmp_path, capsys):
    folder, _ = val_video
    demo = _tool("demo")
    args = ["--frames", str(folder), "--ckpt", str(exported["dynamic"]), "--backend", "onnxruntime",
            "--whole-frame", "--max-frames", "3", "--out", str(tmp_path)]
    assert demo.main(args) == 0
    assert "3 frames, 3 boxes in 1 tracks" in capsys.readouterr().out
    assert (tmp_path / f"{folder.name}.mp4").is_file() and (tmp_path / f"{folder.name}.json").is_file()


def test_files_the_onnxruntime_backend_cannot_run_are_clear_errors(mtpose_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"\.pt: onnxruntime cannot load it as an ONNX model"):
        VideoPoseEstimator.from_checkpoint(mtpose_checkpoint, backend="onnxruntime")
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(2, 2).eval(), (torch.zeros(1, 2),), str(plain), dynamo=True, external_data=False)
    with pytest.raises(ValueError, match=r"plain\.onnx has no vidpose\.contract / vidpose\.config metadata"):
        VideoPoseEstimator.from_checkpoint(plain, backend="onnxruntime")


def test_a_refiner_checkpoint_exports_its_own_graph_which_the_api_refuses(tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+exp=hanet_synthetic", f"paths.output_dir={tmp_path}"])
    refiner = builders.build_refiner(cfg, builders.build_layout(cfg))
    ckpt = save_checkpoint({"config": to_plain(cfg), "model": refiner.state_dict(), "vidpose_version": __version__},
                           tmp_path / "hanet.pt")
    from vidpose.export.onnx_export import export_checkpoint

    result = export_checkpoint(ckpt, tmp_path / "hanet.onnx")
    assert result.contract["kind"] == "refiner" and result.max_abs_diff <= 1e-4 * result.max_abs_output
    assert result.contract["inputs"]["poses"]["shape"] == [1, refiner.window, refiner.num_joints, 2]
    with pytest.raises(ValueError, match=r"hanet\.onnx is an exported refiner graph; the inference API runs clip"):
        VideoPoseEstimator.from_checkpoint(tmp_path / "hanet.onnx", backend="onnxruntime")
