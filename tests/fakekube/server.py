"""HTTP transport: a stdlib ``ThreadingHTTPServer`` in front of ``ApiServer``.

Besides the Kubernetes API it serves a few test-control endpoints under ``/_fakekube/`` so a
test can steer a fake running in another process (see ``FakeKubeProcess``)."""

from __future__ import annotations

import collections
import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

from . import errors as E
from .api import ApiServer, Response


@dataclass
class InjectedError:
    method: str | None
    path: re.Pattern[str] | None
    code: int
    times: int
    reason: str
    message: str


class FakeKubeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: ApiServer, token: str | None):
        self.api = api
        self.token = token
        self.requests_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=20_000)
        self.injected: list[InjectedError] = []
        self.inject_lock = threading.Lock()
        self.request_delay = 0.0
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            return  # a client closed its connection (e.g. Watch.stop() shuts the socket down)
        super().handle_error(request, client_address)

    def take_injected(self, method: str, path: str) -> InjectedError | None:
        with self.inject_lock:
            for inj in self.injected:
                if (inj.method is None or inj.method == method) and (inj.path is None or inj.path.search(path)):
                    inj.times -= 1
                    if inj.times <= 0:
                        self.injected.remove(inj)
                    return inj
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeKubeHTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK cost 40 ms a request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # ------------------------------------------------------------------ plumbing

    def _send(self, code: int, body: Any, headers: list[tuple[str, str]] | None = None) -> None:
        if isinstance(body, str | bytes) and not isinstance(body, dict):
            data = body.encode() if isinstance(body, str) else body
            ctype = "text/plain; charset=utf-8"
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
            ctype = "application/json"
        self.send_response(code, E.REASON_PHRASES.get(code, ""))
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in headers or []:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        body = self._body()
        code = 0
        try:
            if path.startswith("/_fakekube/"):
                code = self._admin(path, body)
                return
            if self.server.token is not None and path not in ("/healthz", "/livez", "/readyz", "/version"):
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {self.server.token}":
                    code = 401
                    self._send(401, E.status_body(401, "Unauthorized", "Unauthorized"))
                    return
            if self.server.request_delay:
                time.sleep(self.server.request_delay)
            inj = self.server.take_injected(self.command, path)
            if inj is not None:
                code = inj.code
                self._send(inj.code, E.status_body(inj.code, inj.message, inj.reason))
                return
            try:
                resp = self.server.api.handle(self.command, path, query, dict(self.headers.items()), body)
            except Exception as exc:  # a bug in the fake: answer like an apiserver panic would
                resp = Response(500, E.status_body(500, f"fakekube internal error: {exc!r}"))
            code = resp.code
            if resp.stream is not None:
                self._stream(resp)
            else:
                self._send(resp.code, resp.body, resp.headers)
        finally:
            self.server.requests_log.append({
                "method": self.command, "path": path, "query": query, "code": code,
                "content_type": self.headers.get("Content-Type", ""), "user_agent": self.headers.get("User-Agent", ""),
                "authorization": bool(self.headers.get("Authorization")), "seconds": time.monotonic() - started,
            })

    def _client_alive(self) -> bool:
        """False once the client closed its end (a killed process must not leave watch threads behind)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) != b""
        except (OSError, ValueError):
            return False
        return True

    def _stream(self, resp: Response) -> None:
        assert resp.stream is not None
        resp.stream.client_alive = self._client_alive
        self.send_response(200, "OK")
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for line in resp.stream.lines():
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    # ------------------------------------------------------------------ test control

    def _admin(self, path: str, body: bytes) -> int:
        api = self.server.api
        cmd = path[len("/_fakekube/"):]
        payload = json.loads(body) if body.strip().startswith((b"{", b"[")) else {}
        if cmd == "expire-history":
            api.store.expire_history()
        elif cmd == "bookmark":
            with api.store.cond:
                api.store.bookmark_epoch += 1
                api.store.cond.notify_all()
        elif cmd == "close-watches":
            with api.store.cond:
                api.store.close_watches_epoch += 1
                api.store.cond.notify_all()
        elif cmd == "crds":
            docs = [d for d in yaml.safe_load_all(body.decode()) if isinstance(d, dict)]
            for d in docs:
                api.register_crd(d)
        elif cmd == "inject-error":
            self.server.injected.append(InjectedError(
                payload.get("method"), re.compile(payload["path"]) if payload.get("path") else None,
                int(payload.get("code", 500)), int(payload.get("times", 1)), payload.get("reason", "InternalError"),
                payload.get("message", "injected by fakekube")))
        elif cmd == "settings":
            for k in ("bookmark_interval", "default_watch_timeout", "too_large_rv_wait"):
                if k in payload:
                    setattr(api, k, float(payload[k]))
            if "history_limit" in payload:
                api.store.history_limit = int(payload["history_limit"])
            if "request_delay" in payload:
                self.server.request_delay = float(payload["request_delay"])
        elif cmd == "state":
            with api.store.lock:
                state = {"resourceVersion": str(api.store.rv), "compactedResourceVersion": str(api.store.compacted_rv),
                         "objects": len(api.store.objects)}
            self._send(200, state)
            return 200
        elif cmd == "audit":
            with api.store.lock:
                events = [{"resourceVersion": str(e.rv), "type": e.type, "storageKey": list(e.key[0]), "namespace": e.key[1],
                           "name": e.key[2], "object": e.obj} for e in api.store.audit]
            self._send(200, {"events": events})
            return 200
        elif cmd == "requests":
            self._send(200, {"requests": list(self.server.requests_log)})
            return 200
        else:
            self._send(404, E.status_body(404, f"unknown fakekube command {cmd}", "NotFound"))
            return 404
        self._send(200, {"ok": True})
        return 200

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle
    do_HEAD = _handle
