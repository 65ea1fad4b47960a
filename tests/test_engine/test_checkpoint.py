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
    is_vidpose_checkpoint,
    load_checkpoint,
    read_meta,
    restore_rng_state,
    save_checkpoint,
)


def _save_version_1(state: dict, path):
    """A checkpoint as vidpose wrote them before format 2: the payload, its digest in a sidecar."""
    buf = io.BytesIO()
    torch.save({**state, "format_version": 1}, buf)
    path.write_bytes(buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    (path.parent / (path.name + ".sha256")).write_text(f"{digest} format_version=1\n")
    return path


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
    for step in (1, 3):
        manager.save({"step": step}, step)
    newest = tmp_path / "step_00000003.pt"
    newest.write_bytes(newest.read_bytes()[:50])  # truncated
    # an old-format file whose sidecar a kill never let be written
    _save_version_1({"step": 2}, tmp_path / "step_00000002.pt")
    (tmp_path / "step_00000002.pt.sha256").unlink()
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
    newer = save_checkpoint({"x": 1}, tmp_path / "b.pt")
    newer.write_bytes(newer.read_bytes().replace(b"vidpose-checkpoint 2 ", b"vidpose-checkpoint 7 ", 1))
    with pytest.raises(CheckpointError, match="format version 7"):
        load_checkpoint(newer)


def test_version_1_checkpoints_are_still_read(tmp_path):
    path = _save_version_1({"step": 4, "config": {"exp_name": "x"}, "model": {"w": torch.ones(2)}}, tmp_path / "s.pt")
    assert is_vidpose_checkpoint(path) and load_checkpoint(path)["step"] == 4
    assert read_meta(path) == {"step": 4, "config": {"exp_name": "x"}}
    assert find_latest(tmp_path) is None  # not a step_*.pt name
    # a version-2 file written over it drops the old sidecar, which would only mislead
    save_checkpoint({"step": 5}, path)
    assert not (tmp_path / "s.pt.sha256").exists() and load_checkpoint(path)["step"] == 5


def test_a_checkpoint_is_one_file_and_flags_a_flipped_header_byte(tmp_path):
    path = save_checkpoint({"step": 1, "model": {"w": torch.ones(2)}}, tmp_path / "step_00000001.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"] and is_vidpose_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[30] ^= 0x01  # inside the digest
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum|malformed header"):
        load_checkpoint(path)


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = save_checkpoint({"rng": capture_rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
