"""The Protocols that adapters implement and the controller consumes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from analyzer.core.outcome import ProviderOutcome


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
