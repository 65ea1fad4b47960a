"""Plan and run a study: stage-1 pretraining, rows x seeds, sequence export, refiners x seeds.

Every run is an ordinary ``tools/train.py`` (or ``tools/eval.py``) command, so a study run by
hand, by this runner or on a cluster produces the same folders. The rows of a stage are Hydra
multiruns over the seeds (``-m seed=0,1,2``), one per row: with ``launcher="submitit_slurm"``
(Hydra's submitit plugin) every seed becomes a cluster job and Hydra waits for them, so the
stages still run in order. With ``jobs > 1`` on one machine, every seed is its own multirun and
``jobs`` of them run side by side (one thread each), which balances rows of unequal cost.

Layout under the study folder::

    pretrain/<name>/                      one single-frame model per backbone family
    rows/<row>/seed<k>/                   every method, started from its family's model
    sequences/<pretrain>/<split>.npz      stage-1 keypoint sequences for the refiners
    refine/<row>/seed<k>/                 refiners on those sequences

A run starts as soon as its inputs exist (a row right after its family's stage-1 model), so a
core never waits for an unrelated stage-1 model.

A run whose folder holds ``metrics.json`` finished (the trainer writes it last) and is not run
again, so an interrupted study continues where it stopped; a seed that did not finish is run
again from its start in a fresh folder (the old one is renamed, never overwritten).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from vidpose.engine.checkpoint import find_latest
from vidpose.study.spec import RowSpec, StudySpec

__all__ = ["Command", "StudyRunner", "REPO_ROOT"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Command:
    """One process of the study: its argv (after the interpreter), what it writes and a label."""

    label: str
    argv: tuple[str, ...]
    outputs: tuple[Path, ...]
    log_file: Path

    def shell(self) -> str:
        """The command as a shell line (for ``--dry-run`` and the study log)."""
        return " ".join(shlex.quote(a) for a in (sys.executable, *self.argv))


@dataclass
class StudyRunner:
    """Plans the commands of a study under ``study_dir`` and runs them stage by stage."""

    spec: StudySpec
    study_dir: Path
    jobs: int = 1
    launcher: str | None = None
    launcher_overrides: tuple[str, ...] = ()
    extra_overrides: tuple[str, ...] = ()
    python: str = sys.executable
    echo: Callable[[str], None] = print
    finished: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ folders
    def pretrain_dir(self, name: str) -> Path:
        """Folder of a stage-1 run."""
        return self.study_dir / "pretrain" / name

    def row_dir(self, table: str, row: str) -> Path:
        """Sweep folder of a row (``rows`` or ``refine``); seeds are ``seed<k>`` inside."""
        return self.study_dir / table / row

    def sequences_file(self, pretrain: str, split: str) -> Path:
        """Stage-1 sequences of a pretrained model on a split."""
        return self.study_dir / "sequences" / pretrain / f"{split}.npz"

    def run_dirs(self) -> list[Path]:
        """Every seed folder of every row and refiner, finished or not (the leaderboard's input)."""
        return [
            self.row_dir(table, row) / f"seed{seed}"
            for table, rows in (("rows", self.spec.rows), ("refine", self.spec.refine))
            for row in rows
            for seed in self.spec.seeds
        ]

    # ------------------------------------------------------------------ commands
    def _train(self, exp: str, data: str | None, overrides: Sequence[str]) -> list[str]:
        argv = ["tools/train.py", f"+exp={exp}"]
        if data is not None:
            argv.append(f"data={data}")
        return [*argv, *self.spec.common, *overrides, *self.extra_overrides]

    def pretrain_command(self, name: str) -> Command:
        """Stage 1: the single-frame model of one backbone family (seed 0 of the study)."""
        entry = self.spec.pretrain[name]
        run_dir = self.pretrain_dir(name)
        argv = self._train(
            entry.exp, entry.data,
            [f"exp_name=pretrain_{name}", f"seed={self.spec.seeds[0]}", *self.spec.pretrain_overrides,
             *entry.overrides, f"hydra.run.dir={run_dir}"],
        )
        return Command(f"pretrain {name}", tuple(argv), (run_dir / "metrics.json",), run_dir.parent / f"{name}.log")

    def pretrained_weights(self, name: str) -> Path:
        """The final checkpoint of a finished stage-1 run (what every row starts from)."""
        latest = find_latest(self.pretrain_dir(name) / "checkpoints")
        if latest is None:
            raise FileNotFoundError(
                f"study {self.spec.name}: pretrain {name!r} has no checkpoint in {self.pretrain_dir(name)}; "
                "run its stage first"
            )
        return latest

    def _sweep(self, table: str, row: RowSpec, seeds: Sequence[int], data: str | None, extra: Sequence[str],
               stage_overrides: Sequence[str]) -> Command:
        sweep_dir = self.row_dir(table, row.name)
        script, *rest = self._train(
            row.exp, data,
            [f"exp_name={row.name}", *stage_overrides, *row.overrides, *extra,
             f"seed={','.join(str(s) for s in seeds)}",
             f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=seed${seed}"],
        )
        argv = [script, "-m", *rest]
        if self.launcher:
            argv += [f"hydra/launcher={self.launcher}", *self.launcher_overrides]
        outputs = tuple(sweep_dir / f"seed{s}" / "metrics.json" for s in seeds)
        return Command(f"{table} {row.name} seeds {list(seeds)}", tuple(argv), outputs, sweep_dir.parent / f"{row.name}.log")

    def _seed_groups(self, seeds: list[int]) -> list[list[int]]:
        """One multirun per row, or per seed when local jobs run side by side (balances the load)."""
        if not seeds:
            return []
        return [[s] for s in seeds] if self.jobs > 1 and not self.launcher else [seeds]

    def row_commands(self, row: str) -> list[Command]:
        """Stage 2 for one row: the seeds that have not finished, as multiruns (none if all did)."""
        spec = self.spec.rows[row]
        groups = self._seed_groups(self._pending("rows", row))
        if not groups:
            return []
        data = self.spec.pretrain[spec.pretrained].data
        init = f"init_from={self.pretrained_weights(spec.pretrained)}"
        return [self._sweep("rows", spec, seeds, data, [init], self.spec.row_overrides) for seeds in groups]

    def sequences_command(self, pretrain: str, split: str) -> Command | None:
        """Export a pretrained model's predictions on a split as stage-1 sequences (None if done)."""
        target = self.sequences_file(pretrain, split)
        if target.is_file():
            return None
        entry = self.spec.pretrain[pretrain]
        argv = (
            "tools/eval.py", f"ckpt={self.pretrained_weights(pretrain)}", f"data={entry.data}",
            f"data.val.split={split}", f"save_sequences={target}",
            f"hydra.run.dir={target.parent / f'eval_{split}'}", *self.spec.common, *self.extra_overrides,
        )
        return Command(f"sequences {pretrain} {split}", argv, (target,), target.parent / f"{split}.log")

    def refine_commands(self, row: str) -> list[Command]:
        """Stage 3 for one refiner row: pending seeds on its pretrained model's sequences."""
        spec = self.spec.refine[row]
        groups = self._seed_groups(self._pending("refine", row))
        train_split, val_split = self.spec.sequence_splits
        files = [
            f"refiner.sequences.train={self.sequences_file(spec.pretrained, train_split)}",
            f"refiner.sequences.val={self.sequences_file(spec.pretrained, val_split)}",
        ]
        data = self.spec.pretrain[spec.pretrained].data
        return [self._sweep("refine", spec, seeds, data, files, self.spec.refine_overrides) for seeds in groups]

    def _pending(self, table: str, row: str) -> list[int]:
        pending = []
        for seed in self.spec.seeds:
            run_dir = self.row_dir(table, row) / f"seed{seed}"
            if (run_dir / "metrics.json").is_file():
                continue
            if run_dir.exists():
                stale = run_dir.with_name(f"{run_dir.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
                log.warning("%s did not finish; moved to %s, the seed runs again", run_dir, stale)
                run_dir.rename(stale)
            pending.append(seed)
        return pending

    # ------------------------------------------------------------------ execution
    def _execute(self, command: Command) -> None:
        command.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.echo(f"[study] {command.label}: {command.shell()}  (log: {command.log_file})")
        env = dict(os.environ)
        if self.jobs > 1:
            # parallel local jobs share the cores: one thread each, or they slow each other down
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.jobs)))
        started = time.monotonic()
        with open(command.log_file, "a", encoding="utf-8") as log_fh:
            log_fh.write(f"$ {command.shell()}\n")
            log_fh.flush()
            done = subprocess.run(
                [self.python, *command.argv], cwd=REPO_ROOT, env=env, stdout=log_fh, stderr=subprocess.STDOUT,
                check=False,
            )
        minutes = (time.monotonic() - started) / 60
        missing = [str(p) for p in command.outputs if not p.exists()]
        if done.returncode != 0 or missing:
            raise RuntimeError(
                f"study {self.spec.name}: {command.label} failed (exit {done.returncode}"
                + (f", missing {missing}" if missing else "")
                + f") after {minutes:.1f} min; see {command.log_file}"
            )
        self.finished.append(command.label)
        self.echo(f"[study] {command.label}: done in {minutes:.1f} min")

    def _unlocked(self, queued: set[str]) -> list[Command]:
        """Commands whose inputs now exist and that were not queued yet (their labels join ``queued``)."""
        ready: list[Command] = []

        def add(key: str, make: Callable[[], list[Command]]) -> None:
            if key not in queued:
                queued.add(key)
                ready.extend(make())

        finished = {n for n in self.spec.pretrain if (self.pretrain_dir(n) / "metrics.json").is_file()}
        for name in self.spec.pretrain:
            if name not in finished:
                add(f"pretrain {name}", lambda n=name: [self.pretrain_command(n)])
        for row in self.spec.rows.values():
            if row.pretrained in finished:
                add(f"rows {row.name}", lambda r=row.name: self.row_commands(r))
        for name in sorted({row.pretrained for row in self.spec.refine.values()} & finished):
            for split in self.spec.sequence_splits:
                add(f"sequences {name} {split}",
                    lambda n=name, s=split: [c for c in [self.sequences_command(n, s)] if c is not None])
        for row in self.spec.refine.values():
            if all(self.sequences_file(row.pretrained, s).is_file() for s in self.spec.sequence_splits):
                add(f"refine {row.name}", lambda r=row.name: self.refine_commands(r))
        return ready

    def run(self) -> None:
        """Every run, ``jobs`` at a time, each as soon as its inputs exist: a row right after its
        family's stage-1 model, refiners after their sequences. The first failure stops the study
        (runs already started finish) and is raised."""
        self.study_dir.mkdir(parents=True, exist_ok=True)
        queued: set[str] = set()
        queue = self._unlocked(queued)
        running: dict[Future, Command] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            while queue or running:
                while queue and len(running) < max(1, self.jobs) and failure is None:
                    command = queue.pop(0)
                    running[pool.submit(self._execute, command)] = command
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    if future.exception() is not None and failure is None:
                        failure = future.exception()
                if failure is None:
                    queue += self._unlocked(queued)
        if failure is not None:
            raise failure

    def plan(self) -> list[str]:
        """The commands the study would run now, as shell lines (later stages show their inputs' names)."""
        lines = [self.pretrain_command(name).shell() for name in self.spec.pretrain]
        for row in self.spec.rows.values():
            weights = self.pretrain_dir(row.pretrained) / "checkpoints" / "<latest>"
            command = self._sweep("rows", row, self.spec.seeds, self.spec.pretrain[row.pretrained].data,
                                  [f"init_from={weights}"], self.spec.row_overrides)
            lines.append(command.shell())
        return lines
