"""A small real model server for the local demo: a logistic-regression classifier trained with
numpy at start, served over HTTP, with Prometheus metrics on the same port.

Metrics (the generic names our judge policies read):

* ``http_requests_total{app, version, code}`` (counter, by status code)
* ``http_request_duration_seconds{app, version}`` (histogram; fine buckets so a +30 % p99 shift
  moves mass between buckets)

A ``Fault`` makes a version worse on purpose (extra error rate, slower answers) so the demo can
show a regression being caught; it is set at start or while running.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
           0.25, 0.5, 1.0)
FEATURES = 8


@dataclass(frozen=True)
class Fault:
    error_rate: float = 0.0  # extra share of requests answered 500
    latency_factor: float = 1.0  # multiplies the time spent per request


def train(seed: int, samples: int = 2000, epochs: int = 200) -> np.ndarray:
    """Logistic regression by gradient descent on a synthetic, linearly separable-ish task."""
    rng = np.random.default_rng(seed)
    true_w = rng.normal(size=FEATURES)
    x = rng.normal(size=(samples, FEATURES))
    y = (x @ true_w + rng.normal(scale=0.5, size=samples) > 0).astype(float)
    w = np.zeros(FEATURES)
    for _ in range(epochs):
        p = 1 / (1 + np.exp(-(x @ w)))
        w -= 0.1 * x.T @ (p - y) / samples
    return w


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (the load generator or HAProxy stopping) is not an error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class ModelServer:
    """Serves ``POST/GET /predict`` and ``GET /metrics`` on 127.0.0.1:``port``."""

    def __init__(self, version: str, *, port: int = 0, app: str = "inference", seed: int = 1,
                 base_latency: float = 0.008, fault: Fault | None = None) -> None:
        self.version, self.app = version, app
        self.weights = train(seed)
        self.base_latency = base_latency
        self.fault = fault or Fault()
        self._rnd = random.Random(seed)
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "Requests served.", ["app", "version", "code"],
                                registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "Request latency.", ["app", "version"],
                                  buckets=BUCKETS, registry=self.registry)
        for code in ("200", "500"):  # export zeros at once: "no errors yet" is 0, not absent
            self.requests.labels(app, version, code)
        self._httpd = _QuietServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def predict(self, features: list[float]) -> float:
        x = np.asarray(features, dtype=float)
        if x.shape != (FEATURES,):
            raise ValueError(f"expected {FEATURES} features, got {x.size}")
        return float(1 / (1 + np.exp(-(x @ self.weights))))

    def served(self, code: str) -> float:
        value = self.registry.get_sample_value("http_requests_total",
                                               {"app": self.app, "version": self.version, "code": code})
        return value or 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else ~40 ms per request (Nagle + delayed ACK)

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/metrics":
                    self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/health":
                    self._send(200, b"ok", "text/plain")
                elif self.path.startswith("/predict"):
                    self._predict(None)
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._predict(self.rfile.read(length) if length else None)

            def _predict(self, body: bytes | None) -> None:
                start = time.perf_counter()
                with server._lock:
                    fault = server.fault
                    features = [server._rnd.gauss(0, 1) for _ in range(FEATURES)]
                    fail = server._rnd.random() < fault.error_rate
                    jitter = server._rnd.lognormvariate(0, 0.25)
                try:
                    if body:
                        features = json.loads(body)["features"]
                    score = server.predict(features)
                    code, payload = 200, {"version": server.version, "score": round(score, 6)}
                except (ValueError, KeyError, TypeError) as exc:
                    code, payload = 400, {"error": str(exc)}
                if fail:
                    code, payload = 500, {"error": "injected fault", "version": server.version}
                # The model itself is microseconds; sleep to a realistic service time.
                target = server.base_latency * jitter * fault.latency_factor
                time.sleep(max(0.0, target - (time.perf_counter() - start)))
                server.requests.labels(server.app, server.version, str(code)).inc()
                server.duration.labels(server.app, server.version).observe(time.perf_counter() - start)
                self._send(code, json.dumps(payload).encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"model-{self.version}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
