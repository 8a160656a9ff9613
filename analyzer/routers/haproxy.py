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

:class:`HAProxyTrafficRouter` is the :class:`~analyzer.ports.TrafficRouter` the rollout daemon
uses outside Kubernetes (``spec.trafficRouting.haproxy`` of a ModelRollout). It owns the header
map: every entry of it is a managed header route, so entries no wanted route asks for are
deleted. HAProxy matches header routes on exact values of one header only; mirror routes do not
exist here. An unreachable socket raises :class:`RouterError` (HAProxyError is one): the daemon
cannot move traffic, and HAProxy keeps what it has (its own restart falls back to stable).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from analyzer.core.steps import HAProxyRouting, MatchKind, TrafficObservation, TrafficState
from analyzer.ports import RouterError

_WEIGHT = re.compile(r"^(\d+) \(initial \d+\)$")


class HAProxyError(RouterError):
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


_UP = "2"  # srv_op_state of a server that is up


@dataclass(frozen=True)
class ServerState:
    name: str
    weight: int
    up: bool
    maintenance: bool


class HAProxyTrafficRouter:
    """Implements :class:`~analyzer.ports.TrafficRouter` for one HAProxy backend.

    ``apply`` removes header-map entries no wanted route asks for, then sets the weights (in the
    order that keeps the share in between and never writes 0/0), then adds the wanted entries,
    and reads everything back. A route is read back as present when every value it matches is in
    the map pointing at the canary-only backend. Servers that are down or in maintenance while
    they should take traffic are reported as problems: HAProxy then sends their share elsewhere,
    so the split is not the one asked for."""

    def __init__(self, routing: HAProxyRouting, *, timeout: float = 2.0) -> None:
        self.routing = routing
        self.api = RuntimeAPI(routing.socket, timeout=timeout)
        self._target = HAProxyTarget(backend=routing.backend, stable_server=routing.stable_server,
                                     canary_server=routing.canary_server, canary_backend=routing.canary_backend,
                                     header_map=routing.header_map)
        self._router = HAProxyRouter(self.api, self._target)

    # -- reading -----------------------------------------------------------------------------

    def servers(self) -> dict[str, ServerState]:
        """The backend's servers as ``show servers state`` reports them (one consistent read)."""
        b = self.routing.backend
        out = self.api.command(f"show servers state {b}")
        lines = out.splitlines()
        header = next((ln for ln in lines if ln.startswith("# be_id")), None)
        if header is None:
            raise HAProxyError(f"HAProxy backend {b!r}: unexpected answer to 'show servers state': {out[:200]!r}")
        cols = header[2:].split()
        try:
            i_name, i_op, i_admin, i_weight = (cols.index(c) for c in
                                               ("srv_name", "srv_op_state", "srv_admin_state", "srv_uweight"))
        except ValueError:
            raise HAProxyError(f"HAProxy backend {b!r}: 'show servers state' lacks the expected columns") from None
        found: dict[str, ServerState] = {}
        for ln in lines:
            parts = ln.split()
            if ln.startswith("#") or len(parts) <= max(i_name, i_op, i_admin, i_weight) or parts[1] != b:
                continue
            admin = int(parts[i_admin]) if parts[i_admin].isdigit() else 0
            found[parts[i_name]] = ServerState(parts[i_name], int(parts[i_weight]), parts[i_op] == _UP,
                                               bool(admin & 0x7F))  # any maintenance or drain bit
        if not found:
            raise HAProxyError(f"HAProxy has no backend {b!r} (or it has no servers)")
        for name in (self.routing.stable_server, self.routing.canary_server):
            if name not in found:
                raise HAProxyError(f"HAProxy backend {b!r} has no server {name!r} (has: {', '.join(sorted(found))})")
        return found

    def header_map(self) -> dict[str, str]:
        return self._router.header_routes() if self.routing.header_map else {}

    # -- the TrafficRouter protocol ----------------------------------------------------------------

    def apply(self, state: TrafficState) -> TrafficObservation:
        wanted = self._wanted_values(state)
        canary_backend = self.routing.canary_backend
        current = self.header_map()
        # Drop what is not wanted first: an abort takes routes away before the weight moves.
        for value, backend in current.items():
            if value not in wanted or backend != canary_backend:
                self._map_command(f"del map {self.routing.header_map} {value}")
        self._set_weights(state.weight)
        for value in wanted:
            if current.get(value) != canary_backend:
                self._router.set_header_route(value)
        return self.observe(state)

    def observe(self, state: TrafficState) -> TrafficObservation:
        wanted = self._wanted_values(state)
        servers = self.servers()
        stable, canary = servers[self.routing.stable_server], servers[self.routing.canary_server]
        problems: list[str] = []
        weight: int | None
        if stable.weight + canary.weight == 0:
            weight = None
            problems.append(f"both servers of {self.routing.backend} have weight 0: HAProxy answers 503")
        else:
            weight = round(100 * canary.weight / (stable.weight + canary.weight))
        for role, srv in (("stable", stable), ("canary", canary)):
            if srv.weight > 0 and (srv.maintenance or not srv.up):
                why = "in maintenance or draining" if srv.maintenance else "down (health check failing)"
                problems.append(f"{role} server {self.routing.backend}/{srv.name} is {why}: "
                                "its share goes to the other server")
        entries = self.header_map()
        present: set[str] = set()
        for route in state.header_routes:
            values = [m.value.value for m in route.match]
            if values and all(entries.get(v) == self.routing.canary_backend for v in values):
                present.add(route.name)
        extra = sorted(v for v in entries if v not in wanted)
        if extra:
            problems.append(f"header map {self.routing.header_map} has entries no route wants: {', '.join(extra)}")
        return TrafficObservation(weight, frozenset(present), tuple(problems))

    # -- helpers -------------------------------------------------------------------------------

    def _wanted_values(self, state: TrafficState) -> dict[str, str]:
        """Header value -> route name, for the wanted header routes; RouterError for what HAProxy
        cannot do."""
        if state.mirror_routes:
            raise HAProxyError("HAProxy routing has no mirror routes: "
                               + ", ".join(r.name for r in state.mirror_routes))
        if not 0 <= state.weight <= 100:
            raise HAProxyError(f"canary weight must be within 0..100, got {state.weight}")
        values: dict[str, str] = {}
        for route in state.header_routes:
            if self.routing.header_map is None:
                raise HAProxyError(f"header route {route.name!r} needs trafficRouting.haproxy.headerMap")
            for m in route.match:
                if m.header.lower() != self.routing.header.lower() or m.value.kind is not MatchKind.EXACT:
                    raise HAProxyError(f"header route {route.name!r}: HAProxy routes only exact values of the header "
                                       f"{self.routing.header!r}, not {m.value.kind} on {m.header!r}")
                if not re.fullmatch(r"[A-Za-z0-9._:-]+", m.value.value):
                    raise HAProxyError(f"header route {route.name!r}: value {m.value.value!r} may hold only "
                                       "letters, digits and . _ : -")
                values[m.value.value] = route.name
        return values

    def _set_weights(self, percent: int) -> None:
        servers = self.servers()
        have_stable = servers[self.routing.stable_server].weight
        have_canary = servers[self.routing.canary_server].weight
        want_canary, want_stable = percent, 100 - percent
        if (have_stable, have_canary) == (want_stable, want_canary):
            return
        writes = [(self.routing.canary_server, want_canary), (self.routing.stable_server, want_stable)]
        if want_canary < have_canary:
            writes.reverse()
        for server, weight in writes:
            self._router._set(server, weight)

    def _map_command(self, cmd: str) -> None:
        out = self.api.command(cmd)
        if out:
            raise HAProxyError(f"HAProxy refused {cmd!r}: {out}")


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
