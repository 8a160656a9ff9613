"""An in-memory :class:`~analyzer.ports.CustomObjects`: objects in a dict, RFC 6902 JSON patch
with ``test``. Used by ``analyzer plan`` (offline: the routers run their real code against
the objects of a file) and by tests."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from analyzer.ports import WriteConflict


class PatchError(ValueError):
    """A JSON patch that cannot be applied (bad path or operation)."""


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, end_ok: bool) -> int:
    if token == "-" and end_ok:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"invalid array index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not end_ok):
        raise PatchError(f"array index {i} out of range")
    return i


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"path component {t!r} not found")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, end_ok=False)]
        else:
            raise PatchError(f"cannot descend into {type(cur).__name__} at {t!r}")
    return cur


def _get(doc: Any, pointer: str) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{pointer} not found")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, end_ok=False)]
    raise PatchError(f"{pointer} not found")


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


class TestFailed(PatchError):
    """A ``test`` operation did not hold."""


def apply_json_patch(doc: Any, ops: Iterable[dict[str, Any]]) -> Any:
    """RFC 6902 on a deep copy; raises TestFailed or PatchError."""
    out = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), str(op.get("path", ""))
        if kind == "test":
            if not _json_equal(_get(out, path), op.get("value")):
                raise TestFailed(f"test failed at {path}")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get(out, str(op.get("from", ""))))
            if kind == "move":
                out = apply_json_patch(out, [{"op": "remove", "path": op.get("from")}])
            kind, op = "add", {"op": "add", "path": path, "value": value}
        tokens = _tokens(path)
        if not tokens:
            if kind in ("add", "replace"):
                out = copy.deepcopy(op.get("value"))
                continue
            raise PatchError("cannot remove the document root")
        parent = _parent(out, tokens)
        last = tokens[-1]
        if isinstance(parent, dict):
            if kind in ("remove", "replace") and last not in parent:
                raise PatchError(f"{path} not found")
            if kind == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(op.get("value"))
        elif isinstance(parent, list):
            if kind == "add":
                parent.insert(_index(parent, last, end_ok=True), copy.deepcopy(op.get("value")))
            elif kind == "remove":
                del parent[_index(parent, last, end_ok=False)]
            elif kind == "replace":
                parent[_index(parent, last, end_ok=False)] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError(f"unknown op {kind!r}")
        else:
            raise PatchError(f"{path}: parent is not a container")
    return out


class MemoryObjects:
    """Objects keyed by (group, plural, namespace, name); versions are ignored."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []

    def put(self, group: str, plural: str, obj: dict[str, Any], namespace: str = "default") -> None:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or namespace)
        self.objects[(group, plural, ns, str(meta.get("name")))] = copy.deepcopy(obj)

    def get(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((group, plural, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def json_patch(self, group: str, version: str, plural: str, namespace: str, name: str,
                   ops: list[dict[str, Any]]) -> dict[str, Any]:
        key = (group, plural, namespace, name)
        if key not in self.objects:
            raise PatchError(f"{plural} {namespace}/{name} not found")
        try:
            new = apply_json_patch(self.objects[key], ops)
        except TestFailed as exc:
            raise WriteConflict(str(exc)) from None
        self.objects[key] = new
        self.patches.append((name, copy.deepcopy(ops)))
        return copy.deepcopy(new)
