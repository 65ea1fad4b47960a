import json
import subprocess
import sys

import numpy as np
import pytest

from vidpose.evaluation.jhmdb_pck import (
    AVG_7_GROUPS_KEY,
    AVG_13_JOINTS_KEY,
    DECIWATCH_WINDOWS,
    HANET_WINDOWS,
    PRINTED_COLUMNS_KEY,
    SlidingWindows,
    box_sizes,
    evaluate,
    evaluate_splits,
    load_input_json,
    main,
    save_input_json,
)

K = 15
FAR = 1000.0  # an offset that misses at every threshold for the boxes used here


def make_video(name, frames, box=(0.0, 0.0, 100.0, 100.0)):
    """A video whose prediction equals its GT (every joint a hit) inside a fixed box."""
    gt = np.tile(
        np.stack([np.linspace(10, 80, K), np.linspace(20, 90, K)], axis=-1), (frames, 1, 1)
    )
    return {
        "name": name,
        "gt": gt,
        "pred": gt.copy(),
        "bbox": np.tile(np.asarray(box, float), (frames, 1)),
    }


# ---------------------------------------------------------------- the comparison rule


def test_exact_tie_is_a_hit_where_float32_normalised_distance_fails():
    # box 100 x 50 -> size max(100, 50) = 100; offset (12, 16) is exactly 20 px = 0.2 * 100
    video = make_video("tie", 1, box=(0, 0, 100, 50))
    video["pred"][0, 0] += (12.0, 16.0)
    video["pred"][0, 1] += (12.0, 16.001)  # just beyond the tie
    # A float32 normalised distance overshoots the threshold at the exact tie, so comparing
    # it with the double 0.2 rejects the joint: float32(20 / 100) = 0.20000000298 > 0.2
    assert not float(np.float32(20.0) / np.float32(100.0)) <= 0.2
    result = evaluate([video])
    assert result.videos[0].hits[0.2][0] == 1
    assert result.videos[0].hits[0.2][1] == 0
    assert result.videos[0].hits[0.1][0] == 0  # 20 > 10
    assert result.per_joint[0.2][0] == 1.0 and result.per_joint[0.2][1] == 0.0


def test_box_corners_truncate_toward_zero():
    # frame 0: [-3.7, 10.2, 110.95, 60.0] -> [-3, 10, 110, 60]: size max(113, 50) = 113 (floor would give 114)
    # frame 1: [-20.9, 0, 9.9, 10] -> [-20, 0, 9, 10]: size 29 (floor 30, round 31, raw 30.8)
    boxes = np.array([[-3.7, 10.2, 110.95, 60.0], [-20.9, 0.0, 9.9, 10.0]])
    assert box_sizes(boxes).tolist() == [113.0, 29.0]
    video = make_video("trunc", 2)
    video["bbox"] = boxes
    video["pred"][0, 0, 0] += 22.55  # <= 0.2 * 113 = 22.6: hit
    video["pred"][0, 1, 0] += 22.7  # > 22.6 (a floor box would allow 22.8): miss
    video["pred"][1, 0, 0] += 2.85  # <= 0.1 * 29 = 2.9: hit
    video["pred"][1, 1, 0] += 2.95  # > 2.9 (floor would allow 3.0): miss
    hits = evaluate([video]).videos[0].hits
    assert hits[0.2][:2].tolist() == [2, 1]  # frame 1's 2.85 / 2.95 are < 0.2 * 29 = 5.8
    assert hits[0.1][:2].tolist() == [1, 0]  # frame 0's 22.55 / 22.7 are > 11.3: misses


def test_zero_size_box_needs_an_exact_prediction():
    # [5, 5, 5.9, 5.2] truncates to [5, 5, 5, 5]: size 0, threshold 0
    video = make_video("zero", 1, box=(5.0, 5.0, 5.9, 5.2))
    video["pred"][0, 3, 1] += 1e-9
    result = evaluate([video])
    for t in (0.2, 0.1, 0.05):
        expected = np.ones(K)
        expected[3] = 0.0
        assert np.array_equal(result.per_joint[t], expected)


