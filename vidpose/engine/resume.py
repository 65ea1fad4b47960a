"""Where a run starts: fresh, or from the checkpoint of the run it continues, checked by identity.

- no ``resume``: a new run; its folder must hold no checkpoints (another run's would be
  overwritten and pruned).
- ``resume=auto``: if the run folder holds checkpoints (``hydra.run.dir`` pointed at it), the
  run in it is continued; otherwise the newest run of the same identity
  (:mod:`vidpose.engine.run_identity`) among the folders next to it (``outputs/<exp_name>/``).
  Runs of another identity are never continued: when only those exist, the start is refused
  with the differing keys of the nearest one. No run at all: a new run.
- ``resume=<checkpoint or checkpoints folder>``: that run, if its identity matches, except for
  the keys (or sections) listed in ``resume_allow_changes``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidpose.engine.checkpoint import CheckpointError, find_latest, read_meta, step_files, verify_checkpoint
from vidpose.engine.run_dirs import RunFolderError
from vidpose.engine.run_identity import flatten, format_differences, identity_differences, run_identity

__all__ = ["ResumeError", "StartPlan", "plan_start", "stop_reached"]

log = logging.getLogger("vidpose.train")


class ResumeError(RuntimeError):
    """``resume`` names no usable run, or a run of another identity."""


@dataclass(frozen=True)
class StartPlan:
    """The checkpoint to continue (None: a new run), its metadata, and this folder's files of that run."""

    checkpoint: Path | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    adopt: tuple[Path, ...] = ()


def stop_reached(step: int, epoch: int, epochs: int, max_steps: int | None) -> bool:
    """Whether a run at ``step``/``epoch`` has met its stop conditions."""
    return epoch >= epochs or (max_steps is not None and step >= max_steps)


def _stored_identity(meta: Mapping[str, Any], path: Path) -> dict[str, Any]:
    if not isinstance(meta.get("config"), Mapping):
        raise ResumeError(f"{path} holds no run configuration (not written by vidpose's trainer)")
    return run_identity(meta["config"], int(meta.get("world_size", 1)))


def _folder_meta(files: Sequence[Path]) -> tuple[Path, dict[str, Any]] | None:
    """Metadata of the newest readable step file of a folder (older ones are the same run)."""
    for path in reversed(files):
        try:
            return path, read_meta(path)
        except CheckpointError as exc:
            log.warning("resume=auto: %s", exc)
    return None


def _occupied(run_dir: Path, files: Sequence[Path]) -> RunFolderError:
    names = ", ".join(p.name for p in files[-3:])
    return RunFolderError(
        f"{run_dir} already holds checkpoints of another run ({names}); a new run there would overwrite "
        f"and prune them. Continue that run with resume=auto hydra.run.dir={run_dir} (and the same "
        "overrides), or start a new run in a new folder (drop hydra.run.dir)"
    )


def _allow_hint(differences: Mapping[str, Any]) -> str:
    return "resume_allow_changes=[" + ",".join(differences) + "]"


def _explicit(resume: str) -> Path:
    path = Path(resume)
    if path.is_dir():
        latest = find_latest(path)
        if latest is None:
            raise ResumeError(f"resume={resume}: no valid checkpoint in that directory")
        return latest
    if not path.is_file():
        raise ResumeError(f"resume={resume}: no such checkpoint file or directory")
    verify_checkpoint(path)  # its metadata decides what happens next
    return path


def _auto(identity: Mapping[str, Any], run_dir: Path) -> Path | None:
    """The newest checkpoint of a run of this identity next to ``run_dir``; refuses other identities."""
    own = (run_dir / "checkpoints").resolve()
    same: list[tuple[float, Path]] = []
    others: list[tuple[Path, dict]] = []
    for folder in sorted(run_dir.parent.glob("*/checkpoints")):
        files = step_files(folder)
        if folder.resolve() == own or not files:
            continue
        found = _folder_meta(files)
        if found is None:
            continue
        path, meta = found
        try:
            differences = identity_differences(_stored_identity(meta, path), identity)
        except ResumeError as exc:
            log.warning("resume=auto: skipping %s: %s", folder, exc)
            continue
        if differences:
            others.append((folder.parent, differences))
        else:
            same.append((files[-1].stat().st_mtime, folder))
    for _, folder in sorted(same, reverse=True):
        latest = find_latest(folder)
        if latest is not None:
            return latest
    if others:
        folder, differences = min(others, key=lambda item: len(item[1]))
        raise ResumeError(
            f"resume=auto: no run of this identity under {run_dir.parent}; the nearest, {folder}, differs in "
            f"{format_differences(differences)}. Start a new run without resume=auto, or continue that one "
            f"with resume={folder / 'checkpoints'} {_allow_hint(differences)}"
        )
    log.info("resume=auto: no earlier run under %s; starting a new run", run_dir.parent)
    return None


def _check_allowed(allowed: Sequence[str], config: Mapping[str, Any]) -> None:
    keys = set(flatten(config))
    unknown = [a for a in allowed if not any(k == a or k.startswith(a + ".") for k in keys)]
    if unknown:
        raise ResumeError(f"resume_allow_changes: {unknown} name no config key")


def plan_start(config: Mapping[str, Any], world_size: int, run_dir: Path) -> StartPlan:
    """Decide how the run of a plain resolved ``config`` in ``run_dir`` starts (module docstring)."""
    resume = config.get("resume")
    allowed = [str(a) for a in config.get("resume_allow_changes") or []]
    own_files = step_files(run_dir / "checkpoints")
    best = run_dir / "checkpoints" / "best.pt"
    occupied = [*own_files, best] if best.exists() else own_files
    if resume in (None, "", False):
        if occupied:
            raise _occupied(run_dir, occupied)
        if allowed:
            raise ResumeError("resume_allow_changes is set but resume is not: it only applies to resume=<path>")
        return StartPlan()
    identity = run_identity(config, world_size)
    if resume == "auto":
        if allowed:
            raise ResumeError(
                "resume_allow_changes applies to an explicit resume=<checkpoint or folder> only; resume=auto "
                "continues runs of the same identity"
            )
        if own_files:
            checkpoint = find_latest(run_dir / "checkpoints")
            if checkpoint is None:
                raise RunFolderError(f"{run_dir}: none of its checkpoints {[p.name for p in own_files]} is valid")
        elif occupied:
            raise _occupied(run_dir, occupied)
        else:
            checkpoint = _auto(identity, run_dir)
            if checkpoint is None:
                return StartPlan()
    else:
        _check_allowed(allowed, config)
        checkpoint = _explicit(str(resume))
    meta = read_meta(checkpoint)
    differences = identity_differences(_stored_identity(meta, checkpoint), identity, allowed)
    if differences:
        raise ResumeError(
            f"resume={resume}: {checkpoint} belongs to a run of another identity; differing keys (stored -> now): "
            f"{format_differences(differences)}. Continue it anyway with resume={checkpoint} "
            f"{_allow_hint(differences)}, or start a new run without resume"
        )
    here = checkpoint.parent.resolve() == (run_dir / "checkpoints").resolve()
    if occupied and not here:
        raise _occupied(run_dir, occupied)
    changed = identity_differences(_stored_identity(meta, checkpoint), identity)
    if changed:
        log.warning("resuming with changed %s (allowed by resume_allow_changes)", format_differences(changed))
    log.info(
        "resume=%s: resuming from %s (the run in %s, step %s, epoch %s)",
        resume, checkpoint, checkpoint.parent.parent, meta.get("step"), meta.get("epoch"),
    )
    return StartPlan(checkpoint, meta, tuple(own_files) if here else ())
