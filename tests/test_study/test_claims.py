"""Claims: the 2x-larger-std rule on hand-built leaderboards, and the study definition's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidpose.study.claims import compare, evaluate_claims, render_claims
from vidpose.study.leaderboard import MethodSummary, RunRecord
from vidpose.study.spec import load_study


def summary(method: str, **metrics: list[float]) -> MethodSummary:
    n = len(next(iter(metrics.values())))
    runs = [RunRecord(path=Path(f"/{method}/{s}"), status="finished", method=method, seed=s) for s in range(n)]
    return MethodSummary(method, runs, {k: list(v) for k, v in metrics.items()})


def test_compare_uses_twice_the_larger_seed_std():
    # means 30 vs 20, stds 1 and 4: margin 8 < gain 10 -> beats
    result = compare([29.0, 30.0, 31.0], [16.0, 20.0, 24.0], "degraded/mAP")
    assert result.gain == pytest.approx(10.0) and result.margin == pytest.approx(8.0) and result.beats()
    # stds 1 and 6: margin 12 > gain 10 -> does not beat, but is no worse
    close = compare([29.0, 30.0, 31.0], [14.0, 20.0, 26.0], "degraded/mAP")
    assert not close.beats() and close.no_worse()
    # lower is better for acceleration errors
    accel = compare([1.0, 1.1, 0.9], [3.0, 3.1, 2.9], "accel_error_px")
    assert accel.lower_is_better and accel.gain == pytest.approx(2.0) and accel.beats()
    assert not compare([], [1.0], "mAP").measured


def test_claims_of_the_study_on_a_hand_built_leaderboard():
    spec = load_study("claims")
    summaries = [
        summary("baseline", **{"degraded/mAP": [20, 21, 22], "mAP": [50, 51, 52]}),
        summary("baseline_hrnet", **{"degraded/mAP": [10, 11, 12], "mAP": [40, 41, 42]}),
        # beats on degraded (+10, margin 2) without losing on all: PASS
        summary("mtpose", **{"degraded/mAP": [30, 31, 32], "mAP": [50, 51, 52],
                             "motion/AP/bin0": [70, 70, 70], "motion/AP/bin4": [40, 41, 42]}),
        summary("mtpose_standard_target", **{"motion/AP/bin0": [70, 70, 70], "motion/AP/bin4": [30, 31, 32],
                                             "degraded/mAP": [1, 1, 1], "mAP": [1, 1, 1]}),
        # beats on degraded but loses 10 on the full set: FAIL
        summary("vremd", **{"degraded/mAP": [30, 31, 32], "mAP": [40, 41, 42]}),
        # within the noise: FAIL
        summary("jmpose", **{"degraded/mAP": [10, 12, 14], "mAP": [40, 41, 42]}),
        summary("hanet", **{"refined/accel_error_px": [1.0, 1.1, 0.9], "input/accel_error_px": [3.0, 3.0, 3.0],
                            "refined/PCK@0.05/Avg": [50, 50, 50], "input/PCK@0.05/Avg": [50, 50, 50]}),
    ]
    claims = {c.name: c for c in evaluate_claims(spec, summaries)}
    assert claims["mtpose beats baseline on the degraded subset and does not lose on the full set"].status == "PASS"
    assert claims["vremd beats baseline on the degraded subset and does not lose on the full set"].status == "FAIL"
    assert claims["jmpose beats baseline_hrnet on the degraded subset and does not lose on the full set"].status == "FAIL"
    assert claims["continuity beats baseline on the degraded subset and does not lose on the full set"].status == "NOT MEASURED"
    target = next(c for n, c in claims.items() if "motion-aware targets" in n)
    assert target.status == "PASS" and "motion/AP/bin4" in target.evidence
    assert claims["hanet lowers accel_error_px over its input sequences"].status == "PASS"
    assert claims["hanet raises PCK@0.05/Avg over its input sequences"].status == "FAIL"
    assert "| **PASS** |" in render_claims(list(claims.values()))


def test_study_definitions_are_checked(tmp_path):
    spec = load_study("claims")
    assert spec.seeds == (0, 1, 2) and spec.rows["jmpose"].pretrained == "hrnet"
    assert spec.rows["mtpose"].compare_to == "baseline" and spec.rows["baseline"].kind == "reference"
    quick = load_study("claims", quick=True)
    assert quick.seeds == (0, 1) and any("degraded_tiny" in o for o in quick.common)
    assert load_study("claims", overrides=["seeds=[5]"]).seeds == (5,)
    bad = tmp_path / "bad.yaml"
    cases = {
        "pretrain: {vit: {exp: a, data: d}}\nrows: {m: {exp: b, pretrained: hrnet, compare_to: m}}\nseeds: [0]":
            "pretrained: 'hrnet' is not a pretrain entry",
        "pretrain: {vit: {exp: a, data: d}}\nrows: {m: {exp: b, pretrained: vit}}\nseeds: [0]": "needs compare_to",
        "pretrain: {vit: {exp: a, data: d}}\nrows: {m: {exp: b, pretrained: vit, colour: red}}\nseeds: [0]":
            "unknown keys \\['colour'\\]",
        "pretrain: {vit: {exp: a, data: d}}\nrows: {}\nseeds: [0, 0]": "distinct integers",
        "pretrain: {vit: {exp: a}}\nrows: {}\nseeds: [0]": "pretrain.vit: missing 'data'",
        "pretrain: {vit: {exp: a, data: d}}\nrows: {overrides: lr}\nseeds: [0]": "expected a list of key=value",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_study(bad)
    with pytest.raises(FileNotFoundError, match="known studies"):
        load_study("nonexistent")
