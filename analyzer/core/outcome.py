"""What a metric provider hands back to the engine.

Providers never raise through the core: a failed query is data (``error`` set), so the
analysis state machine can count it as an Error measurement exactly as Argo does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProviderOutcome:
    """One provider call's result.

    ``value`` is the Python value bound to ``result`` in conditions (a list of floats for a
    Prometheus vector or matrix, a float for a scalar, decoded JSON or a raw string for the web
    provider, None for nil). ``value_text`` is Argo's measurement ``value`` string for it.
    ``error`` is set (and ``value`` ignored) when the provider call failed.
    ``metadata`` is copied to the measurement (e.g. Prometheus ``warnings``).
    """

    value: Any = None
    value_text: str = ""
    error: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def failed(cls, message: str, metadata: dict[str, str] | None = None) -> ProviderOutcome:
        return cls(error=message, metadata=dict(metadata or {}))
