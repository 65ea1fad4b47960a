"""``init_from=``: start a run from weights (never from optimizer state; that is ``resume=``).

Accepts a vidpose checkpoint (the whole model, matched by name: a different head keeps its
fresh initialisation and the report says so, but the backbone must match exactly) or an
official ViTPose / pose-HRNet file (the backbone through its converter, the head from the
file's ``keypoint_head`` when the head has a pretrained-head loader).
"""

from __future__ import annotations

import logging
from pathlib import Path

from vidpose.engine.checkpoint import load_checkpoint
from vidpose.models.backbones.pretrained import read_pretrained
from vidpose.models.pose_model import PoseModel

__all__ = ["initialise_weights", "is_vidpose_checkpoint"]

log = logging.getLogger(__name__)


def is_vidpose_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint written by vidpose's trainer (it has a checksum sidecar)."""
    return Path(str(path) + ".sha256").is_file()


def initialise_weights(model: PoseModel, path: str | Path) -> str:
    """Load weights into ``model`` from ``path``; returns a one-line report."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path} does not exist")
    if is_vidpose_checkpoint(path):
        state = load_checkpoint(path)["model"]
        own = model.state_dict()
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
    report = model.backbone.load_pretrained(path)
    head_state = read_pretrained(path).head
    if not head_state:
        return f"backbone from {report.summary()}; the file has no pose head"
    try:
        used = model.head.load_pretrained_head(head_state)
    except NotImplementedError:
        log.warning("init_from: %s has no pretrained-head loader; the head keeps its initialisation",
                    type(model.head).__name__)
        return f"backbone from {report.summary()}; head not loaded"
    return f"backbone from {report.summary()}; head: {len(used)} tensors"

