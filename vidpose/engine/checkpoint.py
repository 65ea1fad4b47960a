"""Checkpoints: atomic writes, a SHA-256 sidecar and format version, newest-valid discovery.

A checkpoint ``step_00001234.pt`` is written to a temporary file, flushed, fsynced and
renamed; then its sidecar ``step_00001234.pt.sha256`` (digest and format version) is written
the same way. A file whose sidecar is missing or disagrees (a kill between the two renames,
a truncated copy, a flipped bit) is rejected by :func:`load_checkpoint`, and
:func:`find_latest` then falls back to the previous file with a warning naming the bad one.
Loading uses ``torch.load(weights_only=True)``: every field is a tensor or a plain value.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "find_latest",
    "CheckpointManager",
    "capture_rng_state",
    "restore_rng_state",
]

FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, of another format version or not a vidpose file."""


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors and plain values) atomically with its checksum sidecar."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save({**state, "format_version": FORMAT_VERSION}, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    _atomic_write(path, data)
    _atomic_write(_sidecar(path), f"{digest} format_version={FORMAT_VERSION}\n".encode())
    return path


def _verify(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint {path} has no checksum file {sidecar.name} (interrupted write?)")
    fields = sidecar.read_text().split()
    if not fields or hashlib.sha256(data).hexdigest() != fields[0]:
        raise CheckpointError(f"checkpoint {path} does not match its checksum (corrupt or truncated)")
    return data


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify the checksum and load a vidpose checkpoint with ``weights_only=True``."""
    path = Path(path)
    data = _verify(path)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} could not be read: {exc}") from exc
    version = state.get("format_version") if isinstance(state, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this vidpose reads version {FORMAT_VERSION}"
        )
    return state


def find_latest(directory: str | os.PathLike) -> Path | None:
    """Newest ``step_*.pt`` in ``directory`` that verifies; invalid newer files are named in a warning."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_FILE.match(p.name))
    )
    for _, path in reversed(candidates):
        try:
            _verify(path)
        except CheckpointError as exc:
            log.warning("skipping checkpoint: %s; trying the previous one", exc)
            continue
        return path
    return None


class CheckpointManager:
    """Writes ``step_*.pt`` files into a directory, keeps the newest ``keep_last`` and ``best.pt``."""

    def __init__(self, directory: str | os.PathLike, keep_last: int = 2) -> None:
        if keep_last < 1:
            raise ValueError("trainer.keep_last must be at least 1")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def save(self, state: Mapping[str, Any], step: int, is_best: bool = False) -> Path:
        """Write the step checkpoint (and ``best.pt`` when ``is_best``), then prune old ones."""
        path = save_checkpoint(state, self.directory / f"step_{step:08d}.pt")
        if is_best:
            self.save_best_from(path)
        self._prune()
        return path

    def save_best_from(self, path: Path) -> Path:
        """Copy a verified step checkpoint to ``best.pt`` (atomically, with its sidecar)."""
        best = self.directory / "best.pt"
        _atomic_write(best, _verify(path))
        shutil.copyfile(_sidecar(path), _sidecar(best))
        return best

    def _prune(self) -> None:
        steps = sorted(
            (int(m.group(1)), p) for p in self.directory.iterdir() if (m := _STEP_FILE.match(p.name))
        )
        for _, path in steps[: -self.keep_last]:
            path.unlink(missing_ok=True)
            _sidecar(path).unlink(missing_ok=True)

    def latest(self) -> Path | None:
        """Newest valid step checkpoint."""
        return find_latest(self.directory)

    def remove_partial_writes(self) -> list[Path]:
        """Delete temporary files a killed writer left behind (call before this run writes any)."""
        if not self.directory.is_dir():
            return []
        partial = sorted(p for p in self.directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))
        for path in partial:
            path.unlink(missing_ok=True)
        if partial:
            log.warning("removed %d partial checkpoint writes of an interrupted run: %s", len(partial),
                        [p.name for p in partial])
        return partial


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states as weights_only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
