"""Go-flavoured values: static natures (expr's checker types), equality, %v formatting.

A :class:`Nature` is what expr-lang's checker knows about an expression: a Go kind plus the
type name used in messages, and for arrays/maps the element nature. ``UNKNOWN`` is an
``interface {}`` (checked at run time only); ``NIL`` is the nature of a nil *value* (the
literal ``nil``, or ``result`` when Argo passes nil) which, unlike unknown, fails most
compile-time checks (``result < 5`` on a nil result is a compile error in expr).

Run-time values are plain Python objects: int (Go int, 64-bit), float (float64), bool, str,
None (nil), list ([]interface {} / []float64), dict (map[string]interface {}), datetime
(time.Time), timedelta (time.Duration), bytes ([]byte).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Nature:
    kind: str  # unknown nil bool int float string time duration array map func location
    name: str  # Go type name, for messages
    elem: Nature | None = None  # arrays: element nature; maps: value nature

    def __str__(self) -> str:
        return self.name


UNKNOWN = Nature("unknown", "interface {}")
NIL = Nature("nil", "unknown")
BOOL = Nature("bool", "bool")
INT = Nature("int", "int")
INT64 = Nature("int", "int64")  # asInt(), Unix(): integer, but not Go's int (no OpEqualInt)
FLOAT = Nature("float", "float64")
STRING = Nature("string", "string")
TIME = Nature("time", "time.Time")
DURATION = Nature("duration", "time.Duration")
LOCATION = Nature("location", "*time.Location")
FUNC = Nature("func", "func")
ANY_ARRAY = Nature("array", "[]interface {}", UNKNOWN)
FLOAT_ARRAY = Nature("array", "[]float64", FLOAT)
STRING_ARRAY = Nature("array", "[]string", STRING)
INT_RANGE = Nature("array", "[]interface {}", INT)  # what `..` produces (elements known to be int)
BYTES = Nature("array", "[]uint8", INT)
MAP = Nature("map", "map[string]interface {}", UNKNOWN)
ANY_MAP = Nature("map", "map[interface {}]interface {}", UNKNOWN)
GROUP_MAP = Nature("map", "map[interface {}][]interface {}", ANY_ARRAY)

# Result types for Argo's environment (expressions.evaluate_condition picks one per call).
STATIC_BY_NAME = {n.name: n for n in (BOOL, FLOAT, STRING, ANY_ARRAY, FLOAT_ARRAY, MAP)}


def array_of(elem: Nature) -> Nature:
    """expr's MakeArrayOf: a []interface {} whose elements the checker knows."""
    if elem == UNKNOWN:
        return ANY_ARRAY
    return Nature("array", "[]interface {}", elem)


def reflect_type(n: Nature) -> Nature:
    """The nature as a bare reflect.Type sees it (element knowledge of []interface {} is lost)."""
    if n.kind == "array" and n.name == "[]interface {}":
        return ANY_ARRAY
    return n


def elem_of(n: Nature) -> Nature:
    if n.kind in ("array", "map") and n.elem is not None:
        return n.elem
    return UNKNOWN


def is_unknown(n: Nature) -> bool:
    return n.kind == "unknown"


def is_number(n: Nature) -> bool:
    return n.kind == "int" or n.kind == "float"


def assignable(a: Nature, b: Nature) -> bool:
    """reflect's AssignableTo as expr's Nature.AssignableTo uses it."""
    if a.kind == "nil":
        return b.kind in ("unknown", "map", "array", "func", "location")
    if a.kind == "unknown":
        return b.kind == "unknown"
    if b.kind == "unknown":
        return True
    return a.name == b.name and a.kind == b.kind


def comparable(a: Nature, b: Nature) -> bool:
    """Nature.ComparableTo: may ``a == b`` compile?"""
    ka, kb = a.kind, b.kind
    return (ka == "unknown" or kb == "unknown" or ka == "nil" or kb == "nil"
            or (is_number(a) and is_number(b))
            or (ka == kb and ka in ("duration", "time", "array"))
            or assignable(a, b))


def maybe(a: Nature, b: Nature, *kinds: str) -> bool:
    """Nature.MaybeCompatible: one side unknown and the other of one of ``kinds`` (or both unknown)."""
    ua, ub = a.kind == "unknown", b.kind == "unknown"
    return (ua and ub) or (ua and b.kind in kinds) or (ub and a.kind in kinds)


NUMBER_KINDS = ("int", "float")


# ---------------------------------------------------------------------------------------------
# run-time helpers


def go_type(value: Any) -> str:
    """The Go type name (%T) of a run-time value."""
    t = type(value)
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is float:
        return "float64"
    if t is str:
        return "string"
    if value is None:
        return "<nil>"
    if t is list:
        return "[]float64" if value and all(type(x) is float for x in value) else "[]interface {}"
    if t is dict:
        return "map[string]interface {}"
    if t is bytes:
        return "[]uint8"
    if isinstance(value, datetime):
        return "time.Time"
    if isinstance(value, timedelta):
        return "time.Duration"
    if callable(value):
        return "func"
    return t.__name__


