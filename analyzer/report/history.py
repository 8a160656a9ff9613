"""A rollout's history for the report, from its events (format: :mod:`analyzer.local.events`) and
its stored object: weights over time, step boundaries, the decision, the verdict table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PROMOTED_REASONS = ("RolloutCompleted",)
ROLLBACK_REASONS = ("RolloutAborted", "ProgressDeadlineExceeded")


@dataclass(frozen=True)
class WeightPoint:
    ts: float
    desired: int | None
    verified: int | None


@dataclass(frozen=True)
class Boundary:
    ts: float
    label: str  # e.g. "step 1/9 done (setWeight: 5)"


@dataclass(frozen=True)
class DecisionPoint:
    ts: float
    kind: str  # "promoted" | "rolled back"
    message: str


@dataclass(frozen=True)
class MetricVerdict:
    name: str
    phase: str
    counts: str  # "3 measured: 2 successful, 1 failed"
    measurements: tuple[tuple[str, str, str], ...]  # (finishedAt, value, phase), oldest first
    message: str = ""


@dataclass(frozen=True)
class RunVerdict:
    name: str
    kind: str
    step: int | None
    phase: str
    message: str
    started: str
    completed: str
    metrics: tuple[MetricVerdict, ...] = ()


@dataclass
class History:
    namespace: str
    name: str
    phase: str
    message: str
    weights: list[WeightPoint] = field(default_factory=list)
    boundaries: list[Boundary] = field(default_factory=list)
    decision: DecisionPoint | None = None
    runs: list[RunVerdict] = field(default_factory=list)
    events: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def start(self) -> float | None:
        times = [e["ts"] for e in self.events] + [w.ts for w in self.weights]
        return min(times) if times else None

    @property
    def end(self) -> float | None:
        times = [e["ts"] for e in self.events] + [w.ts for w in self.weights]
        return max(times) if times else None


def _ts(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_history(rollout: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> History:
    meta = rollout.get("metadata") or {}
    status = rollout.get("status") or {}
    h = History(str(meta.get("namespace") or "default"), str(meta.get("name") or "?"),
                str(status.get("phase") or "unknown"), str(status.get("message") or ""))
    h.events = sorted((e for e in events if isinstance(e.get("ts"), int | float)), key=lambda e: e["ts"])
    for e in h.events:
        state = e.get("state") or {}
        if state:
            point = WeightPoint(float(e["ts"]), _int(state.get("desiredWeight")), _int(state.get("verifiedWeight")))
            if not h.weights or (h.weights[-1].desired, h.weights[-1].verified) != (point.desired, point.verified):
                h.weights.append(point)
        reason = str(e.get("reason"))
        if reason == "RolloutStepCompleted":
            h.boundaries.append(Boundary(float(e["ts"]), str(e.get("message") or "step completed")))
        if h.decision is None:
            if reason in PROMOTED_REASONS:
                h.decision = DecisionPoint(float(e["ts"]), "promoted", str(e.get("message") or ""))
            elif reason in ROLLBACK_REASONS and (state.get("abort", True)):
                h.decision = DecisionPoint(float(e["ts"]), "rolled back", str(e.get("message") or ""))
    # The stored status is the latest word: its verified weight at verifiedAt ends the line.
    weights = status.get("weights") or {}
    verified_at = _ts(weights.get("verifiedAt"))
    if verified_at is not None and (not h.weights or verified_at >= h.weights[-1].ts):
        last = WeightPoint(verified_at, _int(weights.get("desired")), _int(weights.get("verified")))
        if not h.weights or (h.weights[-1].desired, h.weights[-1].verified) != (last.desired, last.verified):
            h.weights.append(last)
    if h.decision is None:  # events missing: fall back to the status
        if status.get("abort") and _ts(status.get("abortedAt")) is not None:
            h.decision = DecisionPoint(_ts(status.get("abortedAt")) or 0.0, "rolled back",
                                       str(status.get("abortMessage") or ""))
        elif status.get("promoted"):
            cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Completed"), None)
            t = _ts(cond.get("lastTransitionTime")) if cond else None
            if t is not None:
                h.decision = DecisionPoint(t, "promoted", str(cond.get("message") if cond else ""))
    h.runs = [_run(r) for r in status.get("analysisRuns") or [] if isinstance(r, Mapping)]
    return h


def _run(r: Mapping[str, Any]) -> RunVerdict:
    detail = r.get("status") or {}
    metrics = []
    for m in detail.get("metricResults") or []:
        if not isinstance(m, Mapping):
            continue
        counts = [f"{m.get(k)} {k}" for k in ("successful", "failed", "inconclusive", "error") if m.get(k)]
        total = int(m.get("count") or 0) + int(m.get("error") or 0)
        ms = tuple((str(x.get("finishedAt") or x.get("startedAt") or ""), str(x.get("value", "")),
                    str(x.get("phase") or "")) for x in m.get("measurements") or [] if isinstance(x, Mapping))
        metrics.append(MetricVerdict(str(m.get("name")), str(m.get("phase") or ""),
                                     f"{total} measured" + (": " + ", ".join(counts) if counts else ""),
                                     ms, str(m.get("message") or "")))
    step = r.get("stepIndex")
    return RunVerdict(str(r.get("name")), str(r.get("kind") or ""), step if isinstance(step, int) else None,
                      str(r.get("phase") or ""), str(r.get("message") or ""), str(r.get("startedAt") or ""),
                      str(r.get("completedAt") or ""), tuple(metrics))
