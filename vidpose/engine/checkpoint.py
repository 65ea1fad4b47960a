"""Checkpoints: one self-verifying file each, atomic writes, newest-valid discovery.

A checkpoint ``step_00001234.pt`` is one file: a header line ``vidpose-checkpoint 2
sha256=<digest> meta=<n>``, ``n`` bytes of JSON metadata (config, step, epoch, world size, final
metrics: what resume and evaluation read without loading the weights) and the ``torch.save``
payload; the digest covers metadata and payload. It is written to a temporary file of its own
(unique per writer), flushed, fsynced and renamed, so a file is either absent or whole and
self-consistent, whatever crashes or races with another writer. A truncated copy or a flipped
bit is rejected by :func:`load_checkpoint`, and :func:`find_latest` then falls back to the
previous file with a warning naming the bad one. Version-1 files (payload plus a separate
``.sha256`` sidecar) are still read. Loading uses ``torch.load(weights_only=True)``: every field
is a tensor or a plain value.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMAT_VERSION",
    "META_KEYS",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "read_meta",
    "verify_checkpoint",
    "is_vidpose_checkpoint",
    "find_latest",
    "step_files",
    "CheckpointManager",
    "capture_rng_state",
    "restore_rng_state",
]

FORMAT_VERSION = 2
# versions of the payload this code reads: 1 (with a .sha256 sidecar), 2 (digest in the header)
_READABLE = (1, 2)
_MAGIC = b"vidpose-checkpoint "
_HEADER = re.compile(rb"^vidpose-checkpoint (\d+) sha256=([0-9a-f]{64}) meta=(\d+)$")
_MAX_HEADER = 256
# state fields copied into the JSON metadata (plain values only)
META_KEYS = (
    "vidpose_version", "config", "step", "epoch", "world_size", "run_dir",
    "metrics", "finished", "primary_metric", "val_name",
)
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


def _encode(state: Mapping[str, Any]) -> bytes:
    """Header line, JSON metadata and ``torch.save`` payload, built with one copy of the payload."""
    meta = json.dumps({k: state[k] for k in META_KEYS if k in state}).encode()
    buffer = io.BytesIO()
    buffer.write(meta)
    torch.save({**state, "format_version": FORMAT_VERSION}, buffer)
    with buffer.getbuffer() as body:
        header = f"vidpose-checkpoint {FORMAT_VERSION} sha256={hashlib.sha256(body).hexdigest()} meta={len(meta)}\n"
        return b"".join((header.encode(), body))


def _write(path: Path, data: bytes) -> None:
    _atomic_write(path, data)
    # a version-1 sidecar left by an older file of this name would only mislead a reader
    _sidecar(path).unlink(missing_ok=True)


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors and plain values) atomically as one self-verifying file."""
    path = Path(path)
    _write(path, _encode(state))
    return path


def _parse_header(line: bytes, path: Path) -> tuple[int, str, int]:
    match = _HEADER.match(line)
    if match is None:
        raise CheckpointError(f"checkpoint {path} has a malformed header (corrupt or truncated)")
    return int(match.group(1)), match.group(2).decode(), int(match.group(3))


def _verify(data: bytes, path: Path) -> int:
    """Check a file's bytes against their digest; returns where the torch payload starts."""
    if data.startswith(_MAGIC):
        line = data[:_MAX_HEADER].partition(b"\n")[0]
        version, digest, meta_len = _parse_header(line, path)
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {version}; this vidpose reads versions {_READABLE}"
            )
        body = memoryview(data)[len(line) + 1 :]  # no copy of a multi-GB file
        if hashlib.sha256(body).hexdigest() != digest:
            raise CheckpointError(f"checkpoint {path} does not match its checksum (corrupt or truncated)")
        return len(line) + 1 + meta_len
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise CheckpointError(f"checkpoint {path} has no checksum file {sidecar.name} (interrupted write?)")
    fields = sidecar.read_text().split()
    if not fields or hashlib.sha256(data).hexdigest() != fields[0]:
        raise CheckpointError(f"checkpoint {path} does not match its checksum (corrupt or truncated)")
    return 0


def _read_verified(path: Path) -> tuple[bytes, int]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    return data, _verify(data, path)


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a whole vidpose checkpoint (checksum checked)."""
    _read_verified(Path(path))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify the checksum and load a vidpose checkpoint with ``weights_only=True``."""
    path = Path(path)
    data, offset = _read_verified(path)
    buffer = io.BytesIO(data)
    buffer.seek(offset)
    try:
        state = torch.load(buffer, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} could not be read: {exc}") from exc
    version = state.get("format_version") if isinstance(state, dict) else None
    if version not in _READABLE:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this vidpose reads versions {_READABLE}"
        )
    return state


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint (:data:`META_KEYS`) without loading its weights.

    Version-2 files: the header's JSON, read without verifying the payload (``load_checkpoint``
    verifies); version-1 files: loaded and verified in full.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(_MAX_HEADER)
        if not head.startswith(_MAGIC):
            state = load_checkpoint(path)
            return {k: state[k] for k in META_KEYS if k in state}
        line = head.partition(b"\n")[0]
        _, _, meta_len = _parse_header(line, path)
        fh.seek(len(line) + 1)
        meta = fh.read(meta_len)
    try:
        return json.loads(meta)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path}: unreadable metadata ({exc})") from exc


def is_vidpose_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` was written by vidpose (a version-2 header, or a version-1 sidecar)."""
    path = Path(path)
    if _sidecar(path).is_file():
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_MAGIC)) == _MAGIC
    except OSError:
        return False


def step_files(directory: str | os.PathLike) -> list[Path]:
    """``step_*.pt`` files of ``directory``, oldest step first (none if it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_FILE.match(p.name)))
    return [p for _, p in found]


def find_latest(directory: str | os.PathLike) -> Path | None:
    """Newest ``step_*.pt`` in ``directory`` that verifies; invalid newer files are named in a warning."""
    for path in reversed(step_files(directory)):
        try:
            verify_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping checkpoint: %s; trying the previous one", exc)
            continue
        return path
    return None


class CheckpointManager:
    """Writes ``step_*.pt`` files into a directory, keeps the newest ``keep_last`` and ``best.pt``.

    Pruning only ever deletes files of this run: the ones it wrote and the ones :meth:`adopt`
    was given (those of the run it resumes in the same directory).
    """

    def __init__(self, directory: str | os.PathLike, keep_last: int = 2) -> None:
        if keep_last < 1:
            raise ValueError("trainer.keep_last must be at least 1")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self._own: set[str] = set()

    def adopt(self, paths: Iterable[Path]) -> None:
        """Count existing step files as this run's (it continues the run that wrote them)."""
        self._own.update(Path(p).name for p in paths)

    def save(self, state: Mapping[str, Any], step: int, is_best: bool = False) -> Path:
        """Write the step checkpoint (and ``best.pt`` when ``is_best``), then prune old ones."""
        data = _encode(state)  # once: best.pt is the same bytes
        path = self.directory / f"step_{step:08d}.pt"
        _write(path, data)
        self._own.add(path.name)
        if is_best:
            _write(self.directory / "best.pt", data)
        self._prune()
        return path

    def _prune(self) -> None:
        own = [p for p in step_files(self.directory) if p.name in self._own]
        for path in own[: -self.keep_last]:
            path.unlink(missing_ok=True)
            _sidecar(path).unlink(missing_ok=True)
            self._own.discard(path.name)

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
