"""The daemon's own Prometheus metrics, in their own registry (never the process-global one, so
tests and several daemons in one process do not collide, and ``/metrics`` shows only ours).

The runtime calls plain methods: :meth:`ControllerMetrics.observe_rollout` with the rollout as
stored after each reconcile (or watch event), :meth:`ControllerMetrics.reconcile_done` after each
pass, :meth:`ControllerMetrics.set_leader` from the leader elector's callbacks, and
:meth:`ControllerMetrics.forget` when a rollout is deleted (its series disappear).

Series, by rollout (``namespace``, ``name``):

* ``analyzer_rollout_phase{phase}`` 1 for the current phase, 0 for the others (Argo's shape);
* ``analyzer_rollout_canary_weight{kind="desired"|"verified"}`` the weight asked of the router and
  the one read back (no ``verified`` series until one was read back);
* ``analyzer_rollout_analysis_runs_total{phase}`` analysis runs that ended, by outcome;
* ``analyzer_reconcile_duration_seconds`` / ``analyzer_reconcile_errors_total`` / ``analyzer_reconciles_total``;
* ``analyzer_leader`` 1 while this replica holds the Lease.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

PHASES = ("Progressing", "Paused", "Healthy", "Degraded")
RUN_OUTCOMES = ("Successful", "Failed", "Error", "Inconclusive")
RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ControllerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.phase = Gauge("analyzer_rollout_phase", "1 for the rollout's current phase, 0 for the others",
                           ("namespace", "name", "phase"), registry=r)
        self.weight = Gauge("analyzer_rollout_canary_weight",
                            "Canary traffic weight (percent): desired = asked of the router, verified = read back",
                            ("namespace", "name", "kind"), registry=r)
        self.analysis_runs = Counter("analyzer_rollout_analysis_runs", "Analysis runs that ended, by outcome",
                                     ("namespace", "name", "phase"), registry=r)
        self.reconcile_seconds = Histogram("analyzer_reconcile_duration_seconds", "Time of one reconcile pass",
                                           registry=r, buckets=RECONCILE_BUCKETS)
        self.reconciles = Counter("analyzer_reconciles", "Reconcile passes", registry=r)
        self.reconcile_errors = Counter("analyzer_reconcile_errors", "Reconcile passes that ended in an error",
                                        registry=r)
        self.leader = Gauge("analyzer_leader", "1 while this replica holds the leader Lease", registry=r)
        self._lock = threading.Lock()
        # Runs already counted (or already finished when first seen), per rollout: a run is counted
        # once, when this process sees it end. Runs that ended before this process first saw the
        # rollout (a restart, a new leader) are not counted again.
        self._seen_runs: dict[tuple[str, str], set[str]] = {}
        self._verified: set[tuple[str, str]] = set()
        self._phases: dict[tuple[str, str], set[str]] = {}

    def observe_rollout(self, obj: Mapping[str, Any]) -> None:
        """Update the rollout's series from the object as stored (``metadata`` and ``status``)."""
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        if not name:
            return
        status = obj.get("status") or {}
        current = str(status.get("phase") or "Progressing")
        with self._lock:
            phases = self._phases.setdefault((ns, name), set(PHASES))
            phases.add(current)
            for p in phases:
                self.phase.labels(ns, name, p).set(1.0 if p == current else 0.0)
        weights = status.get("weights") or {}
        self.weight.labels(ns, name, "desired").set(float(weights.get("desired") or 0))
        verified = weights.get("verified")
        with self._lock:
            if isinstance(verified, int | float) and not isinstance(verified, bool):
                self.weight.labels(ns, name, "verified").set(float(verified))
                self._verified.add((ns, name))
            elif (ns, name) in self._verified:
                self.weight.remove(ns, name, "verified")
                self._verified.discard((ns, name))
            self._count_runs(ns, name, status.get("analysisRuns") or [])

    def _count_runs(self, ns: str, name: str, runs: list[Any]) -> None:
        first_sight = (ns, name) not in self._seen_runs
        seen = self._seen_runs.setdefault((ns, name), set())
        present: set[str] = set()
        for run in runs:
            if not isinstance(run, Mapping):
                continue
            key = f"{run.get('name')}"
            present.add(key)
            phase = str(run.get("phase") or "")
            if phase not in RUN_OUTCOMES or key in seen:
                continue
            seen.add(key)
            if not first_sight:
                self.analysis_runs.labels(ns, name, phase).inc()
        seen.intersection_update(present)  # runs trimmed from the status cannot come back

    def reconcile_done(self, seconds: float, error: bool = False) -> None:
        self.reconciles.inc()
        self.reconcile_seconds.observe(max(0.0, seconds))
        if error:
            self.reconcile_errors.inc()

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1.0 if leading else 0.0)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted rollout's series (the analysis-run counters go too)."""
        with self._lock:
            self._seen_runs.pop((namespace, name), None)
            self._verified.discard((namespace, name))
            phases = self._phases.pop((namespace, name), set(PHASES))
            series: list[tuple[Any, str]] = [(self.phase, p) for p in phases] + [(self.weight, k) for k in ("desired", "verified")]
            series += [(self.analysis_runs, o) for o in RUN_OUTCOMES]
            for metric, last in series:
                try:
                    metric.remove(namespace, name, last)
                except KeyError:  # never set
                    pass

    def render(self) -> bytes:
        """The exposition text for ``/metrics`` (``content_type`` is its media type)."""
        return generate_latest(self.registry)

