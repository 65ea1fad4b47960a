"""Stage-1 sequences: files, sources, windows (official HANet rules), stitching, input-vs-refined scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidpose.data.index import FrameRecord, PersonAnnotation, VideoPoseIndex, VideoRecord
from vidpose.data.keypoints import JHMDB
from vidpose.data.sequences import (
    PoseSequence,
    SequenceSet,
    SequenceWindowDataset,
    Window,
    jittered_gt_sequences,
    read_sequence_source,
    sequences_from_predictions,
    stitch_windows,
)
from vidpose.engine.distributed import DistInfo
from vidpose.engine.sequences import SequenceEvaluator
from vidpose.evaluation.jhmdb_pck import save_input_json
from vidpose.evaluation.writers import PosePrediction, write_posetrack18_predictions
from vidpose.registry import DATASETS


def make_sequence(length: int, k: int = 2, video: str = "v", track: int = 0) -> PoseSequence:
    """Row r has every keypoint at (10 r + 1, 2 r + 3); GT 1 px to the right; image 200 x 100."""
    rows = np.arange(length, dtype=np.float64)
    pred = np.stack([10 * rows + 1, 2 * rows + 3], axis=-1)[:, None].repeat(k, axis=1)
    return PoseSequence(
        video_id=video, track_id=track,
        frame_index=np.arange(length), image_id=1000 + np.arange(length),
        pred=pred, score=np.ones((length, k)), gt=pred + [1.0, 0.0], visible=np.ones((length, k), np.float32),
        box=np.tile([0.0, 0.0, 20.0, 40.0], (length, 1)), box_score=np.ones(length),
        crop_center=np.stack([rows, rows + 50], axis=-1), crop_size=np.tile([40.0, 80.0], (length, 1)),
        image_size=np.tile([200.0, 100.0], (length, 1)),
    )


def test_training_windows_start_at_every_row_modulo_the_valid_starts():
    sequences = [make_sequence(13), make_sequence(4)]
    ds = SequenceWindowDataset(sequences, window=11, sample_interval=5, train=True)
    # 13 rows, 3 valid starts (0, 1, 2): row j starts at j mod 3; the 4-row sequence gives 4 padded windows
    assert [w.start for w in ds.windows] == [0, 1, 2] * 4 + [0] + [0] * 4
    item = ds[(3, 13)]  # (epoch, index) as the trainer's sampler passes it
    assert item["real"].tolist() == [True] * 4 + [False] * 7
    assert item["input"][4:].tolist() == np.zeros((7, 2, 2)).tolist()  # zeros padding (official)
    assert item["visible"][4:].sum() == 0


def test_test_windows_use_stride_n_and_a_tail_window_for_the_last_rows():
    ds = SequenceWindowDataset([make_sequence(23), make_sequence(21), make_sequence(7)], 11, 5, train=False)
    # 23 rows: starts 0, 5, 10 (<= 12) leave rows 21, 22 uncovered -> tail window at 12;
    # 21 rows: 0, 5, 10 cover everything; 7 rows: one padded window
    assert ds.windows == [
        Window(0, 0), Window(0, 5), Window(0, 10), Window(0, 12, tail=True),
        Window(1, 0), Window(1, 5), Window(1, 10), Window(2, 0),
    ]
    step2 = SequenceWindowDataset([make_sequence(23)], 11, 5, train=False, test_step=2)
    assert [(w.start, w.tail) for w in step2.windows] == [(0, False), (10, False), (12, True)]


def test_image_and_key_crop_normalisation_round_trip():
    seq = make_sequence(6)
    image = SequenceWindowDataset([seq], 5, 1, train=False, normalize="image")[1]  # window rows 1..5
    # row 1: pred (11, 5) / (200, 100)
    assert image["input"][0, 0].tolist() == pytest.approx([11 / 200, 5 / 100])
    key = SequenceWindowDataset([seq], 5, 1, train=False, normalize="key_crop")[1]
    # key row = start + 5 // 2 = 3: crop centre (3, 53), size (40, 80) -> origin (-17, 13)
    assert key["origin"][0].tolist() == [-17.0, 13.0] and key["scale"][0].tolist() == [40.0, 80.0]
    assert key["input"][0, 0].tolist() == pytest.approx([(11 + 17) / 40, (5 - 13) / 80])
    back = key["target"] * key["scale"][:, None] + key["origin"][:, None]
    assert np.allclose(back, seq.gt[1:6], atol=1e-4)


def test_edge_padding_repeats_the_last_row_with_zero_visibility():
    item = SequenceWindowDataset([make_sequence(3)], 5, 1, train=True, pad="edge")[0]
    assert np.array_equal(item["input"][3], item["input"][2]) and np.array_equal(item["input"][4], item["input"][2])
    assert item["visible"][3:].sum() == 0 and item["real"].tolist() == [True, True, True, False, False]


def test_stitch_averages_regular_windows_and_the_tail_only_fills_uncovered_rows():
    windows = [Window(0, 0), Window(0, 2), Window(0, 4, tail=True)]
    outputs = [np.full((4, 1, 2), 1.0), np.full((4, 1, 2), 3.0), np.full((4, 1, 2), 10.0)]
    stitched = stitch_windows(8, windows, outputs)
    # rows 0-1: 1; rows 2-3: mean(1, 3) = 2; rows 4-5: 3 (the tail does not touch covered rows); rows 6-7: 10
    assert stitched[:, 0, 0].tolist() == [1, 1, 2, 2, 3, 3, 10, 10]
    with pytest.raises(ValueError, match="covered by no window"):
        stitch_windows(8, windows[:1], outputs[:1])


def test_sequence_file_round_trip_and_errors(tmp_path):
    sequences = [make_sequence(5, video="a", track=3), make_sequence(2, video="b")]
    original = SequenceSet(sequences, "jhmdb", "x/test", "unit")
    path = original.save(tmp_path / "seq.npz")
    loaded = SequenceSet.load(path)
    assert (loaded.layout, loaded.dataset, loaded.source) == ("jhmdb", "x/test", "unit")
    assert [(s.video_id, s.track_id, len(s)) for s in loaded.sequences] == [("a", 3, 5), ("b", 0, 2)]
    for a, b in zip(original.sequences, loaded.sequences):
        for name in a.__dataclass_fields__:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    with np.load(path) as data:
        # the stored crop coordinates: row 0 pred (1, 3), centre (0, 50), size (40, 80)
        assert data["pred_crop"][0, 0].tolist() == pytest.approx([1 / 40 + 0.5, (3 - 50) / 80 + 0.5])
        np.savez(tmp_path / "broken.npz", **{k: data[k] for k in data.files if k != "gt"})
    with pytest.raises(ValueError, match=r"missing \['gt'\]"):
        SequenceSet.load(tmp_path / "broken.npz")


def tiny_index() -> VideoPoseIndex:
    """One video, three frames, tracks 7 and 9 (JHMDB layout, 15 joints)."""
    frames = []
    for f in range(3):
        people = [
            PersonAnnotation(t, np.full((15, 2), 10.0 * f + t, np.float32), np.ones(15, np.float32),
                             np.array([10.0, 20.0, 30.0, 40.0], np.float32))
            for t in (7, 9)
        ]
        frames.append(FrameRecord(100 + f, f"v/{f}.png", f, True, people, width=320, height=240))
    return VideoPoseIndex("toy/test", JHMDB, "/nowhere", [VideoRecord("v", frames, None)])


def test_sequences_group_instances_by_track_in_frame_order():
    index = tiny_index()
    instances = [inst for inst in index.gt_instances(0)][::-1]  # reversed: the builder must sort
    predictions = []
    for inst in instances:
        frame = index.videos[0].frames[inst.frame]
        kp = np.concatenate([frame.people[inst.person].keypoints + 1.0, np.full((15, 1), 0.5)], axis=1)
        predictions.append(PosePrediction(frame.image_id, kp, 1.0, inst.track_id))
    sequences = sequences_from_predictions(index, instances, predictions, aspect_ratio=0.75, enlarge=1.25)
    assert [(s.track_id, s.frame_index.tolist()) for s in sequences] == [(7, [0, 1, 2]), (9, [0, 1, 2])]
    # track 9, frame 2: GT 10 * 2 + 9 = 29, prediction GT + 1
    assert sequences[1].pred[2, 0].tolist() == [30.0, 30.0] and sequences[1].gt[2, 0].tolist() == [29.0, 29.0]
    # box [10, 20, 30, 40]: centre (25, 40); w = 30 is not > 0.75 * 40, so w = 30; x 1.25 -> (37.5, 50)
    assert sequences[0].crop_center[0].tolist() == [25.0, 40.0] and sequences[0].crop_size[0].tolist() == [37.5, 50.0]
    assert sequences[0].image_size[0].tolist() == [320.0, 240.0]


@pytest.fixture(scope="module")
def pt_val(tmp_path_factory):
    import os

    cache = os.environ.get("VIDPOSE_CACHE") or str(tmp_path_factory.mktemp("cache"))
    return DATASETS.build({"name": "synthetic", "preset": "tiny", "cache_root": cache}, split="val")


@pytest.fixture(scope="module")
def jhmdb_test(tmp_path_factory):
    import os

    cache = os.environ.get("VIDPOSE_CACHE") or str(tmp_path_factory.mktemp("cache"))
    return DATASETS.build({"name": "synthetic_jhmdb", "preset": "tiny", "cache_root": cache}, split="test")


def shifted_predictions(index, instances, shift):
    out = []
    for inst in instances:
        frame = index.videos[inst.video].frames[inst.frame]
        kp = frame.people[inst.person].keypoints + shift
        scored = np.concatenate([kp, np.full((len(kp), 1), 0.9)], axis=1)
        out.append(PosePrediction(frame.image_id, scored, 1.0, inst.track_id))
    return out


def test_posetrack18_prediction_files_rebuild_the_exported_sequences(pt_val, tmp_path):
    instances = pt_val.gt_instances(0)
    predictions = shifted_predictions(pt_val, instances, 2.0)
    direct = sequences_from_predictions(pt_val, instances, predictions, 0.75, 1.25)
    gt_dir = Path({v.source_file for v in pt_val.videos}.pop()).parent
    write_posetrack18_predictions(predictions, gt_dir, tmp_path / "pred")
    rebuilt = read_sequence_source(tmp_path / "pred", pt_val, 0.75, 1.25)
    assert rebuilt.dataset == "posetrack18/val" and len(rebuilt.sequences) == len(direct)
    for a, b in zip(direct, rebuilt.sequences):
        assert (a.video_id, a.track_id) == (b.video_id, b.track_id)
        assert np.allclose(a.pred, b.pred) and np.array_equal(a.gt, b.gt)
        assert np.array_equal(a.frame_index, b.frame_index)
    SequenceSet(direct, "posetrack", "posetrack18/train", "unit").save(tmp_path / "train.npz")
    with pytest.raises(ValueError, match="sequences of 'posetrack18/train'"):
        read_sequence_source(tmp_path / "train.npz", pt_val, 0.75, 1.25)


def test_jhmdb_input_json_becomes_one_sequence_per_clip(jhmdb_test, tmp_path):
    videos = []
    for video in jhmdb_test.videos:
        gt = np.stack([f.people[0].keypoints for f in video.frames])
        videos.append({"name": video.video_id, "gt": gt, "pred": gt + 3.0, "bbox": np.zeros((len(gt), 4))})
    save_input_json(tmp_path / "in.json", videos)
    loaded = read_sequence_source(tmp_path / "in.json", jhmdb_test, 0.75, 1.25)
    assert [s.video_id for s in loaded.sequences] == [v.video_id for v in jhmdb_test.videos]
    assert np.allclose(loaded.sequences[0].pred - loaded.sequences[0].gt, 3.0)


def test_jittered_gt_is_seeded_and_scaled_by_the_box(jhmdb_test):
    a = jittered_gt_sequences(jhmdb_test, 0.75, 1.25, sigma=0.1, outlier_prob=0.0, seed=3)
    b = jittered_gt_sequences(jhmdb_test, 0.75, 1.25, sigma=0.1, outlier_prob=0.0, seed=3)
    c = jittered_gt_sequences(jhmdb_test, 0.75, 1.25, sigma=0.1, outlier_prob=0.0, seed=4, copies=2)
    assert all(np.array_equal(x.pred, y.pred) for x, y in zip(a.sequences, b.sequences))
    assert len(c.sequences) == 2 * len(a.sequences) and not np.array_equal(a.sequences[0].pred, c.sequences[0].pred)
    # per-coordinate noise / (0.1 * longer box side) is standard normal
    z = np.concatenate([(s.pred - s.gt) / (0.1 * s.box[:, 2:].max(axis=1))[:, None, None] for s in a.sequences])
    assert abs(z.std() - 1.0) < 0.1 and abs(z.mean()) < 0.1


class Identity(torch.nn.Module):
    def forward(self, poses):
        return {"refined": poses, "encoder": poses}


def test_identity_refiner_scores_like_its_input_on_both_benchmarks(pt_val, jhmdb_test, tmp_path):
    info = DistInfo()
    for index, benchmark, window, n in ((jhmdb_test, "jhmdb", 11, 5), (pt_val, "posetrack", 5, 1)):
        instances = index.gt_instances(0)
        sequences = SequenceSet(
            sequences_from_predictions(index, instances, shifted_predictions(index, instances, 4.0), 0.75, 1.25),
            index.layout.name, index.name, "unit",
        )
        windows = SequenceWindowDataset(sequences.sequences, window, n, train=False, normalize="key_crop", pad="edge")
        evaluator = SequenceEvaluator(sequences, windows, index, benchmark, tmp_path / benchmark, info)
        metrics = evaluator.evaluate(Identity(), tag="t")
        assert metrics["refined/error_px"] == pytest.approx(4.0 * np.sqrt(2), abs=1e-3)
        assert metrics["input/error_px"] == pytest.approx(4.0 * np.sqrt(2), abs=1e-6)
        if benchmark == "jhmdb":
            # every frame annotated: a constant shift accelerates exactly as the GT does
            assert metrics["input/accel_error_px"] == pytest.approx(0.0, abs=1e-6)
            assert metrics["refined/PCK@0.1/Avg"] == pytest.approx(metrics["input/PCK@0.1/Avg"])
            assert "N=5, Q=2, step=1" in metrics["protocol"] and "all frames" in metrics["protocol_all_frames"]
        else:
            assert metrics["refined/mAP"] == pytest.approx(metrics["input/mAP"], abs=1e-6)
            assert (tmp_path / benchmark / "t" / "refined").is_dir()


def test_acceleration_error_counts_only_runs_of_consecutive_frames():
    from vidpose.engine.sequences import _accel_error_px

    def sequence(frames, pred_x):
        n = len(frames)
        gt = np.zeros((n, 1, 2))
        pred = gt.copy()
        pred[:, 0, 0] = pred_x
        return PoseSequence(
            "v", 1, np.asarray(frames), np.asarray(frames), pred, np.ones((n, 1)), gt, np.ones((n, 1), np.float32),
            np.zeros((n, 4)), np.ones(n), np.zeros((n, 2)), np.ones((n, 2)), np.zeros((n, 2)),
        )

    # frames 0, 1, 2: a = 0 - 2 * 3 + 0 = -6 -> |a_pred - a_gt| = 6
    assert _accel_error_px([sequence([0, 1, 2], [0.0, 3.0, 0.0])]) == pytest.approx(6.0)
    # frames 0, 1, 5, 6: no run of three consecutive frames, nothing to average
    assert np.isnan(_accel_error_px([sequence([0, 1, 5, 6], [0.0, 3.0, 0.0, 3.0])]))
