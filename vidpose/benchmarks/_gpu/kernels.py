"""One implementation against another on the same inputs: DCNv2, targets, decoding, CUDA vs CPU."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from vidpose.benchmarks._gpu.context import Context, Outcome

DCN_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}  # max relative error
MAP_TOLERANCE = 1e-5  # targets (values in [0, 1]) and decoded keypoints (px)
JOINTS, TAPS = 17, 9  # MTPose's fusion: one channel and one offset field per joint, 3 x 3 kernels


def _max_abs(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| (on the CPU, float64)."""
    return float((got.detach().double().cpu() - want.detach().double().cpu()).abs().max())


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|."""
    return _max_abs(got, want) / max(float(want.detach().abs().max()), 1e-30)


def _dcn_inputs(hw: tuple[int, int], dilation: int, dtype: torch.dtype,
                device: torch.device) -> list[torch.Tensor]:
    """x ``(2, K, h, w)``, offsets of a few px (taps off the map), mask, weight, bias, probe."""
    gen = torch.Generator().manual_seed(dilation)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    height, width = hw
    tensors = [
        normal(2, JOINTS, height, width),
        3.0 * normal(2, 2 * JOINTS * TAPS, height, width),
        torch.rand(2, JOINTS * TAPS, height, width, generator=gen, dtype=torch.float64),
        normal(JOINTS, JOINTS, 3, 3) / math.sqrt(JOINTS * TAPS),
        normal(JOINTS),
        normal(2, JOINTS, height, width),
    ]
    return [t.to(device=device, dtype=dtype) for t in tensors]


def _dcn_result(backend: str, tensors: Sequence[torch.Tensor], dilation: int) -> list[torch.Tensor]:
    """Output and the gradients of (x, offset, mask, weight, bias) of one DCNv2 implementation."""
    from torchvision.ops import deform_conv2d

    from vidpose.models.deform_sampling import deform_conv2d_sampled

    inputs = [t.detach().clone().requires_grad_() for t in tensors[:5]]
    x, offset, mask, weight, bias = inputs
    if backend == "torchvision":
        out = deform_conv2d(x, offset, weight, bias, padding=dilation, dilation=dilation, mask=mask)
    else:
        out = deform_conv2d_sampled(x, offset, weight, bias, dilation, dilation, mask)
    return [out.detach(), *torch.autograd.grad((out * tensors[5]).sum(), inputs)]


def _dcn_errors(ctx: Context, hw: tuple[int, int], dilation: int,
                dtype: torch.dtype) -> dict[str, float]:
    """Worst relative error vs torchvision on the device: grid_sample, (CUDA) torchvision on CPU."""
    name = str(dtype).removeprefix("torch.")
    tensors = _dcn_inputs(hw, dilation, dtype, ctx.device)
    reference = _dcn_result("torchvision", tensors, dilation)
    others = {f"torchvision_vs_grid_sample_{name}": _dcn_result("grid_sample", tensors, dilation)}
    if ctx.cuda:
        on_cpu = [t.cpu() for t in tensors]
        others[f"torchvision_cuda_vs_cpu_{name}"] = _dcn_result("torchvision", on_cpu, dilation)
    return {key: max(map(_relative_error, reference, other)) for key, other in others.items()}


def deform_conv_parity(ctx: Context) -> Outcome:
    """torchvision's DCNv2 vs the grid_sample kernel (CUDA: also vs the CPU), MTPose's dilations."""
    from vidpose.models.heads.mtpose import MTPOSE_DILATIONS

    hw = (32, 24) if ctx.quick else (64, 48)
    worst: dict[str, float] = {}
    limits: dict[str, float] = {}
    for dtype, limit in DCN_TOLERANCE.items():
        for dilation in MTPOSE_DILATIONS:
            for key, error in _dcn_errors(ctx, hw, dilation, dtype).items():
                worst[key], limits[key] = max(worst.get(key, 0.0), error), limit
    bad = sorted(k for k in worst if not worst[k] <= limits[k])
    numbers = {
        "feature_map": f"2x{JOINTS}x{hw[0]}x{hw[1]}", "dilations": list(MTPOSE_DILATIONS),
        "max_relative_error": worst,
    }
    return Outcome(not bad, numbers, f"over tolerance: {bad}" if bad else "")


def _clips(batch: int, geo: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The targets benchmark's PoseTrack-like 3-frame clips: keypoints, visible, clamped (CPU)."""
    from vidpose.benchmarks.targets import synthetic_clips

    xy, visible, clamped = synthetic_clips(batch, JOINTS, geo, np.random.default_rng(0))
    return (
        torch.as_tensor(xy, dtype=torch.float32), torch.as_tensor(visible), torch.as_tensor(clamped)
    )


def _map_verdict(worst: dict[str, float]) -> Outcome:
    bad = sorted(k for k, v in worst.items() if not v <= MAP_TOLERANCE)
    note = f"over {MAP_TOLERANCE:g}: {bad}" if bad else ""
    return Outcome(not bad, {"max_abs_difference": worst}, note)


def targets_cuda_vs_cpu(ctx: Context) -> Outcome:
    """Every registered target generator, both pixel conventions: device maps equal CPU maps."""
    from vidpose.heatmaps import CONVENTIONS, Geometry
    from vidpose.registry import TARGETS

    worst: dict[str, float] = {}
    for convention in CONVENTIONS:
        geo = Geometry((256, 192), 4, convention)
        clips = _clips(16, geo)
        for name in TARGETS.names():
            generator = TARGETS.build({"name": name}, geometry=geo)
            on_cpu = generator(*clips, 1)
            on_device = generator(*(t.to(ctx.device) for t in clips), 1)
            worst[f"{name}_{convention}"] = max(_max_abs(on_device[k], on_cpu[k]) for k in on_cpu)
    return _map_verdict(worst)


def decode_cuda_vs_cpu(ctx: Context) -> Outcome:
    """Flip-back, flip merge and every refinement decode device and CPU heatmaps alike."""
    from vidpose.data.keypoints import get_layout
    from vidpose.heatmaps import (
        CONVENTIONS, REFINEMENTS, Geometry, decode, flip_back, gaussian, merge_flip,
    )

    layout = get_layout("posetrack")
    worst: dict[str, float] = {}
    for convention in CONVENTIONS:
        geo = Geometry((256, 192), 4, convention)
        xy, visible, _ = _clips(8, geo)
        maps, _ = gaussian(xy[:, 1].to(ctx.device), visible[:, 1].to(ctx.device), geo, 2.0)
        # the flip test's merge of a map with its mirrored copy, on each device
        device, cpu = (
            merge_flip(m, flip_back(m.flip(-1), layout, geo)) for m in (maps, maps.cpu())
        )
        worst[f"flip_merge_{convention}"] = _max_abs(device, cpu)
        for refine in REFINEMENTS:
            xy_device, score_device = decode(device, geo, refine)
            xy_cpu, score_cpu = decode(cpu, geo, refine)
            worst[f"decode_{refine}_{convention}"] = max(
                _max_abs(xy_device, xy_cpu), _max_abs(score_device, score_cpu)
            )
    return _map_verdict(worst)
