"""The :class:`~analyzer.ports.EventSink` port: core/v1 Events on the ModelRollout, so
``kubectl describe modelrollout`` and ``kubectl get events`` tell what the controller did.

An event names its object by uid (``involvedObject``), carries the reason, message and type
(Normal / Warning) and says it comes from ``rollout-analyzer``. A repeat of the same event on the
same object (same reason, message and type) bumps ``count`` and ``lastTimestamp`` of the event
already written, as kubelet and client-go's recorder do, instead of piling up copies; the
memory of what was written is a small LRU, so a restart simply starts a new event.

Delivery must never hurt the rollout: every failure is logged (structlog) and swallowed.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client

from analyzer.kube.client import DEFAULT_TIMEOUT
from analyzer.kube.errors import CALL_ERRORS, KubeError, translate

COMPONENT = "rollout-analyzer"
MAX_MESSAGE = 1024  # events.k8s.io's limit on note; kept for core events too
REMEMBERED = 512

log = structlog.get_logger(__name__)


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeEvents:
    """Implements :class:`~analyzer.ports.EventSink`."""

    def __init__(self, api_client: Any, *, instance: str | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.core: Any = client.CoreV1Api(api_client)
        self.timeout = timeout
        self.instance = instance or os.environ.get("POD_NAME") or socket.gethostname()
        self.clock = clock
        # (namespace, uid or name, reason, message, type) -> (event name, count)
        self._seen: OrderedDict[tuple[str, str, str, str, str], tuple[str, int]] = OrderedDict()

    def emit(self, rollout: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        try:
            self._emit(rollout, reason, message, "Warning" if warning else "Normal")
        except Exception as exc:  # never raise: the rollout must not suffer from its notifications
            meta = rollout.get("metadata") if isinstance(rollout, Mapping) else None
            meta = meta if isinstance(meta, Mapping) else {}
            error = str(exc) if isinstance(exc, KubeError) else f"{type(exc).__name__}: {exc}"
            log.warning("kubernetes event not recorded", namespace=meta.get("namespace"), name=meta.get("name"),
                        reason=reason, error=error)

    def _emit(self, rollout: Mapping[str, Any], reason: str, message: str, type_: str) -> None:
        meta = rollout.get("metadata") or {}
        name, namespace = str(meta["name"]), str(meta.get("namespace") or "default")
        message = message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 3] + "..."
        now = _time(self.clock())
        key = (namespace, str(meta.get("uid") or name), reason, message, type_)
        seen = self._seen.get(key)
        if seen is not None:
            event_name, count = seen
            try:
                self.core.patch_namespaced_event(event_name, namespace, {"count": count + 1, "lastTimestamp": now},
                                                 _request_timeout=self.timeout)
                self._remember(key, event_name, count + 1)
                return
            except CALL_ERRORS as exc:
                if getattr(exc, "status", None) != 404:  # 404: the event expired (TTL) -> start a new one below
                    raise translate(exc, f"patch event {namespace}/{event_name}") from None
        involved = {"apiVersion": rollout.get("apiVersion"), "kind": rollout.get("kind"), "name": name,
                    "namespace": namespace}
        if meta.get("uid"):
            involved["uid"] = meta["uid"]
        if meta.get("resourceVersion"):
            involved["resourceVersion"] = meta["resourceVersion"]
        event_name = f"{name}.{secrets.token_hex(8)}"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": namespace},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT, "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self.core.create_namespaced_event(namespace, body, _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"create event for {rollout.get('kind')} {namespace}/{name}") from None
        self._remember(key, event_name, 1)

    def _remember(self, key: tuple[str, str, str, str, str], event_name: str, count: int) -> None:
        self._seen[key] = (event_name, count)
        self._seen.move_to_end(key)
        while len(self._seen) > REMEMBERED:
            self._seen.popitem(last=False)