def type_name(value: Any) -> str:
    """Like :func:`go_type` but nil reads as expr's checker would print it."""
    return "unknown" if value is None else go_type(value)


def is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def equal(a: Any, b: Any) -> bool:
    """expr's runtime.Equal: numbers by value across int/float, arrays element-wise,
    strings/bools/times/durations by value, nil == nil, anything else reflect.DeepEqual."""
    ta = type(a)
    if ta is float or ta is int:
        tb = type(b)
        return (tb is float or tb is int) and a == b
    if ta is str:
        return type(b) is str and a == b
    if ta is bool:
        return type(b) is bool and a == b
    if a is None:
        return b is None
    if ta is list:
        if type(b) is not list or len(a) != len(b):
            return False
        return all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return isinstance(b, datetime) and a == b
    if isinstance(a, timedelta):
        return isinstance(b, timedelta) and a == b
    return deep_equal(a, b)


def deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual on interface values: identical dynamic types, element-wise."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        if a is b:
            return True
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# ---------------------------------------------------------------------------------------------
# formatting (fmt's %v)


def _digits(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |x| > 0 and the decimal point position
    (x = 0.DIGITS * 10**dp), like strconv's shortest mode."""
    text = repr(abs(x))
    exp = 0
    if "e" in text:
        text, e = text.split("e")
        exp = int(e)
    if "." in text:
        whole, frac = text.split(".")
    else:
        whole, frac = text, ""
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    dp = len(whole) + exp
    if whole.strip("0") == "":
        # 0.000ddd
        stripped = frac.lstrip("0")
        dp = exp - (len(frac) - len(stripped))
        digits = stripped
    digits = digits.rstrip("0") or "0"
    return digits, dp


def format_float(x: float, fmt: str = "v") -> str:
    """Go's %v for float64 (strconv 'g' shortest: exponent form when exp < -4 or exp >= 6),
    or with ``fmt="json"`` encoding/json's rule (exponent form when exp < -6 or exp >= 21)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    digits, dp = _digits(x)
    sign = "-" if x < 0 else ""
    exp = dp - 1
    limit = 21 if fmt == "json" else 6
    low = -7 if fmt == "json" else -5
    if exp < low + 1 or exp >= limit:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        if fmt == "json":
            return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp)}"
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def format_duration(d: timedelta) -> str:
    """time.Duration.String()."""
    ns = (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns
    if u < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                text = _frac(u, size) + unit
                break
    else:
        secs, rem = divmod(u, 1_000_000_000)
        h, secs = divmod(secs, 3600)
        m, s = divmod(secs, 60)
        stext = str(s) + (("." + f"{rem:09d}".rstrip("0")) if rem else "") + "s"
        text = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + stext
    return ("-" if neg else "") + text


def _frac(value: int, size: int) -> str:
    whole, rem = divmod(value, size)
    if not rem:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + f"{rem:0{width}d}".rstrip("0")


def format_time(t: datetime) -> str:
    """time.Time.String(): ``2006-01-02 15:04:05.999999999 -0700 MST``."""
    frac = f".{t.microsecond:06d}".rstrip("0").rstrip(".") if t.microsecond else ""
    off = t.utcoffset()
    if off is None:
        return t.strftime("%Y-%m-%d %H:%M:%S") + frac + " +0000 UTC"
    total = int(off.total_seconds())
    sign = "-" if total < 0 else "+"
    hh, mm = divmod(abs(total) // 60, 60)
    name = t.tzname() or ""
    if name in ("UTC", "UTC+00:00") or (total == 0 and not name.startswith("UTC")):
        name = "UTC"
    elif name.startswith("UTC"):
        name = f"{sign}{hh:02d}{mm:02d}" if mm else f"{sign}{hh:02d}"
    return t.strftime("%Y-%m-%d %H:%M:%S") + frac + f" {sign}{hh:02d}{mm:02d} {name}"


def format_value(value: Any) -> str:
    """fmt.Sprintf("%v", value)."""
    if value is None:
        return "<nil>"
    t = type(value)
    if t is bool:
        return "true" if value else "false"
    if t is str or t is int:
        return str(value)
    if t is float:
        return format_float(value)
    if t is list:
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if t is bytes:
        return "[" + " ".join(str(b) for b in value) + "]"
    if t is dict:
        return "map[" + " ".join(f"{format_value(k)}:{format_value(v)}" for k, v in _sorted_items(value)) + "]"
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value)


def _sorted_items(d: dict[Any, Any]) -> list[tuple[Any, Any]]:
    try:
        return sorted(d.items())
    except TypeError:
        return sorted(d.items(), key=lambda kv: (go_type(kv[0]), format_value(kv[0])))
