"""Canary and baseline error rate and p99 latency over time, from Prometheus' range API.

The demo's model servers (``analyzer.demo.model_server``) export ``http_requests_total{app,
version, code}`` and the histogram ``http_request_duration_seconds{app, version}``; an arm is a set
of label matchers (default: ``version="v2"`` canary, ``version="v1"`` baseline, or the rollout's
``spec.judge.canary`` / ``spec.judge.baseline`` when it has them). Points where an arm served no
requests are NaN in Prometheus and absent here: no traffic is not 0 % errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Points = list[tuple[float, float]]
DEFAULT_ARMS: dict[str, dict[str, str]] = {"canary": {"version": "v2"}, "baseline": {"version": "v1"}}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Series:
    """What the plots draw; ``problems`` say why a line is missing (shown in the report)."""

    canary_error_rate: Points = field(default_factory=list)
    baseline_error_rate: Points = field(default_factory=list)
    canary_p99: Points = field(default_factory=list)  # seconds
    baseline_p99: Points = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Queries:
    requests: str = "http_requests_total"
    buckets: str = "http_request_duration_seconds_bucket"
    code_label: str = "code"
    error_codes: str = "5.."


def arms_from(rollout: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The rollout's judge arms (plain string label values only), else the demo's versions."""
    judge = (rollout.get("spec") or {}).get("judge") or {}
    arms: dict[str, dict[str, str]] = {}
    for arm in ("canary", "baseline"):
        labels = judge.get(arm) if isinstance(judge, Mapping) else None
        if isinstance(labels, Mapping) and labels and all(isinstance(v, str) for v in labels.values()):
            arms[arm] = {str(k): str(v) for k, v in labels.items()}
    return arms if len(arms) == 2 else {k: dict(v) for k, v in DEFAULT_ARMS.items()}


def selector(labels: Mapping[str, str], extra: str = "") -> str:
    parts = []
    for k, v in labels.items():
        if not _LABEL.match(k):
            raise ValueError(f"invalid Prometheus label name {k!r}")
        parts.append(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"')
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def error_rate_query(labels: Mapping[str, str], window: str, q: Queries = Queries()) -> str:
    errors = selector(labels, f'{q.code_label}=~"{q.error_codes}"')
    return (f"(sum(rate({q.requests}{errors}[{window}])) or on() vector(0))"
            f" / sum(rate({q.requests}{selector(labels)}[{window}]))")


def p99_query(labels: Mapping[str, str], window: str, q: Queries = Queries()) -> str:
    return f"histogram_quantile(0.99, sum by (le) (rate({q.buckets}{selector(labels)}[{window}])))"


def query_range(client: httpx.Client, url: str, query: str, start: float, end: float, step: float) -> Points:
    """One range query -> (ts, value) points of its single series; NaN/Inf points dropped.
    Raises RuntimeError with Prometheus' own error text."""
    try:
        r = client.get(f"{url.rstrip('/')}/api/v1/query_range",
                       params={"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot reach Prometheus at {url}: {exc}") from None
    try:
        body = r.json()
    except ValueError:
        raise RuntimeError(f"Prometheus at {url} answered HTTP {r.status_code} with no JSON") from None
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus refused {query!r}: {body.get('errorType')}: {body.get('error')}")
    result = (body.get("data") or {}).get("result") or []
    if not result:
        return []
    points: Points = []
    for ts, value in result[0].get("values") or []:
        v = float(value)
        if math.isfinite(v):
            points.append((float(ts), v))
    return points


def fetch_series(url: str, arms: Mapping[str, Mapping[str, str]], start: float, end: float, *,
                 step: float | None = None, window: str | None = None, queries: Queries = Queries(),
                 timeout: float = 10.0) -> Series:
    """Both arms' error rate and p99 between ``start`` and ``end`` (Unix seconds). Failures are
    recorded in ``Series.problems``, never raised: a report without plots still has its table."""
    step = step or max(1.0, math.ceil((end - start) / 300))
    window = window or f"{int(max(4 * step, 20))}s"
    out = Series()
    with httpx.Client(timeout=timeout) as client:
        for arm in ("canary", "baseline"):
            labels = arms[arm]
            for kind, q in (("error_rate", error_rate_query(labels, window, queries)),
                            ("p99", p99_query(labels, window, queries))):
                try:
                    points = query_range(client, url, q, start, end, step)
                except RuntimeError as exc:
                    if str(exc).startswith("cannot reach"):
                        out.problems.append(str(exc))
                        return out
                    out.problems.append(f"{arm} {kind}: {exc}")
                    continue
                if not points:
                    out.problems.append(f"{arm} {kind}: no data for {selector(labels)} in the rollout's time range")
                setattr(out, f"{arm}_{kind}", points)
    return out
