"""The HTTP service on a real uvicorn server (loopback), backed by the backfilled Prometheus.

Contract checked: 200 + strict JSON for every decided verdict (fail included), 401/413/400/415/422
JSON errors, 503 when Prometheus is down, the TTL cache, health, metrics, the OpenAPI document.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_server_verdict import (
    BAD,
    GOOD,
    HORIZON,
    IDLE,
    START,
    ask,
    judge_prom,
    no_bare_constants,
    policies_dir,
)

from analyzer.localprom import LocalPrometheus, free_port
from analyzer.server.app import Settings, build_app
from analyzer.server.openapi import openapi_document
from analyzer.server.verdict import FIELDS

__all__ = ["judge_prom", "policies_dir"]  # fixtures used here, defined in test_server_verdict

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def settings(prom_url: str, policies: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"prometheus_url": prom_url, "token": TOKEN, "policies_dir": policies,
                            "clock": lambda: float(START + 2 * HORIZON)}
    return Settings(**{**base, **overrides})


@pytest.fixture(scope="module")
def service(judge_prom: LocalPrometheus, policies_dir: Path) -> Iterator[str]:
    extra = [Route("/extra", lambda request: JSONResponse({"mounted": True}))]
    with running(build_app(settings(judge_prom.url, policies_dir), extra_routes=extra)) as url:
        yield url


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = no_bare_constants(response.text)
    assert body["error"] == code and body["message"]
    return body  # type: ignore[no-any-return]


@pytest.mark.prometheus
def test_verdicts_are_200_strict_json_for_pass_fail_and_inconclusive(service: str) -> None:
    for canary, verdict in ((GOOD, "pass"), (BAD, "fail"), (IDLE, "inconclusive")):
        response = httpx.post(service + "/api/v1/verdict", json=ask(canary), headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body = no_bare_constants(response.text)
        assert body["verdict"] == verdict
        assert set(body) >= {"reason", "metrics", "samples", "policy", "start", "evaluatedAt"}


@pytest.mark.prometheus
def test_get_with_query_parameters_gives_the_same_verdict(service: str) -> None:
    params = {"policy": "judge-test", "start": "2024-01-01T00:15:00Z", "canaryHash": BAD, "stableHash": ask(BAD)[
        "stableHash"]}
    got = httpx.get(service + "/api/v1/verdict", params=params, headers=AUTH)
    posted = httpx.post(service + "/api/v1/verdict", json=ask(BAD), headers=AUTH)
    assert got.status_code == 200 and got.json() == posted.json()
    by_labels = httpx.get(service + "/api/v1/verdict?policy=judge-test&start=1704068100"
                          f"&canary.rollouts_pod_template_hash={BAD}"
                          f"&baseline.rollouts_pod_template_hash={params['stableHash']}", headers=AUTH)
    assert by_labels.json()["verdict"] == "fail"


def test_missing_or_wrong_token_is_401_json(service: str) -> None:
    url = service + "/api/v1/verdict"
    body = _error(httpx.post(url, json=ask(GOOD)), 401, "unauthorized")
    assert body["message"] == "missing bearer token"
    response = httpx.post(url, json=ask(GOOD), headers={"Authorization": "Bearer wrong"})
    assert _error(response, 401, "unauthorized")["message"] == "invalid bearer token"
    assert response.headers["www-authenticate"].startswith("Bearer")
    _error(httpx.get(url, params={"policy": "x"}, headers={"Authorization": f"Basic {TOKEN}"}), 401, "unauthorized")
    _error(httpx.post(url, json=ask(GOOD), headers={"Authorization": f"Bearer {TOKEN}x"}), 401, "unauthorized")


def test_oversized_malformed_and_invalid_requests_are_refused_with_json(service: str) -> None:
    url = service + "/api/v1/verdict"
    _error(httpx.post(url, content=b"{" + b" " * 70000 + b"}", headers={**AUTH, "Content-Type": "application/json"}),
           413, "body_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(100):
            yield b" " * 1000

    _error(httpx.post(url, content=chunked(), headers={**AUTH, "Content-Type": "application/json"}),
           413, "body_too_large")
    body = _error(httpx.post(url, content=b'{"policy": ', headers={**AUTH, "Content-Type": "application/json"}),
                  400, "malformed_json")
    assert "line 1, column" in body["message"]
    _error(httpx.post(url, content=b'{"policy": NaN}', headers={**AUTH, "Content-Type": "application/json"}),
           400, "malformed_json")
    _error(httpx.post(url, content=b"[" * 100000, headers={**AUTH, "Content-Type": "application/json"}),
           413, "body_too_large")
    _error(httpx.post(url, content=b"[" * 5000, headers={**AUTH, "Content-Type": "application/json"}),
           400, "malformed_json")
    _error(httpx.post(url, content=b"policy=x", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"}),
           415, "unsupported_media_type")
    body = _error(httpx.post(url, json={"policy": "judge-test", "canaryHash": "a"}, headers=AUTH),
                  422, "invalid_request")
    assert body["problems"] == [{"field": "stableHash", "reason": body["problems"][0]["reason"]}]
    body = _error(httpx.post(url, json={**ask(GOOD), "start": "tomorrow"}, headers=AUTH), 422, "invalid_request")
    assert [p["field"] for p in body["problems"]] == ["start"]
    _error(httpx.get(service + "/nope", headers=AUTH), 404, "not_found")
    _error(httpx.delete(url, headers=AUTH), 405, "method_not_allowed")


@pytest.mark.prometheus
def test_cache_reuses_a_verdict_within_its_ttl(judge_prom: LocalPrometheus, policies_dir: Path) -> None:
    now = [float(START + 300)]
    app = build_app(settings(judge_prom.url, policies_dir, clock=lambda: now[0], cache_ttl=0.5))
    with running(app) as url, httpx.Client(base_url=url, headers=AUTH) as client:
        first = client.post("/api/v1/verdict", json=ask(GOOD)).json()
        now[0] = START + 2 * HORIZON  # the world moved on, but the cached answer is reused for 0.5 s
        second = client.post("/api/v1/verdict", json=ask(GOOD)).json()
        assert first == second and first["verdict"] == "inconclusive"
        time.sleep(0.6)
        assert client.post("/api/v1/verdict", json=ask(GOOD)).json()["verdict"] == "pass"
        metrics = client.get("/metrics").text
    assert 'analyzer_verdict_cache_total{result="hit"} 1.0' in metrics
    assert 'analyzer_verdict_cache_total{result="miss"} 2.0' in metrics


def test_prometheus_down_is_503_and_not_ready(policies_dir: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with running(build_app(settings(dead, policies_dir))) as url:
        body = _error(httpx.post(url + "/api/v1/verdict", json=ask(GOOD), headers=AUTH), 503, "prometheus_unavailable")
        assert "cannot query prometheus" in body["message"]
        _error(httpx.get(url + "/readyz"), 503, "not_ready")
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}


@pytest.mark.prometheus
def test_health_metrics_openapi_and_extra_routes(service: str) -> None:
    assert httpx.get(service + "/readyz").json() == {"status": "ready"}
    assert httpx.get(service + "/extra").json() == {"mounted": True}
    httpx.post(service + "/api/v1/verdict", json=ask(BAD), headers=AUTH)
    httpx.get(service + "/no/such/path")
    metrics = httpx.get(service + "/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'analyzer_http_requests_total{code="200",path="/api/v1/verdict"}' in text
    assert 'analyzer_http_requests_total{code="404",path="other"}' in text
    assert 'analyzer_http_request_duration_seconds_bucket{le="0.005",path="/api/v1/verdict"}' in text
    assert 'analyzer_verdicts_total{verdict="fail"}' in text
    document = httpx.get(service + "/openapi.json").json()
    assert document["openapi"].startswith("3.0")
    schema = document["components"]["schemas"]["VerdictRequest"]
    assert set(schema["properties"]) == set(FIELDS)
    assert schema["properties"]["policy"]["oneOf"][0]["example"] == "broken"  # named from the directory


def test_openapi_document_is_strict_json_without_policies() -> None:
    json.dumps(openapi_document([]), allow_nan=False)
