"""``provider.judge``: the statistical canary judge as a metric provider, for our own rollouts.

The same question and the same answer as the service's verdict endpoint (``analyzer serve``),
computed in-process: the metric's ``value`` is the verdict document, so templates read it with
``successCondition: result.verdict == "pass"`` / ``failureCondition: result.verdict == "fail"``.

    provider:
      judge:
        policy: http                 # a name in the policies directory, or an inline mapping
        start: "2024-01-01T00:05:00Z" # RFC 3339 or unix seconds; omitted: the canary's first series
        canaryHash: 7d9f8b6c5        # or canary: {label: value} / baseline: {label: value}
        stableHash: 5c4b7f9d8
        address: http://prometheus:9090   # optional: the provider's default address otherwise

Prometheus failures and bad specs are Error measurements (``ProviderOutcome.failed``), never
exceptions.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from analyzer.core.outcome import ProviderOutcome
from analyzer.server.verdict import (
    LiveError,
    PolicyBook,
    RequestError,
    compute_verdict,
    default_policies_dir,
    finite,
    parse_request,
)

__all__ = ["ENV_ADDRESS", "JudgeProvider"]

ENV_ADDRESS = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS"


class JudgeProvider:
    """``MetricProvider`` for ``provider.judge`` blocks. ``default_address`` fills a missing
    ``address`` (then ``ARGO_ROLLOUTS_PROMETHEUS_ADDRESS``); named policies come from
    ``policies_dir`` (default: the repository's ``policies/``)."""

    def __init__(self, default_address: str | None = None, policies_dir: Path | None = None) -> None:
        self._default_address = default_address or os.environ.get(ENV_ADDRESS, "")
        self._book = PolicyBook(policies_dir or default_policies_dir())

    async def measure(self, spec: Mapping[str, Any], now: datetime) -> ProviderOutcome:
        try:
            return await self._measure(spec, now)
        except Exception as exc:  # the port forbids raising: anything unforeseen is an Error measurement
            return ProviderOutcome.failed(f"judge metric failed: {type(exc).__name__}: {exc}")

    async def _measure(self, spec: Mapping[str, Any], now: datetime) -> ProviderOutcome:
        if not isinstance(spec, Mapping):
            return ProviderOutcome.failed("judge: expected a mapping with policy, start and canary/baseline selection")
        address = spec.get("address") or self._default_address
        if not isinstance(address, str) or not address.startswith(("http://", "https://")):
            return ProviderOutcome.failed(f"judge: address: expected an http(s) Prometheus URL, got {address!r}")
        fields = {k: v for k, v in spec.items() if k != "address"}
        try:
            request = parse_request(fields)
            doc = await asyncio.to_thread(compute_verdict, request, address, now.timestamp(), self._book)
        except RequestError as exc:
            return ProviderOutcome.failed(f"judge: {exc}")
        except LiveError as exc:
            return ProviderOutcome.failed(f"judge: could not analyse: {exc}")
        value = finite(doc)
        text = json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))
        return ProviderOutcome(value=value, value_text=text,
                               metadata={"verdict": str(value["verdict"]), "reason": str(value["reason"])[:500]})
