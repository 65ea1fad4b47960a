"""Output files of the evaluator command lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["prepare_output_file", "write_json_file"]


def prepare_output_file(path: str | Path) -> Path:
    """Create the folder of an output file before a long computation; OSError names the path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output file {path} is an existing folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(
            f"cannot create the folder {path.parent} of the output file {path}: "
            f"{err.strerror or err}"
        ) from None
    return path


def write_json_file(path: Path, data: Any, indent: int) -> None:
    """Write ``data`` as JSON; OSError names the path."""
    try:
        with path.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent)
    except OSError as err:
        raise OSError(f"cannot write the output file {path}: {err.strerror or err}") from None
