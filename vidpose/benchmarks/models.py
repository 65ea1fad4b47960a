"""Benchmark ``models``: forward + backward time per training sample of each method's model.

One row per method (and device/precision): a full ``PoseModel`` (backbone + flow + head) on a
random batch of clips, the method's own target generator and loss, ``loss.backward()``; the
time is the median over ``--repeats`` runs divided by the batch size. The default workload is
the papers' (ViT-B at 256 x 192, batch 2); ``--quick`` uses ``vit_tiny`` at 128 x 96.

Memory: on CUDA each row reports ``torch.cuda.max_memory_allocated`` of its own step. On CPU
the column is NaN: ``tracemalloc`` does not see torch's allocator, and the process's peak RSS
(``resource.getrusage``) is a high-water mark shared by every row that ran before, so it would
not be the row's own peak.

Adding a method: write one function ``(BenchConfig) -> ModelCase`` and add it to
:data:`ROW_BUILDERS`; ``--rows`` selects builders by key.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from vidpose.benchmarks import time_call

DESCRIPTION = "forward+backward seconds per sample of each method's model (CPU; CUDA fp32/bf16 rows when available)"

NUM_JOINTS = 17


@dataclass(frozen=True)
class BenchConfig:
    """The shared workload: backbone config node, crop size, batch and heatmap stride."""

    backbone: dict
    input_hw: tuple[int, int]
    batch: int
    heatmap_stride: int = 4


@dataclass
class ModelCase:
    """A built model with what a training step needs: the target node and the row labels."""

    model: Any  # vidpose.models.pose_model.PoseModel
    target: dict
    labels: dict[str, str] = field(default_factory=dict)
    #: the method's own crop size when it is not the workload's (JM-Pose: 384 x 288)
    input_hw: tuple[int, int] | None = None


def _build_model(config: BenchConfig, head: dict, flow: dict | None, num_frames: int) -> Any:
    from vidpose.models.pose_model import PoseModel
    from vidpose.registry import BACKBONES, FLOWS, HEADS

    backbone = BACKBONES.build(dict(config.backbone), input_hw=config.input_hw, num_joints=NUM_JOINTS)
    key_index = num_frames // 2
    heatmap_hw = tuple(v // config.heatmap_stride for v in config.input_hw)
    head_module = HEADS.build(
        dict(head),
        in_channels=backbone.out_channels,
        in_stride=backbone.stride,
        num_joints=NUM_JOINTS,
        heatmap_stride=config.heatmap_stride,
        num_frames=num_frames,
        key_index=key_index,
        input_hw=config.input_hw,
        heatmap_hw=heatmap_hw,
    )
    flow_module = FLOWS.build(dict(flow)) if flow else None
    return PoseModel(backbone, head_module, flow=flow_module, num_frames=num_frames, key_index=key_index)


def _vit_heads(backbone: dict) -> int:
    """Attention heads of the benchmark's ViT (MTPose's cross-attention uses the same count)."""
    return int(backbone.get("num_heads", {"vit_tiny": 3, "vit_s": 12, "vit_b": 12, "vit_l": 16, "vit_h": 16}.get(backbone["name"], 12)))


def baseline_case(config: BenchConfig) -> ModelCase:
    """Single-frame ViTPose classic head (configs/exp/baseline_pt18.yaml)."""
    model = _build_model(config, {"name": "deconv"}, None, num_frames=1)
    return ModelCase(model, {"name": "gaussian", "sigma": 2.0}, {"flow": "none"})


def mtpose_case(config: BenchConfig) -> ModelCase:
    """MTPose (configs/exp/mtpose_pt18.yaml) with a randomly initialised torchvision raft_large."""
    head = {"name": "mtpose", "num_heads": _vit_heads(config.backbone)}
    flow = {"name": "raft_large", "random_init": True}
    model = _build_model(config, head, flow, num_frames=3)
    return ModelCase(model, {"name": "motion_aware"}, {"flow": "raft_large random_init"})


class _ClipWithSecondView(torch.nn.Module):
    """A PoseModel called with frames only, given the batch CDPose trains with: the frames and a second view."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    @property
    def num_frames(self) -> int:
        """T of the wrapped model."""
        return self.model.num_frames

    @property
    def key_index(self) -> int:
        """Key frame index of the wrapped model."""
        return self.model.key_index

    @property
    def head(self) -> Any:
        """The wrapped model's head."""
        return self.model.head

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(B, T, 3, H, W)`` -> outputs; the key frame stands in for the rotated second view (same cost)."""
        return self.model(frames, {"frames": frames, "view2": frames[:, self.model.key_index]})

    def loss(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        """The wrapped model's loss terms."""
        return self.model.loss(outputs, targets)


def continuity_case(config: BenchConfig) -> ModelCase:
    """CDPose (configs/exp/continuity_pt18.yaml): 5 frames + the second view through the trained backbone, all losses."""
    model = _build_model(config, {"name": "continuity"}, None, num_frames=5)
    return ModelCase(_ClipWithSecondView(model), {"name": "gaussian", "sigma": 2.0}, {"flow": "none"})


def vremd_case(config: BenchConfig) -> ModelCase:
    """VREMD (configs/exp/vremd_pt18.yaml): 3 frames through a frozen ViT-L, the paper's backbone
    whatever the workload's (``--quick`` keeps vit_tiny); HKME + BMD trained."""
    backbone = config.backbone if config.backbone["name"] == "vit_tiny" else {"name": "vit_l"}
    head = {"name": "vremd", "num_heads": _vit_heads(backbone)}
    model = _build_model(replace(config, backbone=backbone), head, None, num_frames=3)
    return ModelCase(model, {"name": "gaussian", "sigma": 2.0}, {"flow": "none", "backbone": backbone["name"]})


