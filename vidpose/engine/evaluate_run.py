"""``tools/eval.py``: evaluate a checkpoint (rebuilt from its stored config) or initial weights.

With ``ckpt=<path>`` the run's configuration is the one stored in the checkpoint, except:

- ``paths`` are this machine's (``$VIDPOSE_DATA``, ``$VIDPOSE_CACHE``, the evaluation's own
  output folder), and every stored value under the stored data or cache root moves under the
  new one;
- the subset limits in :data:`NOT_INHERITED` (a smoke or overfit run's debug settings) come from
  this command's composition (null unless asked for, e.g. ``trainer.val_max_instances=8``), and
  a result on a subset says so;
- the command line's overrides apply on top of both (e.g. ``data.val.boxes=detections``).

The output folder is ``outputs/<the checkpoint's exp_name>/eval_<time>_<random>/``
(``configs/eval.yaml``). With ``init_from=<weights>`` the composed config is used.
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
from vidpose.engine.provenance import run_provenance
from vidpose.engine.run_identity import ENV_PATHS, flatten, rebase_paths
from vidpose.engine.settings import validate_settings
from vidpose.registry import to_plain

__all__ = ["run_evaluation", "resolve_eval_config", "build_evaluator", "NOT_INHERITED"]

log = logging.getLogger("vidpose.eval")

# keys of the evaluation command line that describe the evaluation run, not the model
_EVAL_ONLY = ("ckpt", "analysis", "paths.output_dir", "hydra.")
# a training run's subset and debug limits: an evaluation takes them from its own composition
NOT_INHERITED = (
    "trainer.val_max_instances", "trainer.train_max_instances", "trainer.max_steps", "evaluation.require_coverage",
)


def _cli_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def resolve_eval_config(cfg: DictConfig, overrides: Sequence[str] | None = None) -> tuple[DictConfig, dict | None]:
    """The config to evaluate with and the checkpoint state (None without ``ckpt``)."""
    if cfg.get("ckpt"):
        state = load_checkpoint(str(cfg.ckpt))
        overrides = _cli_overrides() if overrides is None else list(overrides)
        model_overrides = [
            o.lstrip("+~")
            for o in overrides
            if not o.lstrip("+~").startswith(_EVAL_ONLY) and not o.lstrip("+").startswith("exp=")
        ]
        merged = OmegaConf.merge(_rebased(state["config"], cfg), OmegaConf.from_dotlist(model_overrides))
        for key in ("ckpt", "analysis", "save_sequences"):
            if key in cfg:
                OmegaConf.update(merged, key, cfg.get(key), force_add=True)
        return merged, state
    if not cfg.get("init_from"):
        raise ValueError("tools/eval.py needs ckpt=<vidpose checkpoint> or init_from=<weights file>")
    return cfg, None


def _rebased(stored: dict, cfg: DictConfig) -> DictConfig:
    """The stored config with this machine's ``paths`` and this composition's :data:`NOT_INHERITED` values."""
    current = to_plain(cfg)
    old, new = flatten(stored), flatten(current)
    flat = rebase_paths(old, {k: old[k] for k in ENV_PATHS if k in old}, {k: new[k] for k in ENV_PATHS if k in new})
    out = OmegaConf.create({})
    for key, value in flat.items():
        if not key.startswith("paths."):
            OmegaConf.update(out, key, value, force_add=True)
    for key in NOT_INHERITED:
        if key in new:
            OmegaConf.update(out, key, new[key], force_add=True)
    OmegaConf.update(out, "paths", current["paths"], force_add=True)
    return out


def build_evaluator(cfg: Any, info: DistInfo, out_dir: Path) -> Evaluator:
    """Evaluator over the validation split the config names."""
    layout, geometry = builders.build_layout(cfg), builders.build_geometry(cfg)
    index = builders.build_index(cfg, str(cfg.data.val.split))
    instances = builders.build_instances(cfg, index, False, cfg.trainer.get("val_max_instances"))
    dataset = builders.build_dataset(cfg, index, instances, geometry, layout, False)
    return builders.build_clip_evaluator(cfg, index, instances, dataset, geometry, layout, out_dir, info)


def _subset_note(cfg: Any, evaluated: int | None = None, total: int | None = None) -> str | None:
    """How the evaluation was limited to a subset (None when it was not)."""
    limit = cfg.trainer.get("val_max_instances")
    if limit is None or (total is not None and evaluated == total):
        return None
    counted = f": {evaluated} of {total} validation boxes" if total is not None else ""
    return f"a subset (trainer.val_max_instances={limit}{counted}); not comparable with full-set numbers"


def run_evaluation(cfg: DictConfig, info: DistInfo, overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate, print the metrics and write ``metrics.json`` into the run directory."""
    cfg, state = resolve_eval_config(cfg, overrides)
    validate_settings(to_plain(cfg))
    if str(cfg.get("task", "pose")) == "refine":
        from vidpose.engine.tasks import evaluate_refiner

        metrics = evaluate_refiner(cfg, state, info)
        note = _subset_note(cfg)
        if note and info.is_main:
            print(f"evaluated on {note}", flush=True)
        return metrics
    run_dir = Path(str(cfg.paths.output_dir))
    evaluator = build_evaluator(cfg, info, run_dir / "predictions")
    subset = None
    if cfg.trainer.get("val_max_instances") is not None:
        total = len(builders.build_instances(cfg, evaluator.index, False))
        subset = _subset_note(cfg, len(evaluator.instances), total)
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
    record = {"source": source, "dataset": evaluator.index.name, "subset": subset}
    provenance = run_provenance(to_plain(cfg), evaluator.index, str(info.device))
    record.update(config=to_plain(cfg), metrics=metrics, provenance=provenance)
    with open(run_dir / "metrics.json", "w") as fh:
        json.dump(record, fh, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))
    primary = evaluator.primary_metric
    print(f"{primary} on {evaluator.index.name}: {metrics.get(primary, float('nan')):.2f}  ({source})")
    if subset:
        print(f"  evaluated on {subset}")
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
