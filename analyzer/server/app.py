"""The ASGI service: Argo ``web``-provider verdicts, health, metrics and its OpenAPI document.

``build_app(settings, extra_routes=[...])`` returns a Starlette app; other features (Slack) mount
their routes through ``extra_routes`` and get the same error shape, size limit helper and request
metrics.

Status codes follow the web-provider contract (ecosystem-notes §1.5): 200 for every decided
verdict, "fail" included (Argo reads the body); non-2xx only when nothing could be analysed,
because Argo turns any non-2xx into an Error measurement. 401 without a valid bearer token,
413 for an oversized body, 400 for a body that is not JSON, 415 for a non-JSON content type,
422 for a request that names something wrong (the field is in ``problems``), 503 when Prometheus
cannot be queried.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analyzer.server.cache import TtlCache
from analyzer.server.openapi import openapi_document
from analyzer.server.verdict import (
    LiveError,
    PolicyBook,
    RequestError,
    VerdictRequest,
    compute_verdict,
    parse_query,
    parse_request,
    strict_json,
)

__all__ = ["BodyTooLarge", "Settings", "build_app", "error_response", "read_body"]

VERDICT_PATH = "/api/v1/verdict"


@dataclass(frozen=True)
class Settings:
    """What the service needs. ``token`` None disables authentication (``analyzer serve`` only
    allows that with an explicit ``--no-auth``). ``clock`` gives the evaluation time (unix
    seconds); tests replay backfilled history through it."""

    prometheus_url: str
    token: str | None = None
    policies_dir: Path | None = None
    cache_ttl: float = 5.0
    max_body_bytes: int = 64 * 1024
    inline_policies: bool = True
    ready_timeout: float = 2.0
    clock: Callable[[], float] = field(default=time.time)


class BodyTooLarge(Exception):
    pass


def error_response(status: int, code: str, message: str, problems: Sequence[tuple[str, str]] = (),
                   headers: Mapping[str, str] | None = None) -> Response:
    """The one error shape: ``{"error": code, "message": text, "problems": [{"field", "reason"}]}``."""
    body: dict[str, Any] = {"error": code, "message": message}
    if problems:
        body["problems"] = [{"field": f, "reason": r} for f, r in problems]
    return Response(strict_json(body), status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (BodyTooLarge) past ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("analyzer_http_requests", "HTTP requests by route and status code",
                                ("path", "code"), registry=self.registry)
        self.latency = Histogram("analyzer_http_request_duration_seconds", "HTTP request latency by route",
                                 ("path",), registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.verdicts = Counter("analyzer_verdicts", "Verdicts answered, by outcome (cache hits included)",
                                ("verdict",), registry=self.registry)
        self.cache = Counter("analyzer_verdict_cache", "Verdict cache lookups by result", ("result",),
                             registry=self.registry)


class _Instrument:
    """Pure ASGI middleware (no per-request task like BaseHTTPMiddleware): counts and times requests.
    Paths outside the app's routes are counted as "other" so the label set stays bounded."""

    def __init__(self, app: ASGIApp, metrics: _Metrics, paths: set[str]) -> None:
        self.app, self.metrics, self.paths = app, metrics, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            path = scope["path"] if scope["path"] in self.paths else "other"
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - began)


class _Service:
    def __init__(self, settings: Settings, metrics: _Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.book = PolicyBook(settings.policies_dir, allow_inline=settings.inline_policies)
        self.cache: TtlCache[tuple[bytes, str]] = TtlCache(settings.cache_ttl)
        self._token = settings.token.encode() if settings.token is not None else None

    def denied(self, request: Request) -> Response | None:
        if self._token is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        supplied = credentials.strip().encode("latin-1", "replace")
        # compare_digest on bytes: the time does not depend on where a wrong token differs.
        if scheme.lower() != "bearer" or not hmac.compare_digest(supplied, self._token):
            message = "missing bearer token" if not header else "invalid bearer token"
            return error_response(401, "unauthorized", message,
                                  headers={"WWW-Authenticate": 'Bearer realm="rollout-analyzer"'})
        return None

    async def verdict(self, request: Request) -> Response:
        denied = self.denied(request)
        if denied is not None:
            return denied
        try:
            data = await self._input(request)
            parsed = parse_request(data)
        except RequestError as exc:
            return error_response(422, "invalid_request", str(exc), exc.problems)
        except _BadBody as exc:
            return exc.response
        try:
            body, verdict = await self._cached(parsed)
        except RequestError as exc:
            return error_response(422, "invalid_request", str(exc), exc.problems)
        except LiveError as exc:
            return error_response(503, "prometheus_unavailable", f"could not analyse: {exc}")
        self.metrics.verdicts.labels(verdict).inc()
        return Response(body, 200, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def _input(self, request: Request) -> Any:
        if request.method == "GET":
            return parse_query(request.query_params.multi_items())
        try:
            raw = await read_body(request, self.settings.max_body_bytes)
        except BodyTooLarge:
            raise _BadBody(error_response(413, "body_too_large",
                                          f"request body larger than {self.settings.max_body_bytes} bytes")) from None
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise _BadBody(error_response(415, "unsupported_media_type",
                                          f"expected a JSON body (Content-Type: application/json), got {ctype!r}"))
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
            raise _BadBody(error_response(400, "malformed_json", f"request body is not JSON{where}: {reason}")) from None

    async def _cached(self, parsed: VerdictRequest) -> tuple[bytes, str]:
        async def compute() -> tuple[bytes, str]:
            now = self.settings.clock()
            doc = await run_in_threadpool(compute_verdict, parsed, self.settings.prometheus_url, now, self.book)
            return strict_json(doc), str(doc["verdict"])

        value, hit = await self.cache.get_or_compute(parsed, compute)
        self.metrics.cache.labels("hit" if hit else "miss").inc()
        return value

    async def healthz(self, request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request) -> Response:
        url = self.settings.prometheus_url.rstrip("/") + "/-/ready"
        try:
            async with httpx.AsyncClient(timeout=self.settings.ready_timeout) as client:
                answer = await client.get(url)
            ok, detail = answer.status_code == 200, f"prometheus answered HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"prometheus unreachable: {type(exc).__name__}"
        if ok:
            return Response(b'{"status":"ready"}', media_type="application/json")
        return error_response(503, "not_ready", detail)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return Response(strict_json(openapi_document(self.book.names())), media_type="application/json")


class _BadBody(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; see the service log")


def build_app(settings: Settings, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The service. ``extra_routes`` are mounted beside ours (e.g. Slack endpoints)."""
    metrics = _Metrics()
    service = _Service(settings, metrics)
    routes: list[BaseRoute] = [
        Route(VERDICT_PATH, service.verdict, methods=["GET", "POST"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/readyz", service.readyz, methods=["GET"]),
        Route("/metrics", service.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})
    paths = {getattr(r, "path", "") for r in routes} - {""}
    app.add_middleware(_Instrument, metrics=metrics, paths=paths)
    app.state.settings = settings
    app.state.service = service
    return app
