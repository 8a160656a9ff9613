"""The report's PNGs (matplotlib, Agg backend: no display needed). Time runs in seconds from the
rollout's first event (``t0``), over the same range on every plot; every plot carries the step boundaries (dotted) and the decision (a solid
line, green for a promotion, red for a rollback) so they read together."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analyzer.report.history import History  # noqa: E402
from analyzer.report.metrics import Points, Series  # noqa: E402

CANARY, BASELINE = "#d62728", "#1f77b4"


def _marks(ax: Axes, h: History, t0: float) -> None:
    for i, b in enumerate(h.boundaries):
        ax.axvline(b.ts - t0, color="grey", linestyle=":", linewidth=1, label="step completed" if i == 0 else None)
    if h.decision is not None:
        color = "green" if h.decision.kind == "promoted" else "red"
        ax.axvline(h.decision.ts - t0, color=color, linewidth=2, label=h.decision.kind)


def _line(ax: Axes, points: Points, t0: float, scale: float, color: str, label: str) -> bool:
    if not points:
        return False
    ax.plot([t - t0 for t, _ in points], [v * scale for _, v in points], color=color, label=label, linewidth=1.5)
    return True


def _finish(fig: Figure, ax: Axes, h: History, t0: float, title: str, ylabel: str, path: Path,
            has_data: bool, xlim: tuple[float, float]) -> Path:
    _marks(ax, h, t0)
    ax.set_xlim(xlim[0] - t0, xlim[1] - t0)
    if not has_data:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey", fontsize=14)
    ax.set_title(title)
    ax.set_xlabel("seconds since the rollout started")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def canary_until_rollback(points: Points, h: History) -> Points:
    """The canary's points up to a rollback: after it the canary serves nothing, and what a
    rate window still shows is the last traffic it had, which would read as a live flat line."""
    if h.decision is None or h.decision.kind == "promoted":
        return points
    return [(t, v) for t, v in points if t <= h.decision.ts]


def metric_plot(h: History, series: Series, t0: float, which: str, path: Path, xlim: tuple[float, float]) -> Path:
    fig, ax = plt.subplots(figsize=(9, 3.6))
    if which == "error_rate":
        drawn = [_line(ax, canary_until_rollback(series.canary_error_rate, h), t0, 100, CANARY, "canary"),
                 _line(ax, series.baseline_error_rate, t0, 100, BASELINE, "baseline (stable)")]
        title, ylabel = "Error rate: canary vs baseline", "5xx share of requests (%)"
    else:
        drawn = [_line(ax, canary_until_rollback(series.canary_p99, h), t0, 1000, CANARY, "canary"),
                 _line(ax, series.baseline_p99, t0, 1000, BASELINE, "baseline (stable)")]
        title, ylabel = "p99 latency: canary vs baseline", "p99 latency (ms)"
    ax.set_ylim(bottom=0)
    return _finish(fig, ax, h, t0, title, ylabel, path, any(drawn), xlim)


def weight_plot(h: History, t0: float, path: Path, xlim: tuple[float, float]) -> Path:
    fig, ax = plt.subplots(figsize=(9, 3.0))
    has = False
    for attr, label, style in (("desired", "desired", "--"), ("verified", "verified (read back)", "-")):
        pts = [(w.ts - t0, getattr(w, attr)) for w in h.weights if getattr(w, attr) is not None]
        if pts:
            xs, ys = [p[0] for p in pts] + [xlim[1] - t0], [p[1] for p in pts] + [pts[-1][1]]
            ax.step(xs, ys, where="post", linestyle=style, label=label, linewidth=1.8)
            has = True
    ax.set_ylim(-3, 103)
    return _finish(fig, ax, h, t0, "Canary weight", "canary share (%)", path, has, xlim)