def test_visibility_is_ignored_in_the_official_mode():
    video = make_video("v", 2)
    video["pred"][1, 4] += FAR
    plain = evaluate([video])
    video["visible"] = np.zeros((2, K))
    hidden = evaluate([video])
    assert hidden.per_joint[0.2][4] == plain.per_joint[0.2][4] == 0.5
    assert "ignored" in hidden.protocol["visibility"]


def test_masked_mode_is_labelled_and_scores_visible_joints_only():
    a, b = make_video("a", 4), make_video("b", 2)
    a["visible"], b["visible"] = np.ones((4, K)), np.ones((2, K))
    a["visible"][:2, 6] = 0  # joint 6 scored in frames 2, 3 of a
    a["pred"][0, 6] += FAR  # invisible miss: not counted
    a["pred"][2, 6] += FAR  # visible miss: a's ratio 1/2
    b["visible"][:, 6] = 0  # b never shows joint 6: left out of that joint's mean
    result = evaluate([a, b], mask_invisible=True)
    assert result.videos[0].scored[6] == 2 and result.videos[1].scored[6] == 0
    assert result.per_joint[0.2][6] == 0.5
    assert "NOT the official" in result.protocol["visibility"]
    b["visible"][:] = 0
    a["visible"][:, 6] = 0
    with pytest.raises(ValueError, match="right_hip|left_hip"):
        evaluate([a, b], mask_invisible=True)
    with pytest.raises(ValueError, match="window mode"):
        evaluate([a], mask_invisible=True, frames="windows", window=HANET_WINDOWS)


# ---------------------------------------------------------------- aggregation


def test_every_video_weighs_the_same():
    # joint 0: short video 1 hit of 2 frames (0.5), long video 10 of 10 (1.0)
    # video mean = (0.5 + 1.0) / 2 = 0.75; frame pooling would give 11 / 12 = 0.9167
    short, long = make_video("short", 2), make_video("long", 10)
    short["pred"][1, 0] += FAR
    result = evaluate([short, long])
    assert result.per_joint[0.2][0] == pytest.approx(0.75, abs=1e-12)
    assert result.per_joint[0.2][1:].tolist() == [1.0] * 14
    assert [v.frames for v in result.videos] == [2, 10]
    assert result.videos[0].hits[0.2][0] == 1 and result.videos[1].hits[0.2][0] == 10
    assert result.per_joint[0.2].dtype == np.float64


def ramp_video():
    """4 frames; joint j is a hit in (j % 5) of them -> ratios [0, .25, .5, .75, 1] repeated three times."""
    video = make_video("ramp", 4)
    for j in range(K):
        video["pred"][j % 5 :, j] += FAR
    return video


def test_groups_use_anatomical_indices_and_avg_is_the_15_joint_mean():
    result = evaluate([ramp_video()])
    assert result.per_joint[0.2].tolist() == [0, 0.25, 0.5, 0.75, 1] * 3
    groups = result.groups(0.2)
    # Head = face (2); Shoulder (3, 4); Elbow (7, 8); Wrist (11, 12); Hip (5, 6); Knee (9, 10); Ankle (13, 14)
    expected = {
        "Head": 0.5,
        "Shoulder": 0.875,
        "Elbow": 0.625,
        "Wrist": 0.375,
        "Hip": 0.125,
        "Knee": 0.5,
        "Ankle": 0.875,
        "Avg": 7.5 / 15,
    }
    assert groups == pytest.approx(expected, abs=1e-12)
    # Mean of the seven groups is 3.875 / 7 = 0.5536, not the official Avg 0.5
    assert result.avg_7_groups(0.2) == pytest.approx(3.875 / 7, abs=1e-12)
    # Without neck (0) and belly (0.25): 7.25 / 13
    assert result.avg_13_joints(0.2) == pytest.approx(7.25 / 13, abs=1e-12)


