"""A metric after argument substitution: typed fields, Argo's defaults and validation
(argo-semantics.md §2, §2.3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyzer.core.durations import parse_go_duration_seconds

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
ARGO_PROVIDER_KINDS = ("prometheus", "job", "kayenta", "web", "datadog", "wavefront", "newRelic", "cloudWatch",
                       "graphite", "influxdb", "skywalking", "plugin")
# Ours, for ModelRollouts only (Argo's decoder would drop the field): the statistical judge in-process.
EXTENSION_PROVIDER_KINDS = ("judge",)
PROVIDER_KINDS = ARGO_PROVIDER_KINDS + EXTENSION_PROVIDER_KINDS
_INT = re.compile(r"[+-]?[0-9]+")


def int_or_string(value: Any, default: int | None) -> int | None:
    """Kubernetes ``IntOrString.IntValue()``: a string goes through ``strconv.Atoi`` (no spaces, ASCII
    digits, optional sign) and counts as 0 when that fails."""
    if value is None:
        return default
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        return int(value) if _INT.fullmatch(value) else 0
    return 0


@dataclass(frozen=True)
class Metric:
    name: str
    raw: Mapping[str, Any]
    interval: float | None
    initial_delay: float | None
    count: int | None
    success_condition: str
    failure_condition: str
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    consecutive_success_limit: int
    provider_kind: str | None
    provider: Mapping[str, Any]

    @property
    def effective_count(self) -> int | None:
        """None means "runs until a limit or termination" (§2.1)."""
        if not self.count:
            return None if self.interval is not None else 1
        return self.count


class SpecInvalid(Exception):
    """Argo's ``Analysis spec invalid: <msg>``; ``str()`` is ``<msg>``."""


def _duration(raw: Mapping[str, Any], key: str, what: str, index: int) -> float | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    try:
        return parse_go_duration_seconds(str(value))
    except ValueError as exc:
        raise SpecInvalid(f"metrics[{index}]: invalid {what} string: {exc}") from None


def build_metrics(raws: list[Mapping[str, Any]]) -> list[Metric]:
    """Validate arg-resolved metrics in Argo's order (first problem wins) and type them."""
    if not raws:
        raise SpecInvalid("no metrics specified")
    seen: set[str] = set()
    out: list[Metric] = []
    for i, raw in enumerate(raws):
        name = str(raw.get("name", ""))
        if name in seen:
            raise SpecInvalid(f"metrics[{i}]: duplicate name '{name}'")
        seen.add(name)
        out.append(_build_one(i, raw))
    return out


def provider_kinds(provider: Any) -> list[str]:
    """The providers a MetricProvider holds, counted like ValidateMetric: each non-null known
    provider once, ``plugin`` once per entry; fields Go does not know are dropped by its decoder."""
    if not isinstance(provider, Mapping):
        return []
    kinds: list[str] = []
    for kind in PROVIDER_KINDS:
        block = provider.get(kind)
        if block is None:
            continue
        if kind == "plugin":
            kinds.extend(["plugin"] * (len(block) if isinstance(block, Mapping) else 1))
        else:
            kinds.append(kind)
    return kinds


def _build_one(i: int, raw: Mapping[str, Any]) -> Metric:
    count = int_or_string(raw.get("count"), None)
    failure_limit = int_or_string(raw.get("failureLimit"), 0) or 0
    inconclusive_limit = int_or_string(raw.get("inconclusiveLimit"), 0) or 0
    cel = int_or_string(raw.get("consecutiveErrorLimit"), DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    consecutive_error_limit = DEFAULT_CONSECUTIVE_ERROR_LIMIT if cel is None else cel
    csl = int_or_string(raw.get("consecutiveSuccessLimit"), 0) or 0
    prefix = f"metrics[{i}]: "
    if csl < 0:
        raise SpecInvalid(prefix + "consecutiveSuccessLimit must be >= 0")
    if failure_limit < -1:
        raise SpecInvalid(prefix + "failureLimit must be >= 0, or -1 to be disabled")
    if failure_limit == -1 and csl == 0:
        raise SpecInvalid(prefix + "failureLimit and consecutiveSuccessLimit cannot both be disabled")
    if inconclusive_limit < 0:
        raise SpecInvalid(prefix + "inconclusiveLimit must be >= 0")
    if consecutive_error_limit < 0:
        raise SpecInvalid(prefix + "consecutiveErrorLimit must be >= 0")
    if count is not None and count > 0:
        if csl >= 0 and failure_limit >= 0 and count < failure_limit + csl:
            raise SpecInvalid(prefix + f"count ({count}) must be >= failureLimit + consecutiveSuccessLimit "
                              f"({failure_limit} + {csl}) if both >= 0")
        if failure_limit < 0 and count < csl:
            raise SpecInvalid(prefix + "count must be >= consecutiveSuccessLimit")
        if count < inconclusive_limit:
            raise SpecInvalid(prefix + "count must be >= inconclusiveLimit")
    if (count or 0) > 1 and raw.get("interval") in (None, ""):
        raise SpecInvalid(prefix + "interval must be specified when count > 1")
    interval = _duration(raw, "interval", "interval", i)
    initial_delay = _duration(raw, "initialDelay", "startDelay", i)
    provider = raw.get("provider")
    kinds = provider_kinds(provider)
    if not kinds:
        raise SpecInvalid(prefix + "no provider specified")
    if len(kinds) > 1:
        raise SpecInvalid(prefix + "multiple providers specified")
    kind = kinds[0]
    assert isinstance(provider, Mapping)
    block = provider[kind]
    return Metric(
        name=str(raw.get("name", "")), raw=raw, interval=interval, initial_delay=initial_delay, count=count,
        success_condition=str(raw.get("successCondition") or ""),
        failure_condition=str(raw.get("failureCondition") or ""),
        failure_limit=failure_limit, inconclusive_limit=inconclusive_limit,
        consecutive_error_limit=consecutive_error_limit, consecutive_success_limit=csl,
        provider_kind=kind, provider=block if isinstance(block, Mapping) else {},
    )
