"""Argo Rollouts' ``prometheus`` metric provider, on httpx (async).

Mirrors ``metricproviders/prometheus/prometheus.go``: the same spec fields, the same result
shapes (scalar → float, vector → list of floats, matrix → one flat list), the same value strings
and the same error texts where Argo has them. Differences, all deliberate:

* instant queries are evaluated at the measurement's ``now`` (Argo: wall clock), so backfilled
  history can be analysed with a virtual clock;
* ``timeout`` may be fractional seconds;
* ``authentication.oauth2`` and ``authentication.sigv4`` are refused with an Error measurement
  instead of being applied; a bearer token works through ``headers``
  (``- key: Authorization`` / ``value: Bearer <token>``);
* Prometheus ``infos`` are reported with ``warnings`` (newer servers split them off);
* no retries: a 503 from an overloaded server is not hammered three times.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import math
import os
import re
import ssl
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from analyzer.core.conditions import go_float
from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.outcome import ProviderOutcome

__all__ = ["ENV_ADDRESS", "PrometheusError", "PrometheusProvider", "convert_result", "format_go_float"]

ENV_ADDRESS = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS"
DEFAULT_TIMEOUT = 30.0
UNSUPPORTED = "Prometheus metric type not supported"
_SNIPPET_CHARS = 200


class PrometheusError(Exception):
    """A measurement Error; its text is the measurement message."""


# One implementation of Go's float formatting, shared with the core's measurement values.
format_go_float = go_float


def convert_result(data: Any) -> tuple[Any, str]:
    """Prometheus ``data`` → (``result`` for conditions, Argo's measurement value string)."""
    if not isinstance(data, Mapping):
        raise PrometheusError(UNSUPPORTED)
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        value = _sample_value(result)
        return value, format_go_float(value)
    if kind == "vector" and isinstance(result, list):
        values = [_sample_value(_field(series, "value")) for series in result]
    elif kind == "matrix" and isinstance(result, list):
        values = [point for series in result for point in map(_sample_value, _points(series))]
    else:
        raise PrometheusError(UNSUPPORTED)
    return values, "[" + ",".join(map(format_go_float, values)) + "]"


def _field(series: Any, key: str) -> Any:
    # Native-histogram samples carry "histogram(s)" instead of "value(s)": not a float result.
    if not isinstance(series, Mapping) or key not in series:
        raise PrometheusError(UNSUPPORTED)
    return series[key]


def _points(series: Any) -> list[Any]:
    points = _field(series, "values")
    if not isinstance(points, list):
        raise PrometheusError(UNSUPPORTED)
    return points


def _sample_value(pair: Any) -> float:
    if not isinstance(pair, list) or len(pair) != 2:
        raise PrometheusError(UNSUPPORTED)
    raw = pair[1]
    # Prometheus sends strings ("NaN", "+Inf" are not JSON numbers); some proxies send numbers.
    try:
        if isinstance(raw, bool):
            raise TypeError
        return float(raw)
    except (TypeError, ValueError):
        raise PrometheusError(f"bad_response: cannot parse sample value {raw!r}") from None


class PrometheusProvider:
    """``MetricProvider`` for ``provider.prometheus`` blocks.

    ``default_address`` (e.g. the CLI's ``--prometheus``) fills an empty ``address``; without it,
    ``ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`` (read once, here) does, as in Argo.
    """

    def __init__(self, default_address: str | None = None) -> None:
        self._default_address = default_address or os.environ.get(ENV_ADDRESS, "")
        self._ssl: dict[bool, ssl.SSLContext] = {}

    async def measure(self, spec: Mapping[str, Any], now: datetime) -> ProviderOutcome:
        query = spec.get("query")
        metadata: dict[str, str] = {}
        if isinstance(query, str) and query:
            metadata["resolvedQuery"] = query
        try:
            address = self._address(spec.get("address"))
            headers = _headers(spec)
            timeout = _timeout(spec.get("timeout"))
            if not isinstance(query, str):
                raise PrometheusError("prometheus query must be a string")
            endpoint, params = _query_params(query, spec.get("rangeQuery"), now)
            body = await self._send(address, endpoint, params, headers, timeout, _flag(spec.get("insecure")))
            warnings = _warnings(body)
            if warnings:
                metadata["warnings"] = warnings
            _raise_api_error(body)
            value, text = convert_result(body.get("data"))
        except PrometheusError as exc:
            return ProviderOutcome.failed(str(exc), metadata)
        except Exception as exc:  # the contract: a provider never raises into the engine
            return ProviderOutcome.failed(f"prometheus provider error: {type(exc).__name__}: {exc}", metadata)
        return ProviderOutcome(value=value, value_text=text, metadata=metadata)

    def _address(self, raw: Any) -> str:
        address = raw if isinstance(raw, str) else ""
        if not address:
            address = self._default_address
            if not address:
                raise PrometheusError("prometheus address is not configured")
        parts = urlsplit(address)
        if not parts.scheme or not parts.netloc:
            raise PrometheusError("prometheus address is not is url format")  # sic: Argo's wording
        return address

    def _ssl_context(self, insecure: bool) -> ssl.SSLContext:
        # Building a context loads the CA bundle (~40 ms): do it once per setting, not per query.
        if insecure not in self._ssl:
            self._ssl[insecure] = httpx.create_ssl_context(verify=not insecure)
        return self._ssl[insecure]

    async def _send(
        self,
        address: str,
        endpoint: str,
        params: dict[str, str],
        headers: dict[str, str],
        timeout: float,
        insecure: bool,
    ) -> dict[str, Any]:
        parts = urlsplit(address)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + endpoint, parts.query, ""))
        verify = self._ssl_context(insecure)
        try:
            async with (
                httpx.AsyncClient(
                    verify=verify, timeout=httpx.Timeout(timeout), follow_redirects=False
                ) as client,
                asyncio.timeout(timeout),  # one deadline for the whole exchange, like Go's context
            ):
                # POST keeps long queries out of URLs; like Prometheus' Go client, fall back to GET
                # only where POST is not allowed.
                response = await client.post(url, data=params, headers=headers)
                if response.status_code in (405, 501):
                    response = await client.get(url, params=params, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise PrometheusError(f"prometheus query timed out after {format_go_float(timeout)}s") from None
        except httpx.ConnectError as exc:
            raise PrometheusError(
                f"cannot reach prometheus at {_redact(address)}: {str(exc) or type(exc).__name__}"
            ) from None
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"prometheus request to {_redact(url)} failed: {type(exc).__name__}: {exc}"
            ) from None
        return _decode(response)


