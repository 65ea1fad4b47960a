"""torchvision RAFT (small / large) as a frozen flow estimator; weights only from a local file.

torchvision facts (spec ``models.md`` section 0.6): RAFT wants images in ``[-1, 1]`` with H and
W divisible by 8, and its correlation pyramid needs the 1/8-resolution features to be at least
16 in both dimensions, i.e. inputs of at least 128 x 128. This wrapper pads to a multiple of 8
(replicate, split evenly between the two sides) and crops back; an input smaller than 128 in
either dimension is first upscaled by the integer factor ``f = ceil(128 / min(H, W))``
(bilinear) and the flow is average-pooled back by ``f`` with the vectors divided by ``f``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.optical_flow import raft_large as tv_raft_large
from torchvision.models.optical_flow import raft_small as tv_raft_small

from vidpose.models.flow.base import FlowEstimator, resample_flow
from vidpose.registry import FLOWS
from vidpose.weights_only import load_weights_only

__all__ = [
    "RAFTFlow",
    "raft_small",
    "raft_large",
    "load_raft_checkpoint",
    "upscale_factor",
    "RAFT_MIN_SIZE",
]

logger = logging.getLogger(__name__)

RAFT_MIN_SIZE = 128
_PAD_MULTIPLE = 8
_BUILDERS = {"raft_small": tv_raft_small, "raft_large": tv_raft_large}
_KEYS_SHOWN = 8


def upscale_factor(height: int, width: int) -> int:
    """Integer factor lifting the smaller side of ``H x W`` to at least 128 (1 if it already is)."""
    smaller = min(height, width)
    return 1 if smaller >= RAFT_MIN_SIZE else math.ceil(RAFT_MIN_SIZE / smaller)


def _preview(keys: list[str]) -> str:
    shown = ", ".join(keys[:_KEYS_SHOWN])
    more = f", ... (+{len(keys) - _KEYS_SHOWN} more)" if len(keys) > _KEYS_SHOWN else ""
    return f"{len(keys)}: {shown}{more}"


def load_raft_checkpoint(model: torch.nn.Module, checkpoint: str | Path, variant: str) -> None:
    """Strictly load a local torchvision RAFT state dict into ``model``; errors name the keys."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"flow {variant}: checkpoint file {str(path)!r} does not exist")
    try:
        state = load_weights_only(path)
    except Exception as exc:  # unpickling errors come in many types; the file is the common cause
        raise ValueError(
            f"flow {variant}: could not read checkpoint {str(path)!r} with weights_only=True: {exc}"
        ) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"flow {variant}: checkpoint {str(path)!r} must be a flat torchvision RAFT state dict "
            f"(parameter name -> tensor), got {type(state).__name__}"
            + (
                f" with keys {_preview(sorted(map(str, state)))}"
                if isinstance(state, Mapping)
                else ""
            )
        )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys {_preview(missing)}")
        if unexpected:
            problems.append(f"unexpected keys {_preview(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches {_preview(mismatched)}")
        raise ValueError(
            f"flow {variant}: checkpoint {str(path)!r} does not match torchvision {variant} "
            f"({'; '.join(problems)}). Expected the state dict of "
            f"torchvision.models.optical_flow.{variant} (e.g. saved from its weights enum); "
            f"the original princeton-vl RAFT files use other names."
        )
    model.load_state_dict(state, strict=True)
    logger.info("flow %s: loaded all %d tensors from %s", variant, len(state), path)


class RAFTFlow(FlowEstimator):
    """Frozen torchvision RAFT: ``(B, 3, H, W)`` in [0, 1] twice -> flow ``(B, 2, H, W)`` in pixels.

    ``checkpoint`` is a local torchvision RAFT state dict; without one, ``random_init=True`` must
    be set explicitly (tests, benchmarks) and the flow is meaningless.
    """

    def __init__(
        self,
        variant: str,
        checkpoint: str | None = None,
        random_init: bool = False,
        num_flow_updates: int = 12,
    ) -> None:
        super().__init__()
        if variant not in _BUILDERS:
            raise ValueError(
                f"flow: unknown RAFT variant {variant!r}; expected one of {sorted(_BUILDERS)}"
            )
        if not isinstance(num_flow_updates, int) or num_flow_updates < 1:
            raise ValueError(
                f"flow {variant}: num_flow_updates must be a positive integer, "
                f"got {num_flow_updates!r}"
            )
        if checkpoint is not None and random_init:
            raise ValueError(
                f"flow {variant}: set either checkpoint or random_init: true, not both"
            )
        if checkpoint is None and not random_init:
            raise ValueError(
                f"flow {variant}: checkpoint is null. Give a local torchvision RAFT state dict "
                f"(flow.checkpoint=/path/to/{variant}.pth), or set flow.random_init=true for tests "
                f"and benchmarks only (random weights give meaningless flow)."
            )
        self.variant = variant
        self.num_flow_updates = num_flow_updates
        self.model = _BUILDERS[variant](weights=None, progress=False)
        if checkpoint is not None:
            load_raft_checkpoint(self.model, checkpoint, variant)
        else:
            logger.warning(
                "flow %s: RANDOM WEIGHTS (random_init=true, no checkpoint) - the optical flow is "
                "meaningless; use this only for tests and speed benchmarks",
                variant,
            )
        self.freeze()

    def estimate(self, image1: Tensor, image2: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [0, 1] twice -> ``(B, 2, H, W)``, upscaling and padding for RAFT."""
        batch, _, height, width = image1.shape
        factor = upscale_factor(height, width)
        pair = torch.cat((image1, image2), dim=0) * 2.0 - 1.0
        if factor > 1:
            pair = F.interpolate(
                pair, size=(height * factor, width * factor), mode="bilinear", align_corners=False
            )
        big_h, big_w = pair.shape[-2:]
        pad_h, pad_w = -big_h % _PAD_MULTIPLE, -big_w % _PAD_MULTIPLE
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:
            pair = F.pad(pair, (left, pad_w - left, top, pad_h - top), mode="replicate")
        flow = self.model(pair[:batch], pair[batch:], num_flow_updates=self.num_flow_updates)[-1]
        flow = flow[:, :, top : top + big_h, left : left + big_w]
        if factor > 1:
            flow = resample_flow(flow, (height, width))
        return flow

    def extra_repr(self) -> str:
        return f"variant={self.variant}, num_flow_updates={self.num_flow_updates}"


@FLOWS.register("raft_small")
def raft_small(
    checkpoint: str | None = None, random_init: bool = False, num_flow_updates: int = 12
) -> RAFTFlow:
    """Frozen torchvision ``raft_small`` (0.99 M params) from a local state dict."""
    return RAFTFlow(
        "raft_small",
        checkpoint=checkpoint,
        random_init=random_init,
        num_flow_updates=num_flow_updates,
    )


@FLOWS.register("raft_large")
def raft_large(
    checkpoint: str | None = None, random_init: bool = False, num_flow_updates: int = 12
) -> RAFTFlow:
    """Frozen torchvision ``raft_large`` (5.26 M params) from a local state dict."""
    return RAFTFlow(
        "raft_large",
        checkpoint=checkpoint,
        random_init=random_init,
        num_flow_updates=num_flow_updates,
    )
