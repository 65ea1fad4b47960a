"""The input contract an exported graph carries in its ONNX metadata (docs/export.md).

Two metadata entries: ``vidpose.contract``, a JSON description of what the graph expects and
returns (for any runtime, written for people too), and ``vidpose.config``, the checkpoint's
stored configuration, from which :mod:`vidpose.export.runtime` rebuilds the clip construction
and decoding exactly as evaluation does. Coordinates follow vidpose's convention: ``(x, y)``,
0-based pixels, pixel centres at integers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from vidpose import __version__
from vidpose.engine import builders
from vidpose.registry import to_plain

__all__ = ["CONTRACT_KEY", "CONFIG_KEY", "FORMAT", "clip_contract", "refiner_contract", "metadata", "read_metadata"]

CONTRACT_KEY = "vidpose.contract"
CONFIG_KEY = "vidpose.config"
FORMAT = 1

_FRAME_ORDER = (
    "frames[:, t] is the video frame at key + offsets[t] * interval (increasing time, the key frame at "
    "key_index); positions outside the video are clamped to its first/last frame; every frame is cropped "
    "with the key frame's person box enlarged by crop.enlarge and widened to the input's aspect ratio "
    "(one affine for all T frames, bilinear)"
)


def _batch_dim(batch: int | None) -> int | str:
    return "batch" if batch is None else int(batch)


def clip_contract(cfg: DictConfig, model: Any, batch: int | None, opset: int) -> dict[str, Any]:
    """The contract of a clip graph ``frames[, flows] -> heatmaps`` built from a PoseModel and its config."""
    spec, geometry, layout = builders.clip_spec(cfg), builders.build_geometry(cfg), builders.build_layout(cfg)
    b, (h, w) = _batch_dim(batch), geometry.input_hw
    inputs: dict[str, Any] = {
        "frames": {
            "shape": [b, spec.num_frames, 3, h, w],
            "dtype": "float32",
            "meaning": "RGB crops scaled to [0, 1] (uint8 / 255); the graph normalises them (see normalisation)",
        }
    }
    flow = None
    if model.pairs:
        flow = {
            "estimator": str(cfg.flow.name),
            "config": to_plain(cfg.flow),
            "pairs": [list(pair) for pair in model.pairs],
            "in_graph": bool(model.flow.traceable),
        }
        if not flow["in_graph"]:
            inputs["flows"] = {
                "shape": [b, len(model.pairs), 2, h, w],
                "dtype": "float32",
                "meaning": f"flow (u, v) in input pixels from frame a to frame b of each pair {flow['pairs']}, on "
                f"frame a's grid, computed by the {flow['estimator']} estimator on the un-normalised frames",
            }
    return {
        "format": FORMAT,
        "kind": "clip",
        "vidpose_version": __version__,
        "opset": int(opset),
        "batch": batch,
        "inputs": inputs,
        "outputs": {
            "heatmaps": {
                "shape": [b, layout.num_joints, *geometry.heatmap_hw],
                "dtype": "float32",
                "meaning": "the key frame's heatmaps, one per joint in layout.joints order",
            }
        },
        "clip": {
            "num_frames": spec.num_frames,
            "offsets": list(spec.offsets),
            "interval": spec.interval,
            "key_index": spec.key_index,
            "frame_order": _FRAME_ORDER,
        },
        "crop": {"input_hw": [h, w], "enlarge": float(cfg.data.augment.enlarge)},
        "normalisation": {
            "in_graph": True,
            "mean": [float(v) for v in model.mean.flatten()],
            "std": [float(v) for v in model.std.flatten()],
        },
        "heatmap": {
            "heatmap_hw": list(geometry.heatmap_hw),
            "stride": geometry.stride,
            "convention": geometry.convention,
            "refine": str(cfg.codec.refine),
            "sigma": builders.target_sigma(cfg),
            "flip_test": bool(cfg.codec.flip_test),
            "score": str(cfg.evaluation.score),
        },
        "layout": {
            "name": layout.name,
            "joints": list(layout.joint_names),
            "flip_pairs": [list(p) for p in layout.flip_pairs],
        },
        "flow": flow,
    }


def refiner_contract(cfg: DictConfig, refiner: Any, batch: int | None, opset: int) -> dict[str, Any]:
    """The contract of a refiner graph ``poses -> refined`` (a stage-2 model on keypoint windows)."""
    b, layout = _batch_dim(batch), builders.build_layout(cfg)
    shape = [b, refiner.window, refiner.num_joints, refiner.coord_dim]
    normalize = str((cfg.refiner.get("sequences") or {}).get("normalize", "image"))
    return {
        "format": FORMAT,
        "kind": "refiner",
        "vidpose_version": __version__,
        "opset": int(opset),
        "batch": batch,
        "inputs": {"poses": {"shape": shape, "dtype": "float32",
                             "meaning": f"a window of stage-1 poses (x, y), normalised as refiner.sequences.normalize="
                             f"{normalize} (docs/methods/hanet.md)"}},
        "outputs": {"refined": {"shape": shape, "dtype": "float32", "meaning": "the refined window, same coordinates"}},
        "refiner": {"name": str(cfg.refiner.name), "window": refiner.window,
                    "sample_interval": refiner.sample_interval, "normalize": normalize},
        "layout": {"name": layout.name, "joints": list(layout.joint_names)},
    }


def metadata(contract: Mapping[str, Any], cfg: DictConfig) -> dict[str, str]:
    """The ONNX metadata entries: the contract and the stored configuration, as JSON."""
    return {CONTRACT_KEY: json.dumps(contract), CONFIG_KEY: json.dumps(to_plain(cfg))}


def read_metadata(props: Mapping[str, str], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contract and configuration of an exported graph's metadata; ``source`` names it in errors."""
    missing = [key for key in (CONTRACT_KEY, CONFIG_KEY) if key not in props]
    if missing:
        raise ValueError(
            f"{source} has no {' / '.join(missing)} metadata: not a graph tools/export.py wrote (it records the "
            "input contract and the model's configuration there)"
        )
    contract = json.loads(props[CONTRACT_KEY])
    if contract.get("format") != FORMAT:
        raise ValueError(f"{source}: contract format {contract.get('format')!r}; this vidpose reads format {FORMAT}")
    return contract, json.loads(props[CONFIG_KEY])
