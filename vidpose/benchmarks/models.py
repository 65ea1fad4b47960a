"""Benchmark ``models``: one training step (forward + backward) of each method's model, per sample.

One row per method and device mode: the full model (backbone + flow + head, or the HANet
refiner) at its paper's input size (``--quick``: ``vit_tiny`` at 128 x 96), fed by the real
training loader (``vidpose.benchmarks.data``'s PoseTrack-shaped set, training augmentation, the
method's T frames), with the method's own target generator run on the device and its loss,
then ``loss.backward()``. The optimizer step is left out. Columns:

- ``fwd_bwd_s_per_sample``: median step time (transfer, targets, forward, loss, backward) / batch;
- ``samples_per_s``: batch / mean(step + time blocked on the loader), i.e. with the data wait;
- ``data_wait``: share of that wall time spent waiting for the next batch (``--workers``);
- ``peak_mem_MB_per_sample``: CUDA: ``max_memory_allocated`` during the steps minus what was
  allocated before them; CPU: the growth of the process's peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs``) over a step, after freed memory went back to the OS (NaN where
  /proc is missing); both / batch;
- ``gflop_per_sample``: FLOPs of one step counted by ``torch.utils.flop_counter`` (matmuls and
  convolutions, forward and backward; torchvision's deformable convolution, grid sampling and
  OpenCV flow are not counted) / batch;
- ``mfu``: achieved FLOP/s over the peak of a dense matmul measured in the same run on the same
  device and precision (CPU fp32 ``torch.mm``, CUDA bf16): the share of the hardware's usable
  matmul rate the step reaches.

Batches: ``--batch`` clips on CPU (default 2), ``--cuda-batch`` on CUDA (default 32, the
papers use 32-64 per GPU); HANet always uses its code's 16 windows.

Modes: CPU fp32 always; on CUDA ``bf16+cl`` (bf16 autocast, channels_last) and with
``--compile`` also ``bf16+cl+compile`` (``torch.compile`` of the model; a model that does not
compile falls back to eager and says so in ``mode``). Without a GPU the CUDA rows are skipped.

Adding a method: write one function ``(BenchConfig) -> ModelCase`` and add it to
:data:`ROW_BUILDERS`; ``--rows`` selects builders by key.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import gc
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

DESCRIPTION = "training step (fwd+bwd) per sample of every method at its paper input: time, samples/s, data wait, peak memory, MFU"

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

    model: Any  # vidpose.models.pose_model.PoseModel, or a refiner for kind "sequence"
    target: dict
    labels: dict[str, str] = field(default_factory=dict)
    #: the method's own crop size when it is not the workload's (JM-Pose: 384 x 288)
    input_hw: tuple[int, int] | None = None
    #: "clip": frames from the loader -> targets -> model; "sequence": keypoint windows -> refiner
    kind: str = "clip"
    #: the method's own batch when it is not the workload's (HANet: 16 windows)
    batch: int | None = None
    #: the refiner's loss (kind "sequence")
    loss: Any = None


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
    """MTPose (configs/exp/mtpose_pt18.yaml) with a randomly initialised torchvision raft_large (``--quick``: 2 updates)."""
    head = {"name": "mtpose", "num_heads": _vit_heads(config.backbone)}
    flow = {"name": "raft_large", "random_init": True}
    label = "raft_large random_init"
    if config.backbone["name"] == "vit_tiny":  # --quick: RAFT's 12 updates would dominate the CI run
        flow["num_flow_updates"] = 2
        label += ", 2 updates"
    model = _build_model(config, head, flow, num_frames=3)
    return ModelCase(model, {"name": "motion_aware"}, {"flow": label})


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


def hanet_case(config: BenchConfig) -> ModelCase:
    """HANet refiner (configs/exp/hanet_pt18.yaml): windows of 5 poses x 17 joints, 5 levels of width 256,
    batch 16 (the code's). ``--quick``: 3 levels of width 64."""
    from vidpose.losses.kinematic import HANetLoss
    from vidpose.models.refiners.hanet import HANet

    quick = config.backbone["name"] == "vit_tiny"
    width, levels = (64, 3) if quick else (256, 5)
    model = HANet(NUM_JOINTS, window=5, sample_interval=1, hidden_dim=width, num_levels=levels)
    labels = {"backbone": f"hanet C={width} levels={levels}", "flow": "none", "input": "5 poses x 17 joints"}
    return ModelCase(model, {}, labels, kind="sequence", batch=16, loss=HANetLoss(visibility_weighted=True))


ROW_BUILDERS: dict[str, Callable[[BenchConfig], ModelCase]] = {
    "baseline": baseline_case,
    "mtpose": mtpose_case,
    "continuity": continuity_case,
    "vremd": vremd_case,
    "jmpose": jmpose_case,
    "hanet": hanet_case,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``models`` benchmark."""
    parser.add_argument("--rows", default=",".join(ROW_BUILDERS), help=f"comma-separated methods (default all: {','.join(ROW_BUILDERS)})")
    parser.add_argument("--batch", type=int, default=2, help="clips per batch on CPU (default 2; HANet uses its own 16)")
    parser.add_argument("--cuda-batch", type=int, default=32, help="clips per batch on CUDA (default 32)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per row (default 3, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default min(8, cores); quick 0)")
    parser.add_argument("--compile", action="store_true", help="CUDA only: add torch.compile rows")
    parser.add_argument("--random-data", action="store_true", help="random frames instead of the loader (no data wait)")
    parser.add_argument("--seed", type=int, default=0)


# ------------------------------------------------------------------------------------- inputs


def _generator(case: ModelCase, config: BenchConfig) -> Any:
    from vidpose.heatmaps import Geometry
    from vidpose.registry import TARGETS

    return TARGETS.build(dict(case.target), geometry=Geometry(config.input_hw, config.heatmap_stride, "udp"))


def _random_batch(case: ModelCase, config: BenchConfig, seed: int) -> dict[str, Any]:
    """A host batch like the loader's: uint8 frames ``(B, T, H, W, 3)``, keypoints ``(B, T, K, 2)``, visibility, clamped."""
    gen = torch.Generator().manual_seed(seed)
    b, t = config.batch, case.model.num_frames
    height, width = config.input_hw
    return {
        "frames": torch.randint(0, 256, (b, t, height, width, 3), dtype=torch.uint8, generator=gen),
        "keypoints": torch.rand(b, t, NUM_JOINTS, 2, generator=gen) * torch.tensor([width - 1.0, height - 1.0]),
        "visible": torch.ones(b, t, NUM_JOINTS),
        "clamped": torch.zeros(b, t, dtype=torch.bool),
    }


def _random_windows(case: ModelCase, seed: int) -> dict[str, torch.Tensor]:
    """A batch of HANet windows: ``input``/``target`` ``(B, L, K, 2)`` in [0, 1], ``visible`` ``(B, L, K)``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.model.window, NUM_JOINTS, 2)
    target = torch.rand(shape, generator=gen)
    return {"input": target + 0.02 * torch.randn(shape, generator=gen), "target": target, "visible": torch.ones(shape[:3])}


def _batches(case: ModelCase, config: BenchConfig, args: argparse.Namespace, data_root: Path | None) -> Iterator[dict]:
    """Host batches for the row: the real loader over the benchmark set, or one random batch repeated."""
    if case.kind == "sequence":
        batch = _random_windows(case, int(args.seed))
        while True:
            yield batch
    if data_root is None:
        batch = _random_batch(case, config, int(args.seed))
        while True:
            yield batch
    from vidpose.benchmarks.data import clip_dataset
    from vidpose.data.loader import build_loader, set_epoch

    t = case.model.num_frames
    dataset = clip_dataset(data_root, config.input_hw, tuple(range(-(t // 2), t - t // 2)), int(args.seed))
    loader = build_loader(dataset, config.batch, shuffle=True, num_workers=_workers(args), seed=int(args.seed), drop_last=True)
    epoch = 0
    while True:
        set_epoch(loader, epoch)
        for batch in loader:
            yield {k: batch[k] for k in ("frames", "keypoints", "visible", "clamped")}
        epoch += 1


def _workers(args: argparse.Namespace) -> int:
    """Loader workers of a row: ``--workers``, else 0 with ``--quick``, else one per core up to 8."""
    if getattr(args, "workers", None) is not None:
        return int(args.workers)
    if args.quick:
        return 0
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# ------------------------------------------------------------------------------------- memory


def _status_kib(name: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_freed_memory() -> None:
    """Collect garbage and return free heap pages to the OS, so RSS growth is the next step's own."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def _reset_peak_rss() -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Per-step peak memory growth in bytes: CUDA allocator statistics or the process's peak RSS."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak = 0.0 if device == "cuda" or _status_kib("VmHWM") is not None else math.nan
        self._base = 0.0

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Measure the body's peak above what was in use when it began."""
        if self.device == "cuda":
            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        elif not math.isnan(self.peak):
            _release_freed_memory()
            if not _reset_peak_rss():
                self.peak = math.nan
            self._base = 1024.0 * (_status_kib("VmRSS") or 0)
        yield
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = max(self.peak, torch.cuda.max_memory_allocated() - self._base)
        elif not math.isnan(self.peak):
            self.peak = max(self.peak, 1024.0 * (_status_kib("VmHWM") or 0) - self._base)


# ------------------------------------------------------------------------------------- FLOPs


_MATMUL_PEAK: dict[tuple[str, str], float] = {}


def matmul_peak_flops(device: str, precision: str) -> float:
    """FLOP/s of a large dense matmul on ``device`` in ``precision`` (measured once per process)."""
    key = (device, precision)
    if key not in _MATMUL_PEAK:
        n = 8192 if device == "cuda" else 2048
        dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        torch.mm(a, b)
        times = []
        for _ in range(5):
            sync()
            tic = time.perf_counter()
            torch.mm(a, b)
            sync()
            times.append(time.perf_counter() - tic)
        # the fastest run: on a shared machine slower runs measure the neighbours, not the hardware
        _MATMUL_PEAK[key] = 2.0 * n**3 / min(times)
    return _MATMUL_PEAK[key]


# ------------------------------------------------------------------------------------- rows


def _settings(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(device, mode) pairs: CPU fp32, then the CUDA modes when a GPU is present."""
    settings = [("cpu", "fp32")]
    if torch.cuda.is_available():
        settings.append(("cuda", "bf16+cl"))
        if getattr(args, "compile", False):
            settings.append(("cuda", "bf16+cl+compile"))
    return settings


def _row(name: str, builder: Callable[[BenchConfig], ModelCase], config: BenchConfig, device: str, mode: str,
         args: argparse.Namespace, repeats: int, data_root: Path | None) -> dict[str, Any]:
    seed = int(args.seed)
    torch.manual_seed(seed)
    case = builder(config)
    if case.input_hw is not None:
        config = replace(config, input_hw=case.input_hw)
    if case.batch is not None:
        config = replace(config, batch=case.batch)
    model = case.model.to(device).train()
    amp = "bf16" in mode
    if "cl" in mode.split("+"):
        model = model.to(memory_format=torch.channels_last)
    runner: Any = model
    if "compile" in mode:
        runner = torch.compile(model)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    if case.kind == "sequence":
        sampled = model.sampled_frames(torch.device(device))

        def prepare(batch: dict) -> tuple[Any, Any]:
            moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            return moved["input"], moved

        def loss_of(net: Any, inputs: Any, targets: Any) -> torch.Tensor:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
                outputs = net(inputs)
            return case.loss(outputs["refined"], outputs["encoder"], targets["target"], sampled, targets["visible"])["loss"]
    else:
        from vidpose.data.loader import to_device

        generator = _generator(case, config)

        def prepare(batch: dict) -> tuple[Any, Any]:
            # targets from keypoints on the device, as the trainer's PoseTask.prepare does
            moved = to_device(batch, device)
            targets = generator(moved["keypoints"], moved["visible"], moved["clamped"], model.key_index,
                                names=model.head.targets)
            return moved["frames"], targets

        def loss_of(net: Any, inputs: Any, targets: Any) -> torch.Tensor:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
                outputs = net(inputs)
            return model.loss(outputs, targets)["loss"]

    def step(batch: dict) -> None:
        inputs, targets = prepare(batch)
        loss_of(runner, inputs, targets).backward()
        model.zero_grad(set_to_none=True)
        sync()

    from torch.utils.flop_counter import FlopCounterMode

    batches = _batches(case, config, args, data_root if not getattr(args, "random_data", False) else None)
    # The first step is the warm-up (worker start-up, allocator, kernel selection): its FLOPs are
    # counted, its time is not. FLOPs come from the eager model (a compiled graph hides them).
    counter = FlopCounterMode(display=False)
    first = next(batches)
    with counter:
        inputs, targets = prepare(first)
        loss_of(model, inputs, targets).backward()
    model.zero_grad(set_to_none=True)
    del inputs, targets
    flops = float(counter.get_total_flops())
    if "compile" in mode:
        try:
            step(first)
        except Exception as err:  # noqa: BLE001 - any compiler failure: time the eager model instead
            runner, mode = model, f"{mode} failed ({type(err).__name__}): eager"
            step(first)

    memory = PeakMemory(device)
    waits, steps = [], []
    for _ in range(repeats):
        tic = time.perf_counter()
        batch = next(batches)
        waits.append(time.perf_counter() - tic)
        with memory.step():
            tic = time.perf_counter()
            step(batch)
            steps.append(time.perf_counter() - tic)
    batches.close()  # ends the loader's workers
    step_s = statistics.median(steps)
    total = sum(waits) + sum(steps)
    peak_flops = matmul_peak_flops(device, "bf16" if amp else "fp32")
    return {
        "method": name,
        "backbone": case.labels.get("backbone", str(config.backbone["name"])),
        "flow": case.labels.get("flow", "none"),
        "input": case.labels.get("input", f"{config.input_hw[0]}x{config.input_hw[1]}"),
        "T": getattr(model, "num_frames", getattr(model, "window", 1)),
        "batch": config.batch,
        "device": device,
        "mode": mode,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_M": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
        "fwd_bwd_s_per_sample": step_s / config.batch,
        "samples_per_s": config.batch * repeats / total,
        "data_wait": sum(waits) / total if case.kind == "clip" and data_root is not None else math.nan,
        "peak_mem_MB_per_sample": memory.peak / 2**20 / config.batch,
        "gflop_per_sample": flops / 1e9 / config.batch,
        "mfu": flops / step_s / peak_flops,
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows of the chosen methods: CPU fp32, then the CUDA modes when a GPU is present."""
    if getattr(args, "threads", None):
        torch.set_num_threads(int(args.threads))
    names = [n.strip() for n in str(args.rows).split(",") if n.strip()]
    unknown = sorted(set(names) - set(ROW_BUILDERS))
    if unknown:
        raise ValueError(f"models benchmark: unknown rows {unknown}; known: {sorted(ROW_BUILDERS)}")
    if args.quick:
        config = BenchConfig({"name": "vit_tiny"}, (128, 96), int(args.batch))
    else:
        config = BenchConfig({"name": "vit_b"}, (256, 192), int(args.batch))
    repeats = getattr(args, "repeats", None) or (1 if args.quick else 3)
    rows = []
    with contextlib.ExitStack() as stack:
        data_root = None
        if not getattr(args, "random_data", False):
            from vidpose.benchmarks.data import default_sample_root, write_benchmark_set

            data_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vidpose_models_bench_")))
            sample = default_sample_root()
            write_benchmark_set(data_root, 4 if args.quick else 20, 6 if args.quick else 20,
                                sample if sample.exists() else None, int(args.seed))
        for device, mode in _settings(args):
            batch = int(getattr(args, "cuda_batch", 32) or 32) if device == "cuda" else int(args.batch)
            for name in names:
                rows.append(_row(name, ROW_BUILDERS[name], replace(config, batch=batch), device, mode, args, repeats, data_root))
                gc.collect()
                if device == "cuda":
                    torch.cuda.empty_cache()  # the row's model is gone; give its memory back before the next
    return rows
