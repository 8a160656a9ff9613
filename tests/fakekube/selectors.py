"""Label and field selectors (apimachinery ``pkg/labels`` and ``pkg/fields`` grammar)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import ApiError, bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"

Requirement = Callable[[dict[str, str]], bool]


def _split_top(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_label_selector(selector: str | None) -> Callable[[dict[str, str]], bool]:
    if not selector or not selector.strip():
        return lambda labels: True
    reqs: list[Requirement] = []
    for part in _split_top(selector):
        reqs.append(_parse_requirement(part, selector))
    return lambda labels: all(r(labels) for r in reqs)


def _check_key(key: str, selector: str) -> None:
    if not re.fullmatch(_KEY, key) or len(key.split("/")[-1]) > 63:
        raise bad_request(f"unable to parse requirement: invalid label key {key!r} in selector {selector!r}")


def _check_value(value: str, selector: str) -> None:
    if len(value) > 63 or not re.fullmatch(_VALUE, value):
        raise bad_request(f"unable to parse requirement: invalid label value: {value!r} in selector {selector!r}")


def _parse_requirement(part: str, selector: str) -> Requirement:
    if not part:
        raise bad_request(f"unable to parse requirement: found '', expected: identifier in selector {selector!r}")
    m = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", part)
    if m:
        key, op, raw = m.group(1), m.group(2), m.group(3)
        _check_key(key, selector)
        values = {v.strip() for v in raw.split(",")}
        for v in values:
            _check_value(v, selector)
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    for op in ("!=", "==", "="):
        if op in part:
            key, value = (s.strip() for s in part.split(op, 1))
            _check_key(key, selector)
            _check_value(value, selector)
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: key in labels and labels[key] == value
    if part.startswith("!"):
        key = part[1:].strip()
        _check_key(key, selector)
        return lambda labels: key not in labels
    _check_key(part, selector)
    return lambda labels: part in labels


def label_selector_from_match(selector: dict[str, Any] | None) -> str:
    """Render a LabelSelector object (matchLabels / matchExpressions) as the string form."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def parse_field_selector(selector: str | None, supported: Callable[[str], bool]) -> Callable[[dict[str, str]], bool]:
    """``supported(field)`` says whether a field label is allowed for the type; the matcher takes
    the object's field set (e.g. ``{"metadata.name": ..., "metadata.namespace": ...}``)."""
    if not selector or not selector.strip():
        return lambda fields: True
    reqs: list[tuple[str, str, str]] = []
    for part in selector.split(","):
        part = part.strip()
        for op in ("!=", "==", "="):
            if op in part:
                field, value = part.split(op, 1)
                reqs.append((field.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
    for field, _, _ in reqs:
        if not supported(field):
            raise ApiError(400, f'field label not supported: {field}', "BadRequest")

    def match(fields: dict[str, str]) -> bool:
        for field, op, value in reqs:
            actual = fields.get(field, "")
            if (actual == value) != (op == "="):
                return False
        return True

    return match
