"""Kubernetes ``Status`` error bodies, built the way kube-apiserver builds them.

See /work/shared/kube-api-semantics.md section 4.  Every failure leaves the fake as an
``ApiError`` carrying the HTTP code and the ``Status`` dict; the HTTP layer sends it with
Go's reason phrase and ``Content-Type: application/json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Go's net/http reason phrases (CPython >= 3.13 renamed 413/422, kube clients see Go's).
REASON_PHRASES = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def status_body(code: int, message: str, reason: str = "", details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = {k: v for k, v in details.items() if v not in (None, "", [])}
    body["code"] = code
    return body


class ApiError(Exception):
    """An error answered to the client as a ``Status``."""

    def __init__(self, code: int, message: str, reason: str = "", details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.status = status_body(code, message, reason, details)

    @property
    def reason(self) -> str:
        return self.status.get("reason", "")


def qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        f'{qualified(plural, group)} "{name}" not found',
        "NotFound",
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str, being_deleted: bool = False) -> ApiError:
    msg = f'{qualified(plural, group)} "{name}" already exists'
    if being_deleted:
        msg = "object is being deleted: " + msg
    return ApiError(409, msg, "AlreadyExists", {"name": name, "group": group, "kind": plural})


OPTIMISTIC_LOCK_MSG = "the object has been modified; please apply your changes to the latest version and try again"


def conflict(plural: str, group: str, name: str, why: str = OPTIMISTIC_LOCK_MSG, causes: list | None = None) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
        "Conflict",
        {"name": name, "group": group, "kind": plural, "causes": causes},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, message, "MethodNotAllowed", {})


def unsupported_media_type(accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
        "UnsupportedMediaType",
    )


def internal(message: str) -> ApiError:
    """A non-Status Go error: code 500 and no reason."""
    return ApiError(500, message)


def expired(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


def too_large_rv(requested: int, current: int) -> ApiError:
    return ApiError(
        504,
        f"Too large resource version: {requested}, current: {current}",
        "Timeout",
        {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1},
    )


def json_patch_failed() -> ApiError:
    return ApiError(422, "the server rejected our request due to an error in our request", "Invalid", {})


# --------------------------------------------------------------------------- field errors


def format_value(value: Any) -> str:
    """Go's field.Invalid value rendering: strings quoted, numbers/bools bare, others JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass
class FieldError:
    reason: str  # FieldValueRequired, FieldValueInvalid, ...
    field: str
    body: str  # message without the path

    def text(self) -> str:
        return f"{self.field}: {self.body}"


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", path, f"Invalid value: {format_value(value)}" + (f": {detail}" if detail else ""))


def type_invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", path, f"Invalid value: {format_value(value)}: {detail}")


def not_supported(path: str, value: Any, supported: list[Any]) -> FieldError:
    sup = ", ".join(format_value(s) for s in supported)
    return FieldError("FieldValueNotSupported", path, f"Unsupported value: {format_value(value)}: supported values: {sup}")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"Too long: may not be more than {limit} bytes")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError("FieldValueTooMany", path, f"Too many: {actual}: must have at most {limit} items")


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, f"Duplicate value: {format_value(value)}")


def invalid_error(kind_or_plural: str, group: str, name: str, errors: list[FieldError], details_kind: str | None = None) -> ApiError:
    """422 Invalid (``NewInvalid``): one error inlined, several wrapped in ``[...]``, duplicates removed."""
    seen: list[str] = []
    for e in errors:
        if e.text() not in seen:
            seen.append(e.text())
    joined = seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"
    prefix = qualified(kind_or_plural, group)
    return ApiError(
        422,
        f'{prefix} "{name}" is invalid: {joined}',
        "Invalid",
        {
            "name": name,
            "group": group,
            "kind": details_kind or kind_or_plural,
            "causes": [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors],
        },
    )
