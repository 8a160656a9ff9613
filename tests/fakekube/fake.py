"""Test-facing API: ``FakeKube`` (in-process, background thread) and ``FakeKubeProcess``
(``python -m fakekube`` in a child process, for tests that SIGKILL the code under test while
the API server keeps running)."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from . import errors as E
from .api import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, AdmissionHook, ApiServer
from .resources import ResourceType, dig, load_crd_documents
from .schema import UNKNOWN_RULES
from .server import FakeKubeHTTPServer, InjectedError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CRDS_DIR = PACKAGE_DIR / "crds"
TESTS_DIR = PACKAGE_DIR.parent
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEFAULT_TOKEN = "fakekube-token"

ApiError = E.ApiError


def kubeconfig_text(url: str, token: str | None, namespace: str = "default", context: str = "fakekube") -> str:
    user: dict[str, Any] = {"token": token} if token else {}
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        "current-context": context,
    }, sort_keys=False)


def _api_client(kubeconfig_path: str, context: str | None = None) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig_path, context=context, client_configuration=cfg)
    return client.ApiClient(cfg)


def istio_webhook(operation: str, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Optional stand-in for istiod's validating webhook (section 6.4): negative weights and
    multi-destination routes whose weights sum to 0 are denied with 400."""
    if rt.group != "networking.istio.io" or rt.kind != "VirtualService":
        return
    problems = []
    for kind in ("http", "tcp", "tls"):
        for route in (obj.get("spec") or {}).get(kind) or []:
            dests = route.get("route") or []
            weights = [d.get("weight", 0) or 0 for d in dests]
            for w in weights:
                if w < 0:
                    problems.append(f"weight {w} < 0")
            if len(dests) > 1 and sum(weights) == 0:
                problems.append("total destination weight = 0")
    if problems:
        raise E.ApiError(400, 'admission webhook "validation.istio.io" denied the request: configuration is invalid: '
                         + ", ".join(problems))


