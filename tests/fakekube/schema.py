"""Structural OpenAPI v3 schemas of CRDs: pruning, null removal, defaulting, validation and the
few CEL rules our CRDs use.

Follows /work/shared/kube-api-semantics.md section 6 (apiextensions-apiserver behaviour):
unknown fields are pruned (reported as warnings, or errors under ``fieldValidation=Strict``),
type/required/enum/pattern/bounds/format checks give field errors with kube-openapi's texts,
``x-kubernetes-int-or-string`` and ``x-kubernetes-preserve-unknown-fields`` are honoured, and
``x-kubernetes-validations`` rules are evaluated when the fake knows the rule (see ``CEL_RULES``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable
from typing import Any

from . import errors as E
from .patch import json_equal

OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
}  # fmt: skip

BLOCKING = {"FieldValueTypeInvalid", "FieldValueRequired", "FieldValueNotSupported", "FieldValueTooLong", "FieldValueTooMany"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def normalize_numbers(value: Any) -> Any:
    """Go re-encodes an integral float64 without a fraction: ``50.0`` reads back as ``50``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: normalize_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_numbers(v) for v in value]
    return value


# --------------------------------------------------------------------------- pruning


def prune(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Prune unknown fields in place; returns the pruned paths (``spec.http[0].rout``)."""
    pruned: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in list(meta):
            if key not in OBJECT_META_FIELDS:
                del meta[key]
                pruned.append(f"metadata.{key}")
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        props = schema.get("properties") or {}
        if key in props:
            obj[key] = _prune(obj[key], props[key], key, pruned)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            del obj[key]
            pruned.append(key)
    return pruned


def _prune(value: Any, schema: dict[str, Any], path: str, pruned: list[str]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        for key in list(value):
            if embedded and key in ("apiVersion", "kind", "metadata"):
                continue
            if props is not None and key in props:
                value[key] = _prune(value[key], props[key], child(path, key), pruned)
            elif isinstance(addl, dict):
                value[key] = _prune(value[key], addl, f"{path}[{key}]", pruned)
            elif preserve or addl is True:
                continue
            elif props is not None or not preserve:
                del value[key]
                pruned.append(child(path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(v, schema["items"], f"{path}[{i}]", pruned) for i, v in enumerate(value)]
    return value


def drop_nulls(value: Any, schema: dict[str, Any]) -> Any:
    """Remove object fields set to null that are neither nullable nor defaulted."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for key in list(value):
            sub = props.get(key, addl)
            if sub is None:
                continue
            if value[key] is None and not sub.get("nullable") and "default" not in sub:
                del value[key]
            else:
                value[key] = drop_nulls(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_nulls(v, schema["items"]) for v in value]
    return value


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if "default" in sub and (key not in value or (value[key] is None and not sub.get("nullable"))):
                value[key] = copy.deepcopy(sub["default"])
        for key in list(value):
            if key in props:
                value[key] = apply_defaults(value[key], props[key])
            elif isinstance(schema.get("additionalProperties"), dict):
                value[key] = apply_defaults(value[key], schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(v, schema["items"]) for v in value]
    return value


# --------------------------------------------------------------------------- formats

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def _format_ok(fmt: str, value: str) -> bool:
    if fmt in ("date-time", "datetime"):
        return bool(_RFC3339.match(value))
    if fmt == "date":
        return bool(_DATE.match(value))
    if fmt == "uuid":
        return bool(_UUID.match(value))
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
            return True
        except (binascii.Error, ValueError):
            return False
    return True  # int32/int64/double are not range-checked; unknown formats are ignored


# --------------------------------------------------------------------------- validation


def validate(value: Any, schema: dict[str, Any], path: str, old: Any = None, has_old: bool = False) -> list[E.FieldError]:
    """Validate ``value`` against a structural schema node. ``old`` enables ratcheting: a subtree
    equal to the stored one is not re-validated (CRDValidationRatcheting)."""
    if has_old and json_equal(value, old):
        return []
    errs: list[E.FieldError] = []
    if value is None:
        if schema.get("nullable"):
            return []
        typ = schema.get("type")
        if typ:
            return [E.type_invalid(path, "null", f'{path} in body must be of type {typ}: "null"')]
        return []
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
                or (isinstance(value, float) and value.is_integer())):
            return [E.type_invalid(path, json_type(value), f'{path} in body must be of type integer,string: "{json_type(value)}"')]
    else:
        typ = schema.get("type")
        if typ and not _type_ok(typ, value):
            return [E.type_invalid(path, json_type(value), f'{path} in body must be of type {typ}: "{json_type(value)}"')]

    if "enum" in schema and not any(json_equal(value, e) for e in schema["enum"]):
        errs.append(E.not_supported(path, value, schema["enum"]))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(E.too_long(path, schema["maxLength"]))
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(E.invalid(path, value, f"{path} in body should be at least {schema['minLength']} chars long"))
        if "pattern" in schema:
            try:
                if not re.search(schema["pattern"], value):
                    errs.append(E.invalid(path, value, f"{path} in body should match '{schema['pattern']}'"))
            except re.error:
                pass  # Go RE2 syntax Python cannot compile: not checked
        if "format" in schema and not _format_ok(schema["format"], value):
            fmt = "datetime" if schema["format"] == "date-time" else schema["format"]
            errs.append(E.invalid(path, value, f'{path} in body must be of type {fmt}: "{value}"'))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "maximum" in schema:
            if schema.get("exclusiveMaximum") and value >= schema["maximum"]:
                errs.append(E.invalid(path, value, f"{path} in body should be less than {_num(schema['maximum'])}"))
            elif value > schema["maximum"]:
                errs.append(E.invalid(path, value, f"{path} in body should be less than or equal to {_num(schema['maximum'])}"))
        if "minimum" in schema:
            if schema.get("exclusiveMinimum") and value <= schema["minimum"]:
                errs.append(E.invalid(path, value, f"{path} in body should be greater than {_num(schema['minimum'])}"))
            elif value < schema["minimum"]:
                errs.append(E.invalid(path, value, f"{path} in body should be greater than or equal to {_num(schema['minimum'])}"))
        if "multipleOf" in schema and schema["multipleOf"] and value % schema["multipleOf"]:
            errs.append(E.invalid(path, value, f"{path} in body should be a multiple of {_num(schema['multipleOf'])}"))
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(E.too_many(path, len(value), schema["maxItems"]))
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(E.invalid(path, len(value), f"{path} in body should have at least {schema['minItems']} items"))
        errs.extend(_list_type_errors(value, schema, path))
        items = schema.get("items")
        if isinstance(items, dict):
            olds = _correlate_list(value, old if has_old else None, schema)
            for i, v in enumerate(value):
                o = olds.get(i, _MISSING)
                errs.extend(validate(v, items, f"{path}[{i}]", o, o is not _MISSING))
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errs.append(E.too_many(path, len(value), schema["maxProperties"]))
        for req in schema.get("required") or []:
            if req not in value:
                errs.append(E.required(child(path, req)))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        old_dict = old if has_old and isinstance(old, dict) else {}
        for key, v in value.items():
            if path == "" and key in ("apiVersion", "kind", "metadata"):
                continue
            if key in props:
                sub, sub_path = props[key], child(path, key)
            elif isinstance(addl, dict):
                sub, sub_path = addl, f"{path}[{key}]"
            else:
                continue
            errs.extend(validate(v, sub, sub_path, old_dict.get(key), key in old_dict))
    errs.extend(_composition_errors(value, schema, path))
    return errs


