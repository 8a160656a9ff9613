"""Provider registry: which adapter measures which ``provider.<kind>`` block."""

from __future__ import annotations

from analyzer.ports import MetricProvider
from analyzer.providers.prometheus import PrometheusProvider
from analyzer.providers.web import WebProvider


def default_providers(prometheus_address: str | None = None) -> dict[str, MetricProvider]:
    return {"prometheus": PrometheusProvider(default_address=prometheus_address), "web": WebProvider()}
