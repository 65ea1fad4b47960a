"""Helpers to compose experiment configs for engine tests (tiny synthetic data, CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory) -> Path:
    """A cache root shared by the session (reuses $VIDPOSE_CACHE when set, to skip regeneration)."""
    existing = os.environ.get("VIDPOSE_CACHE")
    return Path(existing) if existing else tmp_path_factory.mktemp("vidpose_cache")


@pytest.fixture
def compose_exp(synthetic_cache, tmp_path):
    """compose_exp(name, *overrides, out=None) -> a resolved-able DictConfig writing into tmp_path."""

    def _compose(name: str, *overrides: str, out: Path | None = None):
        out = out or tmp_path / "run"
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            return compose(
                config_name="train",
                overrides=[
                    f"+exp={name}",
                    f"paths.output_dir={out}",
                    f"paths.cache_root={synthetic_cache}",
                    "trainer.num_workers=0",
                    "trainer.tensorboard=false",
                    *overrides,
                ],
            )

    return _compose
