"""The daemon's probe and metrics endpoint: ``/healthz``, ``/readyz``, ``/metrics``.

A few lines of ``asyncio.start_server`` rather than a web framework: three fixed GET routes, no
bodies to parse, and nothing that installs its own signal handlers (the daemon owns SIGTERM).

* ``/healthz`` 200 while the event loop answers (the process is not wedged);
* ``/readyz`` 200 once the first list of rollouts is in (followers are ready too: they are
  healthy standbys, and a Service in front of the replicas only serves ``/metrics``);
* ``/metrics`` the controller's own registry in Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

log = structlog.get_logger("analyzer.health")

MAX_REQUEST = 8192


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``:8080`` and ``8080`` mean all interfaces). Raises ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a probe port is meant to be reachable
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--listen {text!r}: port {port!r} is not a number (expected HOST:PORT)") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--listen {text!r}: port {number} is out of range 0-65535")
    return host, number


class HealthServer:
    def __init__(self, host: str, port: int, *, ready: Callable[[], bool], healthy: Callable[[], bool],
                 metrics: Callable[[], bytes], metrics_type: str) -> None:
        self.host, self.port = host, port
        self.ready, self.healthy, self.metrics, self.metrics_type = ready, healthy, metrics, metrics_type
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("serving probes and metrics", address=f"{self.host}:{self.port}")
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            method, path = (head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""])[:2]
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
            elif path == "/healthz":
                ok = self.healthy()
                status, ctype, body = ("200 OK" if ok else "503 Service Unavailable"), "text/plain", \
                    (b"ok\n" if ok else b"stopping\n")
            elif path == "/readyz":
                ok = self.ready()
                status, ctype, body = ("200 OK" if ok else "503 Service Unavailable"), "text/plain", \
                    (b"ok\n" if ok else b"not synced yet\n")
            elif path == "/metrics":
                status, ctype, body = "200 OK", self.metrics_type, self.metrics()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            header = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                      "Connection: close\r\n\r\n").encode()
            writer.write(header + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
