"""``tools/eval.py``: evaluate a checkpoint (rebuilt from its stored config) or initial weights.

With ``ckpt=<path>`` the run's configuration is the one stored in the checkpoint, with the
command line's overrides applied on top (e.g. ``data.val.boxes=detections``); the output
directory is the evaluation run's own. With ``init_from=<weights>`` the composed config is used.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vidpose.engine import builders
from vidpose.engine.checkpoint import load_checkpoint
from vidpose.engine.distributed import DistInfo
from vidpose.engine.evaluator import Evaluator
from vidpose.engine.initialise import initialise_weights
from vidpose.registry import to_plain

__all__ = ["run_evaluation", "resolve_eval_config", "build_evaluator"]

log = logging.getLogger("vidpose.eval")

# keys of the evaluation command line that describe the evaluation run, not the model
_EVAL_ONLY = ("ckpt", "analysis", "paths.output_dir", "hydra.")


def _cli_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def resolve_eval_config(cfg: DictConfig, overrides: Sequence[str] | None = None) -> tuple[DictConfig, dict | None]:
    """The config to evaluate with and the checkpoint state (None without ``ckpt``)."""
    if cfg.get("ckpt"):
        state = load_checkpoint(str(cfg.ckpt))
        stored = OmegaConf.create(state["config"])
        overrides = _cli_overrides() if overrides is None else list(overrides)
        model_overrides = [
            o.lstrip("+~")
            for o in overrides
            if not o.lstrip("+~").startswith(_EVAL_ONLY) and not o.lstrip("+").startswith("exp=")
        ]
        merged = OmegaConf.merge(stored, OmegaConf.from_dotlist(model_overrides))
        merged.paths.output_dir = str(cfg.paths.output_dir)
        for key in ("ckpt", "analysis", "save_sequences"):
            if key in cfg:
                OmegaConf.update(merged, key, cfg.get(key), force_add=True)
        return merged, state
    if not cfg.get("init_from"):
        raise ValueError("tools/eval.py needs ckpt=<vidpose checkpoint> or init_from=<weights file>")
    return cfg, None


def build_evaluator(cfg: Any, info: DistInfo, out_dir: Path) -> Evaluator:
    """Evaluator over the validation split the config names."""
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    index = builders.build_index(cfg, str(cfg.data.val.split))
    instances = builders.build_instances(cfg, index, False, cfg.trainer.get("val_max_instances"))
    dataset = builders.build_dataset(cfg, index, instances, geometry, layout, False)
    return builders.build_clip_evaluator(cfg, index, instances, dataset, geometry, layout, out_dir, info)


def run_evaluation(cfg: DictConfig, info: DistInfo, overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate, print the metrics and write ``metrics.json`` into the run directory."""
    cfg, state = resolve_eval_config(cfg, overrides)
    if str(cfg.get("task", "pose")) == "refine":
        from vidpose.engine.tasks import evaluate_refiner

        return evaluate_refiner(cfg, state, info)
    run_dir = Path(str(cfg.paths.output_dir))
    evaluator = build_evaluator(cfg, info, run_dir / "predictions")
    model = builders.build_model(cfg, evaluator.layout, evaluator.geometry).to(info.device)
    if state is not None:
        model.load_state_dict(state["model"])
        source = f"checkpoint {cfg.ckpt} (step {state.get('step')}, vidpose {state.get('vidpose_version')})"
    else:
        source = f"init_from {cfg.init_from}: {initialise_weights(model, str(cfg.init_from))}"
    log.info("evaluating %s", source)
    metrics = evaluator.evaluate(model, tag="eval")
    if not info.is_main:
        return {}
    predictions = metrics.pop("_predictions")
    if cfg.get("save_sequences"):
        _save_sequences(cfg, evaluator, predictions, run_dir, source)
    if cfg.get("analysis"):
        from vidpose.evaluation.motion_analysis import analyse_evaluation

        metrics.update(analyse_evaluation(str(cfg.analysis), evaluator, predictions, metrics, run_dir / "analysis"))
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"source": source, "dataset": evaluator.index.name, "config": to_plain(cfg), "metrics": metrics}
    with open(run_dir / "metrics.json", "w") as fh:
        json.dump(record, fh, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))
    primary = evaluator.primary_metric
    print(f"{primary} on {evaluator.index.name}: {metrics.get(primary, float('nan')):.2f}  ({source})")
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"  {key:<24} {value:8.2f}")
    print(f"metrics written to {run_dir / 'metrics.json'}", flush=True)
    return metrics


def _save_sequences(cfg: DictConfig, evaluator: Evaluator, predictions: list, run_dir: Path, source: str) -> None:
    """``save_sequences=true|<file.npz>``: the predictions as stage-1 sequences for a refiner (docs/methods/hanet.md)."""
    from vidpose.engine.sequences import export_sequences

    value = cfg.save_sequences
    name = evaluator.index.name.replace("/", "_")
    path = run_dir / "sequences" / f"{name}.npz" if value is True else Path(str(value))
    enlarge = float(cfg.data.augment.enlarge)
    export_sequences(path, evaluator.index, evaluator.instances, predictions, evaluator.geometry, enlarge, source)
    print(f"stage-1 sequences of {evaluator.index.name} written to {path}", flush=True)
