"""Connecting to a cluster the way kubectl does, with a client-side timeout on every request.

Where the configuration comes from, first match wins:

1. ``--kubeconfig FILE`` (must exist), else ``$KUBECONFIG`` (a path list), else ``~/.kube/config``
   when it exists; ``--context NAME`` picks a context in it (else its current-context);
2. the pod's service account (in-cluster) when ``KUBERNETES_SERVICE_HOST`` is set;
3. otherwise :class:`KubeConfigError` saying how to point us at a cluster.

``default_namespace`` follows kubectl for ``-n``: the context's namespace, else ``default``; in a
pod, ``$POD_NAMESPACE`` or the service account's namespace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes import config as _config
from kubernetes.config.config_exception import ConfigException

from analyzer.kube.errors import KubeError

config: Any = _config  # untyped functions

# (connect, read) seconds. Every request gets one, so a hung API server stalls a reconcile for at
# most this long instead of forever (the client's own default is no timeout at all).
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
HOW_TO = ("pass --kubeconfig FILE (and --context NAME), set KUBECONFIG, create ~/.kube/config, "
          "or run in a pod with a service account")


class KubeConfigError(KubeError):
    """No usable cluster configuration; the message names the file/context and how to fix it."""


def _kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise KubeConfigError(f"kubeconfig {kubeconfig}: no such file")
        return [path]
    env = os.environ.get("KUBECONFIG")
    candidates = [Path(p).expanduser() for p in env.split(os.pathsep) if p] if env else [Path("~/.kube/config").expanduser()]
    return [p for p in candidates if p.is_file()]


def _current_context(paths: list[Path]) -> str | None:
    """kubectl's current-context for a path list: the first file that sets one wins. (The Python
    client lets the last one win; we pass the context explicitly so both agree with kubectl.)"""
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise KubeConfigError(f"kubeconfig {path}: cannot read it: {exc}") from None
        if isinstance(doc, dict) and doc.get("current-context"):
            return str(doc["current-context"])
    return None


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def api_client(kubeconfig: str | None = None, context: str | None = None,
               timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> Any:
    """A ``kubernetes.client.ApiClient`` whose requests time out after ``timeout`` unless a call
    passes its own ``_request_timeout`` (watches do)."""
    cfg = client.Configuration()
    paths = _kubeconfig_paths(kubeconfig)
    if paths:
        where = os.pathsep.join(str(p) for p in paths)
        context = context or _current_context(paths)
        try:
            config.load_kube_config(config_file=where, context=context,
                                    client_configuration=cfg, persist_config=False)
        except ConfigException as exc:
            raise KubeConfigError(f"kubeconfig {where}: {_context_hint(exc, where, context)}") from None
    elif context:
        raise KubeConfigError(f"--context {context}: no kubeconfig found; {HOW_TO}")
    elif _in_cluster():
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise KubeConfigError(f"in-cluster configuration: {exc}; {HOW_TO}") from None
    else:
        raise KubeConfigError(f"no Kubernetes cluster configured: {HOW_TO}")
    return TimeoutApiClient(cfg, timeout=timeout)


def _context_hint(exc: Exception, where: str, context: str | None) -> str:
    text = str(exc).strip() or type(exc).__name__
    if context:
        try:
            names = [c["name"] for c in config.list_kube_config_contexts(where)[0]]
            if context not in names:
                return f"no context {context!r} (contexts: {', '.join(names) or 'none'})"
        except Exception:  # the file itself is unreadable; the original message says why
            pass
    return text


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace ``kubectl`` would use without ``-n``."""
    paths = _kubeconfig_paths(kubeconfig)
    if paths:
        where = os.pathsep.join(str(p) for p in paths)
        try:
            contexts, active = config.list_kube_config_contexts(where)
        except ConfigException as exc:
            raise KubeConfigError(f"kubeconfig {where}: {exc}") from None
        context = context or _current_context(paths)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else active
        if chosen is None:
            names = ", ".join(c["name"] for c in contexts) or "none"
            raise KubeConfigError(f"kubeconfig {where}: no context {context!r} (contexts: {names})")
        return str((chosen.get("context") or {}).get("namespace") or "default")
    if _in_cluster():
        env = os.environ.get("POD_NAMESPACE")
        if env:
            return env
        try:
            return SA_NAMESPACE_FILE.read_text().strip() or "default"
        except OSError:
            return "default"
    return "default"


class TimeoutApiClient(client.ApiClient):
    """An ``ApiClient`` that gives every request without its own ``_request_timeout`` a default
    one, so code that forgets (or another module's calls) cannot hang on a silent server."""

    def __init__(self, configuration: Any = None, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__(configuration)
        self.default_timeout = timeout

    def call_api(self, method: Any, url: Any, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout if _request_timeout is not None else self.default_timeout)
