"""Fixtures for tests against a real Prometheus (Debian's package) and small local HTTP stand-ins.

Tests that need the binary skip with a clear reason when it is absent; ``make test`` installs it
(``apt-get install -y --no-install-recommends prometheus``), so in CI they always run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from analyzer.demo.workload import Profile, Workload, backfill_openmetrics
from analyzer.localprom import LocalPrometheus, free_port, prometheus_available

# 2024-01-01T00:00:00Z: history lives at a fixed epoch, queried with an explicit virtual `now`.
EPOCH = 1704067200
HISTORY_SECONDS = 3600
HISTORY_PROFILES = {
    "stable": Profile(rps=10, error_rate=0.01, latency=0.05),
    "canary": Profile(rps=2, error_rate=0.05, latency=0.08),
    "idle": Profile(rps=0),  # success/requests is 0/0 = NaN: the "no traffic" shape
}
SKIP_REASON = (
    "the real `prometheus`/`promtool` binaries are not on PATH; "
    "install them with `apt-get install -y --no-install-recommends prometheus` (make test does)"
)


def at(offset_seconds: float) -> datetime:
    """A virtual `now` inside the backfilled hour."""
    return datetime.fromtimestamp(EPOCH + offset_seconds, UTC)


@pytest.fixture(scope="session")
def require_prometheus() -> None:
    if not prometheus_available():
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session")
def backfilled_prometheus(require_prometheus: None) -> Iterator[LocalPrometheus]:
    history = backfill_openmetrics(HISTORY_PROFILES, start=EPOCH, duration=HISTORY_SECONDS)
    with LocalPrometheus(openmetrics=history) as prom:
        yield prom


@pytest.fixture(scope="session")
def warning_prometheus(require_prometheus: None) -> Iterator[LocalPrometheus]:
    """A real Prometheus whose every selector answer carries a warning (dead remote_read)."""
    dead = f"http://127.0.0.1:{free_port()}/read"
    with LocalPrometheus(extra_config={"remote_read": [{"url": dead}]}) as prom:
        yield prom


@pytest.fixture(scope="module")
def scraped_workload(require_prometheus: None) -> Iterator[tuple[Workload, LocalPrometheus]]:
    versions = {
        "v1": Profile(rps=100, error_rate=0.0, latency=0.05),
        "v2": Profile(rps=100, error_rate=0.5, latency=0.2),
    }
    with (
        Workload(versions=versions, seed=7) as workload,
        LocalPrometheus(scrape_targets=[workload.target]) as prom,
    ):
        # The first scrape lands ~5.5 s after start (discovery tick): poll, never sleep blindly.
        prom.wait_for('up{job="app"} == 1', timeout=20)
        yield workload, prom


# -- local HTTP stand-ins ------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = ""
    content_type: str = "application/json"
    delay: float = 0.0


Responder = Callable[[Recorded], Reply]


def envelope(data: Any = None, **extra: Any) -> Reply:
    """A Prometheus-style JSON answer (``status: success`` unless overridden)."""
    body = {"status": "success", "data": data, **extra}
    status = 200 if body["status"] == "success" else 400
    return Reply(status=status, body=json.dumps(body))


@dataclass
class StubServer:
    """A real HTTP(S) server on loopback that records requests and answers via ``responder``."""

    responder: Responder
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def last(self) -> Recorded:
        return self.requests[-1]


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            recorded = Recorded(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            stub.requests.append(recorded)
            reply = stub.responder(recorded)
            if reply.delay:
                stub.release.wait(reply.delay)  # a slow server that teardown can cut short
            payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout test)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub_http() -> Iterator[Callable[..., StubServer]]:
    """Factory: ``stub_http(responder, tls=None)`` → a started ``StubServer``."""
    started: list[tuple[ThreadingHTTPServer, StubServer]] = []

    def start(responder: Responder, tls: tuple[Path, Path] | None = None) -> StubServer:
        stub = StubServer(responder)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
        server.block_on_close = False
        scheme = "http"
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        stub.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append((server, stub))
        return stub

    yield start
    for server, stub in started:
        stub.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1, made at test time (no key in the repo)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate (Debian: it comes with ca-certificates)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
