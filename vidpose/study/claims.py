"""The papers' claims in miniature, checked on a study's leaderboard: PASS, FAIL or NOT MEASURED.

One rule for every comparison: ``a`` beats ``b`` on a metric when the difference of their means
over seeds exceeds twice the larger of the two seed standard deviations (in the direction the
metric improves), and "does not lose" when ``b`` is not better than ``a`` by more than that.

- every ``method`` row beats the row it is compared with (its family's baseline, continued for
  the same steps) on the degraded subset (``degraded/mAP``) and does not lose on the full set;
- extra claims of the study (``extra.claims``), e.g. MTPose's motion-aware targets beat its
  standard-target ablation on the fastest motion bin (``motion/AP/bin<last>``);
- every refiner row lowers the acceleration error and raises PCK@0.05 over its own input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vidpose.study.leaderboard import MethodSummary, mean_std, metric_values
from vidpose.study.spec import StudySpec

__all__ = ["Claim", "Comparison", "compare", "evaluate_claims", "render_claims", "fastest_motion_bin"]

#: metrics where smaller is better
LOWER_IS_BETTER = re.compile(r"(accel|error|jitter)")


@dataclass(frozen=True)
class Comparison:
    """``a`` vs ``b`` on one metric: means, stds, the margin the rule needs and the verdicts."""

    metric: str
    a_mean: float
    a_std: float
    b_mean: float
    b_std: float
    lower_is_better: bool

    @property
    def margin(self) -> float:
        """Twice the larger seed std (0 when neither has a spread: a single seed each)."""
        stds = [s for s in (self.a_std, self.b_std) if math.isfinite(s)]
        return 2.0 * max(stds) if stds else 0.0

    @property
    def gain(self) -> float:
        """How much better ``a`` is than ``b`` (positive = better)."""
        difference = self.a_mean - self.b_mean
        return -difference if self.lower_is_better else difference

    @property
    def measured(self) -> bool:
        """Both means exist."""
        return math.isfinite(self.a_mean) and math.isfinite(self.b_mean)

    def beats(self) -> bool:
        """``a`` better by more than the margin."""
        return self.measured and self.gain > self.margin

    def no_worse(self) -> bool:
        """``a`` not worse by more than the margin."""
        return self.measured and self.gain >= -self.margin

    def text(self, a: str, b: str) -> str:
        """``metric: a 45.1 ± 0.3 vs b 40.2 ± 0.5 (gain +4.9, margin 1.0)``."""
        def fmt(mean: float, std: float) -> str:
            return "–" if not math.isfinite(mean) else f"{mean:.2f}" + ("" if not math.isfinite(std) else f" ± {std:.2f}")

        return (
            f"{self.metric}: {a} {fmt(self.a_mean, self.a_std)} vs {b} {fmt(self.b_mean, self.b_std)} "
            f"(gain {self.gain:+.2f}, margin {self.margin:.2f})"
        )


def compare(a_values: Sequence[float], b_values: Sequence[float], metric: str) -> Comparison:
    """The comparison of two lists of per-seed values of ``metric``."""
    a_mean, a_std = mean_std(a_values)
    b_mean, b_std = mean_std(b_values)
    return Comparison(metric, a_mean, a_std, b_mean, b_std, bool(LOWER_IS_BETTER.search(metric)))


@dataclass(frozen=True)
class Claim:
    """One line of the claims table: ``status`` is PASS, FAIL or NOT MEASURED."""

    name: str
    status: str
    evidence: str


def fastest_motion_bin(summaries: Sequence[MethodSummary]) -> str | None:
    """The metric key of the highest motion bin any run reports."""
    bins = [int(m.group(1)) for s in summaries for k in s.values if (m := re.match(r"^motion/AP/bin(\d+)$", k))]
    return f"motion/AP/bin{max(bins)}" if bins else None


def _values(summaries: Mapping[str, MethodSummary], row: str, key: str) -> list[float]:
    summary = summaries.get(row)
    return [] if summary is None else metric_values(summary, key)


def _status(measured: bool, passed: bool) -> str:
    return "PASS" if measured and passed else ("FAIL" if measured else "NOT MEASURED")


def _method_claim(summaries: Mapping[str, MethodSummary], row: str, reference: str) -> Claim:
    degraded = compare(_values(summaries, row, "degraded/mAP"), _values(summaries, reference, "degraded/mAP"),
                       "degraded/mAP")
    full = compare(_values(summaries, row, "mAP"), _values(summaries, reference, "mAP"), "mAP")
    measured = degraded.measured and full.measured
    return Claim(
        f"{row} beats {reference} on the degraded subset and does not lose on the full set",
        _status(measured, degraded.beats() and full.no_worse()),
        f"{degraded.text(row, reference)}; {full.text(row, reference)}",
    )


def _extra_claim(summaries: Mapping[str, MethodSummary], node: Mapping[str, Any], fastest: str | None) -> Claim:
    metric = str(node["metric"])
    if metric == "fastest_motion_bin":
        metric = fastest or "motion/AP/bin?"
    row, than = str(node["row"]), str(node["than"])
    result = compare(_values(summaries, row, metric), _values(summaries, than, metric), metric)
    name = str(node.get("name", f"{row} beats {than} on {metric}"))
    return Claim(name, _status(result.measured, result.beats()), result.text(row, than))


def _refiner_claims(summaries: Mapping[str, MethodSummary], row: str) -> list[Claim]:
    claims = []
    for metric in ("accel_error_px", "PCK@0.05/Avg"):
        result = compare(_values(summaries, row, f"refined/{metric}"), _values(summaries, row, f"input/{metric}"),
                         metric)
        verb = "lowers" if result.lower_is_better else "raises"
        claims.append(Claim(f"{row} {verb} {metric} over its input sequences",
                            _status(result.measured, result.beats()), result.text(f"{row} refined", "input")))
    return claims


def evaluate_claims(spec: StudySpec, summaries: Sequence[MethodSummary]) -> list[Claim]:
    """Every claim of the study, in row order, then the extra claims, then the refiners'."""
    by_name = {s.method: s for s in summaries}
    claims = [
        _method_claim(by_name, row.name, row.compare_to)
        for row in spec.rows.values()
        if row.kind == "method" and row.compare_to is not None
    ]
    fastest = fastest_motion_bin(summaries)
    claims += [_extra_claim(by_name, node, fastest) for node in spec.extra.get("claims", [])]
    for row in spec.refine.values():
        claims += _refiner_claims(by_name, row.name)
    return claims


def render_claims(claims: Sequence[Claim]) -> str:
    """The claims table (markdown)."""
    lines = ["| claim | result | numbers (mean ± seed std) |", "|---|---|---|"]
    lines += [f"| {c.name} | **{c.status}** | {c.evidence} |" for c in claims]
    return "\n".join(lines) + "\n"
