"""HAProxy router: the canary's traffic share through HAProxy's runtime API (stats socket).

For teams that serve models outside Kubernetes, and for the local demo. It drives a backend
with two servers (stable and canary): weights are relative in HAProxy, so a share of p % is
written as canary=p, stable=100-p. A header route (``x-model-version: v2``) is a runtime map
entry that sends matching requests to a canary-only backend; the frontend line that reads the
map is in :func:`config` (``use_backend %[req.hdr(...),map(file,default)]``).

Order of writes: two separate ``set weight`` commands cannot be atomic, so we order them so the
share in between stays between the old and the new one and the two weights are never both 0
(which would make HAProxy answer 503): raising the canary writes canary first, lowering it
writes stable first. Every change is read back and verified.

Runtime changes are not persisted by HAProxy: a restart reverts to the configuration's weights
(stable 100, canary 0), i.e. all traffic to stable, the safe place.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

_WEIGHT = re.compile(r"^(\d+) \(initial \d+\)$")


class HAProxyError(RuntimeError):
    """The runtime API could not be reached or refused a command."""


class RuntimeAPI:
    """One command per connection on the admin socket (HAProxy's non-interactive mode)."""

    def __init__(self, socket_path: str | Path, timeout: float = 2.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def command(self, cmd: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.socket_path)
                s.sendall(cmd.encode() + b"\n")
                chunks = []
                while data := s.recv(65536):
                    chunks.append(data)
        except OSError as exc:
            raise HAProxyError(f"cannot reach the HAProxy runtime API at {self.socket_path}: "
                               f"{exc.strerror or exc}") from None
        return b"".join(chunks).decode(errors="replace").strip()


@dataclass(frozen=True)
class HAProxyTarget:
    """Which HAProxy objects a rollout drives."""

    backend: str = "be_app"
    stable_server: str = "stable"
    canary_server: str = "canary"
    canary_backend: str = "be_canary"
    header_map: str | None = None  # path of the map file the frontend reads, if header routes are used


class HAProxyRouter:
    def __init__(self, api: RuntimeAPI, target: HAProxyTarget | None = None) -> None:
        self.api = api
        self.t = target or HAProxyTarget()

    def _server_weight(self, server: str) -> int:
        out = self.api.command(f"get weight {self.t.backend}/{server}")
        m = _WEIGHT.match(out)
        if not m:
            raise HAProxyError(f"unexpected answer to 'get weight {self.t.backend}/{server}': {out!r}")
        return int(m.group(1))

    def _set(self, server: str, weight: int) -> None:
        out = self.api.command(f"set server {self.t.backend}/{server} weight {weight}")
        if out:
            raise HAProxyError(f"HAProxy refused 'set server {self.t.backend}/{server} weight {weight}': {out}")

    def weights(self) -> tuple[int, int]:
        """(stable, canary) raw weights as HAProxy has them now."""
        return self._server_weight(self.t.stable_server), self._server_weight(self.t.canary_server)

    def canary_weight(self) -> int:
        """The canary's share in percent, read back from HAProxy."""
        stable, canary = self.weights()
        if stable + canary == 0:
            raise HAProxyError(f"both servers of {self.t.backend} have weight 0: no traffic is served")
        return round(100 * canary / (stable + canary))

    def set_canary_weight(self, percent: int) -> int:
        """Set the canary's share; returns the verified share read back from HAProxy."""
        if not 0 <= percent <= 100:
            raise ValueError(f"canary weight must be within 0..100, got {percent}")
        _, current = self.weights()
        writes = [(self.t.canary_server, percent), (self.t.stable_server, 100 - percent)]
        if percent < current:
            writes.reverse()
        for server, weight in writes:
            self._set(server, weight)
        verified = self.canary_weight()
        if verified != percent:
            raise HAProxyError(f"weight read back as {verified} % after setting {percent} % "
                               f"(another writer on {self.t.backend}?)")
        return verified

    def _need_map(self) -> str:
        if not self.t.header_map:
            raise HAProxyError("header routes need HAProxyTarget.header_map (the map file the frontend reads)")
        return self.t.header_map

    def header_routes(self) -> dict[str, str]:
        """Header value -> backend, as HAProxy's map holds them now."""
        out = self.api.command(f"show map {self._need_map()}")
        routes: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                routes[parts[1]] = parts[2]
        return routes

    def set_header_route(self, value: str) -> None:
        """Requests whose header equals ``value`` go to the canary-only backend."""
        if not re.fullmatch(r"[A-Za-z0-9._:-]+", value):
            raise ValueError(f"header value {value!r}: only letters, digits and . _ : - are allowed")
        path = self._need_map()
        verb = "set" if value in self.header_routes() else "add"
        out = self.api.command(f"{verb} map {path} {value} {self.t.canary_backend}")
        if out:
            raise HAProxyError(f"HAProxy refused '{verb} map {path} {value}': {out}")
        if self.header_routes().get(value) != self.t.canary_backend:
            raise HAProxyError(f"header route {value!r} did not read back from {path}")

    def remove_header_routes(self) -> None:
        if self.t.header_map is None:
            return
        out = self.api.command(f"clear map {self.t.header_map}")
        if out:
            raise HAProxyError(f"HAProxy refused 'clear map {self.t.header_map}': {out}")

    def abort(self) -> None:
        """All traffic to stable, managed routes removed."""
        self.remove_header_routes()
        self.set_canary_weight(0)


def config(*, listen: str, stable: str, canary: str, admin_socket: str | Path, header_map: str | Path,
           metrics_listen: str | None = None, header: str = "x-model-version", target: HAProxyTarget | None = None,
           ) -> str:
    """An haproxy.cfg for one stable/canary pair (used by the local launcher and the demo)."""
    t = target or HAProxyTarget(header_map=str(header_map))
    metrics = (f"""
frontend fe_metrics
    bind {metrics_listen}
    http-request use-service prometheus-exporter if {{ path /metrics }}
""" if metrics_listen else "")
    return f"""global
    stats socket {admin_socket} mode 600 level admin
    stats timeout 30s
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend fe_app
    bind {listen}
    # Header routes: the map sends listed header values to the canary-only backend.
    use_backend %[req.hdr({header}),map({header_map},{t.backend})]
    default_backend {t.backend}
{metrics}
backend {t.backend}
    balance roundrobin
    server {t.stable_server} {stable} weight 100 check inter 1s rise 1
    server {t.canary_server} {canary} weight 0 check inter 1s rise 1

backend {t.canary_backend}
    server {t.canary_server} {canary} check inter 1s rise 1
"""
