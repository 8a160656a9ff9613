"""The :class:`~analyzer.ports.RolloutStore` port for ModelRollouts
(``rollouts.analyzer.dev/v1alpha1``, ``deploy/crd/modelrollout.yaml``), and the watch the daemon
follows.

* ``update_status`` PUTs the ``/status`` subresource with ``metadata.resourceVersion`` set: the
  server checks it before anything else, so a stale write gets 409 (:class:`WriteConflict`) and
  changes nothing, and ``/status`` ignores everything but ``.status`` (spec cannot be clobbered).
  PUT rather than merge patch because the status is written whole: a key the engine dropped must
  disappear, which a merge patch would keep.
* ``patch_spec`` is a JSON merge patch of ``{"spec": patch}`` on the main endpoint (which ignores
  ``.status``); the server bumps ``metadata.generation``.
* ``watch`` yields ``(type, object)`` from a resourceVersion, BOOKMARKs included (their object
  carries only the new resourceVersion), and raises :class:`WatchExpired` on 410 so the caller
  lists again and watches from the list's resourceVersion.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any, cast

from kubernetes import client
from kubernetes import watch as _watch

from analyzer.kube.client import DEFAULT_TIMEOUT
from analyzer.kube.errors import CALL_ERRORS, KubeError, WatchExpired, translate
from analyzer.kube.objects import MERGE_PATCH, what

GROUP = "rollouts.analyzer.dev"
VERSION = "v1alpha1"
PLURAL = "modelrollouts"
KIND = "ModelRollout"
API_VERSION = f"{GROUP}/{VERSION}"
LIST_PAGE = 500
WATCH_SECONDS = 300  # server-side end of one watch; the daemon reconnects from the last RV


def _what(namespace: str | None, name: str = "") -> str:
    return what(GROUP, PLURAL, namespace, name)


class KubeRolloutStore:
    """Implements :class:`~analyzer.ports.RolloutStore` over the cluster."""

    def __init__(self, api_client: Any, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.api: Any = client.CustomObjectsApi(api_client)
        self.timeout = timeout

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                                       _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise translate(exc, f"get {_what(namespace, name)}") from None
        return obj

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every ModelRollout in ``namespace``, or in all namespaces when it is None."""
        return self.list_with_version(namespace)[0]

    def list_with_version(self, namespace: str | None = None) -> tuple[builtins.list[dict[str, Any]], str]:
        """The items and the list's resourceVersion, the point a following :meth:`watch` starts
        from (pages are followed with ``continue``)."""
        items: builtins.list[dict[str, Any]] = []
        token: str | None = None
        rv = ""
        while True:
            kw: dict[str, Any] = {"limit": LIST_PAGE, "_request_timeout": self.timeout}
            if token:
                kw["_continue"] = token
            try:
                if namespace is None:
                    page = self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)
                else:
                    page = self.api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw)
            except CALL_ERRORS as exc:
                raise translate(exc, f"list {_what(namespace)}") from None
            for item in page.get("items") or []:
                item.setdefault("apiVersion", API_VERSION)
                item.setdefault("kind", KIND)
                items.append(item)
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            token = meta.get("continue") or None
            if not token:
                return items, rv

    def update_status(self, namespace: str, name: str, status: Mapping[str, Any],
                      resource_version: str) -> dict[str, Any]:
        if not resource_version:
            raise KubeError(f"update status of {_what(namespace, name)}: no resourceVersion to guard the write with")
        body = {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(resource_version)},
                "status": dict(status)}
        try:
            obj: dict[str, Any] = self.api.replace_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body, _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"update status of {_what(namespace, name)}") from None
        return obj

    def patch_spec(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = self.api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, {"spec": dict(patch)}, _content_type=MERGE_PATCH,
                _request_timeout=self.timeout)
        except CALL_ERRORS as exc:
            raise translate(exc, f"patch spec of {_what(namespace, name)}") from None
        return obj

    def watch(self, namespace: str | None, resource_version: str, *,
              timeout_seconds: int = WATCH_SECONDS) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(type, object)`` for every change after ``resource_version`` (ADDED, MODIFIED,
        DELETED, BOOKMARK), until the server ends the watch after ``timeout_seconds``.

        The client-side read timeout is a little longer than the server's promise, so a silent
        connection ends in :class:`KubeError` instead of hanging. 410 Gone/Expired raises
        :class:`WatchExpired` (never retried here: the caller must list again)."""
        w: Any = cast(Any, _watch).Watch()
        func: Any
        args: tuple[str, ...]
        if namespace is None:
            func, args = self.api.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        else:
            func, args = self.api.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL)
        kw: dict[str, Any] = {"allow_watch_bookmarks": True, "timeout_seconds": timeout_seconds,
                              "_request_timeout": (self.timeout[0], timeout_seconds + self.timeout[1])}
        if resource_version:
            kw["resource_version"] = str(resource_version)
        action = f"watch {_what(namespace)} from resourceVersion {resource_version or '(now)'}"
        try:
            for event in w.stream(func, *args, **kw):
                obj = event.get("raw_object") or event.get("object") or {}
                yield str(event.get("type")), obj
        except CALL_ERRORS as exc:
            err = translate(exc, action)
            if getattr(exc, "status", None) == 410 and not isinstance(err, WatchExpired):
                err = WatchExpired(str(err), 410)
            raise err from None
        finally:
            w.stop()