_MISSING = object()


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _type_ok(typ: str, value: Any) -> bool:
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if typ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _correlate_list(value: list, old: Any, schema: dict[str, Any]) -> dict[int, Any]:
    """Old items correlated to new ones: only for ``x-kubernetes-list-type: map`` (by keys)."""
    if not isinstance(old, list) or schema.get("x-kubernetes-list-type") != "map":
        return {}
    keys = schema.get("x-kubernetes-list-map-keys") or []
    out: dict[int, Any] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            continue
        for o in old:
            if isinstance(o, dict) and all(json_equal(o.get(k), item.get(k)) for k in keys):
                out[i] = o
                break
    return out


def _list_type_errors(value: list, schema: dict[str, Any], path: str) -> list[E.FieldError]:
    lt = schema.get("x-kubernetes-list-type")
    errs: list[E.FieldError] = []
    if lt == "set":
        for i, v in enumerate(value):
            if any(json_equal(v, w) for w in value[:i]):
                errs.append(E.duplicate(f"{path}[{i}]", v))
    elif lt == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: list[dict] = []
        for i, v in enumerate(value):
            if not isinstance(v, dict):
                continue
            k = {key: v.get(key) for key in keys if key in v}
            if any(json_equal(k, s) for s in seen):
                errs.append(E.duplicate(f"{path}[{i}]", k))
            seen.append(k)
    return errs


def _matches(value: Any, schema: dict[str, Any]) -> bool:
    return not validate(value, schema, "x")