def test_deciwatch_printed_columns_reproduce_the_mislabelled_table():
    printed = evaluate([ramp_video()]).deciwatch_printed_columns(0.2)
    # Head = joint 0 (neck), Shoulder = (1, 2), Elbow = (3, 4), Wrist = (5, 6), Hip = (7, 8),
    # Knee = (9, 10), Ankle = (11, 12); Mean = 15-joint mean
    expected = {
        "Head": 0.0,
        "Shoulder": 0.375,
        "Elbow": 0.875,
        "Wrist": 0.125,
        "Hip": 0.625,
        "Knee": 0.5,
        "Ankle": 0.375,
        "Mean": 0.5,
    }
    assert printed == pytest.approx(expected, abs=1e-12)


def test_evaluate_splits_averages_splits_equally_and_labels_them():
    s1, s2, s3 = make_video("a", 3), make_video("b", 2), make_video("c", 5)
    s2["pred"][:, 0] += FAR  # joint 0: split 2 at 0
    s3["pred"][0, 0] += FAR  # split 3 at 4 / 5
    result = evaluate_splits({1: [s1], 2: [s2], 3: [s3]})
    assert result.per_joint[0.2][0] == pytest.approx((1.0 + 0.0 + 0.8) / 3, abs=1e-12)
    assert result.splits[3].per_joint[0.2][0] == pytest.approx(0.8, abs=1e-12)
    assert "three-split average" in result.protocol["split"]
    assert result.splits[2].protocol["split"] == "split 2 test list"
    payload = result.to_json()
    assert set(payload["splits"]) == {"split1", "split2", "split3"}
    with pytest.raises(ValueError, match="1, 2 or 3"):
        evaluate_splits({4: [s1]})


def test_protocol_names_the_split():
    assert "union of the test lists" in evaluate([make_video("a", 1)], split="union").protocol_text
    assert "unspecified" in evaluate([make_video("a", 1)]).protocol["split"]
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate([make_video("a", 1)], split="split4")


# ---------------------------------------------------------------- window mode


@pytest.mark.parametrize(
    "window, length, last_scored",
    [
        (HANET_WINDOWS, 37, 35),
        (HANET_WINDOWS, 40, 35),
        (HANET_WINDOWS, 30, 25),
        (DECIWATCH_WINDOWS, 40, 30),
        (DECIWATCH_WINDOWS, 37, 30),
        (DECIWATCH_WINDOWS, 30, 20),
    ],
)
def test_window_frame_subsets_match_the_refiners(window, length, last_scored):
    assert window.size == 11
    keep, padded = window.frame_plan(length)
    assert keep.tolist() == list(range(last_scored + 1)) and padded == 0


def test_window_parameters():
    assert (HANET_WINDOWS.stride, DECIWATCH_WINDOWS.stride) == (5, 10)
    assert (SlidingWindows(n=4, q=3, step=2).size, SlidingWindows(n=4, q=3, step=2).stride) == (
        13,
        8,
    )
    with pytest.raises(ValueError, match="exceeds the window size"):
        SlidingWindows(n=10, q=1, step=2)
    with pytest.raises(ValueError, match="integer >= 1"):
        SlidingWindows(n=0, q=1)


def test_window_mode_drops_the_tail_and_scores_zero_padding():
    # 37 frames under HANet windows: frame 36 is never scored, so its miss does not count
    tail = make_video("tail", 37)
    tail["pred"][36] += FAR
    assert evaluate([tail]).per_joint[0.2][0] == pytest.approx(36 / 37, abs=1e-12)
    windowed = evaluate([tail], frames="windows", window=HANET_WINDOWS)
    assert windowed.per_joint[0.2].tolist() == [1.0] * K
    assert windowed.videos[0].frames == 36
    # 6 frames, all missed, padded to W = 11 with 5 zero frames that count as hits: 5 / 11
    short = make_video("short", 6)
    short["pred"] += FAR
    padded = evaluate([short], frames="windows", window=DECIWATCH_WINDOWS)
    assert padded.videos[0].padded_frames == 5 and padded.videos[0].frames == 11
    assert padded.videos[0].hits[0.05].tolist() == [5] * K
    assert padded.per_joint[0.05] == pytest.approx(np.full(K, 5 / 11), abs=1e-12)
    assert "W=11" in padded.protocol["frames"]


