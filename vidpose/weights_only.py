"""Weights-only ``torch.load`` that also accepts numpy's array/scalar/dtype reconstruction.

Checkpoints of the mmcv era (the released ViTPose and mmpose HRNet files) keep numpy arrays,
scalars and dtypes in their ``meta`` (``hook_msgs.best_score``, ``epoch``), which a plain
``torch.load(weights_only=True)`` refuses. Rebuilding an array or a scalar from its bytes runs
no code, so every vidpose load path accepts exactly those globals, under both their numpy 1.x
and 2.x module names, and still refuses every other pickled global with the names of the
offenders: a file is never unpickled with ``weights_only=False``.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = ["UnsafeCheckpointError", "load_bytes_weights_only", "load_weights_only", "numpy_allowlist"]

_NUMPY_GLOBAL = re.compile(
    r"^numpy\.(ndarray|dtype|(_core|core)\.multiarray\.(_reconstruct|scalar)|dtypes\.\w+DType)$"
)

RESAVE_HINT = (
    "re-save the bare state dict in a trusted environment, e.g. "
    "torch.save(torch.load(IN, weights_only=False)['state_dict'], OUT)"
)


class UnsafeCheckpointError(RuntimeError):
    """A file pickles objects a weights-only load refuses; the message names them and the file."""


def numpy_allowlist() -> list[Any]:
    """numpy's array/scalar/dtype reconstruction globals, under their numpy 1.x and 2.x names."""
    import numpy as np

    try:  # numpy >= 2 moved numpy.core to numpy._core
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")
    try:  # per-dtype classes exist from numpy 1.25 on; older files do not reference them
        dtypes = importlib.import_module("numpy.dtypes")
    except ImportError:
        dtypes = None
    dtype_classes = []
    if dtypes is not None:
        dtype_classes = [
            cls
            for name in dir(dtypes)
            if isinstance(cls := getattr(dtypes, name), type) and issubclass(cls, np.dtype)
        ]
    return [
        np.ndarray,
        np.dtype,
        *dtype_classes,
        # the same functions under both module names, whichever numpy wrote the file
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        (multiarray.scalar, "numpy._core.multiarray.scalar"),
    ]


def _refused_globals(source: Path | BinaryIO, error: Exception) -> list[str]:
    """Globals that stopped a weights-only load: scanned from a zip file, or parsed from the error."""
    if isinstance(source, Path):
        try:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(str(source))
        except (ValueError, RuntimeError):
            found = []  # legacy (non-zip) files cannot be scanned; the error names the first offender
        if found:
            return list(found)
    message = str(error)
    named = re.findall(r"GLOBAL ([\w.]+)", message) + re.findall(r"got <class '([\w.]+)'>", message)
    return sorted(set(named))


def _rewind(source: Path | BinaryIO) -> Path | BinaryIO:
    if not isinstance(source, Path):
        source.seek(0)
    return source


def load_weights_only(source: str | Path | BinaryIO, map_location: Any = "cpu", *, name: str | None = None) -> Any:
    """``torch.load(source, weights_only=True)`` that also accepts numpy's reconstruction globals.

    ``source`` is a file path or a seekable binary stream; ``name`` labels it in errors (default
    the path). Raises :class:`UnsafeCheckpointError` naming every other global the file pickles.
    """
    source = Path(source) if isinstance(source, (str, Path)) else source
    label = name or str(source)
    try:
        return torch.load(_rewind(source), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        offenders = _refused_globals(source, error)
        if not offenders:
            raise UnsafeCheckpointError(f"checkpoint {label} cannot be read by a weights-only torch.load: {error}") from None
        unsafe = [g for g in offenders if not _NUMPY_GLOBAL.match(g)]
        if unsafe:
            raise UnsafeCheckpointError(
                f"checkpoint {label} pickles objects that a weights-only load refuses: {', '.join(unsafe)}. "
                f"vidpose never unpickles arbitrary objects (numpy arrays, scalars and dtypes are accepted); "
                f"{RESAVE_HINT}"
            ) from None
    try:
        with torch.serialization.safe_globals(numpy_allowlist()):
            return torch.load(_rewind(source), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as second_error:
        still = _refused_globals(source, second_error) or [str(second_error)]
        raise UnsafeCheckpointError(
            f"checkpoint {label} still fails a weights-only load with numpy's globals allowed "
            f"({', '.join(still)}); {RESAVE_HINT}"
        ) from None


def load_bytes_weights_only(data: bytes, map_location: Any = "cpu", *, name: str) -> Any:
    """:func:`load_weights_only` of an in-memory file (e.g. the payload of a checksummed checkpoint)."""
    return load_weights_only(io.BytesIO(data), map_location, name=name)