def _composition_errors(value: Any, schema: dict[str, Any], path: str) -> list[E.FieldError]:
    errs: list[E.FieldError] = []
    shown = path or "<nil>"
    if "allOf" in schema:
        for sub in schema["allOf"]:
            errs.extend(validate(value, sub, path))
    if "anyOf" in schema and not any(_matches(value, s) for s in schema["anyOf"]):
        errs.append(E.invalid(path, value, f"{shown} in body must validate at least one schema (anyOf)"))
    if "oneOf" in schema:
        n = sum(1 for s in schema["oneOf"] if _matches(value, s))
        if n != 1:
            detail = f"{shown} in body must validate one and only one schema (oneOf)"
            if n > 1:
                detail += f". Found {n} valid alternatives"
            errs.append(E.invalid(path, value, detail))
    if "not" in schema and _matches(value, schema["not"]):
        errs.append(E.invalid(path, value, f"{shown} in body should not validate the schema (not)"))
    return errs


# --------------------------------------------------------------------------- CEL (known rules only)

_GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def parse_go_duration(text: str) -> float:
    """Go ``time.ParseDuration``: returns nanoseconds, raises ValueError."""
    if not isinstance(text, str) or not _GO_DURATION.match(text):
        raise ValueError(f'time: invalid duration "{text}"')
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", body):
        total += float(num) * _UNIT_NS[unit]
    return sign * total


class CelEvalError(Exception):
    pass


def _rule_duration_ge_1ms(value: Any, old: Any) -> bool:
    try:
        return parse_go_duration(value) >= 1e6
    except ValueError as exc:
        raise CelEvalError("type conversion error from 'string' to 'google.protobuf.Duration'") from exc


def _rule_immutable(value: Any, old: Any) -> bool:
    return json_equal(value, old)


# rule text -> (function(self, oldSelf) -> bool, is transition rule)
CEL_RULES: dict[str, tuple[Callable[[Any, Any], bool], bool]] = {
    "duration(self) >= duration('1ms')": (_rule_duration_ge_1ms, False),
    "self == oldSelf": (_rule_immutable, True),
    '!self.contains("*")': (lambda v, o: "*" not in v, False),
    'self.all(key, !key.contains("*"))': (lambda v, o: all("*" not in k for k in v), False),
    "self.all(key, key.size() != 0)": (lambda v, o: all(len(k) for k in v), False),
}
UNKNOWN_RULES: set[str] = set()  # rules seen but not evaluated (documented limitation)


def cel_validate(value: Any, schema: dict[str, Any], path: str, old: Any = _MISSING) -> list[E.FieldError]:
    errs: list[E.FieldError] = []
    if value is None:
        return errs
    for rule in schema.get("x-kubernetes-validations") or []:
        known = CEL_RULES.get(rule.get("rule", ""))
        if known is None:
            UNKNOWN_RULES.add(rule.get("rule", ""))
            continue
        fn, transition = known
        if transition and old is _MISSING:
            continue
        message = rule.get("message") or f"failed rule: {rule.get('rule')}"
        fpath = path + rule.get("fieldPath", "") if rule.get("fieldPath") else path
        try:
            ok = fn(value, None if old is _MISSING else old)
        except CelEvalError as exc:
            errs.append(E.invalid(fpath, json_type(value), f"{exc} evaluating rule: {message}"))
            continue
        if not ok:
            reason = rule.get("reason") or "FieldValueInvalid"
            err = E.invalid(fpath, value, message)
            err.reason = reason
            errs.append(err)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else None
        for key, v in value.items():
            if path == "" and key in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(key, addl)
            if sub is None:
                continue
            sub_path = child(path, key) if key in props else f"{path}[{key}]"
            o = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            errs.extend(cel_validate(v, sub, sub_path, o))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        olds = _correlate_list(value, old if old is not _MISSING else None, schema)
        for i, v in enumerate(value):
            errs.extend(cel_validate(v, schema["items"], f"{path}[{i}]", olds.get(i, _MISSING)))
    return errs


def validate_object(obj: dict[str, Any], schema: dict[str, Any], old: dict[str, Any] | None = None,
                    only: str | None = None) -> list[E.FieldError]:
    """Full CR validation: OpenAPI, then CEL unless blocking errors were found.  ``only`` limits
    both to one top-level field (``status`` for /status writes)."""
    value, sch, path = obj, schema, ""
    old_value: Any = old
    if only is not None:
        value = obj.get(only)
        sch = (schema.get("properties") or {}).get(only)
        if sch is None or value is None:
            return []
        path = only
        old_value = old.get(only) if old else None
    has_old = old_value is not None
    errs = validate(value, sch, path, old_value, has_old)
    if any(e.reason in BLOCKING for e in errs):
        if _has_rules(sch):
            errs.append(E.invalid("<nil>", None, "some validation rules were not checked because the object was invalid; "
                                  "correct the existing errors to complete validation"))
        return errs
    errs.extend(cel_validate(value, sch, path, old_value if has_old else _MISSING))
    return errs


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("x-kubernetes-validations"):
            return True
        return any(_has_rules(v) for k, v in schema.items() if k in ("properties", "items", "additionalProperties")
                   or isinstance(v, dict) and k not in ("default", "example"))
    return False
