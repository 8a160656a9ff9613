"""The three classic patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and an
approximation of Kubernetes strategic merge patch (built-in types only).

All functions work on deep copies and raise ``PatchError`` on a patch that cannot be applied.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(Exception):
    """The patch could not be applied (the API server answers 422 for JSON patch)."""


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0 but True != 1, key order irrelevant."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- JSON patch


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _index(container: list, token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    idx = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if idx > limit:
        raise PatchError(f"array index {idx} out of bounds")
    return idx


def _resolve_parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    node = doc
    for tok in tokens[:-1]:
        if isinstance(node, dict):
            if tok not in node:
                raise PatchError(f"missing key {tok!r}")
            node = node[tok]
        elif isinstance(node, list):
            node = node[_index(node, tok, False)]
        else:
            raise PatchError("path traverses a scalar")
    return node, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    tokens = _parse_pointer(pointer)
    if not tokens:
        return doc
    parent, last = _resolve_parent(doc, tokens)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing key {last!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise PatchError("path traverses a scalar")


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = _parse_pointer(pointer)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = _parse_pointer(pointer)
    if not tokens:
        raise PatchError("cannot remove the root")
    parent, last = _resolve_parent(doc, tokens)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing key {last!r}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, False))
    raise PatchError("cannot remove from a scalar")


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch. ``ops`` must already be a decoded list (else the caller answers 400)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("operation without 'op'")
        kind = op["op"]
        path = op.get("path")
        if not isinstance(path, str):
            raise PatchError("operation without 'path'")
        if kind == "add":
            if "value" not in op:
                raise PatchError("add without value")
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            if "value" not in op:
                raise PatchError("replace without value")
            _get(doc, path)  # must exist
            if path == "":
                doc = copy.deepcopy(op["value"])
            else:
                doc, _ = _remove(doc, path)
                doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            frm = op.get("from")
            if not isinstance(frm, str):
                raise PatchError("move without from")
            doc, value = _remove(doc, frm)
            doc = _add(doc, path, value)
        elif kind == "copy":
            frm = op.get("from")
            if not isinstance(frm, str):
                raise PatchError("copy without from")
            doc = _add(doc, path, copy.deepcopy(_get(doc, frm)))
        elif kind == "test":
            if "value" not in op:
                raise PatchError("test without value")
            if not json_equal(_get(doc, path), op["value"]):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind: {kind}")
    return doc


# --------------------------------------------------------------------------- strategic merge patch

# Merge keys of the built-in list fields (from the Go struct tags ``patchMergeKey``), keyed by
# field name; ``ports`` depends on its parent (container ports vs service ports).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
}
PRIMITIVE_SET_LISTS = {"finalizers"}


def _merge_key(field: str, parent_path: tuple[str, ...]) -> str | None:
    if field == "ports":
        # container ports merge on containerPort, Service ports on port
        return "port" if parent_path[-1:] == ("spec",) and "template" not in parent_path else "containerPort"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [x for x in result[field] if not any(json_equal(x, v) for v in value)]
            continue
        if key.startswith("$setElementOrder/") or key.startswith("$retainKeys") or key == "$patch":
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, list):
            result[key] = _merge_list(key, current, value, path)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(current, value, path + (key,))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(field: str, current: Any, patch: list, path: tuple[str, ...]) -> list:
    if not isinstance(current, list):
        current = []
    if field in PRIMITIVE_SET_LISTS:
        out = list(current)
        for v in patch:
            if not any(json_equal(v, x) for x in out):
                out.append(v)
        return out
    key = _merge_key(field, path)
    if key is None or not all(isinstance(x, dict) for x in patch):
        return [x for x in copy.deepcopy(patch) if not (isinstance(x, dict) and x.get("$patch") == "delete")]
    out = copy.deepcopy(current)
    for item in patch:
        directive = item.get("$patch")
        k = item.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == k), None)
        if directive == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({a: b for a, b in copy.deepcopy(item).items() if a != "$patch"})
        else:
            out[idx] = strategic_merge_patch(out[idx], item, path + (field,))
    return out
