"""``analyzer report``: one rollout as an HTML page with PNG plots.

What it shows and where each part comes from:

* canary vs baseline error rate and p99 latency over time: Prometheus' range API
  (:mod:`.metrics`), or a :class:`Series` given directly;
* canary weight over time (desired and read back), step boundaries and the decision point
  (promotion or rollback): the rollout's events file, written through the ``EventSink`` port by
  :class:`analyzer.local.LogEvents` (format in :mod:`analyzer.local.events`), ended by the stored
  status' own weights;
* the verdict table: ``status.analysisRuns`` with each metric's measurements.

The time range is the events' (padded by 10 % on each side) unless ``start``/``end`` are given.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analyzer.report.history import History, build_history
from analyzer.report.metrics import Queries, Series, arms_from, fetch_series

__all__ = ["Series", "ReportError", "write_report"]


class ReportError(RuntimeError):
    """The report cannot be made (no time range, output not writable); the message says why."""


def write_report(rollout: Mapping[str, Any], events: Sequence[Mapping[str, Any]], source: str | Series,
                 out_dir: str | Path, *, arms: Mapping[str, Mapping[str, str]] | None = None,
                 start: float | None = None, end: float | None = None, queries: Queries = Queries()) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the page's path. ``source`` is
    a Prometheus base URL or the series themselves."""
    h = build_history(rollout, events)
    lo, hi = start if start is not None else h.start, end if end is not None else h.end
    if lo is None or hi is None:
        raise ReportError(f"rollout {h.namespace}/{h.name} has no events and no verified weight time: "
                          "nothing places it in time (give start and end)")
    if start is None or end is None:
        pad = max(10.0, 0.1 * (hi - lo))
        lo, hi = (lo - pad if start is None else lo), (hi + pad if end is None else hi)
    arms = arms or arms_from(rollout)
    series = source if isinstance(source, Series) else fetch_series(source, arms, lo, hi, queries=queries)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot create the report directory: {exc.strerror or exc}") from None
    from analyzer.report import plots  # matplotlib only when a report is made

    t0 = h.start if h.start is not None else lo  # time zero: the rollout's first event
    images = [
        plots.weight_plot(h, t0, out / "weights.png", (lo, hi)),
        plots.metric_plot(h, series, t0, "error_rate", out / "error_rate.png", (lo, hi)),
        plots.metric_plot(h, series, t0, "p99", out / "latency_p99.png", (lo, hi)),
    ]
    page = out / "index.html"
    page.write_text(render_html(h, series, arms, t0, [p.name for p in images]), encoding="utf-8")
    return page


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_PHASE_CLASS = {"Successful": "ok", "Healthy": "ok", "promoted": "ok", "Failed": "bad", "Error": "bad",
                "Degraded": "bad", "rolled back": "bad", "Inconclusive": "warn", "Paused": "warn"}


def _phase(p: str) -> str:
    return f'<span class="{_PHASE_CLASS.get(p, "")}">{_e(p)}</span>'


def render_html(h: History, series: Series, arms: Mapping[str, Mapping[str, str]], t0: float,
                images: Sequence[str]) -> str:
    decision = ("no decision yet" if h.decision is None else
                f"{_phase(h.decision.kind)} at {_e(_when(h.decision.ts))} ({h.decision.ts - t0:+.0f} s): "
                f"{_e(h.decision.message)}")
    arm_text = "; ".join(f"{a}: {_e(', '.join(f'{k}={v}' for k, v in arms[a].items()))}" for a in ("canary", "baseline"))
    problems = "".join(f"<li>{_e(p)}</li>" for p in series.problems)
    runs = []
    for r in h.runs:
        metric_rows = "".join(
            f"<tr><td>{_e(m.name)}</td><td>{_phase(m.phase)}</td><td>{_e(m.counts)}</td><td>"
            + ", ".join(f'<span title="{_e(t)}">{_e(v)} ({_e(ph)})</span>' for t, v, ph in m.measurements)
            + (f"<br><em>{_e(m.message)}</em>" if m.message else "") + "</td></tr>"
            for m in r.metrics) or '<tr><td colspan="4">no measurements recorded</td></tr>'
        where = f"step {r.step + 1}" if r.step is not None else r.kind
        runs.append(
            f'<tr class="run"><td>{_e(r.name)}</td><td>{_e(where)}</td><td>{_phase(r.phase)}</td>'
            f"<td>{_e(r.started)} &rarr; {_e(r.completed or '...')}</td><td>{_e(r.message)}</td></tr>"
            f'<tr><td></td><td colspan="4"><table class="metrics"><tr><th>metric</th><th>phase</th><th>count</th>'
            f"<th>measurements (value (phase), oldest first)</th></tr>{metric_rows}</table></td></tr>")
    events = "".join(
        f'<tr class="{"warn" if e.get("warning") else ""}"><td>{float(e["ts"]) - t0:+.1f} s</td>'
        f"<td>{_e(e.get('reason'))}</td><td>{_e(e.get('message'))}</td></tr>" for e in h.events)
    imgs = "".join(f'<figure><img src="{_e(name)}" alt="{_e(name)}"></figure>' for name in images)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Rollout {_e(h.namespace)}/{_e(h.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1000px; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 6px;
 text-align: left; vertical-align: top; font-size: 0.9em; }}
.ok {{ color: #1a7f37; font-weight: bold; }} .bad {{ color: #c62828; font-weight: bold; }}
.warn {{ color: #b26a00; }} img {{ max-width: 100%; }} figure {{ margin: 0.5em 0; }}
</style></head><body>
<h1>Rollout {_e(h.namespace)}/{_e(h.name)}</h1>
<p>Phase: {_phase(h.phase)} {_e(h.message)}</p>
<p>Decision: {decision}</p>
<p>Time zero (the rollout's first event): {_e(_when(t0))}. Arms: {arm_text}.</p>
{f'<ul class="problems">{problems}</ul>' if problems else ''}
<h2>Traffic and metrics</h2>
{imgs}
<h2 id="verdicts">Verdicts</h2>
<table class="verdicts"><tr><th>analysis run</th><th>for</th><th>phase</th><th>time</th><th>message</th></tr>
{''.join(runs) or '<tr><td colspan="5">no analysis runs in the status</td></tr>'}
</table>
<h2>Events</h2>
<table class="events"><tr><th>time</th><th>reason</th><th>message</th></tr>{events}</table>
</body></html>
"""