def jmpose_case(config: BenchConfig) -> ModelCase:
    """JM-Pose (configs/exp/jmpose_pt18.yaml): 5 frames through a frozen HRNet-W48 with its heatmap
    layer at 384 x 288, the paper's backbone and crops whatever the workload's, and a frozen
    raft_large (random_init, 20 updates) on the 4 consecutive pairs; the head and its
    information-orthogonality loss trained. ``--quick``: the CPU twin's hrnet_tiny and OpenCV DIS
    flow at the quick crops (RAFT-large's 20 updates on 4 pairs alone take minutes on CPU)."""
    quick = config.backbone["name"] == "vit_tiny"
    backbone = {"name": "hrnet_tiny" if quick else "hrnet_w48", "with_heatmap_layer": True}
    input_hw = config.input_hw if quick else (384, 288)
    flow = {"name": "opencv_dis"} if quick else {"name": "raft_large", "random_init": True, "num_flow_updates": 20}
    model = _build_model(replace(config, backbone=backbone, input_hw=input_hw), {"name": "jmpose"}, flow, num_frames=5)
    labels = {"flow": "opencv_dis" if quick else "raft_large random_init", "backbone": backbone["name"]}
    return ModelCase(model, {"name": "gaussian", "sigma": 3.0}, labels, input_hw=input_hw)


ROW_BUILDERS: dict[str, Callable[[BenchConfig], ModelCase]] = {
    "baseline": baseline_case,
    "mtpose": mtpose_case,
    "continuity": continuity_case,
    "vremd": vremd_case,
    "jmpose": jmpose_case,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``models`` benchmark."""
    parser.add_argument("--rows", default=",".join(ROW_BUILDERS), help=f"comma-separated methods (default all: {','.join(ROW_BUILDERS)})")
    parser.add_argument("--batch", type=int, default=2, help="clips per batch (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per row (default 3, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)


def _random_batch(case: ModelCase, config: BenchConfig, device: str, seed: int) -> tuple[torch.Tensor, dict]:
    """Frames in [0, 1] ``(B, T, 3, H, W)`` and the head's targets from random in-crop keypoints."""
    from vidpose.heatmaps import Geometry
    from vidpose.registry import TARGETS

    gen = torch.Generator().manual_seed(seed)
    model = case.model
    b, t = config.batch, model.num_frames
    height, width = config.input_hw
    frames = torch.rand(b, t, 3, height, width, generator=gen)
    keypoints = torch.rand(b, t, NUM_JOINTS, 2, generator=gen) * torch.tensor([width - 1.0, height - 1.0])
    geometry = Geometry(config.input_hw, config.heatmap_stride, "udp")
    generator = TARGETS.build(dict(case.target), geometry=geometry)
    targets = generator(
        keypoints, torch.ones(b, t, NUM_JOINTS), torch.zeros(b, t, dtype=torch.bool), model.key_index,
        names=model.head.targets,
    )
    return frames.to(device), {k: v.to(device) for k, v in targets.items()}


def _row(name: str, builder: Callable[[BenchConfig], ModelCase], config: BenchConfig, device: str,
         precision: str, repeats: int, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    case = builder(config)
    if case.input_hw is not None:
        config = replace(config, input_hw=case.input_hw)
    model = case.model.to(device).train()
    frames, targets = _random_batch(case, config, device, seed)
    amp = precision == "bf16"

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            outputs = model(frames)
        model.loss(outputs, targets)["loss"].backward()
        model.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device == "cuda" else None
    peak_mb = math.nan
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = time_call(step, repeats=repeats, warmup=1, sync=sync)
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    backbone_name = str(config.backbone["name"])
    row = {
        "method": name,
        "backbone": case.labels.get("backbone", backbone_name),
        "flow": case.labels.get("flow", "none"),
        "input": f"{config.input_hw[0]}x{config.input_hw[1]}",
        "batch": config.batch,
        "device": device,
        "precision": precision,
        "params_M": total / 1e6,
        "trainable_M": trainable / 1e6,
        "fwd_bwd_s_per_sample": seconds / config.batch,
        "peak_mem_MB": peak_mb,
    }
    return row


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows of the chosen methods: CPU fp32, then CUDA fp32 and bf16 when a GPU is present."""
    if args.threads:
        torch.set_num_threads(int(args.threads))
    names = [n.strip() for n in str(args.rows).split(",") if n.strip()]
    unknown = sorted(set(names) - set(ROW_BUILDERS))
    if unknown:
        raise ValueError(f"models benchmark: unknown rows {unknown}; known: {sorted(ROW_BUILDERS)}")
    if args.quick:
        config = BenchConfig({"name": "vit_tiny"}, (128, 96), int(args.batch))
    else:
        config = BenchConfig({"name": "vit_b"}, (256, 192), int(args.batch))
    repeats = args.repeats or (1 if args.quick else 3)
    settings = [("cpu", "fp32")]
    if torch.cuda.is_available():
        settings += [("cuda", "fp32"), ("cuda", "bf16")]
    rows = []
    for device, precision in settings:
        for name in names:
            rows.append(_row(name, ROW_BUILDERS[name], config, device, precision, repeats, int(args.seed)))
            if device == "cuda":
                torch.cuda.empty_cache()  # the row's model is gone; give its memory back before the next
    return rows
