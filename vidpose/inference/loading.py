"""A trained model and its configuration from a vidpose checkpoint, with errors that name the file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vidpose.engine import builders
from vidpose.engine.checkpoint import is_vidpose_checkpoint, load_checkpoint
from vidpose.registry import load_plugins, to_plain

__all__ = ["read_checkpoint", "load_state_strictly", "load_pose_model"]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], DictConfig]:
    """The state and stored config of a checkpoint ``tools/train.py`` wrote (plugins imported)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is an exported ONNX model: run it with backend='onnxruntime'")
    if not is_vidpose_checkpoint(path):
        raise ValueError(
            f"{path} is not a vidpose checkpoint (no vidpose header): expected a file tools/train.py wrote "
            "(<run>/checkpoints/*.pt). Official ViTPose / HRNet weights start a run with init_from=<file>"
        )
    state = load_checkpoint(path)
    missing = [key for key in ("config", "model") if key not in state]
    if missing:
        raise ValueError(
            f"checkpoint {path} has no {' or '.join(missing)}: expected a training checkpoint, which stores the "
            "resolved config the model is rebuilt from and the model's weights"
        )
    cfg = OmegaConf.create(state["config"])
    load_plugins(to_plain(cfg.get("plugins")) or [])
    return state, cfg


def load_state_strictly(module: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Load ``weights`` into ``module``; a mismatch names the file and the first differing keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    reshaped = sorted(
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and weights[k].shape != v.shape
    )
    if missing or unexpected or reshaped:
        raise ValueError(
            f"checkpoint {path}: its weights do not fit the {type(module).__name__} its stored config builds "
            f"({len(missing)} missing, e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]}; "
            f"{len(reshaped)} of another shape (file vs model), e.g. {reshaped[:3]}). The file was written by "
            "another model layout or edited; expected the checkpoint of the run whose config it stores"
        )
    module.load_state_dict(weights)


def load_pose_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, DictConfig]:
    """The clip model of a checkpoint, rebuilt from its stored config, in eval mode on ``device``; and the config."""
    state, cfg = read_checkpoint(path)
    if str(cfg.get("task", "pose")) != "pose":
        raise ValueError(
            f"checkpoint {path} is a {cfg.refiner.name} refiner (task={cfg.task}): it refines keypoint sequences, "
            "not frames. Run the stage-1 model's checkpoint on frames; tools/export.py exports a refiner on its own"
        )
    model = builders.build_model(cfg, builders.build_layout(cfg), builders.build_geometry(cfg))
    load_state_strictly(model, state["model"], path)
    return model.eval().to(device), cfg
