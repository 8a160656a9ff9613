"""Provider registry: which adapter measures which ``provider.<kind>`` block."""

from __future__ import annotations

from analyzer.ports import MetricProvider
from analyzer.providers.judge import JudgeProvider
from analyzer.providers.prometheus import PrometheusProvider
from analyzer.providers.web import WebProvider


def default_providers(prometheus_address: str | None = None) -> dict[str, MetricProvider]:
    """``prometheus`` and ``web`` (Argo's), and ``judge`` (ours: the statistical canary judge)."""
    return {"prometheus": PrometheusProvider(default_address=prometheus_address), "web": WebProvider(),
            "judge": JudgeProvider(default_address=prometheus_address)}
