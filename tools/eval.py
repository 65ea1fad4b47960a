"""Evaluate a model: ``python tools/eval.py ckpt=<vidpose checkpoint> [key=value ...]``
or ``python tools/eval.py +exp=<name> init_from=<weights>``.

With ``ckpt=`` the model and its configuration are rebuilt from the checkpoint alone; the
command-line overrides are applied on top of the stored configuration.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vidpose.engine.trainer import evaluate


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
