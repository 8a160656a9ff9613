"""Kubernetes API failures turned into the ports' exceptions, with messages a person can act on.

The client raises ``ApiException`` with the HTTP reason phrase (``Conflict``) and the raw Status
JSON in ``body``; the Status ``reason`` and ``message`` are what say what happened, so they go into
the message. Network failures (``urllib3`` errors: refused, timed out) become :class:`KubeError`
naming the API server.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from analyzer.ports import NotFound, WriteConflict

# kube-apiserver's body for any failed JSON patch operation, a failed ``test`` included
# (kube-api-semantics.md §3.4): 422 Invalid with this message and empty details.
GENERIC_PATCH_FAILURE = "the server rejected our request due to an error in our request"


class KubeError(RuntimeError):
    """A Kubernetes API call failed for a reason other than a lost race; the message says which
    call, on which object, and what the API server answered."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class KubeNotFound(KubeError, NotFound):
    """The object (or its whole resource type) does not exist."""


class WatchExpired(KubeError):
    """The watch's resourceVersion is older than the server's history (410): list again and
    watch from the list's resourceVersion."""


def status_of(exc: Any) -> dict[str, Any]:
    """The Status object of an ``ApiException`` (empty when the body is not one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def describe(exc: Any) -> str:
    """``409 Conflict: Operation cannot be fulfilled ...`` from an ``ApiException``."""
    st = status_of(exc)
    code = getattr(exc, "status", None)
    reason = st.get("reason") or getattr(exc, "reason", None) or "error"
    message = st.get("message") or ""
    causes = (st.get("details") or {}).get("causes") or []
    text = f"{code} {reason}" + (f": {message}" if message else "")
    fields = [c.get("field") for c in causes if isinstance(c, dict) and c.get("field")]
    if fields and not all(f in message for f in fields):
        text += " (fields: " + ", ".join(str(f) for f in fields) + ")"
    return text


def is_write_conflict(exc: Any) -> bool:
    """409 Conflict (stale resourceVersion), or the 422 a failed JSON-patch ``test`` gets. A 422
    from schema validation carries causes and is a real error, not a race."""
    code = getattr(exc, "status", None)
    st = status_of(exc)
    if code == 409:
        return bool(st.get("reason", "Conflict") == "Conflict")
    if code == 422:
        return st.get("message") == GENERIC_PATCH_FAILURE and not (st.get("details") or {}).get("causes")
    return False


def translate(exc: BaseException, action: str) -> Exception:
    """The exception to raise for ``exc`` raised while doing ``action`` (e.g. ``patch
    virtualservices.networking.istio.io ml/inference-routing``)."""
    if isinstance(exc, ApiException):
        if is_write_conflict(exc):
            return WriteConflict(f"{action}: {describe(exc)}")
        if exc.status == 404:
            return KubeNotFound(f"{action}: {describe(exc)}", 404)
        if exc.status == 410:
            return WatchExpired(f"{action}: {describe(exc)}", 410)
        return KubeError(f"{action}: {describe(exc)}", exc.status)
    return KubeError(f"{action}: cannot reach the Kubernetes API server: {type(exc).__name__}: {exc}")


# What one API call can raise: an error answer (ApiException), or no answer (refused, timed out).
CALL_ERRORS: tuple[type[BaseException], ...] = (ApiException, urllib3.exceptions.HTTPError, OSError)