class FakeKube:
    """An in-process fake kube-apiserver on 127.0.0.1 (free port), used through the real client.

    >>> with FakeKube() as kube:
    ...     api = kubernetes.client.CustomObjectsApi(kube.api_client())
    """

    def __init__(
        self,
        crds: Iterable[str | Path] = (DEFAULT_CRDS_DIR,),
        *,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = DEFAULT_TOKEN,
        history_limit: int = 10_000,
        bookmark_interval: float = 1.0,
        default_watch_timeout: float = 1800.0,
        too_large_rv_wait: float = 3.0,
        garbage_collection: bool = True,
        rv_start: int = 1000,
        rv_jitter: int = 4,
        seed: int | None = None,
        istio_webhook_enabled: bool = False,
        audit: bool = True,
    ):
        self.api = ApiServer(garbage_collection=garbage_collection, bookmark_interval=bookmark_interval,
                             default_watch_timeout=default_watch_timeout, too_large_rv_wait=too_large_rv_wait, seed=seed)
        self.store = self.api.store
        self.store.rv = self.store.compacted_rv = rv_start
        self.store.rv_jitter = max(1, rv_jitter)
        self.store.history_limit = history_limit
        self.store.audit_enabled = audit
        self.host, self._port, self.token = host, port, token
        for crd in load_crd_documents(*crds):
            self.api.register_crd(crd)
        for ns in namespaces:
            self.create_namespace(ns)
        if istio_webhook_enabled:
            self.api.admission_hooks.append(istio_webhook)
        self._http: FakeKubeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._clients: list[Any] = []
        self.kubeconfig_path = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKube:
        self._http = FakeKubeHTTPServer((self.host, self._port), self.api, self.token)
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakekube", daemon=True)
        self._thread.start()
        self._tmpdir = tempfile.TemporaryDirectory(prefix="fakekube-")
        self.kubeconfig_path = self.write_kubeconfig(os.path.join(self._tmpdir.name, "kubeconfig"))
        return self

    def stop(self) -> None:
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: S110 - best effort cleanup of client pools
                pass
        self._clients.clear()
        with self.store.cond:
            self.store.closing = True
            self.store.cond.notify_all()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._http is not None, "FakeKube is not started"
        return self._http.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", context: str = "fakekube") -> str:
        Path(path).write_text(kubeconfig_text(self.url, self.token, namespace, context))
        return str(path)

    def configuration(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig_path, client_configuration=cfg)
        return cfg

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from this fake's kubeconfig (closed on stop)."""
        c = _api_client(self.kubeconfig_path)
        self._clients.append(c)
        return c

    # ------------------------------------------------------------------ raw access

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                query: dict[str, Any] | None = None, user_agent: str = "fakekube-test") -> tuple[int, Any]:
        """Run one API request through the same code as HTTP, without a socket."""
        from urllib.parse import urlencode

        data = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        headers = {"Content-Type": content_type, "User-Agent": user_agent}
        resp = self.api.handle(method, path, urlencode(query or {}), headers, data)
        return resp.code, resp.body

    def _path(self, api_version: str, kind: str, namespace: str | None, name: str = "", sub: str = "") -> str:
        rt, version = self.api.find_type(api_version, kind)
        base = f"/api/{version}" if not rt.group else f"/apis/{rt.group}/{version}"
        if rt.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{rt.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base

    def _call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        code, out = self.request(method, path, body, **kw)
        if code not in ok:
            err = E.ApiError(code, (out or {}).get("message", ""), (out or {}).get("reason", ""))
            err.status = out
            raise err
        return out

    # ------------------------------------------------------------------ object helpers (full API semantics)

    def create(self, obj: dict[str, Any], namespace: str | None = None, field_manager: str = "fakekube-test") -> dict[str, Any]:
        ns = namespace or dig(obj, "metadata", "namespace") or "default"
        return self._call("POST", self._path(obj["apiVersion"], obj["kind"], ns), obj, query={"fieldManager": field_manager})

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = "default") -> dict[str, Any] | None:
        code, out = self.request("GET", self._path(api_version, kind, namespace, name))
        return out if code == 200 else None

    def list_objects(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = "") -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else {}
        items = self._call("GET", self._path(api_version, kind, namespace), query=query)["items"]
        rt, version = self.api.find_type(api_version, kind)
        for item in items:
            item.setdefault("apiVersion", rt.api_version(version))
            item.setdefault("kind", rt.kind)
        return items

    def replace(self, obj: dict[str, Any], field_manager: str = "other-writer", subresource: str = "") -> dict[str, Any]:
        ns = dig(obj, "metadata", "namespace") or "default"
        return self._call("PUT", self._path(obj["apiVersion"], obj["kind"], ns, obj["metadata"]["name"], subresource), obj,
                          query={"fieldManager": field_manager})

    def patch(self, api_version: str, kind: str, name: str, patch: Any, namespace: str | None = "default", *,
              patch_type: str = "merge", field_manager: str = "other-writer", subresource: str = "") -> dict[str, Any]:
        ctype = {"merge": MERGE_PATCH, "json": JSON_PATCH, "strategic": STRATEGIC_PATCH,
                 "apply": "application/apply-patch+yaml"}.get(patch_type, patch_type)
        query = {"fieldManager": field_manager}
        if ctype.startswith("application/apply-patch"):
            query["force"] = "true"
        return self._call("PATCH", self._path(api_version, kind, namespace, name, subresource), patch,
                          content_type=ctype, query=query)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = "default") -> Any:
        return self._call("DELETE", self._path(api_version, kind, namespace, name))

    def simulate_other_writer(self, api_version: str, kind: str, name: str, mutate: Callable[[dict[str, Any]], Any],
                              namespace: str | None = "default", manager: str = "other-writer", subresource: str = "") -> dict[str, Any]:
        """Another controller's read-modify-write (GET, ``mutate(obj)`` in place, PUT with the read
        resourceVersion): bumps the RV, emits MODIFIED, makes the caller's cached copy stale."""
        obj = self.get(api_version, kind, name, namespace)
        if obj is None:
            raise E.not_found(kind, "", name)
        result = mutate(obj)
        if isinstance(result, dict):
            obj = result
        return self.replace(obj, field_manager=manager, subresource=subresource)

    def set_status(self, api_version: str, kind: str, name: str, status: dict[str, Any], namespace: str | None = "default",
                   manager: str = "fake-controller") -> dict[str, Any]:
        """Merge-patch ``.status`` through the /status subresource (what a controller would do)."""
        return self.patch(api_version, kind, name, {"status": status}, namespace, field_manager=manager, subresource="status")

    def set_deployment_ready(self, name: str, namespace: str = "default", ready: int | None = None,
                             replicas: int | None = None) -> dict[str, Any]:
        """Script what kube-controller-manager would report for a Deployment (nothing else does)."""
        dep = self.get("apps/v1", "Deployment", name, namespace)
        if dep is None:
            raise E.not_found("deployments", "apps", name)
        want = dig(dep, "spec", "replicas", default=1)
        replicas = want if replicas is None else replicas
        ready = replicas if ready is None else ready
        from .timefmt import now_time

        t = now_time()
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1), "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": ready, "availableReplicas": ready, "unavailableReplicas": max(0, replicas - ready),
            "conditions": [
                {"type": "Available", "status": "True" if ready >= want else "False", "lastUpdateTime": t, "lastTransitionTime": t,
                 "reason": "MinimumReplicasAvailable" if ready >= want else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if ready >= want else "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "lastUpdateTime": t, "lastTransitionTime": t,
                 "reason": "NewReplicaSetAvailable", "message": f'ReplicaSet "{name}" has successfully progressed.'},
            ],
        }
        if status["unavailableReplicas"] == 0:
            del status["unavailableReplicas"]
        dep["status"] = status
        return self.replace(dep, field_manager="kube-controller-manager", subresource="status")

    def create_namespace(self, name: str) -> dict[str, Any]:
        code, out = self.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if code not in (201, 409):
            raise E.ApiError(code, str(out))
        return out

    def load_manifests(self, source: str | Path | Iterable[dict[str, Any]], namespace: str = "default") -> list[dict[str, Any]]:
        """Create every object of a YAML file (or of given dicts) through the API."""
        docs = source if not isinstance(source, str | Path) else [d for d in yaml.safe_load_all(Path(source).read_text()) if d]
        return [self.create(copy.deepcopy(d), namespace=dig(d, "metadata", "namespace") or namespace) for d in docs]

    def validate(self, obj: dict[str, Any], namespace: str = "default") -> list[str]:
        """Server-side validation only (a ``dryRun=All`` create): the error messages, ``[]`` when the
        object would be accepted. Pruned unknown fields count as errors (``fieldValidation=Strict``)."""
        ns = dig(obj, "metadata", "namespace") or namespace
        code, out = self.request("POST", self._path(obj["apiVersion"], obj["kind"], ns), obj,
                                 query={"dryRun": "All", "fieldValidation": "Strict"})
        if code in (200, 201) or (code == 409 and out.get("reason") == "AlreadyExists"):
            return []
        causes = (out.get("details") or {}).get("causes") or []
        return [f"{c.get('field')}: {c.get('message')}" for c in causes] or [out.get("message", str(out))]

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as is, bypassing validation and strategies (uid/creationTimestamp filled if
        missing); still gets a global RV and a watch event. For state a real client could not create."""
        rt, version = self.api.find_type(obj["apiVersion"], obj["kind"])
        stored = copy.deepcopy(obj)
        meta = stored.setdefault("metadata", {})
        ns = meta.get("namespace", "default") if rt.namespaced else ""
        if rt.namespaced:
            meta["namespace"] = ns
        import uuid

        from .timefmt import now_time

        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_time())
        if rt.custom:
            stored["apiVersion"] = rt.api_version(rt.storage_version)
        key = self.api.key(rt, ns, meta["name"])
        with self.store.lock:
            exists = self.store.get(key) is not None
            out = self.store.put(key, stored, "MODIFIED" if exists else "ADDED")
            return self.api.view(rt, version, out)

    # ------------------------------------------------------------------ watch / history control

    @property
    def resource_version(self) -> str:
        return str(self.store.rv)

    def expire_history(self) -> None:
        """Forget all watch history: a watch from any earlier resourceVersion gets 410 Expired."""
        self.store.expire_history()

    def set_history_limit(self, events: int) -> None:
        self.store.history_limit = events

    def send_bookmarks(self) -> None:
        """Make every open watch with allowWatchBookmarks send a BOOKMARK now."""
        with self.store.cond:
            self.store.bookmark_epoch += 1
            self.store.cond.notify_all()

    def close_watches(self) -> None:
        """End every open watch stream (as an apiserver restart or a load balancer would)."""
        with self.store.cond:
            self.store.close_watches_epoch += 1
            self.store.cond.notify_all()

    def audit(self, api_version: str | None = None, kind: str | None = None, name: str | None = None,
              namespace: str | None = None) -> list[dict[str, Any]]:
        """Every write ever stored (not subject to the watch-history window), oldest first:
        ``{"type", "resourceVersion", "object"}`` with the object in its stored version."""
        storage_key = None
        if api_version and kind:
            storage_key = self.api.find_type(api_version, kind)[0].storage_key
        with self.store.lock:
            return [{"type": e.type, "resourceVersion": str(e.rv), "object": copy.deepcopy(e.obj)} for e in self.store.audit
                    if (storage_key is None or e.key[0] == storage_key) and (name is None or e.key[2] == name)
                    and (namespace is None or e.key[1] == namespace)]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self._http.requests_log) if self._http else []

    def inject_error(self, method: str | None = None, path: str | None = None, code: int = 500, times: int = 1,
                     reason: str = "InternalError", message: str = "injected by fakekube") -> None:
        """Answer the next ``times`` matching HTTP requests (``path`` is a regex) with an error Status."""
        assert self._http is not None
        self._http.injected.append(InjectedError(method, re.compile(path) if path else None, code, times, reason, message))

    def set_request_delay(self, seconds: float) -> None:
        assert self._http is not None
        self._http.request_delay = seconds

    def add_admission_hook(self, hook: AdmissionHook) -> None:
        """``hook(operation, resource_type, stored_obj, old_or_None)`` may return field errors (422)
        or raise ``ApiError`` (e.g. a webhook denial)."""
        self.api.admission_hooks.append(hook)

    def register_crd(self, crd: dict[str, Any] | str | Path) -> None:
        docs = load_crd_documents(crd) if isinstance(crd, str | Path) else [crd]
        for d in docs:
            self.api.register_crd(d)

    @property
    def skipped_cel_rules(self) -> set[str]:
        return set(UNKNOWN_RULES)


class FakeKubeProcess:
    """``python -m fakekube`` in a child process. Control calls go over HTTP (``/_fakekube/``)."""

    def __init__(self, crds: Iterable[str | Path] = (DEFAULT_CRDS_DIR,), *, port: int = 0, token: str | None = DEFAULT_TOKEN,
                 extra_args: Iterable[str] = (), startup_timeout: float = 30.0):
        self.crds = [str(c) for c in crds]
        self.requested_port = port
        self.token = token
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._tmpdir = tempfile.TemporaryDirectory(prefix="fakekube-proc-")
        self.kubeconfig_path = os.path.join(self._tmpdir.name, "kubeconfig")

    def start(self) -> FakeKubeProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        cmd = [sys.executable, "-m", "fakekube", "--port", str(self.requested_port), "--kubeconfig", self.kubeconfig_path]
        if self.crds:
            cmd += ["--crds", *self.crds]
        cmd += ["--no-auth"] if self.token is None else ["--token", self.token]
        cmd += self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + self.startup_timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("FAKEKUBE READY "):
                self.url = line.split()[2]
                return self
            if not line and self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
        self.stop()
        raise RuntimeError(f"fakekube process did not start: {err}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def api_client(self) -> Any:
        return _api_client(self.kubeconfig_path)

    def control(self, command: str, payload: Any = None, method: str = "POST") -> Any:
        data = None if payload is None else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        req = urllib.request.Request(f"{self.url}/_fakekube/{command}", data=data if method == "POST" else None, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local URL
            return json.loads(resp.read())

    def expire_history(self) -> None:
        self.control("expire-history", {})

    def send_bookmarks(self) -> None:
        self.control("bookmark", {})

    def close_watches(self) -> None:
        self.control("close-watches", {})

    def audit(self) -> list[dict[str, Any]]:
        return self.control("audit", method="GET")["events"]

    def state(self) -> dict[str, Any]:
        return self.control("state", method="GET")

    def inject_error(self, method: str | None = None, path: str | None = None, code: int = 500, times: int = 1) -> None:
        self.control("inject-error", {"method": method, "path": path, "code": code, "times": times})

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._tmpdir.cleanup()

    def __enter__(self) -> FakeKubeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
