"""Train an experiment: ``python tools/train.py +exp=<name> [key=value ...]``.

A thin Hydra shell over :func:`vidpose.engine.train`; multi-GPU with
``torchrun --nproc_per_node=N tools/train.py +exp=<name>``.

Every run writes into a folder of its own, ``outputs/<exp_name>/<time>_<random>``; ``resume``
continues only a run of the same identity (README "Long runs and failures").

Exit codes: 0 finished (also when it resumed a run that had already finished: its stored final
metrics are printed, nothing is trained); 75 (``PREEMPTED_EXIT_CODE``) stopped by SIGTERM/SIGINT
after finishing the step and writing a checkpoint, so ``resume=auto`` continues; 3 a non-finite
loss or gradient with ``trainer.nan_policy=stop`` (or too many skipped steps); 1 any other error
(a refused resume or run folder included).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vidpose.engine.run_dirs import register_resolvers
from vidpose.engine.trainer import NonFiniteError, PREEMPTED_EXIT_CODE, train

register_resolvers()  # the run folder's name (configs/hydra/default.yaml), before Hydra composes


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    try:
        metrics = train(cfg)
    except NonFiniteError as exc:
        print(f"training stopped: {exc}", file=sys.stderr)
        sys.exit(3)
    if "stopped_by_signal" in metrics:
        sys.exit(PREEMPTED_EXIT_CODE)


if __name__ == "__main__":
    main()
