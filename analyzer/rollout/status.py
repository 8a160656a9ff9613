"""``ModelRollout.status`` JSON <-> the step engine's RolloutStatus.

All progress lives in ``.status`` (the process keeps nothing a restart would lose), so this is a
lossless round trip of every field the engine uses. Times are RFC 3339 in UTC, whole seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from analyzer.core.steps import (
    AnalysisRunRecord,
    Condition,
    PauseCondition,
    PauseReason,
    RolloutPhase,
    RolloutStatus,
    RunKind,
)


def _time(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(s: Any) -> datetime | None:
    if not s:
        return None
    text = str(s).replace("Z", "+00:00").replace("z", "+00:00")
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def status_to_json(st: RolloutStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "observedGeneration": st.observed_generation,
        "phase": str(st.phase),
        "message": st.message,
        "currentStepIndex": st.current_step_index,
        "updateHash": st.update_hash,
        "attempt": st.attempt,
        "weights": {"desired": st.desired_weight, "verified": st.verified_weight,
                    "verifiedAt": _time(st.verified_at)},
        "routes": list(st.routes),
        "trafficProblems": list(st.traffic_problems),
        "pauseConditions": [{"reason": str(p.reason), "startTime": _time(p.start_time), "message": p.message}
                            for p in st.pause_conditions],
        "controllerPause": st.controller_pause,
        "abort": st.abort,
        "abortedAt": _time(st.aborted_at),
        "abortMessage": st.abort_message,
        "promoteFull": st.promote_full,
        "promoted": st.promoted,
        "stepStartedAt": _time(st.step_started_at),
        "referenceReplicas": st.reference_replicas,
        "backgroundRuns": st.background_runs,
        "analysisRuns": [_run_to_json(r) for r in st.analysis_runs],
        "conditions": [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                        "lastTransitionTime": _time(c.last_transition_time),
                        "lastUpdateTime": _time(c.last_update_time)} for c in st.conditions],
        "handledRequests": dict(st.handled_requests),
    }
    return {k: v for k, v in out.items() if v is not None}


def _run_to_json(r: AnalysisRunRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name, "kind": str(r.kind), "phase": r.phase, "message": r.message,
                           "terminated": r.terminated}
    if r.step_index is not None:
        out["stepIndex"] = r.step_index
    if r.started_at is not None:
        out["startedAt"] = _time(r.started_at)
    if r.completed_at is not None:
        out["completedAt"] = _time(r.completed_at)
    if r.detail is not None:
        out["status"] = dict(r.detail)
    return out


def status_from_json(data: Mapping[str, Any] | None) -> RolloutStatus:
    """A status as stored (missing fields take their defaults; an empty status is a new rollout)."""
    d = dict(data or {})
    weights = d.get("weights") or {}
    st = RolloutStatus(
        observed_generation=int(d.get("observedGeneration") or 0),
        phase=RolloutPhase(d["phase"]) if d.get("phase") in {p.value for p in RolloutPhase} else RolloutPhase.PROGRESSING,
        message=str(d.get("message") or ""),
        current_step_index=d.get("currentStepIndex"),
        update_hash=str(d.get("updateHash") or ""),
        attempt=int(d.get("attempt") or 1),
        desired_weight=int(weights.get("desired") or 0),
        verified_weight=weights.get("verified"),
        verified_at=_parse_time(weights.get("verifiedAt")),
        routes=[str(r) for r in d.get("routes") or []],
        traffic_problems=[str(p) for p in d.get("trafficProblems") or []],
        pause_conditions=[PauseCondition(PauseReason(p["reason"]), _parse_time(p.get("startTime")) or datetime.now(UTC),
                                         str(p.get("message") or ""))
                          for p in d.get("pauseConditions") or []],
        controller_pause=bool(d.get("controllerPause")),
        abort=bool(d.get("abort")),
        aborted_at=_parse_time(d.get("abortedAt")),
        abort_message=str(d.get("abortMessage") or ""),
        promote_full=bool(d.get("promoteFull")),
        promoted=bool(d.get("promoted")),
        step_started_at=_parse_time(d.get("stepStartedAt")),
        reference_replicas=d.get("referenceReplicas"),
        background_runs=int(d.get("backgroundRuns") or 0),
        analysis_runs=[AnalysisRunRecord(
            name=str(r["name"]), kind=RunKind(r.get("kind") or "Step"), step_index=r.get("stepIndex"),
            phase=str(r.get("phase") or "Pending"), message=str(r.get("message") or ""),
            started_at=_parse_time(r.get("startedAt")), completed_at=_parse_time(r.get("completedAt")),
            terminated=bool(r.get("terminated")), detail=r.get("status"),
        ) for r in d.get("analysisRuns") or []],
        conditions=[Condition(str(c["type"]), str(c.get("status") or "Unknown"), str(c.get("reason") or ""),
                              str(c.get("message") or ""),
                              _parse_time(c.get("lastTransitionTime")) or datetime.fromtimestamp(0, UTC),
                              _parse_time(c.get("lastUpdateTime")) or datetime.fromtimestamp(0, UTC))
                    for c in d.get("conditions") or []],
        handled_requests={str(k): str(v) for k, v in (d.get("handledRequests") or {}).items()},
    )
    return st
