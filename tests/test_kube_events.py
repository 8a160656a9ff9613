"""KubeEvents: core/v1 Events on the ModelRollout (by uid), repeated events counted, and never an
exception, whatever the API server does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from test_kube_support import MR, rollout, with_crd

from analyzer.kube.events import KubeEvents


def events_of(fake_kube, name="inference", namespace="default"):
    return [e for e in fake_kube.list_objects("v1", "Event", namespace)
            if e.get("involvedObject", {}).get("name") == name]


def stored_rollout(fake_kube):
    with_crd(fake_kube)
    fake_kube.create(rollout())
    return fake_kube.get(*MR, "inference")


def test_event_on_the_rollout(fake_kube):
    obj = stored_rollout(fake_kube)
    sink = KubeEvents(fake_kube.api_client(), instance="analyzer-0")
    sink.emit(obj, "StepCompleted", "step 0 (setWeight 5) completed: canary at 5 %")
    sink.emit(obj, "RolloutAborted", "analysis success-rate Failed: 0.93 < 0.99", warning=True)
    evs = sorted(events_of(fake_kube), key=lambda e: e["reason"])
    assert [(e["reason"], e["type"], e["count"]) for e in evs] == [("RolloutAborted", "Warning", 1), ("StepCompleted", "Normal", 1)]
    ev = evs[1]
    assert ev["involvedObject"] == {"apiVersion": "rollouts.analyzer.dev/v1alpha1", "kind": "ModelRollout", "name": "inference",
                                    "namespace": "default", "uid": obj["metadata"]["uid"],
                                    "resourceVersion": obj["metadata"]["resourceVersion"]}
    assert ev["message"] == "step 0 (setWeight 5) completed: canary at 5 %"
    assert ev["reportingComponent"] == "rollout-analyzer" and ev["reportingInstance"] == "analyzer-0"
    assert ev["source"] == {"component": "rollout-analyzer"}
    assert ev["firstTimestamp"] == ev["lastTimestamp"]
    # what `kubectl events --for modelrollout/inference` reads: the events.k8s.io view of the same event
    v1 = [e for e in fake_kube.list_objects("events.k8s.io/v1", "Event", "default") if e["reason"] == "StepCompleted"]
    assert v1[0]["regarding"]["uid"] == obj["metadata"]["uid"] and v1[0]["note"] == ev["message"]


def test_repeated_event_bumps_count(fake_kube):
    obj = stored_rollout(fake_kube)
    t = [datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)]
    sink = KubeEvents(fake_kube.api_client(), clock=lambda: t[0])
    for _ in range(3):
        sink.emit(obj, "WaitingForCapacity", "canary has 1/2 ready replicas for weight 25")
        t[0] += timedelta(seconds=30)
    sink.emit(obj, "WaitingForCapacity", "canary has 2/2 ready replicas for weight 25")  # a different message: new event
    evs = sorted(events_of(fake_kube), key=lambda e: e["message"])
    assert [(e["message"][11:14], e["count"]) for e in evs] == [("1/2", 3), ("2/2", 1)]
    assert evs[0]["firstTimestamp"] == "2026-12-01T10:00:00Z" and evs[0]["lastTimestamp"] == "2026-12-01T10:01:00Z"
    # the event was removed (events expire): the next repeat starts a new one
    fake_kube.delete("v1", "Event", evs[0]["metadata"]["name"])
    sink.emit(obj, "WaitingForCapacity", "canary has 1/2 ready replicas for weight 25")
    assert sorted(e["count"] for e in events_of(fake_kube)) == [1, 1]


def test_long_messages_are_cut(fake_kube):
    obj = stored_rollout(fake_kube)
    KubeEvents(fake_kube.api_client()).emit(obj, "Long", "x" * 5000)
    (ev,) = events_of(fake_kube)
    assert len(ev["message"]) == 1024 and ev["message"].endswith("...")


def test_never_raises_when_the_api_fails(fake_kube):
    obj = stored_rollout(fake_kube)
    sink = KubeEvents(fake_kube.api_client(), timeout=(1.0, 1.0))
    fake_kube.inject_error("POST", r"/events$", code=500, times=1)
    with structlog.testing.capture_logs() as logs:
        sink.emit(obj, "StepCompleted", "step 1 completed")
    assert events_of(fake_kube) == []
    assert logs and logs[0]["event"] == "kubernetes event not recorded" and logs[0]["log_level"] == "warning"
    assert logs[0]["name"] == "inference"
    assert logs[0]["error"] == "create event for ModelRollout default/inference: 500 InternalError: injected by fakekube"
    fake_kube.inject_error("POST", r"/events$", code=403, times=1, reason="Forbidden", message="RBAC says no")
    with structlog.testing.capture_logs() as logs:
        sink.emit(obj, "StepCompleted", "step 1 completed")
    assert logs[0]["error"] == "create event for ModelRollout default/inference: 403 Forbidden: RBAC says no"
    sink.emit(obj, "StepCompleted", "step 1 completed")  # the API is back
    assert [e["count"] for e in events_of(fake_kube)] == [1]
    # the count bump fails: still no exception
    fake_kube.inject_error("PATCH", r"/events/", code=500, times=1)
    with structlog.testing.capture_logs() as logs:
        sink.emit(obj, "StepCompleted", "step 1 completed")
    assert logs and "500" in logs[0]["error"]
    # nonsense input and an unreachable API server: logged, not raised
    with structlog.testing.capture_logs() as logs:
        sink.emit({}, "X", "no metadata")
        sink.emit(None, "X", "not a mapping")  # type: ignore[arg-type]
    assert len(logs) == 2
    fake_kube.stop()
    with structlog.testing.capture_logs() as logs:
        sink.emit(obj, "StepCompleted", "server gone")
    assert logs and "cannot reach the Kubernetes API server" in logs[0]["error"]


def test_events_for_a_rollout_in_another_namespace(fake_kube):
    with_crd(fake_kube)
    fake_kube.create_namespace("ml")
    fake_kube.create(rollout("llm", "ml"))
    obj = fake_kube.get(*MR, "llm", "ml")
    KubeEvents(fake_kube.api_client()).emit(obj, "RolloutCompleted", "promoted")
    assert [e["reason"] for e in events_of(fake_kube, "llm", "ml")] == ["RolloutCompleted"]
    assert events_of(fake_kube, "llm", "default") == []
