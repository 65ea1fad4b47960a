"""Evaluate a model: ``python tools/eval.py ckpt=<vidpose checkpoint> [key=value ...]``
or ``python tools/eval.py +exp=<name> init_from=<weights>``.

With ``ckpt=`` the model and its configuration are rebuilt from the checkpoint alone; the
command-line overrides and this machine's ``paths`` (``$VIDPOSE_DATA``, ``$VIDPOSE_CACHE``) are
applied on top of the stored configuration, and its subset limits are not
(:mod:`vidpose.engine.evaluate_run`). Results go to
``outputs/<the checkpoint's exp_name>/eval_<time>_<random>/``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vidpose.engine.run_dirs import register_resolvers
from vidpose.engine.trainer import evaluate

register_resolvers()  # the output folder's name (configs/eval.yaml), before Hydra composes


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
