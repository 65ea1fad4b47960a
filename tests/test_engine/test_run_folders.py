"""Every run gets a folder of its own and never overwrites another run's checkpoints.

Two ``tools/train.py`` processes started together (one-second clock, same experiment) must land
in two folders and both end with valid checkpoints; a run pointed at a folder that holds another
run's checkpoints, or that another process is training in, is refused; ranks of a ``torchrun``
job share one folder; a checkpoint can never disagree with its checksum, and pruning only
deletes this run's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from vidpose.engine import train
from vidpose.engine.checkpoint import (
    CheckpointError,
    CheckpointManager,
    find_latest,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from vidpose.engine.run_dirs import RunFolderError, RunLock

ROOT = Path(__file__).resolve().parents[2]
# a two-step run of a tiny model on 16 people, scored on 8 boxes
TINY = (
    "+exp=baseline_synthetic",
    "data.dataset.preset=tiny",
    "data.input_size=[64,48]",
    "backbone.embed_dim=64",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "head.deconv_channels=16",
    "trainer.train_max_instances=16",
    "trainer.val_max_instances=8",
    "trainer.batch_size=8",
    "trainer.num_workers=0",
    "trainer.tensorboard=false",
    "trainer.device=cpu",
    "trainer.max_steps=2",
    "schedule.epochs=1",
    "schedule.warmup_iters=1",
    "codec.flip_test=false",
)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _train_command(cache: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "train.py"), *TINY, f"paths.cache_root={cache}", *overrides]


def _run_folders(outputs: Path) -> list[Path]:
    return sorted(p for p in (outputs / "baseline_synthetic").iterdir() if p.is_dir())


@pytest.mark.slow
def test_two_runs_started_together_get_their_own_folders_and_a_third_is_refused_in_one(tmp_path, synthetic_cache):
    # the default hydra.run.dir (outputs/<exp>/<time>...) relative to the working directory
    procs = [
        subprocess.Popen(_train_command(synthetic_cache, f"seed={seed}"), cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (0, 1)
    ]
    results = [p.communicate(timeout=400) for p in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err[-3000:]
    folders = _run_folders(tmp_path / "outputs")
    assert len(folders) == 2, folders
    seeds = set()
    for folder in folders:
        # each folder holds one whole run: its own config, valid step and best checkpoints
        assert (folder / ".hydra" / "config.yaml").is_file()
        state = load_checkpoint(find_latest(folder / "checkpoints"))
        best = load_checkpoint(folder / "checkpoints" / "best.pt")
        assert state["step"] == best["step"] == 2 and state["run_dir"] == str(folder.resolve())
        seeds.add(state["config"]["seed"])
        assert not list((folder / "checkpoints").glob("*.sha256"))
    assert seeds == {0, 1}

    first = folders[0]
    before = {p.name: p.read_bytes() for p in (first / "checkpoints").iterdir()}
    done = subprocess.run(_train_command(synthetic_cache, f"hydra.run.dir={first}"), cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"{first} already holds checkpoints of another run" in done.stderr, done.stderr[-3000:]
    assert f"resume=auto hydra.run.dir={first}" in done.stderr
    assert {p.name: p.read_bytes() for p in (first / "checkpoints").iterdir()} == before

    # resuming it there, as the message says: the run had finished, so exit 0 with its stored
    # numbers; the record of the command that started the run stays
    record = (first / ".hydra" / "config.yaml").read_text()
    seed = load_checkpoint(first / "checkpoints" / "best.pt")["config"]["seed"]
    again = _train_command(synthetic_cache, f"hydra.run.dir={first}", f"seed={seed}", "resume=auto")
    done = subprocess.run(again, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run {first.resolve()} already finished (step 2, epoch 0): nothing trained" in done.stdout
    assert (first / ".hydra" / "config.yaml").read_text() == record
    # Hydra records each later command (the refused one, this one) in a subfolder of its own
    assert len(list((first / ".hydra").glob("*/config.yaml"))) == 2
    assert {p.name: p.read_bytes() for p in (first / "checkpoints").iterdir()} == before


def test_a_new_run_in_a_folder_with_checkpoints_is_refused_before_it_builds_anything(compose_exp, tmp_path):
    run = tmp_path / "run"
    save_checkpoint({"step": 12, "config": {"exp_name": "other"}}, run / "checkpoints" / "step_00000012.pt")
    with pytest.raises(RunFolderError, match=r"run already holds checkpoints of another run \(step_00000012\.pt\).*"
                                             r"resume=auto hydra\.run\.dir=\S+run"):
        train(compose_exp("baseline_synthetic", *TINY[1:]))
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000012.pt"]


def test_a_folder_another_process_trains_in_is_refused(tmp_path):
    holder = RunLock(tmp_path / "run")
    try:
        with pytest.raises(RunFolderError, match=r"run is in use by another run \(\{\"pid\": \d+"):
            RunLock(tmp_path / "run")
    finally:
        holder.release()
    RunLock(tmp_path / "run").release()  # free again once the holder ends


def test_a_checkpoint_never_disagrees_with_its_checksum_under_racing_writers(tmp_path):
    # two runs writing the same file name (the old layout wrote a checkpoint and its sidecar as
    # two files, so one run's file could end next to the other's checksum)
    path = tmp_path / "best.pt"
    states = [{"step": 1, "w": torch.zeros(20000)}, {"step": 2, "w": torch.ones(20000)}]
    save_checkpoint(states[0], path)
    errors: list[Exception] = []
    stop = threading.Event()

    def writer(state):
        for _ in range(30):
            save_checkpoint(state, path)

    def reader():
        while not stop.is_set():
            try:
                loaded = load_checkpoint(path)
                assert torch.equal(loaded["w"], torch.full((20000,), float(loaded["step"] - 1)))
            except (CheckpointError, AssertionError) as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in states]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert not errors, errors[:3]
    assert load_checkpoint(path)["step"] in (1, 2)


def test_pruning_deletes_only_this_runs_files(tmp_path):
    foreign = save_checkpoint({"step": 99}, tmp_path / "step_00000099.pt")
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3):
        manager.save({"step": step}, step)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == [
        "step_00000002.pt", "step_00000003.pt", "step_00000099.pt"
    ]
    assert load_checkpoint(foreign)["step"] == 99
    # a resumed run adopts the files of the run it continues, and prunes those too
    resumed = CheckpointManager(tmp_path, keep_last=2)
    resumed.adopt([tmp_path / "step_00000002.pt", tmp_path / "step_00000003.pt"])
    resumed.save({"step": 4}, 4)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == [
        "step_00000003.pt", "step_00000004.pt", "step_00000099.pt"
    ]


def test_metadata_is_read_without_the_weights(tmp_path):
    path = save_checkpoint({"step": 7, "epoch": 1, "config": {"exp_name": "x"}, "model": {"w": torch.ones(3)}},
                           tmp_path / "step_00000007.pt")
    assert read_meta(path) == {"step": 7, "epoch": 1, "config": {"exp_name": "x"}}


def test_ranks_without_torchruns_store_name_the_run_from_the_launcher(monkeypatch):
    from vidpose.engine import run_dirs

    def name(**env: str) -> str:
        for key in ("TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "SLURM_STEP_ID"):
            monkeypatch.delenv(key, raising=False)
        for key, value in {"WORLD_SIZE": "2", "MASTER_ADDR": "node1", "MASTER_PORT": "29500", **env}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(run_dirs, "_name", None)
        return run_dirs.run_name()

    # every rank of one srun job step sees the same variables, so composes the same name
    assert name(SLURM_JOB_ID="7", RANK="0") == name(SLURM_JOB_ID="7", RANK="1")
    assert name(SLURM_JOB_ID="7").startswith("job_") and name(SLURM_JOB_ID="7") != name(SLURM_JOB_ID="8")
    # one process: a time stamp and a random suffix, different for every process
    assert name(WORLD_SIZE="1") != name(WORLD_SIZE="1")


@pytest.mark.slow
def test_every_rank_of_a_torchrun_job_writes_into_one_folder(tmp_path, synthetic_cache):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        *_train_command(synthetic_cache, "trainer.batch_size=4", "trainer.dist_timeout_s=120")[1:],
    ]
    done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    folders = _run_folders(tmp_path / "outputs")
    assert len(folders) == 1, folders  # no .hydra-only folder of rank 1
    assert load_checkpoint(find_latest(folders[0] / "checkpoints"))["world_size"] == 2