def test_window_options_must_agree():
    with pytest.raises(ValueError, match="needs window"):
        evaluate([make_video("a", 3)], frames="windows")
    with pytest.raises(ValueError, match="only used with frames='windows'"):
        evaluate([make_video("a", 3)], window=HANET_WINDOWS)
    with pytest.raises(ValueError, match="'all' or 'windows'"):
        evaluate([make_video("a", 3)], frames="some")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("field", ["gt", "pred", "bbox"])
def test_nan_is_an_error_naming_video_and_field(field):
    video = make_video("clip7", 3)
    video[field] = video[field].copy()
    video[field][1, 0] = np.nan
    with pytest.raises(ValueError, match=rf"'clip7'.*'{field}'.*frame 1"):
        evaluate([video])


def test_negative_box_size_is_an_error():
    video = make_video("clip8", 2)
    video["bbox"][1] = (50, 50, 40, 60)
    with pytest.raises(ValueError, match=r"'clip8'.*'bbox'.*frame 1.*negative box size"):
        evaluate([video])


def test_zero_frames_and_mismatched_lengths_are_errors():
    empty = make_video("empty", 0)
    with pytest.raises(ValueError, match="'empty': has 0 frames"):
        evaluate([empty])
    video = make_video("cut", 4)
    video["pred"] = video["pred"][:3]
    with pytest.raises(ValueError, match="'cut': field 'pred' has 3 frames but 'gt' has 4"):
        evaluate([video])
    video = make_video("cutbox", 4)
    video["bbox"] = video["bbox"][:2]
    with pytest.raises(ValueError, match="'cutbox': field 'bbox' has 2 frames"):
        evaluate([video])
    with pytest.raises(ValueError, match="no videos"):
        evaluate([])


def test_wrong_shapes_and_missing_fields_are_errors():
    video = make_video("shape", 2)
    video["gt"] = video["gt"][:, :14]
    with pytest.raises(
        ValueError, match=r"'shape': field 'gt' must have shape \(F, 15, 2\), got \(2, 14, 2\)"
    ):
        evaluate([video])
    video = make_video("boxshape", 2)
    video["bbox"] = np.zeros((2, 5))
    with pytest.raises(ValueError, match=r"'boxshape': field 'bbox' must have shape \(F, 4\)"):
        evaluate([video])
    video = make_video("nopred", 2)
    del video["pred"]
    with pytest.raises(ValueError, match="'nopred': missing field 'pred'"):
        evaluate([video])
    with pytest.raises(ValueError, match="thresholds must be finite"):
        evaluate([make_video("a", 1)], thresholds=(-0.1,))
    with pytest.raises(TypeError, match="video #0: expected a mapping"):
        evaluate([[1, 2, 3]])


def test_input_json_without_videos_list_is_an_error(tmp_path, capsys):
    (tmp_path / "in.json").write_text('{"clips": []}')
    with pytest.raises(ValueError, match="expected an object with a 'videos' list"):
        load_input_json(tmp_path / "in.json")
    assert main(["--input", str(tmp_path / "in.json")]) == 2
    assert "'videos' list" in capsys.readouterr().err


# ---------------------------------------------------------------- command line


