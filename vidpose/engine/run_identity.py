"""A run's identity: what it trains, so ``resume`` continues only the run it should.

The identity is the resolved config, flattened to dotted keys, minus :data:`MAY_CHANGE_ON_RESUME`
(the one list of keys a resumed run may change), with every path under ``paths.data_root`` or
``paths.cache_root`` written relative to that root (requeued on another machine, the same run
reads the same data from another mount), and ``optim.accumulate``
replaced by ``optim.accumulate x world_size`` (the sampler makes N processes equal one process
accumulating N micro-batches, so the device count may change when the product does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "MAY_CHANGE_ON_RESUME",
    "ENV_PATHS",
    "ACCUMULATION_KEY",
    "run_identity",
    "identity_differences",
    "format_differences",
    "flatten",
    "rebase_paths",
]

# key (or section) -> why a resumed run may change it
MAY_CHANGE_ON_RESUME: dict[str, str] = {
    "resume": "how this process starts, not what it trains",
    "resume_allow_changes": "how this process starts",
    "paths": "machine-specific roots ($VIDPOSE_DATA, $VIDPOSE_CACHE) and the run folder; values under "
    "the two roots are compared relative to them",
    "trainer.device": "the hardware this process was given",
    "trainer.num_workers": "loader processes; every sample's randomness depends on (seed, epoch, index) only",
    "trainer.val_batch_size": "evaluation batching",
    "trainer.val_every": "evaluation cadence",
    "trainer.validate_at_start": "only read at step 0",
    "trainer.log_every": "logging",
    "trainer.tensorboard": "logging",
    "trainer.ckpt_every_steps": "checkpoint cadence",
    "trainer.keep_last": "checkpoint retention",
    "trainer.nan_policy": "failure handling (resuming with skip after a stop is the point)",
    "trainer.max_skipped_steps": "failure handling",
    "trainer.dist_timeout_s": "failure detection",
    "trainer.deterministic": "kernel selection",
    "data.frame_cache_mb": "memory only",
    "evaluation.flow_cache_mb": "memory only",
    "optim.accumulate": "compared as optim.accumulate x world_size",
}
# roots that come from the environment ($VIDPOSE_DATA, $VIDPOSE_CACHE); values under them are
# compared relative to them (the run folder is not one: a resumed run may get a new folder, and
# paths into the old one still point there)
ENV_PATHS = ("paths.data_root", "paths.cache_root")
ACCUMULATION_KEY = "optim.accumulate x world_size"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _covered(key: str, sections: Iterable[str]) -> bool:
    return any(key == s or key.startswith(s + ".") for s in sections)


def rebase_paths(flat: Mapping[str, Any], old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, Any]:
    """String values under an ``old`` root (``{"paths.data_root": "/mnt/a"}``) moved under the ``new`` one."""
    out = dict(flat)
    roots = [(str(old[k]).rstrip("/"), str(new[k])) for k in old if old.get(k) not in (None, "") and k in new]
    for key, value in flat.items():
        if not isinstance(value, str) or _covered(key, ("paths",)):
            continue
        for root, replacement in roots:
            if value == root or value.startswith(root + "/"):
                out[key] = replacement + value[len(root):]
                break
    return out


def run_identity(config: Mapping[str, Any], world_size: int) -> dict[str, Any]:
    """The identity (flat dotted keys) of a resolved, plain config trained on ``world_size`` processes."""
    flat = flatten(config)
    roots = {k: flat[k] for k in ENV_PATHS if isinstance(flat.get(k), str)}
    flat = rebase_paths(flat, roots, {k: f"${{{k}}}" for k in roots})
    identity = {k: v for k, v in flat.items() if not _covered(k, MAY_CHANGE_ON_RESUME)}
    identity[ACCUMULATION_KEY] = int(world_size) * int(flat.get("optim.accumulate", 1))
    return identity


_ABSENT = "<absent>"


def identity_differences(
    stored: Mapping[str, Any], current: Mapping[str, Any], allowed: Sequence[str] = ()
) -> dict[str, tuple[Any, Any]]:
    """``{key: (stored value, current value)}`` for every differing key not covered by ``allowed``."""
    if _covered("optim.accumulate", allowed):
        allowed = [*allowed, ACCUMULATION_KEY]
    keys = sorted(set(stored) | set(current))
    return {
        k: (stored.get(k, _ABSENT), current.get(k, _ABSENT))
        for k in keys
        if stored.get(k, _ABSENT) != current.get(k, _ABSENT) and not _covered(k, allowed)
    }


def format_differences(differences: Mapping[str, tuple[Any, Any]], limit: int = 12) -> str:
    """``key: stored -> current`` items, the first ``limit`` of them."""
    items = [f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(differences.items())[:limit]]
    more = len(differences) - limit
    return "; ".join(items) + (f"; and {more} more" if more > 0 else "")
