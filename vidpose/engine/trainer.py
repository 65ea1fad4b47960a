"""One trainer for every method: ``train(cfg)`` and ``evaluate(cfg)`` over a resolved Hydra config.

Per step: loader -> the task's ``prepare`` (device transfer; for poses, targets generated on the
device from keypoints) -> the task's ``forward`` under autocast -> the task's loss -> backward
(gradient accumulation, DDP ``no_sync`` between micro-steps) -> finite check -> gradient
clipping -> optimizer step -> LR from the schedule. The task (``cfg.task``: ``pose`` or
``refine``, :mod:`vidpose.engine.tasks`) builds the model, the training set and the evaluator.
Checkpoints hold model, optimizer, scaler, epoch, step, position in the epoch and RNG states,
so ``resume`` continues exactly where the run stopped; which run it continues (and whether it
may) is decided up front by :mod:`vidpose.engine.resume`, in a folder this run holds
(:mod:`vidpose.engine.run_dirs`), after every numeric setting was checked
(:mod:`vidpose.engine.settings`).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidpose import __version__
from vidpose.data.loader import collate, worker_init_fn
from vidpose.engine.checkpoint import CheckpointManager, capture_rng_state, load_checkpoint, restore_rng_state
from vidpose.engine.distributed import DistInfo, ResumableSampler, all_gather_objects, cleanup, init_distributed
from vidpose.engine.initialise import check_frozen_backbone_is_loaded, initialise_weights
from vidpose.engine.logging import RunLogger, setup_console_logging
from vidpose.engine.optim import LRSchedule, apply_lr, build_optimizer
from vidpose.engine.provenance import run_provenance
from vidpose.engine.resume import StartPlan, plan_start, stop_reached
from vidpose.engine.run_dirs import RunLock, agree_run_dir
from vidpose.engine.settings import validate_settings
from vidpose.engine.tasks import build_task
from vidpose.registry import load_plugins, to_plain

__all__ = [
    "train", "evaluate", "Trainer", "NonFiniteError", "PREEMPTED_EXIT_CODE", "TRAINER_KEYS", "check_trainer_keys",
]

log = logging.getLogger("vidpose.train")

# Exit code after a SIGTERM/SIGINT that was honoured by writing a checkpoint (EX_TEMPFAIL).
PREEMPTED_EXIT_CODE = 75

# The keys of the trainer group (configs/trainer/default.yaml; a test keeps the two equal). Hydra
# merges a misspelled key from an experiment file silently, and the trainer reads keys with
# defaults, so an unknown key is an error rather than a setting that never applies.
TRAINER_KEYS = frozenset({
    "device", "amp", "batch_size", "val_batch_size", "num_workers", "val_every", "validate_at_start",
    "log_every", "ckpt_every_steps", "keep_last", "nan_policy", "max_skipped_steps", "max_steps",
    "train_max_instances", "val_max_instances", "tensorboard", "deterministic", "dist_timeout_s",
})
_MOVED_KEYS = {"epochs": "schedule.epochs", "accumulate": "optim.accumulate", "clip_grad": "optim.clip_grad",
               "lr": "optim.lr", "seed": "seed (top level)"}


def check_trainer_keys(tcfg: Mapping[str, Any]) -> None:
    """Raise if the trainer section holds a key the trainer does not read, naming the closest one."""
    unknown = sorted(set(tcfg) - TRAINER_KEYS)
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = _MOVED_KEYS.get(key) or next(iter(difflib.get_close_matches(key, sorted(TRAINER_KEYS), n=1)), None)
        hints.append(f"trainer.{key}" + (f" (did you mean {close}?)" if close else ""))
    raise ValueError(f"unknown trainer setting {', '.join(hints)}. Known: {', '.join(sorted(TRAINER_KEYS))}")


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN/Inf; the message names the terms and parameters."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    table = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if setting not in table:
        raise ValueError(f"trainer.amp: expected auto, off, bf16 or fp16, got {setting!r}")
    return table[setting]


class Trainer:
    """Builds a run from its config and trains it."""

    def __init__(self, cfg: Any, info: DistInfo, run_dir: Path) -> None:
        self.cfg, self.info, self.run_dir = cfg, info, run_dir
        tcfg = to_plain(cfg.trainer)
        self.tcfg = tcfg
        self.device = info.device
        self.task = build_task(cfg, info, run_dir)
        self.train_set = self.task.train_set
        self.model = self.task.model.to(self.device)
        self.evaluator = self.task.evaluator
        counts = self.task.parameter_counts()
        log.info("parameters: %s", ", ".join(f"{k} {v:,}" for k, v in counts.items()))

        ocfg = to_plain(cfg.optim)
        self.accumulate = int(ocfg.pop("accumulate", 1))
        self.clip_grad = ocfg.pop("clip_grad", None)
        self.optimizer = build_optimizer(self.model, **ocfg)
        self.batch_size = int(tcfg["batch_size"])
        self.sampler = ResumableSampler(
            len(self.train_set), shuffle=True, seed=int(cfg.seed), batch_size=self.batch_size,
            rank=info.rank, world_size=info.world_size,
        )
        micro_per_epoch = len(self.sampler) // self.batch_size
        if micro_per_epoch < self.accumulate:
            raise ValueError(
                f"an epoch of {len(self.train_set)} training samples has {micro_per_epoch} batches of "
                f"trainer.batch_size={self.batch_size} per rank ({info.world_size} processes), fewer than "
                f"optim.accumulate={self.accumulate}; lower trainer.batch_size"
            )
        self.micro_per_epoch = micro_per_epoch - micro_per_epoch % self.accumulate
        self.train_loader = self._loader()
        scfg = to_plain(cfg.schedule)
        self.epochs = int(scfg.pop("epochs"))
        self.schedule = LRSchedule(
            epochs=self.epochs, steps_per_epoch=self.micro_per_epoch // self.accumulate, **scfg
        )
        self.amp_dtype = _amp_dtype(str(tcfg.get("amp", "auto")), self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

        self.ckpt = CheckpointManager(run_dir / "checkpoints", keep_last=int(tcfg.get("keep_last", 2)))
        self.logger = RunLogger(run_dir / "tb", enabled=info.is_main and bool(tcfg.get("tensorboard", True)))
        self.epoch, self.step, self.micro_in_epoch = 0, 0, 0
        self.best_metric = -math.inf
        # training wall time and steps of this process (a resumed run times only its own part)
        self.train_seconds, self.steps_trained = 0.0, 0
        self.last_predictions: list = []
        self.history: list[dict[str, Any]] = []
        self.skipped_steps = 0
        self.nan_policy = str(tcfg.get("nan_policy", "stop"))
        if self.nan_policy not in ("stop", "skip"):
            raise ValueError(f"trainer.nan_policy: expected stop or skip, got {self.nan_policy!r}")
        self.max_skipped_steps = int(tcfg.get("max_skipped_steps", 20))
        self._step_failed = False
        # a forward pass that went non-finite has already updated BatchNorm running statistics;
        # under nan_policy=skip they are put back, so a skipped step leaves no trace
        self._buffers = [b for b in self.model.buffers()] if self.nan_policy == "skip" else []
        self._buffer_backup: list[torch.Tensor] | None = None
        self._stop_signal: int | None = None

        self.ddp_model: torch.nn.Module = self.model
        if info.distributed:
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
            "vidpose_version": __version__,
            "config": to_plain(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "micro_in_epoch": self.micro_in_epoch,
            "best_metric": self.best_metric,
            "rng": capture_rng_state(),
            "world_size": self.info.world_size,
            "run_dir": str(self.run_dir),
            "primary_metric": self.evaluator.primary_metric,
            "val_name": self.task.val_name,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; exact when ``world_size x optim.accumulate`` is unchanged."""
        saved_world = int(state.get("world_size", 1))
        saved_accumulate = int(state.get("config", {}).get("optim", {}).get("accumulate", 1))
        if saved_world * saved_accumulate != self.info.world_size * self.accumulate:
            log.warning(
                "resuming a run saved with %s processes x optim.accumulate=%s on %s x %s: the optimizer step "
                "takes another number of samples, so data order differs from an uninterrupted run",
                saved_world, saved_accumulate, self.info.world_size, self.accumulate,
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        # checkpoints are written after optimizer steps: the position is a whole number of steps,
        # which this run's processes reach with their own number of micro-batches per step
        self.micro_in_epoch = int(state["micro_in_epoch"]) // saved_accumulate * self.accumulate
        self.best_metric = float(state["best_metric"])
        restore_rng_state(state["rng"])

    # ------------------------------------------------------------------ loop
    def _loader(self) -> DataLoader:
        """The training DataLoader: seeded, persistent workers; pinned memory on CUDA (async copies)."""
        from vidpose.data.loader import keep_freed_memory

        workers = int(self.tcfg.get("num_workers", 0))
        if workers == 0:
            # this process decodes the frames itself: keep freed memory as the workers do
            # (fresh pages for every decoded frame would make decoding about twice as slow)
            keep_freed_memory()
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=worker_init_fn,
            persistent_workers=workers > 0,
            # its own generator: starting an epoch's iterator must not draw from the global RNG,
            # or a run resumed mid-epoch would draw different dropout masks than an uninterrupted one
            generator=torch.Generator().manual_seed(int(self.cfg.seed)),
        )

    def _non_finite_tensors(self, tensors) -> list[str]:
        """Names of floating-point tensors holding NaN or Inf."""
        return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]

    def _check_finite_loss(self, losses: Mapping[str, torch.Tensor]) -> bool:
        if torch.isfinite(losses["loss"]).all():
            return True
        bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        message = f"non-finite loss at step {self.step}: terms {bad}"
        # a loss can go NaN because the weights already are; then the parameters are the culprits
        state = self._non_finite_tensors(self.model.state_dict().items())
        if state:
            message += f"; non-finite model tensors: {state[:10]}"
        self._non_finite(message)
        return False

    def _non_finite_grads(self) -> list[str]:
        params = [(n, p) for n, p in self.model.named_parameters() if p.grad is not None]
        norms = torch._foreach_norm([p.grad for _, p in params]) if params else []
        if all(torch.isfinite(n) for n in norms):
            return []
        return [n for (n, _), g in zip(params, norms) if not torch.isfinite(g)]

    def _non_finite(self, message: str) -> None:
        """Stop (nan_policy=stop) or log and mark the step for skipping (nan_policy=skip)."""
        if self.nan_policy == "stop":
            raise NonFiniteError(message + " (trainer.nan_policy=stop)")
        log.warning("%s; skipping the step", message)

    def _begin_step(self) -> None:
        self._step_failed = False
        if not self._buffers:
            return
        if self._buffer_backup is None:
            self._buffer_backup = [b.detach().clone() for b in self._buffers]
        else:
            torch._foreach_copy_(self._buffer_backup, [b.detach() for b in self._buffers])

    def _restore_buffers(self) -> None:
        if self._buffer_backup is not None:
            with torch.no_grad():
                torch._foreach_copy_(self._buffers, self._buffer_backup)

    def _skip_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._restore_buffers()
        self.skipped_steps += 1
        log.warning("step %d skipped (%d skipped so far)", self.step, self.skipped_steps)
        if self.skipped_steps > self.max_skipped_steps:
            raise NonFiniteError(
                f"more than trainer.max_skipped_steps={self.max_skipped_steps} non-finite steps; "
                f"stopping at step {self.step}"
            )

    def _any_rank(self, flag: bool) -> bool:
        if not self.info.distributed:
            return flag
        tensor = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def _train_micro(self, batch: dict, sync: bool) -> dict[str, torch.Tensor] | None:
        if self.micro_in_epoch % self.accumulate == 0:
            self._begin_step()
        inputs, targets = self.task.prepare(batch, self.device)
        context = self.ddp_model.no_sync() if (self.info.distributed and not sync) else contextlib.nullcontext()
        with context:
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16, enabled=self.amp_dtype is not None):
                outputs = self.task.forward(self.ddp_model, inputs)
            losses = self.task.loss(outputs, targets)
            finite = self._check_finite_loss(losses)
            if not finite:
                self._step_failed = True
                if not self.info.distributed:
                    return None
                # the other ranks wait in backward for this rank's gradients: send them (non-finite)
                # and drop the step on every rank in _optimizer_step
            self.scaler.scale(losses["loss"] / self.accumulate).backward()
        return {k: v.detach() for k, v in losses.items()} if finite else None

    def _optimizer_step(self) -> bool:
        """Clip, step and schedule; False when the step was skipped (nan_policy=skip)."""
        # under stop a failing rank has raised; under skip every rank must drop the same steps
        failed = self._any_rank(self._step_failed) if self.nan_policy == "skip" else self._step_failed
        if not failed:
            self.scaler.unscale_(self.optimizer)
            # gradients are all-reduced by now, so every rank reaches the same verdict
            bad = self._non_finite_grads()
            if bad and self.scaler.is_enabled() and self.scaler.get_scale() > 1.0:
                # fp16: an overflow of the scaled gradients is routine; GradScaler lowers the scale
                # and the step is dropped. Only an overflow at scale 1 goes to nan_policy.
                self.scaler.update()
                log.info("fp16 gradient overflow at step %d; loss scale now %g, step skipped",
                         self.step, self.scaler.get_scale())
                self.optimizer.zero_grad(set_to_none=True)
                self._restore_buffers()
                return False
            if bad:
                self._non_finite(f"non-finite gradient at step {self.step} in {len(bad)} parameters: {bad[:10]}")
                self.scaler.update()
                failed = True
        if failed:
            self._skip_step()
            return False
        if self.clip_grad:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.grad is not None], float(self.clip_grad)
            )
        apply_lr(self.optimizer, self.schedule.factor(self.step))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def _install_signal_handlers(self) -> None:
        def handler(signum, frame):  # noqa: ARG001 - signal API
            self._stop_signal = signum
            log.warning("received signal %d: finishing the current step, then checkpointing", signum)

        with contextlib.suppress(ValueError):  # not the main thread (e.g. some test runners)
            signal.signal(signal.SIGTERM, handler)
            signal.signal(signal.SIGINT, handler)

    def save(
        self, is_best: bool = False, metrics: Mapping[str, Any] | None = None, finished: bool = False
    ) -> Path | None:
        """Write a checkpoint on rank 0 with the validation ``metrics`` just computed (final if ``finished``)."""
        if not self.info.is_main:
            return None
        bad = self._non_finite_tensors(self.model.state_dict().items())
        if bad:
            raise NonFiniteError(
                f"refusing to write the checkpoint of step {self.step}: non-finite values in {len(bad)} model "
                f"tensors {bad[:10]}; the last good checkpoint is {self.ckpt.latest()}"
            )
        numbers = _numbers(metrics) if metrics is not None else None
        state = {**self.state_dict(), "metrics": numbers, "finished": finished}
        return self.ckpt.save(state, self.step, is_best=is_best)

    def _stop_requested(self) -> bool:
        """Whether any rank received a stop signal (all ranks then stop at the same step)."""
        flag = self._stop_signal is not None
        if not self.info.distributed:
            return flag
        tensor = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def train_epoch(self) -> bool:
        """Run the rest of the current epoch; False when a stop signal or max_steps ended it early."""
        self.model.train()
        self.sampler.set_epoch(self.epoch, start=self.micro_in_epoch * self.batch_size)
        max_steps = self.tcfg.get("max_steps")
        log_every = int(self.tcfg.get("log_every", 50))
        ckpt_every = self.tcfg.get("ckpt_every_steps")
        remaining = self.micro_per_epoch - self.micro_in_epoch
        bar = tqdm(
            total=remaining, desc=f"epoch {self.epoch + 1}/{self.epochs}", disable=not self.info.is_main,
            dynamic_ncols=True, leave=False, mininterval=1.0 if sys.stderr.isatty() else 30.0,
        )
        running: dict[str, float] = {}
        start = time.perf_counter()
        steps_at_start = self.step
        try:
            return self._train_steps(bar, running, start, max_steps, log_every, ckpt_every)
        finally:
            self.train_seconds += time.perf_counter() - start
            self.steps_trained += self.step - steps_at_start

    def _train_steps(self, bar, running: dict[str, float], start: float, max_steps, log_every: int,
                     ckpt_every) -> bool:
        """The loop of :meth:`train_epoch` (timed there)."""
        data_wait = 0.0
        tic = time.perf_counter()
        for batch in self.train_loader:
            data_wait += time.perf_counter() - tic
            if self.micro_in_epoch >= self.micro_per_epoch:
                break
            sync = (self.micro_in_epoch + 1) % self.accumulate == 0
            losses = self._train_micro(batch, sync)
            self.micro_in_epoch += 1
            bar.update(1)
            if losses is not None:
                for k, v in losses.items():
                    running[k] = running.get(k, 0.0) + float(v)
            if not sync:
                tic = time.perf_counter()
                continue
            self._optimizer_step()
            self.step += 1
            if self.step % log_every == 0 and running:
                n = log_every * self.accumulate
                means = {k: v / n for k, v in running.items()}
                means["lr"] = self.optimizer.param_groups[0]["lr"]
                means["data_wait_fraction"] = data_wait / max(1e-9, time.perf_counter() - start)
                self.logger.scalars(means, self.step, prefix="train/")
                bar.set_postfix(loss=f"{means['loss']:.3e}")
                running = {}
            if ckpt_every and self.step % int(ckpt_every) == 0:
                self.save()
            if self._stop_requested():
                self.save()
                bar.close()
                return False
            if max_steps is not None and self.step >= int(max_steps):
                bar.close()
                return False
            tic = time.perf_counter()
        bar.close()
        return True

    def validate(self) -> dict[str, Any]:
        """Evaluate on the validation set; rank 0 logs and returns metrics."""
        metrics = self.evaluator.evaluate(self.model, tag=f"epoch_{self.epoch:03d}", amp_dtype=self.amp_dtype)
        if self.info.is_main:
            predictions = self.last_predictions = metrics.pop("_predictions")
            self.logger.scalars(metrics, self.step, prefix="val/")
            self._log_images(predictions)
            shown = {k: round(v, 2) for k, v in metrics.items() if isinstance(v, float)}
            log.info("epoch %d validation: %s", self.epoch, shown)
        return metrics

    def _log_images(self, predictions) -> None:
        picture = self.task.picture(predictions)
        if picture is None:
            return
        self.logger.image("val/predictions", picture, self.step)
        self.last_picture = picture

    def stop_reached(self) -> bool:
        """Whether ``schedule.epochs`` or ``trainer.max_steps`` is met (a resumed run checks before its first step)."""
        max_steps = self.tcfg.get("max_steps")
        return stop_reached(self.step, self.epoch, self.epochs, None if max_steps is None else int(max_steps))

    def fit(self, plan: StartPlan | None = None) -> dict[str, Any]:
        """Train from ``plan`` (default: a new run) to the end or a stop signal; returns the final metrics."""
        plan = plan or StartPlan()
        self._install_signal_handlers()
        if self.info.is_main:
            self.ckpt.remove_partial_writes()
            self.ckpt.adopt(plan.adopt)
        if plan.checkpoint is not None:
            self.load_state_dict(load_checkpoint(plan.checkpoint, map_location=self.device))
        else:
            check_frozen_backbone_is_loaded(self.cfg)
            if self.cfg.get("init_from"):
                report = initialise_weights(self.model, str(self.cfg.init_from))
                log.info("initialised weights from %s: %s", self.cfg.init_from, report)
        val_every = int(self.tcfg.get("val_every", 1))
        primary = self.evaluator.primary_metric
        initial: dict[str, Any] = {}
        if self.tcfg.get("validate_at_start") and self.step == 0:
            initial = {f"initial/{k}": v for k, v in self.validate().items()}
        while not self.stop_reached():
            if not self.train_epoch():
                if self._stop_signal is not None:
                    log.warning("stopped by signal %d after step %d; checkpoint written", self._stop_signal, self.step)
                    return {"stopped_by_signal": self._stop_signal, "step": self.step}
                break
            self.epoch += 1
            self.micro_in_epoch = 0
            if self.stop_reached():
                break
            if self.epoch % val_every == 0:
                metrics = self.validate()
                self.save(is_best=self._is_best(metrics, primary), metrics=metrics)
            else:
                self.save()
        # the final validation, also for a resumed run that met its stop condition before it was scored
        final = {**initial, **self.validate()}
        if self.info.is_main:
            final.update(self._final_analysis(final))
            final.update(self._cost_metrics())
        self.save(is_best=self._is_best(final, primary), metrics=final, finished=True)
        self.logger.close()
        return final

    def _final_analysis(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """``evaluation.analysis=motion``: motion-stratified AP and smoothness of the final predictions."""
        analysis = (self.cfg.get("evaluation") or {}).get("analysis")
        if not analysis:
            return {}
        if not hasattr(self.evaluator, "gt_dir"):
            raise ValueError(
                f"evaluation.analysis={analysis}: the analysis scores a pose model's clip predictions; "
                f"task={self.cfg.get('task')} has none (set evaluation.analysis=null)"
            )
        from vidpose.evaluation.motion_analysis import analyse_evaluation

        return analyse_evaluation(str(analysis), self.evaluator, self.last_predictions, metrics,
                                  self.run_dir / "analysis")

    def _cost_metrics(self) -> dict[str, float]:
        """Parameter counts (millions) and the mean wall time of this process's training steps."""
        counts = self.task.parameter_counts()
        out = {f"parameters/{k}_M": v / 1e6 for k, v in counts.items() if k in ("total", "trainable")}
        if self.steps_trained:
            out["time/step_s"] = self.train_seconds / self.steps_trained
            out["time/train_s"] = self.train_seconds
        return out

    def provenance(self) -> dict[str, Any]:
        """This run's provenance record (:mod:`vidpose.engine.provenance`)."""
        return run_provenance(to_plain(self.cfg), self.task.val_index, str(self.device))

    def _is_best(self, metrics: Mapping[str, Any], primary: str) -> bool:
        if not self.info.is_main:
            return False
        value = metrics.get(primary)
        if value is None or not math.isfinite(value):
            log.warning("validation %s is %r; this checkpoint is not a best candidate", primary, value)
            return False
        if value > self.best_metric:
            self.best_metric = float(value)
            return True
        return False


def _run_dir(cfg: Any) -> Path:
    return Path(str(cfg.paths.output_dir))


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """The numeric entries of a metrics dict (what checkpoints and ``metrics.json`` keep)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _start(config: Mapping[str, Any], info: DistInfo, run_dir: Path) -> tuple[StartPlan, RunLock | None]:
    """Rank 0 locks the run folder and plans the start; every rank gets the plan (or raises its error)."""
    lock, plan, error = None, None, None
    if info.is_main:
        try:
            lock = RunLock(run_dir)
            plan = plan_start(config, info.world_size, run_dir)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below, so no rank waits for a plan
            error = exc
    if info.distributed:
        plan, error = all_gather_objects((plan, error))[0]
    if error is not None:
        if lock is not None:
            lock.release()
        raise error
    return plan, lock


def _finished_record(plan: StartPlan, config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The stored final metrics when ``plan`` resumes a run that already met its stop conditions."""
    meta = plan.meta
    if plan.checkpoint is None or not meta.get("finished") or not isinstance(meta.get("metrics"), Mapping):
        return None
    max_steps = config["trainer"].get("max_steps")
    done = stop_reached(
        int(meta["step"]), int(meta["epoch"]), int(config["schedule"]["epochs"]),
        None if max_steps is None else int(max_steps),
    )
    return meta["metrics"] if done else None


def train(cfg: Any) -> dict[str, Any]:
    """Train the experiment a resolved config describes; returns the final validation metrics."""
    config = to_plain(cfg)
    check_trainer_keys(config["trainer"])
    validate_settings(config, world_size=int(os.environ.get("WORLD_SIZE", "1")))
    load_plugins(config.get("plugins") or [])
    info = init_distributed(str(cfg.trainer.get("device", "auto")), float(cfg.trainer.get("dist_timeout_s", 1800)))
    lock = None
    try:
        run_dir = agree_run_dir(_run_dir(cfg), info)
        setup_console_logging(run_dir, info.is_main)
        plan, lock = _start(config, info, run_dir)
        stored = _finished_record(plan, config)
        if stored is not None:
            if info.is_main:
                _report_finished(plan, stored, run_dir)
            return dict(stored)
        seed_everything(int(cfg.seed))
        if cfg.trainer.get("deterministic", False):
            torch.use_deterministic_algorithms(True, warn_only=True)
        trainer = Trainer(cfg, info, run_dir)
        metrics = trainer.fit(plan)
        if info.is_main and "stopped_by_signal" not in metrics:
            _report(trainer, metrics)
        return metrics
    except Exception as exc:
        if info.distributed:
            # a peer's failure reaches this rank as a lost connection or a collective timeout;
            # say so, or the user reads the symptom instead of the cause
            log.error(
                "rank %d of %d stopped: %s: %s. When ranks fail together, the root cause is the first rank "
                "that failed (torchrun's summary names it); a rank that hangs makes the others time out "
                "after trainer.dist_timeout_s=%s s",
                info.rank, info.world_size, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                cfg.trainer.get("dist_timeout_s", 1800),
            )
        raise
    finally:
        if lock is not None:
            lock.release()
        cleanup()


def _write_metrics(
    run_dir: Path, metrics: Mapping[str, Any], step: int, epoch: int, provenance: Mapping[str, Any] | None = None
) -> Path:
    """``<run>/metrics.json``: the final numbers and the run's provenance, for sweeps, scripts and
    ``tools/leaderboard.py``; written last, so its presence means the run finished."""
    path = run_dir / "metrics.json"
    record: dict[str, Any] = {"step": step, "epoch": epoch, **_numbers(metrics)}
    if provenance is not None:
        record["provenance"] = dict(provenance)
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def _report(trainer: Trainer, metrics: Mapping[str, Any]) -> None:
    from vidpose.viz import save_png

    primary = trainer.evaluator.primary_metric
    picture_path = trainer.run_dir / "predictions.png"
    lines = [
        f"final {primary} on {trainer.task.val_name}: {metrics.get(primary, float('nan')):.2f}",
        f"  tensorboard: {trainer.run_dir / 'tb'}",
        f"  checkpoints: {trainer.ckpt.directory}",
    ]
    if getattr(trainer, "last_picture", None) is not None:
        save_png(str(picture_path), trainer.last_picture)
        lines.append(f"  picture of predicted skeletons: {picture_path}")
    written = _write_metrics(trainer.run_dir, metrics, trainer.step, trainer.epoch, trainer.provenance())
    lines.append(f"  final metrics: {written}")
    print("\n".join(lines), flush=True)


def _report_finished(plan: StartPlan, metrics: Mapping[str, Any], run_dir: Path) -> None:
    meta = plan.meta  # written with "finished" by this trainer, so every field below is there
    primary, step, epoch = str(meta["primary_metric"]), int(meta["step"]), int(meta["epoch"])
    log.info("the run of %s already finished at step %d: nothing to train", plan.checkpoint, step)
    lines = [
        f"run {meta['run_dir']} already finished (step {step}, epoch {epoch}): nothing trained; "
        "its stored final metrics:",
        f"final {primary} on {meta['val_name']}: {metrics.get(primary, float('nan')):.2f}",
        f"  checkpoint: {plan.checkpoint}",
        f"  final metrics: {_write_metrics(run_dir, metrics, step, epoch, _stored_provenance(Path(meta['run_dir'])))}",
    ]
    print("\n".join(lines), flush=True)


def _stored_provenance(run_dir: Path) -> dict[str, Any] | None:
    """The provenance a finished run wrote into its ``metrics.json`` (None if unreadable)."""
    try:
        record = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    provenance = record.get("provenance") if isinstance(record, dict) else None
    return provenance if isinstance(provenance, dict) else None


def evaluate(cfg: Any) -> dict[str, Any]:
    """Evaluate a checkpoint (``ckpt=``) or initial weights (``init_from=``) on the validation set."""
    from vidpose.engine.evaluate_run import run_evaluation

    load_plugins(to_plain(cfg.get("plugins")) or [])
    info = init_distributed(str(cfg.trainer.get("device", "auto")), float(cfg.trainer.get("dist_timeout_s", 1800)))
    setup_console_logging(_run_dir(cfg), info.is_main)
    try:
        return run_evaluation(cfg, info)
    finally:
        cleanup()
