"""Optimizer parameter groups (layer-wise LR decay, no decay on 1-D params) and LR schedules.

The schedule is a pure function of the optimizer step, so a resumed run only needs the step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["build_param_groups", "build_optimizer", "LRSchedule", "apply_lr"]


def _backbone_layer_info(backbone: nn.Module) -> tuple[int, object, set[str]]:
    num_layers = int(getattr(backbone, "num_layers", 0))
    layer_id = getattr(backbone, "layer_id", None)
    no_wd = set(backbone.no_weight_decay()) if hasattr(backbone, "no_weight_decay") else set()
    return num_layers, layer_id, no_wd


def build_param_groups(
    model: nn.Module, weight_decay: float, layer_decay: float | None = None
) -> list[dict]:
    """Trainable parameters grouped by (LR scale, weight decay).

    Backbone parameters get ``layer_decay ** (num_layers + 1 - layer_id)`` (ViTPose's rule)
    when ``layer_decay`` is set; everything else scale 1. 1-D parameters, biases and names
    the backbone lists in ``no_weight_decay()`` get no weight decay. Frozen parameters are
    left out. Each group carries ``lr_scale`` and ``name``.
    """
    backbone = getattr(model, "backbone", None)
    num_layers, layer_id, no_wd = _backbone_layer_info(backbone) if backbone is not None else (0, None, set())
    groups: dict[tuple[float, float], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        scale = 1.0
        local = name
        if backbone is not None and name.startswith("backbone."):
            local = name[len("backbone."):]
            if layer_decay is not None and layer_id is not None:
                scale = float(layer_decay) ** (num_layers + 1 - layer_id(local))
        decay = 0.0 if (param.ndim <= 1 or name.endswith(".bias") or local in no_wd) else float(weight_decay)
        key = (scale, decay)
        if key not in groups:
            groups[key] = {"params": [], "lr_scale": scale, "weight_decay": decay, "name": f"scale{scale:.4g}_wd{decay:g}"}
        groups[key]["params"].append(param)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return [groups[k] for k in sorted(groups)]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.01,
    betas: Sequence[float] = (0.9, 0.999),
    layer_decay: float | None = None,
    name: str = "adamw",
    amsgrad: bool = False,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """AdamW / Adam / SGD over :func:`build_param_groups`; each group's ``initial_lr`` = lr x scale."""
    groups = build_param_groups(model, weight_decay, layer_decay)
    for g in groups:
        g["lr"] = g["initial_lr"] = lr * g["lr_scale"]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), amsgrad=amsgrad)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(betas), amsgrad=amsgrad)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    raise ValueError(f"optim.name: unknown optimizer {name!r}; expected adamw, adam or sgd")


@dataclass
class LRSchedule:
    """LR factor per optimizer step: linear warm-up, then cosine or multi-step decay.

    ``milestones`` are in epochs (multistep); ``min_lr_ratio`` is the cosine floor.
    """

    name: str
    epochs: int
    steps_per_epoch: int
    warmup_iters: int = 0
    warmup_ratio: float = 0.001
    milestones: Sequence[int] = ()
    gamma: float = 0.1
    min_lr_ratio: float = 0.0
    warmup_by_epoch: bool = False

    def __post_init__(self) -> None:
        if self.name not in ("cosine", "multistep", "constant"):
            raise ValueError(f"schedule.name: unknown schedule {self.name!r}; expected cosine, multistep or constant")
        if self.steps_per_epoch < 1:
            raise ValueError("schedule: an epoch must have at least one optimizer step")

    @property
    def total_steps(self) -> int:
        """Optimizer steps over the whole run."""
        return self.epochs * self.steps_per_epoch

    def _warmup_steps(self) -> int:
        return self.warmup_iters * self.steps_per_epoch if self.warmup_by_epoch else self.warmup_iters

    def factor(self, step: int) -> float:
        """Multiplier of the base LR at optimizer step ``step`` (0-based)."""
        warm = self._warmup_steps()
        if self.name == "cosine":
            span = max(1, self.total_steps - warm)
            progress = min(1.0, max(0.0, (step - warm) / span))
            base = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.name == "multistep":
            epoch = step // self.steps_per_epoch
            base = self.gamma ** sum(epoch >= m for m in self.milestones)
        else:
            base = 1.0
        if step < warm:
            alpha = step / warm
            base *= self.warmup_ratio + (1 - self.warmup_ratio) * alpha
        return base


def apply_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's LR to ``initial_lr x factor``."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
