"""HAProxy router against a real HAProxy (Debian's package) in front of two real HTTP backends.

Shares are measured from the backends' own request counters, not from HAProxy's word.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from analyzer.localhaproxy import LocalHAProxy, haproxy_available
from analyzer.routers.haproxy import HAProxyError, HAProxyRouter, RuntimeAPI

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="haproxy is not on PATH "
                                "(apt-get install -y haproxy; make test installs it)")


class Backend:
    def __init__(self, version: str) -> None:
        self.version = version
        self.hits = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else ~40 ms per request behind HAProxy

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path != "/health":
                    with owner._lock:
                        owner.hits += 1
                body = owner.version.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def reset(self) -> None:
        with self._lock:
            self.hits = 0


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[LocalHAProxy, Backend, Backend]]:
    stable, canary = Backend("v1"), Backend("v2")
    with LocalHAProxy(stable.addr, canary.addr) as hap:
        yield hap, stable, canary
    stable.server.shutdown()
    canary.server.shutdown()


def send(hap: LocalHAProxy, n: int, headers: dict[str, str] | None = None) -> list[str]:
    with httpx.Client(base_url=hap.url, headers=headers or {}) as c:
        return [c.get("/predict").text for _ in range(n)]


@pytest.mark.parametrize("percent", [0, 5, 25, 50, 100])
def test_weights_split_real_traffic(proxy: tuple[LocalHAProxy, Backend, Backend], percent: int) -> None:
    hap, stable, canary = proxy
    router = hap.router()
    assert router.set_canary_weight(percent) == percent
    stable.reset()
    canary.reset()
    send(hap, 400)
    share = canary.hits / (canary.hits + stable.hits)
    assert stable.hits + canary.hits == 400
    assert abs(share - percent / 100) <= 0.02  # roundrobin is deterministic; allow the tick edges


def test_header_route_pins_requests_to_canary_at_weight_zero(proxy: tuple[LocalHAProxy, Backend, Backend]) -> None:
    hap, _, _ = proxy
    router = hap.router()
    router.set_canary_weight(0)
    router.set_header_route("v2")
    assert router.header_routes() == {"v2": "be_canary"}
    assert set(send(hap, 20, {"x-model-version": "v2"})) == {"v2"}
    assert set(send(hap, 20, {"x-model-version": "v3"})) == {"v1"}
    assert set(send(hap, 20)) == {"v1"}
    router.set_header_route("v2")  # idempotent
    router.remove_header_routes()
    assert router.header_routes() == {}
    assert set(send(hap, 20, {"x-model-version": "v2"})) == {"v1"}


def test_abort_puts_everything_on_stable(proxy: tuple[LocalHAProxy, Backend, Backend]) -> None:
    hap, _, _ = proxy
    router = hap.router()
    router.set_canary_weight(50)
    router.set_header_route("v2")
    router.abort()
    assert router.canary_weight() == 0 and router.header_routes() == {}
    assert set(send(hap, 40)) | set(send(hap, 10, {"x-model-version": "v2"})) == {"v1"}


def test_full_rollback_from_100_never_leaves_both_weights_zero(proxy: tuple[LocalHAProxy, Backend, Backend]) -> None:
    hap, _, _ = proxy
    router = hap.router()
    router.set_canary_weight(100)
    assert router.weights() == (0, 100)
    router.set_canary_weight(0)
    assert router.weights() == (100, 0)


def test_another_writer_is_detected_on_read_back(proxy: tuple[LocalHAProxy, Backend, Backend]) -> None:
    hap, _, _ = proxy
    router = hap.router()
    router.set_canary_weight(25)
    RuntimeAPI(hap.workdir / "admin.sock").command("set server be_app/canary weight 60")
    assert router.canary_weight() != 25  # the router reports what HAProxy really does
    router.set_canary_weight(25)
    assert router.canary_weight() == 25


def test_invalid_requests_are_refused(proxy: tuple[LocalHAProxy, Backend, Backend]) -> None:
    hap, _, _ = proxy
    router = hap.router()
    with pytest.raises(ValueError, match="0..100"):
        router.set_canary_weight(101)
    with pytest.raises(ValueError, match="only letters"):
        router.set_header_route("v2 be_app")


def test_unreachable_runtime_api_is_a_clear_error(tmp_path) -> None:
    router = HAProxyRouter(RuntimeAPI(tmp_path / "nope.sock"))
    with pytest.raises(HAProxyError, match="cannot reach the HAProxy runtime API at .*nope.sock"):
        router.set_canary_weight(10)
