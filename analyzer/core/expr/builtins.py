"""Built-in functions of expr-lang v1.17 (builtin/builtin.go, builtin/lib.go) and the functions
Argo adds to the environment (utils/evaluate/evaluate.go): asInt, asFloat, isNaN, isInf, isNil,
default. ``isNil`` and ``default`` look at the whole ``result``, not at their argument, exactly
as Argo defines them (argo-semantics.md §4.1).

Each builtin has a compile-time signature (``TYPES`` overloads, or a ``VALIDATE`` function over
argument natures, as expr does) and a run-time implementation over evaluated arguments.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from analyzer.core.durations import parse_go_duration_seconds
from analyzer.core.expr import values as v
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.ops import (
    MIN_INT,
    fetch,
    float_to_int,
    interface_conversion,
    less,
    map_lookup,
    to_int,
)
from analyzer.core.expr.values import Nature


class Context:
    """The evaluation state: Argo's ``result``, the clock for ``now()``, the innermost
    predicate scope and ``let`` variables."""

    __slots__ = ("result", "now", "scope", "vars")

    def __init__(self, result: Any, now: datetime | None = None) -> None:
        self.result = result
        self.now = now
        self.scope: Scope | None = None
        self.vars: dict[int, Any] | None = None


class Scope:
    """The element a predicate is looking at (``#``), its ``#index`` and reduce's ``#acc``."""

    __slots__ = ("item", "index", "acc")

    def __init__(self) -> None:
        self.item: Any = None
        self.index = 0
        self.acc: Any = None


Impl = Callable[[Context, list[Any]], Any]
Validate = Callable[[list[Nature]], Nature]


class SignatureError(Exception):
    pass


def _t(x: Any) -> str:
    return v.go_type(x)


def _str(x: Any) -> str:
    if type(x) is not str:
        raise interface_conversion(x, "string")
    return x


def _int_arg(x: Any) -> int:
    if type(x) is not int:
        raise interface_conversion(x, "int")
    return x


# ---------------------------------------------------------------------------------------------
# compile-time signatures

S_, I_, B_, U_ = v.STRING, v.INT, v.BOOL, v.UNKNOWN
INT_ARRAY = Nature("array", "[]int", v.INT)

TYPES: dict[str, list[tuple[tuple[Nature, ...], Nature]]] = {
    "type": [((U_,), S_)],
    "string": [((U_,), S_)],
    "trim": [((S_,), S_), ((S_, S_), S_)],
    "trimPrefix": [((S_, S_), S_), ((S_,), S_)],
    "trimSuffix": [((S_, S_), S_), ((S_,), S_)],
    "upper": [((S_,), S_)],
    "lower": [((S_,), S_)],
    "split": [((S_, S_), v.STRING_ARRAY), ((S_, S_, I_), v.STRING_ARRAY)],
    "splitAfter": [((S_, S_), v.STRING_ARRAY), ((S_, S_, I_), v.STRING_ARRAY)],
    "replace": [((S_, S_, S_, I_), S_), ((S_, S_, S_), S_)],
    "repeat": [((S_, I_), S_)],
    "join": [((v.STRING_ARRAY, S_), S_), ((v.ANY_ARRAY, S_), S_), ((v.ANY_ARRAY,), S_),
             ((v.STRING_ARRAY, S_), S_), ((v.STRING_ARRAY,), S_)],
    "indexOf": [((S_, S_), I_)],
    "lastIndexOf": [((S_, S_), I_)],
    "hasPrefix": [((S_, S_), B_)],
    "hasSuffix": [((S_, S_), B_)],
    "toJSON": [((U_,), S_)],
    "fromJSON": [((S_,), U_)],
    "toBase64": [((S_,), S_)],
    "fromBase64": [((S_,), S_)],
    "duration": [((S_,), v.DURATION)],
    "timezone": [((S_,), v.LOCATION)],
    "sort": [((v.ANY_ARRAY, S_), v.ANY_ARRAY), ((INT_ARRAY, S_), v.ANY_ARRAY), ((v.FLOAT_ARRAY, S_), v.ANY_ARRAY),
             ((v.STRING_ARRAY, S_), v.ANY_ARRAY), ((v.ANY_ARRAY,), v.ANY_ARRAY), ((v.FLOAT_ARRAY,), v.ANY_ARRAY),
             ((v.STRING_ARRAY,), v.ANY_ARRAY), ((INT_ARRAY,), v.ANY_ARRAY)],
    "bitand": [((I_, I_), I_)], "bitor": [((I_, I_), I_)], "bitxor": [((I_, I_), I_)], "bitnand": [((I_, I_), I_)],
    "bitshl": [((I_, I_), I_)], "bitshr": [((I_, I_), I_)], "bitushr": [((I_, I_), I_)], "bitnot": [((I_,), I_)],
}


def _kind(n: Nature | None) -> str:
    return "invalid" if n is None or n.kind == "nil" else n.kind


def _show(n: Nature | None) -> str:
    return "%!s(<nil>)" if n is None or n.kind == "nil" else n.name


def _one(name: str, args: list[Nature]) -> Nature:
    if len(args) != 1:
        raise SignatureError(f"invalid number of arguments (expected 1, got {len(args)})")
    return args[0]


def _v_len(args: list[Nature]) -> Nature:
    a = _one("len", args)
    if _kind(a) in ("array", "map", "string", "unknown"):
        return v.INT
    raise SignatureError(f"invalid argument for len (type {_show(a)})")


def _v_abs(args: list[Nature]) -> Nature:
    a = _one("abs", args)
    if _kind(a) in ("int", "float", "duration", "unknown"):
        return v.reflect_type(a)
    raise SignatureError(f"invalid argument for abs (type {_show(a)})")


def _v_round(name: str) -> Validate:
    def check(args: list[Nature]) -> Nature:
        a = _one(name, args)
        if _kind(a) in ("int", "float", "duration", "unknown"):
            return v.FLOAT
        raise SignatureError(f"invalid argument for {name} (type {_show(a)})")
    return check


def _v_convert(name: str, out: Nature) -> Validate:
    def check(args: list[Nature]) -> Nature:
        a = _one(name, args)
        if _kind(a) in ("int", "float", "string", "duration", "unknown"):
            return out
        raise SignatureError(f"invalid argument for {name} (type {_show(a)})")
    return check


def _v_aggregate(name: str) -> Validate:
    def check(args: list[Nature]) -> Nature:
        if not args:
            raise SignatureError(f"not enough arguments to call {name}")
        for a in args:
            k = _kind(a)
            if k in ("unknown", "array"):
                return v.UNKNOWN
            if k not in ("int", "float", "duration"):
                raise SignatureError(f"invalid argument for {name} (type {_show(a)})")
        return v.reflect_type(args[0])
    return check


def _v_now(args: list[Nature]) -> Nature:
    if not args or (len(args) == 1 and _kind(args[0]) == "location"):
        return v.TIME
    raise SignatureError(f"invalid number of arguments (expected 0, got {len(args)})")


def _v_date(args: list[Nature]) -> Nature:
    if not args:
        raise SignatureError("invalid number of arguments (expected at least 1, got 0)")
    rest = args[1:] if _kind(args[0]) == "location" else args
    if len(rest) > 3:
        raise SignatureError(f"invalid number of arguments (expected at most 3, got {len(rest)})")
    return v.TIME


def _v_first(what: str) -> Validate:
    def check(args: list[Nature]) -> Nature:
        a = _one(what, args)
        k = _kind(a)
        if k == "unknown":
            return v.UNKNOWN
        if k == "array":
            return v.elem_of(v.reflect_type(a))
        raise SignatureError(f"cannot get {what} element from {_show(a)}")
    return check


def _v_take(args: list[Nature]) -> Nature:
    if len(args) != 2:
        raise SignatureError(f"invalid number of arguments (expected 2, got {len(args)})")
    if _kind(args[0]) not in ("unknown", "array"):
        raise SignatureError(f"cannot take from {_show(args[0])}")
    if _kind(args[1]) not in ("unknown", "int"):
        raise SignatureError(f"cannot take {_show(args[1])} elements")
    return v.reflect_type(args[0])


def _v_unary(kinds: tuple[str, ...], out: Nature, message: str) -> Validate:
    def check(args: list[Nature]) -> Nature:
        a = _one("", args)
        if _kind(a) in kinds:
            return out
        raise SignatureError(f"{message} {_show(a)}")
    return check


def _v_concat(args: list[Nature]) -> Nature:
    if not args:
        raise SignatureError("invalid number of arguments (expected at least 1, got 0)")
    for a in args:
        if _kind(a) not in ("unknown", "array"):
            raise SignatureError(f"cannot concat {_show(a)}")
    return v.ANY_ARRAY


VALIDATE: dict[str, Validate] = {
    "len": _v_len,
    "abs": _v_abs,
    "ceil": _v_round("ceil"), "floor": _v_round("floor"), "round": _v_round("round"),
    "int": _v_convert("int", v.INT), "float": _v_convert("float", v.FLOAT),
    "max": _v_aggregate("max"), "min": _v_aggregate("min"),
    "mean": _v_aggregate("mean"), "median": _v_aggregate("median"),
    "now": _v_now, "date": _v_date,
    "first": _v_first("first"), "last": _v_first("last"),
    "take": _v_take,
    "keys": _v_unary(("unknown", "map"), v.ANY_ARRAY, "cannot get keys from"),
    "values": _v_unary(("unknown", "map"), v.ANY_ARRAY, "cannot get values from"),
    "toPairs": _v_unary(("unknown", "map"), v.ANY_ARRAY, "cannot transform"),
    "fromPairs": _v_unary(("unknown", "array"), v.ANY_MAP, "cannot transform from pairs"),
    "reverse": _v_unary(("unknown", "array"), v.ANY_ARRAY, "cannot reverse"),
    "uniq": _v_unary(("unknown", "array"), v.ANY_ARRAY, "cannot uniq"),
    "flatten": _v_unary(("unknown", "array"), v.ANY_ARRAY, "cannot flatten"),
    "concat": _v_concat,
}


# ---------------------------------------------------------------------------------------------
# run-time implementations


def _len(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    t = type(x)
    if t is list or t is dict or t is str or t is bytes:
        return len(x)
    raise ExpressionError(f"invalid argument for len (type {_t(x)})")


def _type(ctx: Context, a: list[Any]) -> str:
    x = a[0]
    if x is None:
        return "nil"
    t = type(x)
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is float:
        return "float"
    if t is str:
        return "string"
    if t is list or t is bytes:
        return "array"
    if t is dict:
        return "map"
    if isinstance(x, datetime):
        return "time.Time"
    if isinstance(x, timedelta):
        return "time.Duration"
    if callable(x):
        return "func"
    return "unknown"


def _abs(ctx: Context, a: list[Any]) -> Any:
    x = a[0]
    if type(x) is int:
        return -x if x < 0 and x != MIN_INT else x
    if type(x) is float:
        return -x if x < 0 else x
    raise ExpressionError(f"invalid argument for abs (type {_t(x)})")


def _go_round(x: float) -> float:
    if x != x or x in (math.inf, -math.inf):
        return x
    t = float(math.trunc(x))
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return math.copysign(float(t), x) if t == 0 else float(t)


def _math(name: str, fn: Callable[[float], float]) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> Any:
        x = a[0]
        if type(x) is int:
            return float(x)
        if type(x) is float:
            if x != x or x in (math.inf, -math.inf):
                return x
            return fn(x)
        raise ExpressionError(f"invalid argument for {name} (type {_t(x)})")
    return impl


def _ceil(x: float) -> float:
    r = float(math.ceil(x))
    return math.copysign(r, x) if r == 0 else r


def _floor(x: float) -> float:
    r = float(math.floor(x))
    return math.copysign(r, x) if r == 0 else r


_ATOI = re.compile(r"[+-]?[0-9]+")


def go_atoi(s: str, fn: str = "strconv.Atoi") -> int | None:
    if not _ATOI.fullmatch(s):
        return None
    n = int(s)
    if n < MIN_INT or n > 2**63 - 1:
        return None
    return n


def _int(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    t = type(x)
    if t is int:
        return x  # type: ignore[no-any-return]
    if t is float:
        return float_to_int(x)
    if t is str:
        n = go_atoi(x)
        if n is None:
            raise ExpressionError(f"invalid operation: int({x})")
        return n
    if isinstance(x, timedelta):
        return (x.days * 86400 + x.seconds) * 1_000_000_000 + x.microseconds * 1000
    raise ExpressionError(f"invalid operation: int({_t(x)})")


def _float(ctx: Context, a: list[Any]) -> float:
    x = a[0]
    t = type(x)
    if t is int or t is float:
        return float(x)
    if t is str:
        f = go_parse_float(x)
        if f is None:
            raise ExpressionError(f"invalid operation: float({x})")
        return f
    raise ExpressionError(f"invalid operation: float({_t(x)})")


_DEC_FLOAT = re.compile(r"[+-]?([0-9_]+\.?[0-9_]*|\.[0-9_]+)([eE][+-]?[0-9_]+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX]([0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")


def _underscores_ok(s: str) -> bool:
    """strconv's underscoreOK: '_' only between digits (or after a base prefix)."""
    if s and s[0] in "+-":
        s = s[1:]
    saw = "^"
    i = 0
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    for c in s[i:]:
        if c.isdigit() or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def go_parse_float(s: str) -> float | None:
    """strconv.ParseFloat(s, 64); None on a syntax or range error."""
    if not s.isascii():
        return None
    low = s.lower()
    body = low[1:] if low[:1] in "+-" else low
    if body in ("inf", "infinity"):
        return -math.inf if low.startswith("-") else math.inf
    if low == "nan":
        return math.nan
    if _HEX_FLOAT.fullmatch(s):
        if "_" in s and not _underscores_ok(s):
            return None
        try:
            value = float.fromhex(s.replace("_", ""))
        except (ValueError, OverflowError):
            return None
    elif _DEC_FLOAT.fullmatch(s):
        if "_" in s and not _underscores_ok(s):
            return None
        digits = s.replace("_", "")
        if not any(c.isdigit() for c in digits.split("e")[0].split("E")[0]):
            return None
        value = float(digits)
    else:
        return None
    if math.isinf(value):
        return None
    return value


def _string(ctx: Context, a: list[Any]) -> str:
    return v.format_value(a[0])


def _trim(ctx: Context, a: list[Any]) -> str:
    s = _str(a[0])
    if len(a) == 1:
        return s.strip(" \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                       "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
    return s.strip(_str(a[1]))


def _trim_prefix(ctx: Context, a: list[Any]) -> str:
    return _str(a[0]).removeprefix(_str(a[1]) if len(a) > 1 else " ")


def _trim_suffix(ctx: Context, a: list[Any]) -> str:
    return _str(a[0]).removesuffix(_str(a[1]) if len(a) > 1 else " ")


def go_split(s: str, sep: str, n: int = -1, after: bool = False) -> list[str]:
    """strings.SplitN / SplitAfterN."""
    if n == 0:
        return []
    if sep == "":
        chars = list(s)
        if n > 0 and len(chars) > n:
            chars = chars[:n - 1] + ["".join(chars[n - 1:])]
        return chars
    parts = s.split(sep, n - 1) if n > 0 else s.split(sep)
    if after:
        parts = [p + sep for p in parts[:-1]] + parts[-1:]
    return parts


def _split(after: bool) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> list[Any]:
        n = to_int(a[2]) if len(a) > 2 else -1
        return list(go_split(_str(a[0]), _str(a[1]), n, after))
    return impl


def _replace(ctx: Context, a: list[Any]) -> str:
    s, old, new = _str(a[0]), _str(a[1]), _str(a[2])
    n = to_int(a[3]) if len(a) > 3 else -1
    return s.replace(old, new, n if n >= 0 else -1)


def _repeat(ctx: Context, a: list[Any]) -> str:
    s, n = _str(a[0]), to_int(a[1])
    if n < 0:
        raise ExpressionError(f"invalid argument for repeat (expected positive integer, got {n})")
    if n > 1_000_000:
        raise ExpressionError("memory budget exceeded")
    return s * n


def _join(ctx: Context, a: list[Any]) -> str:
    glue = _str(a[1]) if len(a) > 1 else ""
    items = a[0]
    if type(items) is not list:
        raise ExpressionError(f"invalid argument for join (type {_t(items)})")
    return glue.join(_str(x) for x in items)


def _byte_index(s: str, sub: str, last: bool) -> int:
    bs, bsub = s.encode(), sub.encode()
    return bs.rfind(bsub) if last else bs.find(bsub)


def _minmax(name: str, pick_more: bool) -> Impl:
    def better(cur: Any, x: Any) -> bool:
        # expr: max replaces when Less(val, x); min when More(val, x)
        return less(cur, x) if pick_more else less(x, cur)

    def walk(args: list[Any], depth: int) -> Any:
        val: Any = None
        for arg in args:
            if type(arg) is list:
                for e in arg:
                    if type(e) is list:
                        nested = walk([e], depth + 1)
                        if nested is not None and (val is None or better(val, nested)):
                            val = nested
                    elif v.is_num(e):
                        if val is None or better(val, e):
                            val = e
                    else:
                        raise ExpressionError(f"invalid argument for {name} (type {_t(e)})")
            elif v.is_num(arg):
                if val is None or better(val, arg):
                    val = arg
            else:
                if len(args) == 1:
                    return arg
                raise ExpressionError(f"invalid argument for {name} (type {_t(arg)})")
        return val

    def impl(ctx: Context, a: list[Any]) -> Any:
        return walk(a, 0)
    return impl


def _flat_numbers(name: str, args: list[Any]) -> list[float]:
    out: list[float] = []
    for arg in args:
        if type(arg) is list:
            out.extend(_flat_numbers(name, arg))
        elif v.is_num(arg):
            out.append(float(arg))
        else:
            raise ExpressionError(f"invalid argument for {name} (type {_t(arg)})")
    return out


def _mean(ctx: Context, a: list[Any]) -> float:
    nums = _flat_numbers("mean", a)
    if not nums:
        return 0.0
    total = 0.0
    for x in nums:
        total += x
    return total / len(nums)


def _median(ctx: Context, a: list[Any]) -> float:
    nums = sorted(_flat_numbers("median", a), key=_float_sort_key)
    n = len(nums)
    if n == 0:
        return 0.0
    if n % 2 == 1:
        return nums[n // 2]
    return (nums[n // 2 - 1] + nums[n // 2]) / 2


def _float_sort_key(x: float) -> tuple[int, float]:
    # sort.Float64s puts NaN first
    return (0, 0.0) if x != x else (1, x)


def to_json(x: Any, indent: int = 0) -> str:
    """json.MarshalIndent(x, "", "  ") with Go's number formatting and HTML escaping."""
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if x is None:
        return "null"
    if x is True:
        return "true"
    if x is False:
        return "false"
    t = type(x)
    if t is int:
        return str(x)
    if t is float:
        if x != x or x in (math.inf, -math.inf):
            raise ExpressionError(f"json: unsupported value: {v.format_float(x)}")
        return v.format_float(x, "json")
    if t is str:
        return _json_string(x)
    if t is list:
        if not x:
            return "[]"
        return "[\n" + ",\n".join(inner + to_json(e, indent + 1) for e in x) + "\n" + pad + "]"
    if t is bytes:
        return _json_string(base64.b64encode(x).decode())
    if t is dict:
        if not x:
            return "{}"
        keys = sorted(x, key=lambda k: k if type(k) is str else v.format_value(k))
        return "{\n" + ",\n".join(f"{inner}{_json_string(k if type(k) is str else v.format_value(k))}: "
                                  f"{to_json(x[k], indent + 1)}" for k in keys) + "\n" + pad + "}"
    if isinstance(x, datetime):
        return _json_string(x.isoformat().replace("+00:00", "Z"))
    if isinstance(x, timedelta):
        return str((x.days * 86400 + x.seconds) * 1_000_000_000 + x.microseconds * 1000)
    raise ExpressionError(f"json: unsupported type: {_t(x)}")


def _json_string(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _from_json(ctx: Context, a: list[Any]) -> Any:
    text = _str(a[0])

    def reject(c: str) -> Any:
        raise ValueError(c)

    try:
        return json.loads(text, parse_int=float, parse_constant=reject)
    except (ValueError, RecursionError) as exc:
        raise ExpressionError(f"invalid character in JSON input: {exc}") from None


def _to_base64(ctx: Context, a: list[Any]) -> str:
    return base64.b64encode(_str(a[0]).encode()).decode()


def _from_base64(ctx: Context, a: list[Any]) -> str:
    try:
        return base64.b64decode(_str(a[0]).encode(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as exc:
        raise ExpressionError(f"illegal base64 data: {exc}") from None


def _now(ctx: Context, a: list[Any]) -> datetime:
    if ctx.now is None:
        # The core reads no clock: callers pass the measurement time.
        raise ExpressionError("now() is not available: no evaluation time was given")
    now = ctx.now
    if a and isinstance(a[0], tzinfo):
        return now.astimezone(a[0])
    return now


def _duration(ctx: Context, a: list[Any]) -> timedelta:
    try:
        return timedelta(seconds=parse_go_duration_seconds(_str(a[0])))
    except ValueError as exc:
        raise ExpressionError(str(exc)) from None


def _timezone(ctx: Context, a: list[Any]) -> tzinfo:
    return load_location(_str(a[0]))


def load_location(name: str) -> tzinfo:
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return UTC
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:
        raise ExpressionError(f"unknown time zone {name}") from None


_DEFAULT_LAYOUTS = ("2006-01-02", "15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04:05Z07:00",
                    "02 Jan 06 15:04 MST", "Monday, 02-Jan-06 15:04:05 MST", "Mon, 02 Jan 2006 15:04:05 MST")


def _date(ctx: Context, a: list[Any]) -> datetime:
    loc: tzinfo | None = None
    if a and isinstance(a[0], tzinfo):
        loc, a = a[0], a[1:]
    text = _str(a[0])
    if len(a) == 2:
        return go_time_parse(_str(a[1]), text, loc)
    if len(a) == 3:
        return go_time_parse(_str(a[1]), text, load_location(_str(a[2])))
    for layout in _DEFAULT_LAYOUTS:
        try:
            return go_time_parse(layout, text, loc)
        except ExpressionError:
            continue
    raise ExpressionError(f"invalid date {text}")


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_LAYOUT_TOKENS = [
    ("January", r"(?P<month_name>" + "|".join(_MONTHS) + ")"),
    ("Monday", r"(?:" + "|".join(_DAYS) + ")"),
    ("2006", r"(?P<year>\d{4})"),
    ("Z07:00", r"(?P<tz>Z|[+-]\d\d:\d\d)"),
    ("Z0700", r"(?P<tz>Z|[+-]\d{4})"),
    ("Z07", r"(?P<tz>Z|[+-]\d\d)"),
    ("-07:00", r"(?P<tz>[+-]\d\d:\d\d)"),
    ("-0700", r"(?P<tz>[+-]\d{4})"),
    ("-07", r"(?P<tz>[+-]\d\d)"),
    ("Jan", r"(?P<month_abbr>" + "|".join(m[:3] for m in _MONTHS) + ")"),
    ("Mon", r"(?:" + "|".join(d[:3] for d in _DAYS) + ")"),
    ("MST", r"(?P<zone>[A-Z]{3,5}|[+-]\d+)"),
    ("002", r"(?P<yday>\d{3})"),
    ("_2", r"\s?(?P<day>\d{1,2})"),
    ("01", r"(?P<month>\d\d)"),
    ("02", r"(?P<day>\d\d)"),
    ("03", r"(?P<hour12>\d\d)"),
    ("04", r"(?P<minute>\d\d)"),
    ("05", r"(?P<second>\d\d)"),
    ("06", r"(?P<year2>\d\d)"),
    ("15", r"(?P<hour>\d\d?)"),
    ("PM", r"(?P<ampm>AM|PM)"),
    ("pm", r"(?P<ampm>am|pm)"),
    (".000000000", r"(?P<frac>\.\d{9})"), (".000000", r"(?P<frac>\.\d{6})"), (".000", r"(?P<frac>\.\d{3})"),
    (".999999999", r"(?P<frac>\.\d+)?"), (".999999", r"(?P<frac>\.\d+)?"), (".999", r"(?P<frac>\.\d+)?"),
    ("1", r"(?P<month>\d\d?)"),
    ("2", r"(?P<day>\d\d?)"),
    ("3", r"(?P<hour12>\d\d?)"),
    ("4", r"(?P<minute>\d\d?)"),
    ("5", r"(?P<second>\d\d?)"),
]


def _layout_regex(layout: str) -> re.Pattern[str]:
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(layout):
        for tok, rx in _LAYOUT_TOKENS:
            if layout.startswith(tok, i):
                names = re.findall(r"\?P<(\w+)>", rx)
                if any(n in seen for n in names):
                    rx = re.sub(r"\?P<\w+>", "?:", rx)
                seen.update(names)
                out.append(rx)
                if tok in ("05", "5") and not layout.startswith(".", i + len(tok)) and "frac" not in seen:
                    out.append(r"(?P<frac>\.\d+)?")  # Go accepts fractional seconds after seconds
                    seen.add("frac")
                i += len(tok)
                break
        else:
            out.append(re.escape(layout[i]))
            i += 1
    return re.compile("".join(out))


def go_time_parse(layout: str, text: str, loc: tzinfo | None) -> datetime:
    """time.Parse / time.ParseInLocation for the common layout elements."""
    m = _layout_regex(layout).fullmatch(text)
    if not m:
        raise ExpressionError(f'parsing time "{text}" as "{layout}": cannot parse')
    g = {k: x for k, x in m.groupdict().items() if x is not None}
    year = int(g["year"]) if "year" in g else (2000 + int(g["year2"]) if int(g.get("year2", "70")) < 69
                                                else 1900 + int(g["year2"])) if "year2" in g else 1
    if "month_name" in g:
        month = _MONTHS.index(g["month_name"]) + 1
    elif "month_abbr" in g:
        month = [m_[:3] for m_ in _MONTHS].index(g["month_abbr"]) + 1
    else:
        month = int(g.get("month", "1"))
    day = int(g.get("day", "1"))
    hour = int(g.get("hour", "0"))
    if "hour12" in g:
        hour = int(g["hour12"]) % 12 + (12 if g.get("ampm", "").lower() == "pm" else 0)
    minute, second = int(g.get("minute", "0")), int(g.get("second", "0"))
    micro = int((g.get("frac", ".0")[1:] + "000000")[:6])
    tz: tzinfo = loc or UTC
    if "tz" in g and g["tz"] != "Z":
        raw = g["tz"].replace(":", "")
        sign = -1 if raw[0] == "-" else 1
        hh = int(raw[1:3])
        mm = int(raw[3:5]) if len(raw) >= 5 else 0
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    elif "tz" in g:
        tz = UTC
    try:
        out = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        if "yday" in g:
            out = out.replace(month=1, day=1) + timedelta(days=int(g["yday"]) - 1)
        return out
    except ValueError:
        raise ExpressionError(f'parsing time "{text}": day out of range') from None


def _first(ctx: Context, a: list[Any]) -> Any:
    try:
        return fetch(a[0], 0)
    except ExpressionError:
        return None


def _last(ctx: Context, a: list[Any]) -> Any:
    try:
        return fetch(a[0], -1)
    except ExpressionError:
        return None


def get(obj: Any, key: Any) -> Any:
    """builtin get(): like member access but nil instead of an error for a missing element."""
    if obj is None:
        return None
    t = type(obj)
    if t is list or t is str or t is bytes:
        i = to_int(key)
        data = obj.encode() if t is str else obj
        if i < 0:
            i += len(data)
        return data[i] if 0 <= i < len(data) else None
    if t is dict:
        return map_lookup(obj, key)[1]
    return None


def _take(ctx: Context, a: list[Any]) -> Any:
    arr, n = a[0], a[1]
    if type(arr) is not list:
        raise ExpressionError(f"cannot take from {_kind_of(arr)}")
    if type(n) is not int:
        raise ExpressionError(f"cannot take {_kind_of(n)} elements")
    if n < 0:
        raise ExpressionError("reflect: slice index out of range")
    return arr[:n]


def _kind_of(x: Any) -> str:
    t = type(x)
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "slice", dict: "map"}.get(
        t, "invalid" if x is None else "struct")


def _keys(ctx: Context, a: list[Any]) -> list[Any]:
    if type(a[0]) is not dict:
        raise ExpressionError(f"cannot get keys from {_kind_of(a[0])}")
    return list(a[0].keys())


def _values(ctx: Context, a: list[Any]) -> list[Any]:
    if type(a[0]) is not dict:
        raise ExpressionError(f"cannot get values from {_kind_of(a[0])}")
    return list(a[0].values())


def _to_pairs(ctx: Context, a: list[Any]) -> list[Any]:
    if type(a[0]) is not dict:
        raise ExpressionError(f"cannot transform {_kind_of(a[0])} to pairs")
    return [[k, x] for k, x in a[0].items()]


def _from_pairs(ctx: Context, a: list[Any]) -> dict[Any, Any]:
    if type(a[0]) is not list:
        raise ExpressionError(f"cannot transform {v.format_value(a[0])} from pairs")
    out: dict[Any, Any] = {}
    for pair in a[0]:
        if type(pair) is not list:
            raise ExpressionError(f"invalid pair {v.format_value(pair)}")
        if len(pair) != 2:
            raise ExpressionError(f"invalid pair length {v.format_value(pair)}")
        if isinstance(pair[0], list | dict):
            raise ExpressionError(f"runtime error: hash of unhashable type {_t(pair[0])}")
        out[pair[0]] = pair[1]
    return out


def _array_arg(name: str, x: Any) -> list[Any]:
    if type(x) is list:
        return x
    if type(x) is bytes:
        return list(x)
    raise ExpressionError(f"cannot {name} {_kind_of(x)}")


def _reverse(ctx: Context, a: list[Any]) -> list[Any]:
    return list(reversed(_array_arg("reverse", a[0])))


def _uniq(ctx: Context, a: list[Any]) -> list[Any]:
    out: list[Any] = []
    for x in _array_arg("uniq", a[0]):
        if not any(v.equal(x, r) for r in out):
            out.append(x)
    return out


def _concat(ctx: Context, a: list[Any]) -> list[Any]:
    out: list[Any] = []
    for x in a:
        out.extend(_array_arg("concat", x))
    return out


def _flatten(ctx: Context, a: list[Any]) -> list[Any]:
    def flat(xs: list[Any]) -> list[Any]:
        out: list[Any] = []
        for x in xs:
            if type(x) is list:
                out.extend(flat(x))
            else:
                out.append(x)
        return out
    return flat(_array_arg("flatten", a[0]))


def sort_values(items: list[Any], keys: list[Any], desc: bool) -> list[Any]:
    import functools

    def cmp(i: int, j: int) -> int:
        a, b = keys[i], keys[j]
        if desc:
            a, b = b, a
        if less(a, b):
            return -1
        if less(b, a):
            return 1
        return 0

    order = sorted(range(len(items)), key=functools.cmp_to_key(cmp))
    return [items[i] for i in order]


def _order(x: Any, what: str = "sort") -> bool:
    if type(x) is not str:
        raise ExpressionError(f"{what} order argument must be a string (got {_t(x)})")
    if x == "asc":
        return False
    if x == "desc":
        return True
    raise ExpressionError(f"invalid order {x}, expected asc or desc")


def _sort(ctx: Context, a: list[Any]) -> list[Any]:
    items = list(a[0]) if type(a[0]) is list else []
    desc = _order(a[1]) if len(a) > 1 else False
    return sort_values(items, items, desc)


def _bit(name: str, fn: Callable[[int, int], int]) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> int:
        xs = []
        for x in a:
            if type(x) is not int:
                raise ExpressionError(f"cannot use {_t(x)} as argument (type int) to call {name}")
            xs.append(x)
        if name in ("bitshl", "bitshr", "bitushr") and xs[1] < 0:
            raise ExpressionError(f"invalid operation: negative shift count {xs[1]} (type int)")
        from analyzer.core.expr.ops import wrap

        return wrap(fn(xs[0], xs[1]))
    return impl


def _bitnot(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    if type(x) is not int:
        raise ExpressionError(f"cannot use {_t(x)} as argument (type int) to call bitnot")
    return ~x


def _str_fn(fn: Callable[..., Any]) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> Any:
        return fn(*[_str(x) for x in a])
    return impl


IMPL: dict[str, Impl] = {
    "len": _len,
    "type": _type,
    "abs": _abs,
    "ceil": _math("ceil", _ceil),
    "floor": _math("floor", _floor),
    "round": _math("round", _go_round),
    "int": _int,
    "float": _float,
    "string": _string,
    "trim": _trim,
    "trimPrefix": _trim_prefix,
    "trimSuffix": _trim_suffix,
    "upper": _str_fn(str.upper),
    "lower": _str_fn(str.lower),
    "split": _split(False),
    "splitAfter": _split(True),
    "replace": _replace,
    "repeat": _repeat,
    "join": _join,
    "indexOf": _str_fn(lambda s, sub: _byte_index(s, sub, False)),
    "lastIndexOf": _str_fn(lambda s, sub: _byte_index(s, sub, True)),
    "hasPrefix": _str_fn(str.startswith),
    "hasSuffix": _str_fn(str.endswith),
    "max": _minmax("max", True),
    "min": _minmax("min", False),
    "mean": _mean,
    "median": _median,
    "toJSON": lambda c, a: to_json(a[0]),
    "fromJSON": _from_json,
    "toBase64": _to_base64,
    "fromBase64": _from_base64,
    "now": _now,
    "duration": _duration,
    "date": _date,
    "timezone": _timezone,
    "first": _first,
    "last": _last,
    "get": lambda c, a: get(a[0], a[1]),
    "take": _take,
    "keys": _keys,
    "values": _values,
    "toPairs": _to_pairs,
    "fromPairs": _from_pairs,
    "reverse": _reverse,
    "uniq": _uniq,
    "concat": _concat,
    "flatten": _flatten,
    "sort": _sort,
    "bitand": _bit("bitand", lambda x, y: x & y),
    "bitor": _bit("bitor", lambda x, y: x | y),
    "bitxor": _bit("bitxor", lambda x, y: x ^ y),
    "bitnand": _bit("bitnand", lambda x, y: x & ~y),
    "bitshl": _bit("bitshl", lambda x, y: x << min(y, 64)),
    "bitshr": _bit("bitshr", lambda x, y: x >> min(y, 64)),
    "bitushr": _bit("bitushr", lambda x, y: (x % 2**64) >> min(y, 64)),
    "bitnot": _bitnot,
}


# ---------------------------------------------------------------------------------------------
# Argo's environment functions (utils/evaluate/evaluate.go)


def _as_int(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    t = type(x)
    if t is float:
        return float_to_int(x)
    if t is int:
        return x  # type: ignore[no-any-return]
    if t is str:
        if not _ATOI.fullmatch(x):
            raise ExpressionError(f'strconv.ParseInt: parsing "{x}": invalid syntax')
        n = int(x)
        if n < MIN_INT or n > 2**63 - 1:
            raise ExpressionError(f'strconv.ParseInt: parsing "{x}": value out of range')
        return n
    shown = "<nil> <nil>" if x is None else f"{_t(x)} {v.format_value(x)}"
    raise ExpressionError(f"asInt() not supported on {shown}")


def _as_float(ctx: Context, a: list[Any]) -> float:
    x = a[0]
    t = type(x)
    if t is float or t is int:
        return float(x)
    if t is str:
        f = go_parse_float(x)
        if f is None:
            reason = "value out of range" if _DEC_FLOAT.fullmatch(x) and "_" not in x else "invalid syntax"
            raise ExpressionError(f'strconv.ParseFloat: parsing "{x}": {reason}')
        return f
    shown = "<nil> <nil>" if x is None else f"{_t(x)} {v.format_value(x)}"
    raise ExpressionError(f"asFloat() not supported on {shown}")


def _float_param(x: Any) -> float:
    # these are func(float64) bool: expr's typed call asserts the argument is a float64
    if type(x) is not float:
        raise interface_conversion(x, "float64")
    return x


def _is_nan(ctx: Context, a: list[Any]) -> bool:
    x = _float_param(a[0])
    return x != x


def _is_inf(ctx: Context, a: list[Any]) -> bool:
    return _float_param(a[0]) in (math.inf, -math.inf)


def _is_nil(ctx: Context, a: list[Any]) -> bool:
    return ctx.result is None


def _default(ctx: Context, a: list[Any]) -> Any:
    return a[1] if ctx.result is None else ctx.result


# name -> (parameter natures, result nature, implementation)
ENV_FUNCS: dict[str, tuple[tuple[Nature, ...], Nature, Impl]] = {
    "asInt": ((U_,), v.INT64, _as_int),
    "asFloat": ((U_,), v.FLOAT, _as_float),
    "isNaN": ((v.FLOAT,), v.BOOL, _is_nan),
    "isInf": ((v.FLOAT,), v.BOOL, _is_inf),
    "isNil": ((U_,), v.BOOL, _is_nil),
    "default": ((U_, U_), v.UNKNOWN, _default),
}
