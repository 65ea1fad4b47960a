"""Training and evaluation engine: ``train(cfg)`` and ``evaluate(cfg)`` over resolved Hydra configs."""

from __future__ import annotations

from typing import Any

__all__ = ["train", "evaluate"]


def train(cfg: Any) -> dict[str, Any]:
    """Train the experiment ``cfg`` describes (see :mod:`vidpose.engine.trainer`)."""
    from vidpose.engine.trainer import train as _train

    return _train(cfg)


def evaluate(cfg: Any) -> dict[str, Any]:
    """Evaluate a checkpoint or initial weights (see :mod:`vidpose.engine.evaluate_run`)."""
    from vidpose.engine.trainer import evaluate as _evaluate

    return _evaluate(cfg)
