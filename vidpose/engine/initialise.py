"""``init_from=``: start a run from weights (never from optimizer state; that is ``resume=``).

Accepts a vidpose checkpoint (the whole model, matched by name: a different head keeps its
fresh initialisation and the report says so, but the backbone must match exactly) or an
official ViTPose / pose-HRNet file (the backbone through its converter, the head from the
file's ``keypoint_head`` when the head has a pretrained-head loader). A vidpose checkpoint of a
trained *single-frame* model (``deconv`` head) initialising another kind of head is loaded like
an official release: the backbone strictly (its heatmap layer, if any, from the single-frame
head's ``final_layer``) and the head through its pretrained-head loader, so a temporal method
starts from a single-frame model as the papers start from ViTPose / HRNet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vidpose.engine.checkpoint import is_vidpose_checkpoint, load_checkpoint
from vidpose.models.backbones.pretrained import PretrainedParts, read_pretrained, single_frame_model_parts
from vidpose.models.heads.deconv import DeconvHead
from vidpose.models.pose_model import PoseModel

__all__ = ["initialise_weights", "is_vidpose_checkpoint", "check_frozen_backbone_is_loaded"]

log = logging.getLogger(__name__)


def initialise_weights(model: PoseModel, path: str | Path) -> str:
    """Load weights into ``model`` from ``path``; returns a one-line report."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path} does not exist")
    if is_vidpose_checkpoint(path):
        state = load_checkpoint(path)["model"]
        own = model.state_dict()
        single_frame = None if isinstance(model.head, DeconvHead) else single_frame_model_parts(state, source=str(path))
        if single_frame is not None:
            # a trained single-frame model initialises a temporal head as an official release does
            return _load_pretrained_parts(model, single_frame)
        # a different head is the point of init_from; a different backbone (size, kind, input size)
        # would leave it half random while the run looks initialised, so that is an error
        wrong = [
            f"{k} (missing)" if k not in state else f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in own.items()
            if k.startswith("backbone.") and (k not in state or state[k].shape != v.shape)
        ]
        if wrong:
            raise ValueError(
                f"init_from: {path} holds another backbone than this model: {len(wrong)} backbone tensors are "
                f"missing or differ in shape (file vs model), e.g. {wrong[:4]}. Expected a vidpose checkpoint "
                "of the same backbone (kind, size, input size); only the head may differ"
            )
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise ValueError(f"init_from: no parameter of {path} matches this model by name and shape")
        skipped_shape = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
        model.load_state_dict(usable, strict=False)
        not_loaded = sorted(set(own) - set(usable))
        if skipped_shape:
            log.warning("init_from: %d tensors differ in shape and keep their initialisation: %s",
                        len(skipped_shape), skipped_shape[:10])
        return (
            f"vidpose checkpoint: {len(usable)} tensors loaded, {len(not_loaded)} kept their initialisation"
            + (f" (e.g. {not_loaded[:5]})" if not_loaded else "")
        )
    return _load_pretrained_parts(model, read_pretrained(path))


def _load_pretrained_parts(model: PoseModel, parts: PretrainedParts) -> str:
    """Backbone (and heatmap layer) strictly from ``parts``, the head through its pretrained-head loader."""
    report = model.backbone.load_pretrained_parts(parts)
    if not parts.head:
        return f"backbone from {report.summary()}; the file has no pose head"
    try:
        used = model.head.load_pretrained_head(parts.head)
    except NotImplementedError:
        log.warning("init_from: %s has no pretrained-head loader; the head keeps its initialisation",
                    type(model.head).__name__)
        return f"backbone from {report.summary()}; head not loaded"
    return f"backbone from {report.summary()}; head: {len(used)} tensors"



def check_frozen_backbone_is_loaded(cfg: Mapping[str, Any]) -> None:
    """Refuse to train a head on a frozen backbone that no option loads weights into.

    A frozen random backbone trains only the head on random features: the run looks normal and
    means nothing. Loaded means ``init_from`` or ``backbone.checkpoint``; a run that wants the
    random features on purpose (a CPU twin, a study of the head alone) says
    ``allow_random_frozen_backbone: true``.
    """
    head = cfg.get("head") or {}
    if not head.get("freeze_backbone") or cfg.get("allow_random_frozen_backbone"):
        return
    if cfg.get("init_from") or (cfg.get("backbone") or {}).get("checkpoint"):
        return
    raise ValueError(
        f"head {head.get('name')!r} freezes the backbone (head.freeze_backbone=true), but no weights are "
        f"loaded into it, so only the head would train, on random features. Set init_from=<weights> "
        f"(backbone and, where the file has one, the head) or backbone.checkpoint=<weights>; or set "
        f"allow_random_frozen_backbone=true to train on a random frozen backbone on purpose, or "
        f"head.freeze_backbone=false to train the backbone too"
    )