def _redact(url: str) -> str:
    # Measurement messages are stored in status and shown in UIs: never echo URL credentials.
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, "***@" + parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))


def _decode(response: httpx.Response) -> dict[str, Any]:
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") in ("success", "error"):
        if body["status"] == "success" and not 200 <= code < 300:
            raise PrometheusError(f"bad_response: HTTP {code} with a success body")
        return body
    kind = "a non-JSON" if body is None else "an unexpected JSON"
    raise PrometheusError(f"prometheus returned HTTP {code} with {kind} body: {_snippet(response.text)}")


def _snippet(text: str) -> str:
    text = re.sub(r"<[^>]*>", " ", text)  # proxies answer with HTML pages
    text = " ".join(text.split())
    if not text:
        return "(empty)"
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"


def _raise_api_error(body: Mapping[str, Any]) -> None:
    if body.get("status") == "error":
        raise PrometheusError(f"{body.get('errorType') or 'error'}: {body.get('error') or '(no message)'}")


def _warnings(body: Mapping[str, Any]) -> str:
    notes = [str(w) for key in ("warnings", "infos") if isinstance(body.get(key), list) for w in body[key]]
    return ", ".join(f'"{note}"' for note in notes)


def _flag(raw: Any) -> bool:
    if isinstance(raw, str):  # arg substitution may leave "true"/"false" strings
        return raw.strip().lower() in ("true", "1", "yes")
    return bool(raw)


