"""Go-flavoured value helpers: type names for messages, equality, static type descriptors.

Static types are Go type names (``float64``, ``[]float64``, ``map[string]interface {}``...);
``None`` stands for "unknown" (an ``interface{}`` whose check is deferred to run time), which
is what expr's checker does when ``result`` is nil or comes out of a JSON map.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

StaticType = str | None

INT = "int"
FLOAT = "float64"
BOOL = "bool"
STRING = "string"
NIL = "<nil>"
TIME = "time.Time"
DURATION = "time.Duration"
ANY_ARRAY = "[]interface {}"
FLOAT_ARRAY = "[]float64"
MAP = "map[string]interface {}"
NUMERIC = (INT, FLOAT)


def go_type(value: Any) -> str:
    """The Go type name a value would have in Argo's environment."""
    t = type(value)
    if t is bool:
        return BOOL
    if t is int:
        return INT
    if t is float:
        return FLOAT
    if t is str:
        return STRING
    if value is None:
        return NIL
    if t is list or t is tuple:
        return FLOAT_ARRAY if value and all(type(v) is float for v in value) else ANY_ARRAY
    if t is dict:
        return MAP
    if isinstance(value, datetime):
        return TIME
    if isinstance(value, timedelta):
        return DURATION
    return t.__name__


def static_type_of_result(value: Any) -> StaticType:
    """What expr's checker knows about ``result`` (nil is unknown: checks wait for run time)."""
    if value is None:
        return None
    return go_type(value)


def elem_type(t: StaticType) -> StaticType:
    if t == FLOAT_ARRAY:
        return FLOAT
    return None


def is_array(t: StaticType) -> bool:
    return t is not None and t.startswith("[]")


def is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def equal(a: Any, b: Any) -> bool:
    """expr's runtime.Equal: numbers compare by value across int/float, others deeply."""
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if a is None or b is None:
        return a is None and b is None
    if ta is list and tb is list:
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict and tb is dict:
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if ta is not tb:
        return False
    return bool(a == b)


def format_value(value: Any) -> str:
    """Go's %v rendering, for string() and messages."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is float:
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value) if not value.is_integer() or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, list):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{format_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)
