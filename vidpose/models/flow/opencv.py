"""OpenCV DIS optical flow: a weight-free CPU estimator for any image size (CPU runs, tests)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from vidpose.models.flow.base import FlowEstimator
from vidpose.registry import FLOWS

__all__ = ["OpenCVDISFlow", "DIS_PRESETS"]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _to_gray_uint8(images: Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, H, W)`` uint8 grayscale (ITU-R 601 luma, as cv2)."""
    rgb = (images.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    rgb = rgb.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in rgb])


@FLOWS.register("opencv_dis")
class OpenCVDISFlow(FlowEstimator):
    """Dense Inverse Search flow (``cv2.DISOpticalFlow``) on CPU grayscale uint8; any size.

    ``preset`` is ``ultrafast | fast | medium``. The result is returned on the input's device.
    Not traceable: an exported graph takes these flows as an input.
    """

    traceable = False

    def __init__(self, preset: str = "fast") -> None:
        super().__init__()
        if preset not in DIS_PRESETS:
            raise ValueError(
                f"flow opencv_dis: unknown preset {preset!r}; expected one of {sorted(DIS_PRESETS)}"
            )
        self.preset = preset
        self.freeze()

    def estimate(self, image1: Tensor, image2: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] twice -> ``(B, 2, H, W)`` float32 on the input's device."""
        first, second = _to_gray_uint8(image1), _to_gray_uint8(image2)
        # A fresh cv2 object per call keeps the module picklable and deep-copyable (cv2 objects
        # are neither); creating one costs microseconds next to the flow itself.
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])
        flows = np.stack([dis.calc(a, b, None) for a, b in zip(first, second, strict=True)])
        return torch.from_numpy(flows).permute(0, 3, 1, 2).to(image1.device)

    def extra_repr(self) -> str:
        return f"preset={self.preset}"