def _timeout(raw: Any) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        if isinstance(raw, bool):
            raise ValueError
        seconds = float(raw)
    except (TypeError, ValueError):
        raise PrometheusError(f"prometheus timeout must be a number of seconds, got {raw!r}") from None
    if seconds < 0 or math.isnan(seconds):
        raise PrometheusError("prometheus timeout should not be negative")
    return seconds


def _headers(spec: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    auth = spec.get("authentication") or {}
    if not isinstance(auth, Mapping):
        raise PrometheusError("prometheus authentication must be a mapping")
    basic = auth.get("basicAuth") or {}
    username, password = str(basic.get("username") or ""), str(basic.get("password") or "")
    if username or password:
        if not username:
            raise PrometheusError("missing mandatory parameter in metric for basic auth setup: username")
        if not password:
            raise PrometheusError("missing mandatory parameter in metric for basic auth setup: password")
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["authorization"] = f"Basic {token}"
    oauth2 = auth.get("oauth2") or {}
    if isinstance(oauth2, Mapping) and any(oauth2.values()):
        if oauth2.get("tokenUrl") and not (oauth2.get("clientId") and oauth2.get("clientSecret")):
            raise PrometheusError("missing mandatory parameter in metric for OAuth2 setup")
        raise PrometheusError(
            "prometheus authentication.oauth2 is not supported yet; "
            "send a token with headers (key: Authorization, value: Bearer <token>)"
        )
    sigv4 = auth.get("sigv4") or {}
    if (
        "aps-workspaces" in str(spec.get("address") or "")
        and isinstance(sigv4, Mapping)
        and any(sigv4.values())
    ):
        raise PrometheusError("prometheus authentication.sigv4 is not supported yet")
    raw_headers = spec.get("headers") or []
    if not isinstance(raw_headers, list):
        raise PrometheusError("prometheus headers must be a list of {key, value}")
    # Argo sets custom headers after basic auth, so an explicit Authorization header wins; same key: last wins.
    for item in raw_headers:
        if not isinstance(item, Mapping) or not item.get("key"):
            raise PrometheusError(f"prometheus header needs a key: {item!r}")
        headers[str(item["key"]).lower()] = "" if item.get("value") is None else str(item["value"])
    return headers


def _query_params(query: str, range_query: Any, now: datetime) -> tuple[str, dict[str, str]]:
    if range_query is None:
        return "/api/v1/query", {"query": query, "time": format_go_float(_unix(now))}
    if not isinstance(range_query, Mapping):
        raise PrometheusError("prometheus rangeQuery must be a mapping with start, end and step")
    start = _eval_time(range_query.get("start"), "start", now)
    end = _eval_time(range_query.get("end"), "end", now)
    try:
        step = parse_go_duration_seconds(str(range_query.get("step") or ""))
    except ValueError as exc:
        raise PrometheusError(f"failed to parse rangeQuery.step as duration: {exc}") from None
    return "/api/v1/query_range", {
        "query": query,
        "start": format_go_float(_unix(start)),
        "end": format_go_float(_unix(end)),
        "step": format_go_float(step),
    }


def _eval_time(source: Any, which: str, now: datetime) -> datetime:
    prefix = f"failed to parse rangeQuery.{which} as time"
    try:
        from analyzer.core.expressions import evaluate  # lazily: only range queries need it
    except ImportError as exc:
        raise PrometheusError(f"{prefix}: expression support is unavailable ({exc})") from None
    try:
        value = evaluate(str(source or ""), {}, now=now)
    except Exception as exc:
        raise PrometheusError(f"{prefix}: {exc}") from None
    if not isinstance(value, datetime):
        raise PrometheusError(f"{prefix}: expected time.Time, but got {_go_type(value)}")
    return value


def _go_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float64", str: "string", timedelta: "time.Duration"}
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return names.get(type(value), type(value).__name__)


def _unix(moment: datetime) -> float:
    # Naive datetimes are taken as UTC: the engine's clock is UTC and expr's date() defaults to it.
    return calendar.timegm(moment.utctimetuple()) + moment.microsecond / 1e6
