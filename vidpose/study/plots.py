"""The study's figure: a metric per method, the mean as a bar, every seed as a dot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidpose.study.leaderboard import MethodSummary, mean_std, metric_values

__all__ = ["plot_metric_by_method"]


def plot_metric_by_method(summaries: Sequence[MethodSummary], key: str, path: str | Path, title: str) -> Path:
    """Bar of the mean of ``key`` per method with a ±1 std error bar and one dot per seed; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(s.method, metric_values(s, key)) for s in summaries]
    rows = [(name, values) for name, values in rows if values]
    if not rows:
        raise ValueError(f"no method reports {key!r}; nothing to plot")
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 3.6), dpi=120)
    for i, (_, values) in enumerate(rows):
        mean, std = mean_std(values)
        ax.bar(i, mean, color="#9ecae1", edgecolor="#3182bd", width=0.6)
        if std == std:  # NaN with one seed: no bar
            ax.errorbar(i, mean, yerr=std, color="#08519c", capsize=4)
        ax.scatter([i] * len(values), values, color="#08306b", s=14, zorder=3)
    ax.set_xticks(range(len(rows)), [name for name, _ in rows], rotation=25, ha="right")
    ax.set_ylabel(key)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