def test_cli_writes_json_and_prints_the_table(tmp_path, capsys):
    short, long = make_video("short", 2), make_video("long", 10)
    short["pred"][1, 2] += FAR  # face: (0.5 + 1) / 2 = 0.75 -> Head 75.00
    save_input_json(tmp_path / "in.json", [short, long])
    assert [v["name"] for v in load_input_json(tmp_path / "in.json")] == ["short", "long"]
    code = main(
        [
            "--input",
            str(tmp_path / "in.json"),
            "--json",
            str(tmp_path / "out.json"),
            "--protocol-label",
            "union",
        ]
    )
    assert code == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert {
        "per_joint",
        "groups",
        "hits_per_video",
        "protocol",
        PRINTED_COLUMNS_KEY,
        AVG_13_JOINTS_KEY,
        AVG_7_GROUPS_KEY,
    } <= set(out)
    assert set(out["per_joint"]) == {"0.2", "0.1", "0.05"} and len(out["per_joint"]["0.2"]) == K
    assert list(out["groups"]["0.1"]) == [
        "Head",
        "Shoulder",
        "Elbow",
        "Wrist",
        "Hip",
        "Knee",
        "Ankle",
        "Avg",
    ]
    assert out["groups"]["0.1"]["Head"] == 0.75
    assert (
        out["hits_per_video"][0]["hits"]["0.05"][2] == 1
        and out["hits_per_video"][1]["frames"] == 10
    )
    assert "union of the test lists" in out["protocol"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PCK", "Head", "Sho", "Elb", "Wri", "Hip", "Knee", "Ank", "Avg"]
    # Avg = (14 + 0.75) / 15 = 98.33 %
    assert lines[1].split() == ["@0.2", "75.00"] + ["100.00"] * 6 + ["98.33"]
    assert lines[4].startswith("protocol: ") and "frames: all frames" in lines[4]


def test_cli_window_mode_and_split_inputs(tmp_path, capsys):
    tail = make_video("tail", 37)
    tail["pred"][36] += FAR
    save_input_json(tmp_path / "in.json", [tail])
    assert (
        main(
            [
                "--input",
                str(tmp_path / "in.json"),
                "--frames",
                "windows",
                "--window-n",
                "5",
                "--window-q",
                "2",
                "--json",
                str(tmp_path / "out.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["groups"]["0.05"]["Avg"] == 1.0 and "N=5, Q=2" in out["protocol"]
    paths = [str(tmp_path / "in.json")] * 3
    assert main(["--split-inputs", *paths, "--json", str(tmp_path / "splits.json")]) == 0
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert splits["groups"]["0.2"]["Avg"] == pytest.approx(36 / 37) and set(splits["splits"]) == {
        "split1",
        "split2",
        "split3",
    }
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--input", str(tmp_path / "in.json"), "--frames", "windows"])


def test_cli_reports_bad_input(tmp_path, capsys):
    video = make_video("broken", 2)
    video["gt"][0, 0, 0] = np.nan
    save_input_json(tmp_path / "in.json", [video])
    assert main(["--input", str(tmp_path / "in.json")]) == 2
    assert "'broken': field 'gt'" in capsys.readouterr().err


def _write_videos(path, videos):
    """IN.json with the given video records as they are (lists, strings, booleans)."""
    path.write_text(json.dumps({"videos": videos}))
    return path


def _listed(video):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in video.items()}


@pytest.mark.parametrize(
    "field, index, value",
    [("gt", (0, 3, 1), "12.5"), ("pred", (1, 0, 0), "7"), ("bbox", (0, 2), True)],
)
def test_strings_and_booleans_are_not_coordinates(tmp_path, capsys, field, index, value):
    # numpy would read "12.5" as 12.5 and true as 1.0; the error names file, video and field
    video = _listed(make_video("clip", 2))
    row = video[field]
    for i in index[:-1]:
        row = row[i]
    row[index[-1]] = value
    path = _write_videos(tmp_path / "in.json", [video])
    expected = (
        rf"{path}: videos\[0\]: video 'clip': field '{field}' has {value!r} at "
        rf"\{list(index)}; expected numbers \(not strings or booleans\)"
    )
    with pytest.raises(ValueError, match=expected):
        load_input_json(path)
    assert main(["--input", str(path)]) == 2
    assert f"{path}: videos[0]: video 'clip': field '{field}'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=rf"video 'clip': field '{field}' has {value!r}"):
        evaluate([video])


def test_visible_may_hold_booleans_but_not_strings():
    video = make_video("v", 1)
    video["visible"] = [[True] * K]
    assert evaluate([video], mask_invisible=True).groups(0.2)["Avg"] == 1.0
    video["visible"] = [["1"] * K]
    with pytest.raises(ValueError, match=r"field 'visible' has '1' at \[0, 0\]"):
        evaluate([video])


def test_json_errors_name_the_file(tmp_path, capsys):
    path = tmp_path / "cut.json"
    save_input_json(path, [make_video("a", 2)])
    path.write_text(path.read_text()[:50])
    with pytest.raises(ValueError, match=rf"{path}: not valid JSON \(truncated or corrupt\?\)"):
        load_input_json(path)
    assert main(["--input", str(path)]) == 2
    assert f"error: {path}: not valid JSON" in capsys.readouterr().err


def test_json_output_folder_is_created(tmp_path, capsys):
    save_input_json(tmp_path / "in.json", [make_video("a", 2)])
    out = tmp_path / "new" / "deeper" / "pck.json"
    assert main(["--input", str(tmp_path / "in.json"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["groups"]["0.2"]["Avg"] == 1.0


def test_module_runs_without_torch(tmp_path):
    save_input_json(tmp_path / "in.json", [make_video("a", 2)])
    code = (
        "import sys, runpy; sys.argv = ['x', '--input', sys.argv[1]];"
        "import vidpose.evaluation.jhmdb_pck;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "runpy.run_module('vidpose.evaluation.jhmdb_pck', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "in.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "100.00" in proc.stdout


# ---------------------------------------------------------------- real sample


def sample_videos(jhmdb_mini):
    """One 1-frame video per annotation of the MMPose sample; keypoints kept 1-based, box [x, y, x+w, y+h]."""
    data = json.loads((jhmdb_mini / "test_jhmdb_sub1.json").read_text())
    videos = []
    for ann in data["annotations"]:
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(K, 3)[:, :2]
        x, y, w, h = ann["bbox"]
        videos.append(
            {
                "name": str(ann["image_id"]),
                "gt": keypoints[None],
                "pred": keypoints[None].copy(),
                "bbox": np.array([[x, y, x + w, y + h]]),
            }
        )
    return videos


def test_real_sample_perfect_prediction_scores_100(jhmdb_mini):
    result = evaluate(sample_videos(jhmdb_mini), split="split1")
    for t in (0.2, 0.1, 0.05):
        assert result.groups(t) == pytest.approx({name: 1.0 for name in result.groups(t)})


def test_real_sample_hand_checked_perturbation(jhmdb_mini):
    videos = sample_videos(jhmdb_mini)
    assert videos[1]["name"] == "2290001"
    # clip 00229 frame 1: bbox [114, 68, 38, 115] -> size max(38, 115) = 115.
    # Shift its right wrist (11) by 12 px: <= 0.2 * 115 = 23 (hit), > 0.1 * 115 = 11.5 and > 5.75 (miss).
    videos[1]["pred"][0, 11, 0] += 12.0
    result = evaluate(videos, split="split1")
    assert result.groups(0.2)["Avg"] == 1.0
    for t in (0.1, 0.05):
        assert result.per_joint[t][11] == pytest.approx(2 / 3, abs=1e-12)  # (1 + 0 + 1) / 3 videos
        assert result.groups(t)["Wrist"] == pytest.approx(5 / 6, abs=1e-12)  # (2/3 + 1) / 2
        assert result.groups(t)["Avg"] == pytest.approx(1 - 1 / 45, abs=1e-12)  # (14 + 2/3) / 15
    assert [v.hits[0.1][11] for v in result.videos] == [1, 0, 1]
