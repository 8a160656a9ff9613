"""Phases and the AnalysisRun status, shaped like Argo's JSON (argo-semantics.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"

    @property
    def completed(self) -> bool:
        return self in _COMPLETED


_COMPLETED = {Phase.SUCCESSFUL, Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE}

# Argo's IsWorse order: Successful < Running < Pending < Inconclusive < Error < Failed.
_RANK = {Phase.SUCCESSFUL: 0, Phase.RUNNING: 1, Phase.PENDING: 2, Phase.INCONCLUSIVE: 3,
         Phase.ERROR: 4, Phase.FAILED: 5}


def is_worse(current: Phase, candidate: Phase) -> bool:
    return _RANK[candidate] > _RANK[current]


def rfc3339(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Measurement:
    phase: Phase
    value: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": str(self.phase), "value": self.value, "message": self.message,
                               "startedAt": rfc3339(self.started_at), "finishedAt": rfc3339(self.finished_at)}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass
class MetricResult:
    name: str
    phase: Phase = Phase.RUNNING
    measurements: list[Measurement] = field(default_factory=list)
    message: str = ""
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    consecutive_success: int = 0
    dry_run: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    # Measurements dropped by retention; the counters above still include them.
    trimmed: int = 0

    def record(self, m: Measurement) -> None:
        """Counter updates per completed measurement (argo-semantics.md §5)."""
        if m.phase == Phase.ERROR:
            self.error += 1
            self.consecutive_error += 1
            self.consecutive_success = 0
        else:
            self.count += 1
            self.consecutive_error = 0
            if m.phase == Phase.SUCCESSFUL:
                self.successful += 1
                self.consecutive_success += 1
            else:
                self.consecutive_success = 0
                if m.phase == Phase.FAILED:
                    self.failed += 1
                elif m.phase == Phase.INCONCLUSIVE:
                    self.inconclusive += 1
        self.measurements.append(m)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "phase": str(self.phase), "message": self.message, "count": self.count,
            "successful": self.successful, "failed": self.failed, "inconclusive": self.inconclusive,
            "error": self.error, "consecutiveError": self.consecutive_error,
            "consecutiveSuccess": self.consecutive_success, "dryRun": self.dry_run,
            "measurements": [m.to_json() for m in self.measurements],
        }
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass
class Summary:
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "successful": self.successful, "failed": self.failed,
                "inconclusive": self.inconclusive, "error": self.error}


@dataclass
class RunStatus:
    phase: Phase | None = None  # None is Argo's "" (a run never reconciled)
    message: str = ""
    metric_results: list[MetricResult] = field(default_factory=list)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    run_summary: Summary = field(default_factory=Summary)
    dry_run_summary: Summary = field(default_factory=Summary)

    @property
    def completed(self) -> bool:
        return self.phase is not None and self.phase.completed

    def result(self, name: str) -> MetricResult | None:
        for r in self.metric_results:
            if r.name == name:
                return r
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": str(self.phase) if self.phase else "",
            "message": self.message,
            "metricResults": [r.to_json() for r in self.metric_results],
            "startedAt": rfc3339(self.started_at),
            "completedAt": rfc3339(self.completed_at),
            "runSummary": self.run_summary.to_json(),
            "dryRunSummary": self.dry_run_summary.to_json(),
        }


def _parse_rfc3339(text: Any) -> datetime | None:
    if not text:
        return None
    t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _phase(text: Any, default: Phase | None) -> Phase | None:
    return Phase(text) if text in Phase._value2member_map_ else default


def _summary_from_json(d: Any) -> Summary:
    d = d if isinstance(d, dict) else {}
    return Summary(*(int(d.get(k) or 0) for k in ("count", "successful", "failed", "inconclusive", "error")))


def _measurement_from_json(d: dict[str, Any]) -> Measurement:
    return Measurement(phase=_phase(d.get("phase"), Phase.ERROR) or Phase.ERROR, value=str(d.get("value") or ""),
                       message=str(d.get("message") or ""), started_at=_parse_rfc3339(d.get("startedAt")),
                       finished_at=_parse_rfc3339(d.get("finishedAt")),
                       metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()})


def run_status_from_json(data: Any) -> RunStatus:
    """The inverse of :meth:`RunStatus.to_json` (a run persisted in a rollout's status).

    ``trimmed`` is not in Argo's JSON; a reloaded run's counters still include trimmed
    measurements because the counters themselves are stored."""
    d = data if isinstance(data, dict) else {}
    results = []
    for r in d.get("metricResults") or []:
        results.append(MetricResult(
            name=str(r.get("name") or ""), phase=_phase(r.get("phase"), Phase.RUNNING) or Phase.RUNNING,
            measurements=[_measurement_from_json(m) for m in r.get("measurements") or []],
            message=str(r.get("message") or ""), count=int(r.get("count") or 0),
            successful=int(r.get("successful") or 0), failed=int(r.get("failed") or 0),
            inconclusive=int(r.get("inconclusive") or 0), error=int(r.get("error") or 0),
            consecutive_error=int(r.get("consecutiveError") or 0),
            consecutive_success=int(r.get("consecutiveSuccess") or 0), dry_run=bool(r.get("dryRun")),
            metadata={str(k): str(v) for k, v in (r.get("metadata") or {}).items()}))
    return RunStatus(phase=_phase(d.get("phase"), None), message=str(d.get("message") or ""), metric_results=results,
                     started_at=_parse_rfc3339(d.get("startedAt")), completed_at=_parse_rfc3339(d.get("completedAt")),
                     run_summary=_summary_from_json(d.get("runSummary")),
                     dry_run_summary=_summary_from_json(d.get("dryRunSummary")))
