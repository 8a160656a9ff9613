"""The Protocols that adapters implement and the controller consumes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from analyzer.core.outcome import ProviderOutcome
from analyzer.core.steps import CapacityFacts, RolloutSpec, TrafficObservation, TrafficState


class MetricProvider(Protocol):
    """Takes one measurement.

    ``spec`` is the provider's own block of a metric after argument substitution, e.g. the
    mapping under ``provider.prometheus``. ``now`` is the measurement time (range queries use
    it). Implementations return failures as ``ProviderOutcome.failed(...)``; they never raise.
    """

    async def measure(self, spec: Mapping[str, Any], now: datetime) -> ProviderOutcome: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


# --- traffic routing -----------------------------------------------------------------------------


class TrafficRouter(Protocol):
    """Drives one rollout's traffic (Istio VirtualServices, a KServe InferenceService, ...).

    ``apply`` makes the router's objects match ``state`` (canary weight, managed header and
    mirror routes) and reads them back; it is idempotent (no write when nothing differs) and
    guards its writes against concurrent writers. ``observe`` only reads. Both report what was
    read back; a state that could not be reached is reported in ``TrafficObservation.problems``
    or raised as :class:`RouterError` when the objects cannot be used at all (missing object,
    weighted route not found, ...)."""

    def apply(self, state: TrafficState) -> TrafficObservation: ...

    def observe(self, state: TrafficState) -> TrafficObservation: ...


class RouterError(RuntimeError):
    """The router's objects cannot be driven (missing, ambiguous, invalid); the message says why."""


class WriteConflict(RuntimeError):
    """A guarded write lost against another writer (409 Conflict, or a failed JSON patch ``test``)."""


class CustomObjects(Protocol):
    """The slice of the Kubernetes API the routers use: namespaced custom objects, read and
    JSON-patched (RFC 6902, ``test`` operations honoured). Implementations raise
    :class:`WriteConflict` when a patch's ``test`` fails or the write conflicts, and return None
    from ``get`` for an object that does not exist."""

    def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]: ...


# --- where rollouts live, and what the reconcile reads besides them -------------------------------


class RolloutStore(Protocol):
    """Rollouts kept as Kubernetes-shaped dicts (``apiVersion``, ``kind``, ``metadata`` with
    ``namespace``, ``name``, ``generation`` and ``resourceVersion``, ``spec``, ``status``):
    ModelRollout objects in a cluster (``analyzer.kube``) or files on disk (``analyzer.local``).

    ``update_status`` is optimistic: it raises :class:`WriteConflict` when ``resource_version``
    is no longer the stored one, and never touches ``spec``. ``patch_spec`` is a JSON merge patch
    (RFC 7386) of ``spec`` that bumps ``metadata.generation`` (operator verbs: requests, paused).
    ``get`` returns None for an object that does not exist; ``patch_spec`` and ``update_status``
    raise :class:`NotFound`."""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def update_status(self, namespace: str, name: str, status: Mapping[str, Any],
                      resource_version: str) -> dict[str, Any]: ...

    def patch_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...


class NotFound(LookupError):
    """The object does not exist."""


class TemplateSource(Protocol):
    """AnalysisTemplate / ClusterAnalysisTemplate documents by name (None: not found)."""

    def get(self, namespace: str, name: str, cluster_scope: bool = False) -> dict[str, Any] | None: ...


class CapacitySource(Protocol):
    """The workloads behind a rollout's destinations (Deployments and their HPA / KEDA
    ScaledObject in a cluster). ``facts`` returns None when the rollout names no workload.
    ``scale_canary`` raises the canary's replica count (never called for an autoscaled one)."""

    def facts(self, namespace: str, spec: RolloutSpec) -> CapacityFacts | None: ...

    def scale_canary(self, namespace: str, spec: RolloutSpec, replicas: int) -> None: ...


class EventSink(Protocol):
    """Where transitions are told (Kubernetes Events, logs, Slack). Must not raise: delivery
    failures are the sink's to log, never the rollout's to suffer."""

    def emit(self, rollout: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None: ...
