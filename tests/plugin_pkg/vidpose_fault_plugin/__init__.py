"""Test-only fault injection, loaded with ``plugins=[vidpose_fault_plugin]`` (never by vidpose itself).

- Head ``fault_deconv``: the ``deconv`` head plus a fault at the ``fault_step``-th training
  forward (0-based; with ``optim.accumulate=1`` that is the trainer's step), on rank
  ``fault_rank`` only when it is set:

  ``loss``      the total loss and the ``heatmap`` term become NaN (gradients stay untouched);
  ``grad``      the gradient of ``head.decoder.final_layer.weight`` becomes NaN (loss finite);
  ``features``  the decoder's input becomes NaN, so BatchNorm running statistics go NaN too;
  ``raise``     ``RuntimeError("injected fault ...")`` in the forward pass;
  ``hang``      the forward pass sleeps forever (a stuck rank).

- ``VIDPOSE_FAULT_PAUSE_MICRO=<k>`` with ``VIDPOSE_FAULT_MARKER=<file>``: before its ``k``-th
  micro-step (0-based, counted in this process) the trainer touches the marker and sleeps
  ``VIDPOSE_FAULT_PAUSE_S`` seconds (default: for ever) or until a SIGTERM/SIGINT reaches the
  trainer, so a test can signal or kill it at a known step. It wraps ``vidpose.engine.trainer.Trainer._train_micro``.

- ``VIDPOSE_FAULT_CKPT=tmp:<n>`` with ``VIDPOSE_FAULT_MARKER=<file>``: the ``n``-th step
  checkpoint this process writes (1-based) stops half-way, half its bytes in the temporary
  file and nothing renamed, and the process sleeps after touching the marker, so a test can
  SIGKILL it inside the write window. It wraps ``vidpose.engine.checkpoint._atomic_write``,
  through which every checkpoint file is written.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import torch

from vidpose.engine import checkpoint as _checkpoint
from vidpose.models.heads.deconv import DeconvHead
from vidpose.registry import HEADS

FAULTS = ("none", "loss", "grad", "features", "raise", "hang")


@HEADS.register("fault_deconv")
class FaultDeconvHead(DeconvHead):
    """The deconv head with one injected fault at a chosen training step."""

    def __init__(
        self,
        in_channels: int,
        in_stride: int,
        num_joints: int,
        heatmap_stride: int,
        deconv_channels: int = 256,
        freeze_backbone: bool = False,
        fault: str = "none",
        fault_step: int = -1,
        fault_rank: int | None = None,
    ) -> None:
        super().__init__(in_channels, in_stride, num_joints, heatmap_stride, deconv_channels, freeze_backbone)
        if fault not in FAULTS:
            raise ValueError(f"head.fault: expected one of {FAULTS}, got {fault!r}")
        self.fault, self.fault_step, self.fault_rank = fault, int(fault_step), fault_rank
        self.train_calls = 0
        self._armed = False
        self.decoder.final_layer.weight.register_hook(self._grad_hook)

    def _grad_hook(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * float("nan") if self._armed and self.fault == "grad" else grad

    def forward(self, features, batch=None, flows=None, initial_heatmaps=None):
        """Deconv forward; arms the fault on the chosen training call."""
        self._armed = False
        if self.training:
            call, self.train_calls = self.train_calls, self.train_calls + 1
            rank = int(os.environ.get("RANK", "0"))
            self._armed = call == self.fault_step and (self.fault_rank is None or rank == self.fault_rank)
        if self._armed and self.fault == "raise":
            raise RuntimeError(f"injected fault on rank {os.environ.get('RANK', '0')} at training step {self.fault_step}")
        if self._armed and self.fault == "hang":
            # dies on torchrun's SIGTERM (a real hung rank is SIGKILLed 30 s later), so the test
            # measures how long the healthy rank waits, not torchrun's grace period
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            while True:
                time.sleep(1.0)
        if self._armed and self.fault == "features":
            features = features * float("nan")
        return super().forward(features, batch, flows, initial_heatmaps)

    def loss(self, outputs, targets):
        """Deconv loss; NaN total and heatmap term on the armed call of a ``loss`` fault."""
        losses = super().loss(outputs, targets)
        if self._armed and self.fault == "loss":
            nan = torch.full_like(losses["loss"], float("nan"))
            losses = {**losses, "loss": losses["loss"] + nan, "heatmap": nan}
        return losses


def _pause_checkpoint_writes(spec: str, marker: Path) -> None:
    mode, _, nth = spec.partition(":")
    if mode != "tmp" or not nth.isdigit():
        raise ValueError(f"VIDPOSE_FAULT_CKPT: expected tmp:<n>, got {spec!r}")
    original = _checkpoint._atomic_write
    writes = {"n": 0}

    def pause() -> None:
        marker.write_text(spec)
        while True:
            time.sleep(1.0)

    def atomic_write(path: Path, data: bytes) -> None:
        is_step = _checkpoint._STEP_FILE.match(path.name) is not None
        if is_step:
            writes["n"] += 1
        if is_step and writes["n"] == int(nth):
            fd, _ = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
            pause()
        original(path, data)

    _checkpoint._atomic_write = atomic_write


def _pause_before_micro_step(k: int, marker: Path, seconds: float) -> None:
    from vidpose.engine.trainer import Trainer

    original = Trainer._train_micro
    calls = {"n": 0}

    def train_micro(self, batch, sync):
        if calls["n"] == k:
            marker.write_text(str(self.step))
            deadline = time.monotonic() + seconds
            # a stop signal ends the pause, so tests need not guess how long delivery takes
            while time.monotonic() < deadline and getattr(self, "_stop_signal", None) is None:
                time.sleep(0.05)
        calls["n"] += 1
        return original(self, batch, sync)

    Trainer._train_micro = train_micro


if os.environ.get("VIDPOSE_FAULT_PAUSE_MICRO"):
    _pause_before_micro_step(
        int(os.environ["VIDPOSE_FAULT_PAUSE_MICRO"]),
        Path(os.environ["VIDPOSE_FAULT_MARKER"]),
        float(os.environ.get("VIDPOSE_FAULT_PAUSE_S", "inf")),
    )
if os.environ.get("VIDPOSE_FAULT_CKPT"):
    _pause_checkpoint_writes(os.environ["VIDPOSE_FAULT_CKPT"], Path(os.environ["VIDPOSE_FAULT_MARKER"]))
