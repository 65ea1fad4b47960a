"""The optional ONNX packages (``pip install -e ".[export]"``), imported with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(name: str) -> ModuleType:
    """Import ``onnx``, ``onnxscript`` or ``onnxruntime``, or raise ImportError saying how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(
            f"{name} is not installed; ONNX export and the onnxruntime backend need `pip install -e \".[export]\"`"
        ) from None
