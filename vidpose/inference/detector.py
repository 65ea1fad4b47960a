"""A torchvision Faster R-CNN person detector loaded from a local weights file (never downloaded).

An instance is a detector for :func:`vidpose.inference.boxes.frame_boxes`: called on an RGB
frame ``(H, W, 3) uint8``, it returns the person boxes ``(n, 5)`` ``[x, y, w, h, score]`` in
image pixels scored at least ``threshold`` (COCO label 1).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from vidpose.weights_only import load_weights_only

__all__ = ["DETECTORS", "TorchvisionPersonDetector"]

DETECTORS = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
)
COCO_PERSON = 1


class TorchvisionPersonDetector:
    """torchvision's ``arch`` built without weights, loaded from the state dict at ``weights``."""

    def __init__(
        self, weights: str | os.PathLike, arch: str = "fasterrcnn_resnet50_fpn", threshold: float = 0.5,
        device: str | torch.device = "cpu",
    ) -> None:
        from torchvision.models import detection

        if arch not in DETECTORS:
            raise ValueError(f"detector arch: expected one of {DETECTORS}, got {arch!r}")
        model = getattr(detection, arch)(weights=None, weights_backbone=None)
        try:
            model.load_state_dict(load_weights_only(weights))
        except RuntimeError as err:
            raise ValueError(f"detector weights {weights} do not fit torchvision's {arch}: {err}") from None
        self.model, self.threshold, self.device = model.eval().to(device), float(threshold), torch.device(device)

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Person boxes ``(n, 5)`` ``[x, y, w, h, score]`` of an RGB frame ``(H, W, 3) uint8``."""
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0).to(self.device)
        found = self.model([tensor])[0]
        keep = (found["labels"] == COCO_PERSON) & (found["scores"] >= self.threshold)
        xyxy = found["boxes"][keep].cpu().numpy().astype(np.float64)
        scores = found["scores"][keep].cpu().numpy().astype(np.float64)
        return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2], scores[:, None]], axis=1)
