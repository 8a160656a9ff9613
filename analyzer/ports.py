"""The Protocols that adapters implement and the controller consumes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from analyzer.core.outcome import ProviderOutcome
from analyzer.core.steps import TrafficObservation, TrafficState


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


# --- traffic routing (issue #4) ------------------------------------------------------------------
# Appended here; the imports sit with the code they serve so the earlier part stays untouched.



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
