"""Shared fixtures: locations of the real data samples in ``../shared/data``; one thread per xdist worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on two cores: a worker with torch's default thread count (all cores) would
    # fight the other worker for them; the runs tests start inherit the setting.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VIDPOSE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data sample {path} is absent (set VIDPOSE_SHARED_DATA or place ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real data samples; skips when absent."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def posetrack18_mini() -> Path:
    """The PoseTrack18 sample root (annotations/val, images/val, videos/)."""
    return _require(SHARED_DATA / "posetrack18_mini")


@pytest.fixture(scope="session")
def jhmdb_mini() -> Path:
    """The Sub-JHMDB sample root (COCO-style JSON + frames)."""
    return _require(SHARED_DATA / "jhmdb_mini")
