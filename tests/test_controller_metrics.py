"""The daemon's Prometheus metrics: read back through the exposition text, as Prometheus would."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from analyzer.controller.metrics import ControllerMetrics


def samples(m: ControllerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.render().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: ControllerMetrics, metric: str, /, **labels: str) -> float | None:
    return samples(m).get((metric, tuple(sorted(labels.items()))))


def rollout(phase: str, desired: int, verified: int | None, runs: list[tuple[str, str]]) -> dict[str, Any]:
    weights: dict[str, Any] = {"desired": desired}
    if verified is not None:
        weights["verified"] = verified
    return {"metadata": {"namespace": "ml", "name": "llm"},
            "status": {"phase": phase, "weights": weights,
                       "analysisRuns": [{"name": n, "kind": "Step", "phase": p} for n, p in runs]}}


def test_rollout_series_follow_the_status() -> None:
    m = ControllerMetrics()
    m.observe_rollout(rollout("Progressing", 25, None, [("a-1", "Running")]))
    assert value(m, "analyzer_rollout_phase", namespace="ml", name="llm", phase="Progressing") == 1
    assert value(m, "analyzer_rollout_phase", namespace="ml", name="llm", phase="Healthy") == 0
    assert value(m, "analyzer_rollout_canary_weight", namespace="ml", name="llm", kind="desired") == 25
    assert value(m, "analyzer_rollout_canary_weight", namespace="ml", name="llm", kind="verified") is None

    m.observe_rollout(rollout("Progressing", 25, 25, [("a-1", "Successful")]))
    m.observe_rollout(rollout("Progressing", 50, 25, [("a-1", "Successful")]))  # seen again: counted once
    m.observe_rollout(rollout("Degraded", 0, 0, [("a-1", "Successful"), ("a-2", "Failed")]))
    assert value(m, "analyzer_rollout_phase", namespace="ml", name="llm", phase="Degraded") == 1
    assert value(m, "analyzer_rollout_phase", namespace="ml", name="llm", phase="Progressing") == 0
    assert value(m, "analyzer_rollout_canary_weight", namespace="ml", name="llm", kind="verified") == 0
    assert value(m, "analyzer_rollout_analysis_runs_total", namespace="ml", name="llm", phase="Successful") == 1
    assert value(m, "analyzer_rollout_analysis_runs_total", namespace="ml", name="llm", phase="Failed") == 1

    m.forget("ml", "llm")
    assert not [k for k in samples(m) if ("name", "llm") in k[1]]


def test_runs_that_ended_before_this_process_saw_the_rollout_are_not_counted_again() -> None:
    m = ControllerMetrics()  # e.g. a new leader after a handover
    m.observe_rollout(rollout("Progressing", 50, 50, [("a-1", "Successful"), ("a-2", "Running")]))
    m.observe_rollout(rollout("Progressing", 50, 50, [("a-1", "Successful"), ("a-2", "Inconclusive")]))
    assert value(m, "analyzer_rollout_analysis_runs_total", namespace="ml", name="llm", phase="Successful") is None
    assert value(m, "analyzer_rollout_analysis_runs_total", namespace="ml", name="llm", phase="Inconclusive") == 1


def test_reconcile_and_leader_series_in_their_own_registry() -> None:
    m = ControllerMetrics()
    m.reconcile_done(0.004)
    m.reconcile_done(0.2, error=True)
    m.set_leader(True)
    assert value(m, "analyzer_reconciles_total") == 2
    assert value(m, "analyzer_reconcile_errors_total") == 1
    assert value(m, "analyzer_reconcile_duration_seconds_count") == 2
    assert value(m, "analyzer_reconcile_duration_seconds_bucket", le="0.005") == 1
    assert value(m, "analyzer_leader") == 1
    m.set_leader(False)
    assert value(m, "analyzer_leader") == 0
    assert "analyzer_leader" not in {f.name for f in REGISTRY.collect()}
    ControllerMetrics()  # a second instance in the same process does not collide
