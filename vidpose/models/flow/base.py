"""Contract of a frozen optical-flow estimator, and flow resampling to a coarser grid.

Every estimator takes two float RGB images in ``[0, 1]`` ``(B, 3, H, W)`` (not
ImageNet-normalised; each estimator converts to what it needs) and returns the flow
``(B, 2, H, W)`` on the grid of ``image1``: channels ``(u, v)`` = ``(x, y)`` displacement in
input pixels, so the point at ``p`` in ``image1`` moves to ``p + flow(p)`` in ``image2``.
Estimators are always frozen: no parameter requires grad, the module stays in eval mode
whatever ``train()`` is called with, and the computation runs without autograd.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FlowEstimator", "pair_flows", "resample_flow", "check_image_pair", "check_unit_range"]


def check_image_pair(image1: Tensor, image2: Tensor) -> None:
    """Raise unless both images are float ``(B, 3, H, W)`` of one shape on one device."""
    for name, image in (("image1", image1), ("image2", image2)):
        if not isinstance(image, Tensor):
            raise TypeError(f"flow: {name} must be a torch.Tensor, got {type(image).__name__}")
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(
                f"flow: {name} must be (B, 3, H, W) RGB, got shape {tuple(image.shape)}"
            )
        if not image.is_floating_point():
            raise TypeError(
                f"flow: {name} must be a float tensor with values in [0, 1], got {image.dtype}"
            )
    if image1.shape != image2.shape:
        raise ValueError(
            f"flow: image1 {tuple(image1.shape)} and image2 {tuple(image2.shape)} differ in shape"
        )
    if image1.device != image2.device:
        raise ValueError(f"flow: image1 is on {image1.device} but image2 is on {image2.device}")


_RANGE_TOLERANCE = 1e-3


def check_unit_range(image1: Tensor, image2: Tensor) -> None:
    """Raise unless both images lie in [0, 1] (catches ImageNet-normalised, 0-255 or NaN)."""
    low = float(torch.minimum(image1.amin(), image2.amin()))
    high = float(torch.maximum(image1.amax(), image2.amax()))
    if not (low >= -_RANGE_TOLERANCE and high <= 1.0 + _RANGE_TOLERANCE):  # NaN fails too
        raise ValueError(
            f"flow: images must be RGB in [0, 1] (not ImageNet-normalised, not 0-255); "
            f"got values in [{low:.3f}, {high:.3f}]"
        )


class FlowEstimator(nn.Module, ABC):
    """Frozen flow estimator: two ``(B, 3, H, W)`` images in [0, 1] -> flow ``(B, 2, H, W)``.

    Subclasses implement :meth:`estimate` and call :meth:`freeze` at the end of ``__init__``.
    ``traceable`` says whether :meth:`estimate` is torch operations only, so that an exported
    graph (``tools/export.py``) can hold it; an estimator that calls out of torch sets it False
    and its flows become an input of the exported graph.
    """

    traceable: bool = True

    def freeze(self) -> None:
        """Stop every parameter from requiring grad and switch to eval mode."""
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FlowEstimator:
        """Stay in eval mode: a frozen estimator never switches normalisation layers to training."""
        return super().train(False)

    @abstractmethod
    def estimate(self, image1: Tensor, image2: Tensor) -> Tensor:
        """Flow ``(B, 2, H, W)`` from ``image1`` to ``image2`` (``(B, 3, H, W)`` in [0, 1])."""

    def forward(self, image1: Tensor, image2: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB in [0, 1] twice -> float32 flow ``(B, 2, H, W)`` in pixels."""
        check_image_pair(image1, image2)
        check_unit_range(image1, image2)
        # inference_mode skips autograd's version counters and views tracking, which no_grad
        # still pays; the result is cloned outside it because the flow feeds trainable layers,
        # and an inference tensor cannot be saved for their backward pass (the clone of a
        # (B, 2, H, W) flow costs nothing next to the estimator). Autocast is off because flow
        # precision matters more than the speed-up and RAFT is not validated in bf16.
        with torch.inference_mode(), torch.autocast(device_type=image1.device.type, enabled=False):
            flow = self.estimate(image1.float(), image2.float())
        flow = flow.clone()
        expected = (image1.shape[0], 2, *image1.shape[-2:])
        if tuple(flow.shape) != expected:
            raise RuntimeError(
                f"{type(self).__name__} returned flow {tuple(flow.shape)}, expected {expected}"
            )
        return flow


def pair_flows(
    estimate: Callable[[Tensor, Tensor], Tensor], frames: Tensor, pairs: Sequence[tuple[int, int]]
) -> Tensor:
    """Flows ``(B, P, 2, H, W)`` of the frame pairs ``(a, b)`` of a clip ``(B, T, 3, H, W)`` in [0, 1]."""
    return torch.stack([estimate(frames[:, a].float(), frames[:, b].float()) for a, b in pairs], dim=1)


def resample_flow(flow: Tensor, size_hw: Sequence[int]) -> Tensor:
    """Flow ``(B, 2, H, W)`` in fine pixels -> ``(B, 2, h, w)`` in pixels of a coarser grid.

    Each coarse cell carries the mean motion of the fine pixels it covers. Integer ratios
    average-pool ``(H/h) x (W/w)`` blocks; other ratios use area interpolation. Vectors are
    rescaled per axis: u by ``w / W``, v by ``h / H``.
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"resample_flow: flow must be (B, 2, H, W), got shape {tuple(flow.shape)}")
    if len(size_hw) != 2:
        raise ValueError(f"resample_flow: size_hw must be (h, w), got {size_hw!r}")
    height, width = flow.shape[-2:]
    out_h, out_w = (int(v) for v in size_hw)
    if not (0 < out_h <= height and 0 < out_w <= width):
        raise ValueError(
            f"resample_flow: target size {(out_h, out_w)} must be positive and no larger than "
            f"the flow's {(height, width)} (this resamples to a coarser grid)"
        )
    if height % out_h == 0 and width % out_w == 0:
        coarse = F.avg_pool2d(flow, kernel_size=(height // out_h, width // out_w))
    else:
        coarse = F.interpolate(flow, size=(out_h, out_w), mode="area")
    scale = torch.tensor([out_w / width, out_h / height], dtype=coarse.dtype, device=coarse.device)
    return coarse * scale.view(1, 2, 1, 1)
