"""Run logging: console (rank 0), a log file in the run directory, and TensorBoard scalars and images."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunLogger", "setup_console_logging"]


def setup_console_logging(run_dir: Path | None, is_main: bool, level: int = logging.INFO) -> None:
    """Log to stderr (and ``run_dir/train.log``) on rank 0; warnings only elsewhere."""
    root = logging.getLogger("vidpose")
    root.setLevel(level if is_main else logging.WARNING)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    if run_dir is not None and is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(run_dir / "train.log")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)


class RunLogger:
    """TensorBoard writer on rank 0 (a no-op elsewhere or when disabled)."""

    def __init__(self, log_dir: Path, enabled: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))

    def scalars(self, values: Mapping[str, Any], step: int, prefix: str = "") -> None:
        """Write every numeric value of a mapping as a scalar."""
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}{key}", float(value), step)
            elif hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
                self.writer.add_scalar(f"{prefix}{key}", float(value.item()), step)

    def image(self, tag: str, image_hwc: np.ndarray, step: int) -> None:
        """Write one uint8 RGB image ``(H, W, 3)``."""
        if self.writer is not None:
            self.writer.add_image(tag, image_hwc, step, dataformats="HWC")

    def flush(self) -> None:
        """Flush pending events."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and close the writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
