"""Argo Rollouts ``web`` metric provider (``metricproviders/webmetric/webmetric.go``) on httpx.

Every observable behaviour copies Argo (argo-semantics.md §13): error texts, the JSON decoding
(numbers are float64, so ``1`` arrives as ``1.0``), the measurement ``value`` string (Go's
``json.Marshal``: sorted keys, Go float formatting, HTML-escaped strings) and the raw-string
fallback for non-JSON bodies. Go's ``http.Client`` conventions are kept too: one deadline for the
whole exchange, redirects followed (at most 10), transport errors worded ``Get "<url>": ...``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import re
import ssl
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import httpx

from analyzer.core.outcome import ProviderOutcome
from analyzer.providers.jsonpath import INVALID, JsonPath, JsonPathError, parse

__all__ = ["WebProvider", "go_json"]

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_JSON_PATH = "{$}"


class _NotJson(ValueError):
    pass


class WebProvider:
    """``MetricProvider`` for ``provider.web``; one synchronous HTTP exchange per measurement."""

    async def measure(self, spec: Mapping[str, Any], now: datetime) -> ProviderOutcome:
        try:
            return await _measure(spec)
        except Exception as exc:  # the port forbids raising; report anything unforeseen as an Error
            return ProviderOutcome.failed(f"web metric failed: {type(exc).__name__}: {exc}")


async def _measure(spec: Mapping[str, Any]) -> ProviderOutcome:
    # Same order as Argo: provider construction (auth, jsonPath), then the request checks.
    oauth2 = (spec.get("authentication") or {}).get("oauth2") or {}
    if oauth2.get("tokenUrl"):
        return ProviderOutcome.failed("oauth2 authentication is not supported yet")
    try:
        path = parse(spec.get("jsonPath") or DEFAULT_JSON_PATH)
    except JsonPathError as exc:
        return ProviderOutcome.failed(str(exc))

    method = str(spec.get("method") or "GET")
    body, json_body = str(spec.get("body") or ""), spec.get("jsonBody")
    if body and json_body is not None:
        return ProviderOutcome.failed("use either Body or JSONBody; both cannot exists for WebMetric payload")
    if (body or json_body is not None) and method == "GET":
        return ProviderOutcome.failed(
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
        )

    headers = httpx.Headers()
    for header in spec.get("headers") or []:
        headers[str(header.get("key", ""))] = str(header.get("value", ""))  # replaces: last wins
    content: bytes | None = body.encode() if body else None
    if json_body is not None:
        try:
            content = go_json(json_body).encode()
        except (TypeError, ValueError) as exc:
            return ProviderOutcome.failed(str(exc))
        headers["Content-Type"] = "application/json"

    url = str(spec.get("url") or "")
    timeout = _timeout_seconds(spec.get("timeoutSeconds"))
    try:
        response = await _send(method, url, headers, content, timeout, insecure=spec.get("insecure") is True)
    except _TransportError as exc:
        return ProviderOutcome.failed(str(exc))
    if not 200 <= response.status_code < 300:
        return ProviderOutcome.failed(f"received non 2xx response code: {response.status_code}")
    return _parse_body(response.content, path)


def _timeout_seconds(raw: Any) -> float:
    try:
        seconds = float(raw) if raw is not None and not isinstance(raw, bool) else 0.0
    except (TypeError, ValueError):
        seconds = 0.0
    return seconds if seconds > 0 and math.isfinite(seconds) else DEFAULT_TIMEOUT_SECONDS


class _TransportError(Exception):
    pass


async def _send(
    method: str, url: str, headers: httpx.Headers, content: bytes | None, timeout: float, *, insecure: bool
) -> httpx.Response:
    # Go's *url.Error wording: `Get "http://host/path": <cause>`.
    prefix = f'{method[:1]}{method[1:].lower()} "{url}"'
    try:
        async with (
            httpx.AsyncClient(
                verify=not insecure, timeout=timeout, follow_redirects=True, max_redirects=10
            ) as client,
            asyncio.timeout(timeout),  # http.Client.Timeout bounds the whole exchange, body included
        ):
            return await client.request(method, url, headers=headers, content=content)
    except (TimeoutError, httpx.TimeoutException):
        raise _TransportError(
            f"{prefix}: context deadline exceeded (Client.Timeout of {timeout:g}s exceeded)"
        ) from None
    except httpx.InvalidURL as exc:
        raise _TransportError(f'parse "{url}": {exc}') from None
    except httpx.UnsupportedProtocol:
        scheme = url.partition("://")[0] if "://" in url else ""
        raise _TransportError(f'{prefix}: unsupported protocol scheme "{scheme}"') from None
    except httpx.TooManyRedirects:
        raise _TransportError(f"{prefix}: stopped after 10 redirects") from None
    except httpx.ConnectError as exc:
        raise _TransportError(f"{prefix}: {_connect_error_text(exc, url)}") from None
    except httpx.HTTPError as exc:
        raise _TransportError(f"{prefix}: {exc or type(exc).__name__}") from None


def _connect_error_text(exc: httpx.ConnectError, url: str) -> str:
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 20:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes):
        return f"tls: failed to verify certificate: {text}"
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return f"tls: {text}"
    target = httpx.URL(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    host = f"[{target.host}]" if ":" in target.host else target.host
    if any(isinstance(c, OSError) and c.errno == errno.ECONNREFUSED for c in causes):
        text = "connect: connection refused"
    return f"dial tcp {host}:{port}: {text}"


def _parse_body(raw: bytes, path: JsonPath) -> ProviderOutcome:
    text = raw.decode("utf-8", errors="replace")
    try:
        data = _go_json_loads(text)
    except _NotJson:
        # Argo ≥ v1.10 evaluates the conditions on the raw body (not trimmed).
        return ProviderOutcome(value=text, value_text=text)
    try:
        matches = path.first_matches(data)
    except JsonPathError as exc:
        return ProviderOutcome.failed(f"Could not find JSONPath in body: {exc}")
    if not matches:
        return ProviderOutcome.failed("result of web metric produced no value")
    value = matches[0]
    if value is INVALID:
        # Argo's controller panics here (argo-semantics.md §14.5); an Error measurement is the safe reading.
        return ProviderOutcome.failed(
            "result of web metric produced no value: the response body is JSON null"
        )
    return ProviderOutcome(value=value, value_text=go_json(value))


def _go_float_value(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # Go's ParseFloat reports a range error, so Unmarshal fails
        raise _NotJson(text)
    return number


def _reject_constant(name: str) -> Any:
    raise _NotJson(name)  # NaN / Infinity are not JSON for Go


def _go_json_loads(text: str) -> Any:
    """``json.Unmarshal`` into ``any``: every number a float64, non-standard tokens rejected."""
    try:
        return json.loads(
            text, parse_int=_go_float_value, parse_float=_go_float_value, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as exc:
        raise _NotJson(str(exc)) from None


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_UNSAFE = re.compile("[<>&\u2028\u2029]|[\ud800-\udfff]")


def _go_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    # Go escapes HTML-significant characters and replaces lone surrogates (invalid UTF-8) with U+FFFD.
    return _HTML_UNSAFE.sub(lambda m: _HTML_ESCAPES.get(m[0], "\ufffd"), encoded)


def _go_float(number: float) -> str:
    """``encoding/json``'s float64 text: shortest digits; exponent form below 1e-6 or from 1e21."""
    if not math.isfinite(number):
        raise ValueError(f"json: unsupported value: {number}")
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(number).partition("e")
        exp = int(exponent)
        return f"{mantissa}e-{-exp}" if exp < 0 else f"{mantissa}e+{exp:02d}"
    return format(Decimal(repr(number)).normalize(), "f")


def go_json(value: Any) -> str:
    """Go's ``json.Marshal`` of a decoded JSON value (the measurement ``value`` string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, Mapping):
        items = sorted(((str(k), v) for k, v in value.items()), key=lambda item: item[0])
        return "{" + ",".join(f"{_go_string(k)}:{go_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, date | datetime | time):  # YAML timestamps in a jsonBody; Kubernetes sees strings
        return _go_string(value.isoformat())
    raise TypeError(f"json: unsupported type: {type(value).__name__}")
