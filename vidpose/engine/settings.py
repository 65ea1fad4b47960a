"""Up-front checks of every numeric trainer/optim/schedule setting: the key and its allowed range.

A bad number otherwise surfaces late and unnamed (``optim.accumulate=0``: a ZeroDivisionError
after the data is built; ``schedule.epochs=0``: a run that trains nothing and exits 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Rule", "SETTINGS", "validate_settings"]


@dataclass(frozen=True)
class Rule:
    """A number (``int`` or ``number``) in a range; ``optional``: null allowed; ``length``: a list (0: any length)."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    optional: bool = False
    length: int | None = None

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return ""

    def describe(self) -> str:
        """The allowed values in words, e.g. ``null or an integer >= 1``."""
        noun = "integer" if self.kind == "int" else "number"
        if self.length is None:
            text = f"an {noun} {self._range()}" if noun == "integer" else f"a {noun} {self._range()}"
        else:
            count = "a list of" if self.length == 0 else f"{self.length}"
            text = f"{count} {noun}s {self._range()}"
        return ("null or " if self.optional else "") + text.strip()

    def _number_ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def allows(self, value: Any) -> bool:
        """Whether ``value`` satisfies the rule."""
        if value is None:
            return self.optional
        if self.length is None:
            return self._number_ok(value)
        if not isinstance(value, (list, tuple)) or (self.length and len(value) != self.length):
            return False
        return all(self._number_ok(v) for v in value)


_INT_POS = Rule("int", 1)
_OPT_INT_POS = Rule("int", 1, optional=True)
_UNIT = Rule("number", 0, 1)

# every numeric setting of configs/trainer, configs/optim and configs/schedule (a test keeps it complete)
SETTINGS: dict[str, Rule] = {
    "trainer.batch_size": _INT_POS,
    "trainer.val_batch_size": _INT_POS,
    "trainer.num_workers": Rule("int", 0),
    "trainer.val_every": _INT_POS,
    "trainer.log_every": _INT_POS,
    "trainer.ckpt_every_steps": _OPT_INT_POS,
    "trainer.keep_last": _INT_POS,
    "trainer.max_skipped_steps": Rule("int", 0),
    "trainer.max_steps": _OPT_INT_POS,
    "trainer.train_max_instances": _OPT_INT_POS,
    "trainer.val_max_instances": _OPT_INT_POS,
    "trainer.dist_timeout_s": Rule("number", 0, open_low=True),
    "optim.lr": Rule("number", 0, open_low=True),
    "optim.weight_decay": Rule("number", 0),
    "optim.betas": Rule("number", 0, 1, open_high=True, length=2),
    "optim.layer_decay": Rule("number", 0, 1, open_low=True, optional=True),
    "optim.clip_grad": Rule("number", 0, open_low=True, optional=True),
    "optim.accumulate": _INT_POS,
    "optim.momentum": Rule("number", 0),
    "schedule.epochs": _INT_POS,
    "schedule.warmup_iters": Rule("int", 0),
    "schedule.warmup_ratio": _UNIT,
    "schedule.min_lr_ratio": _UNIT,
    "schedule.milestones": Rule("int", 1, length=0),
    "schedule.gamma": Rule("number", 0, open_low=True),
}


def _lookup(config: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_settings(config: Mapping[str, Any], world_size: int = 1) -> None:
    """Raise ``ValueError`` naming every bad setting of a plain config and its allowed range."""
    problems = []
    for key, rule in SETTINGS.items():
        present, value = _lookup(config, key)
        if present and not rule.allows(value):
            problems.append(f"{key}: expected {rule.describe()}, got {value!r}")
    if not problems and str(config.get("task", "pose")) == "pose":
        trainer, optim = config["trainer"], config["optim"]
        limit = trainer.get("train_max_instances")
        per_step = int(trainer["batch_size"]) * int(optim.get("accumulate", 1)) * world_size
        if limit is not None and per_step > int(limit):
            problems.append(
                f"trainer.train_max_instances={limit} keeps fewer training samples than one optimizer step takes "
                f"(trainer.batch_size={trainer['batch_size']} x optim.accumulate={optim.get('accumulate', 1)} x "
                f"{world_size} processes = {per_step}): lower trainer.batch_size or raise trainer.train_max_instances"
            )
    if problems:
        raise ValueError("invalid settings:\n  " + "\n  ".join(problems))
