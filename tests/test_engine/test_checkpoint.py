import hashlib
import io
import random

import numpy as np
import pytest
import torch

from vidpose.engine.checkpoint import (
    CheckpointError,
    CheckpointManager,
    capture_rng_state,
    find_latest,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_round_trip_and_checksum(tmp_path):
    path = save_checkpoint({"model": {"w": torch.arange(4.0)}, "step": 3}, tmp_path / "step_00000003.pt")
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["model"]["w"], torch.arange(4.0))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_truncated_or_unsidecarred_file_falls_back_to_previous(tmp_path, caplog):
    manager = CheckpointManager(tmp_path, keep_last=3)
    for step in (1, 2, 3):
        manager.save({"step": step}, step)
    newest = tmp_path / "step_00000003.pt"
    newest.write_bytes(newest.read_bytes()[:50])  # truncated
    (tmp_path / "step_00000002.pt.sha256").unlink()  # a kill between the two renames
    with caplog.at_level("WARNING"):
        latest = find_latest(tmp_path)
    assert latest == tmp_path / "step_00000001.pt"
    assert "step_00000003.pt" in caplog.text and "step_00000002.pt" in caplog.text


def test_manager_keeps_last_and_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in range(1, 5):
        manager.save({"step": step}, step, is_best=step == 2)
    names = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert names == ["best.pt", "step_00000003.pt", "step_00000004.pt"]
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 2


def test_other_format_version_is_refused(tmp_path):
    path = save_checkpoint({"x": 1}, tmp_path / "a.pt")
    buf = io.BytesIO()
    torch.save({"format_version": 99}, buf)
    path.write_bytes(buf.getvalue())
    (tmp_path / "a.pt.sha256").write_text(hashlib.sha256(buf.getvalue()).hexdigest() + "\n")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint({"rng": capture_rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
