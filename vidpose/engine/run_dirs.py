"""Run folders: a unique name per run that every rank of a job agrees on, and one writer per folder.

``configs/hydra/default.yaml`` names a run ``outputs/<exp_name>/${vidpose_run_name:}``:
``<YYYY-mm-dd_HH-MM-SS>_<6 hex>`` with a random suffix, so two runs started in the same second
get two folders. The ranks of a ``torchrun`` job must share one folder, but each composes its own
config (and clock): each proposes its name to the store torchrun's agent hosts (at
``MASTER_ADDR:MASTER_PORT``) and all take the first one stored. A multi-process launch without
that store (``TORCHELASTIC_USE_AGENT_STORE`` unset) is named ``job_<hash>`` from the launcher's
job identifiers, which every rank sees alike. After the process group exists,
:func:`agree_run_dir` makes every rank use rank 0's folder whatever happened before.

:class:`RunLock` holds an exclusive lock on ``<run>/.vidpose.lock`` while a run trains in the
folder (the OS drops it when the process dies, however it dies), so a second process pointed at
a folder that is in use is refused instead of overwriting its checkpoints.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

__all__ = [
    "RunFolderError", "RunLock", "run_name", "hydra_subdir", "register_resolvers", "agree_run_dir", "checkpoint_exp_name",
]

log = logging.getLogger(__name__)

# how long a rank waits for the store of torchrun's agent
_STORE_TIMEOUT_S = 300
_LAUNCHER_IDS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT")
_name: str | None = None


class RunFolderError(RuntimeError):
    """A run may not use this folder (another run's checkpoints, or another process in it)."""


def _fresh_name() -> str:
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"


def _agreed(candidate: str) -> str:
    """``candidate`` alone; in a multi-process job, the one name every rank of the job uses."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return candidate
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and addr and port:
        from torch.distributed import TCPStore

        store = TCPStore(addr, int(port), is_master=False, timeout=datetime.timedelta(seconds=_STORE_TIMEOUT_S))
        key = "vidpose/run_name/{}/{}".format(
            os.environ.get("TORCHELASTIC_RUN_ID", ""), os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        )
        # the first rank to ask stores its name; every rank reads that one back
        return store.compare_set(key, "", candidate).decode()
    job = "|".join(os.environ.get(k, "") for k in _LAUNCHER_IDS)
    return "job_" + hashlib.sha1(job.encode()).hexdigest()[:12]


def run_name() -> str:
    """This process's run name (the same on every rank of a job; fixed for the process)."""
    global _name
    if _name is None:
        _name = _agreed(_fresh_name())
    return _name


def hydra_subdir(output_dir: str) -> str | None:
    """Where Hydra records the composed config: ``.hydra``, or ``.hydra/<run name>`` in a folder that has one.

    A run resumed in its own folder (``hydra.run.dir=<run> resume=auto``) keeps the record of the
    command that started the run; ranks other than 0 share rank 0's folder and record nothing.
    """
    if os.environ.get("RANK", "0") != "0":
        return None
    return f".hydra/{run_name()}" if (Path(output_dir) / ".hydra" / "config.yaml").exists() else ".hydra"


def checkpoint_exp_name(ckpt: str | None, fallback: str) -> str:
    """``exp_name`` stored in checkpoint ``ckpt`` (``fallback`` without one): where its evaluations go."""
    if not ckpt:
        return fallback
    from vidpose.engine.checkpoint import read_meta

    return str(read_meta(ckpt).get("config", {}).get("exp_name", fallback))


def register_resolvers() -> None:
    """Register ``vidpose_run_name``, ``vidpose_hydra_subdir`` and ``vidpose_checkpoint_exp`` (idempotent)."""
    from omegaconf import OmegaConf

    for name, fn in (
        ("vidpose_run_name", run_name),
        ("vidpose_hydra_subdir", hydra_subdir),
        ("vidpose_checkpoint_exp", checkpoint_exp_name),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def agree_run_dir(run_dir: Path, info: Any) -> Path:
    """Rank 0's run folder on every rank (a warning names folders other ranks composed)."""
    if not info.distributed:
        return run_dir
    from vidpose.engine.distributed import all_gather_objects

    folders = all_gather_objects(str(run_dir))
    others = sorted(set(folders) - {folders[0]})
    if others and info.is_main:
        log.warning("ranks composed other run folders %s; every rank uses rank 0's %s", others, folders[0])
    return Path(folders[0])


class RunLock:
    """An exclusive lock on ``<run>/.vidpose.lock`` for as long as this run trains in the folder."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".vidpose.lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise RunFolderError(
                f"{run_dir} is in use by another run ({holder}); start this one in a new folder "
                "(drop hydra.run.dir) or wait for that one to end"
            ) from None
        except OSError as exc:  # e.g. a file system without locks: say that the guard is off
            log.warning("could not lock %s (%s): another process training in this folder would go unnoticed",
                        self.path, exc)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        """Unlock (closing the descriptor drops the lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
