"""Run-time operators with expr-lang's semantics (vm/runtime: Equal, Less, Add, Fetch, In...).

These are used where the checker could not prove the operand types; errors carry the text
expr's VM would produce (the panics it recovers into errors).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.values import equal, go_type, is_num

MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
_U64 = 2**64


def wrap(x: int) -> int:
    """Go int64 arithmetic wraps around."""
    if MIN_INT <= x <= MAX_INT:
        return x
    return (x - MIN_INT) % _U64 + MIN_INT


def float_to_int(x: float) -> int:
    """Go's int(float64) on amd64: truncation; NaN, ±Inf and out-of-range give MinInt64."""
    if x != x or x in (math.inf, -math.inf):
        return MIN_INT
    if not (-9.223372036854775808e18 <= x < 9.223372036854775808e18):
        return MIN_INT
    return int(x)


def _ns(d: timedelta) -> int:
    return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000


def _dur(ns: int) -> timedelta:
    return timedelta(microseconds=wrap(ns) / 1000)


def _t(v: Any) -> str:
    return go_type(v)


def op_error(op: str, a: Any, b: Any) -> ExpressionError:
    return ExpressionError(f"invalid operation: {_t(a)} {op} {_t(b)}")


def interface_conversion(v: Any, want: str) -> ExpressionError:
    got = "nil" if v is None else _t(v)
    return ExpressionError(f"interface conversion: interface {{}} is {got}, not {want}")


# -- arithmetic -------------------------------------------------------------------------------


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return wrap(a + b)
    if (ta is float or ta is int) and (tb is float or tb is int):
        return float(a) + float(b)
    if ta is str and tb is str:
        return a + b
    if isinstance(a, datetime) and isinstance(b, timedelta):
        return a + b
    if isinstance(a, timedelta):
        if isinstance(b, datetime):
            return b + a
        if isinstance(b, timedelta):
            return a + b
    raise op_error("+", a, b)


def sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return wrap(a - b)
    if (ta is float or ta is int) and (tb is float or tb is int):
        return float(a) - float(b)
    if isinstance(a, datetime):
        if isinstance(b, datetime):
            return a - b
        if isinstance(b, timedelta):
            return a - b
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return a - b
    raise op_error("-", a, b)


def mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return wrap(a * b)
    if (ta is float or ta is int) and (tb is float or tb is int):
        return float(a) * float(b)
    da, db = isinstance(a, timedelta), isinstance(b, timedelta)
    if (da or ta is int or ta is float) and (db or tb is int or tb is float):
        x = _ns(a) if da else a
        y = _ns(b) if db else b
        if type(x) is float or type(y) is float:
            return float(x) * float(y)
        return _dur(x * y)
    raise op_error("*", a, b)


def div(a: Any, b: Any) -> float:
    if is_num(a) and is_num(b):
        x, y = float(a), float(b)
        if y == 0.0:
            if x == 0.0 or x != x:
                return math.nan
            return math.copysign(math.inf, x) * math.copysign(1.0, y)
        return x / y
    raise op_error("/", a, b)


def mod(a: Any, b: Any) -> int:
    if type(a) is int and type(b) is int:
        if b == 0:
            raise ExpressionError("runtime error: integer divide by zero")
        r = abs(a) % abs(b)
        return wrap(-r if a < 0 else r)
    raise op_error("%", a, b)


def power(a: Any, b: Any) -> float:
    if not is_num(a):
        raise ExpressionError(f"invalid operation: float({_t(a)})")
    if not is_num(b):
        raise ExpressionError(f"invalid operation: float({_t(b)})")
    return go_pow(float(a), float(b))


def go_pow(x: float, y: float) -> float:
    """math.Pow with Go's special cases (Python raises where Go returns Inf or NaN)."""
    try:
        return math.pow(x, y)
    except OverflowError:
        odd = y.is_integer() and int(y) % 2 == 1
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        if x == 0:
            odd = y.is_integer() and int(y) % 2 == 1
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan


def negate(v: Any) -> Any:
    t = type(v)
    if t is int:
        return wrap(-v)
    if t is float:
        return -v
    raise ExpressionError(f"invalid operation: - {_t(v)}")


# -- comparison -------------------------------------------------------------------------------


def _ordered(op: str, a: Any, b: Any) -> None:
    if is_num(a) and is_num(b):
        return
    ta = type(a)
    if ta is str and type(b) is str:
        return
    if isinstance(a, datetime) and isinstance(b, datetime):
        return
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return
    raise op_error(op, a, b)


def lt(a: Any, b: Any) -> bool:
    _ordered("<", a, b)
    return bool(a < b)


def gt(a: Any, b: Any) -> bool:
    _ordered(">", a, b)
    return bool(a > b)


def le(a: Any, b: Any) -> bool:
    _ordered("<=", a, b)
    return bool(a <= b)


def ge(a: Any, b: Any) -> bool:
    _ordered(">=", a, b)
    return bool(a >= b)


def less(a: Any, b: Any) -> bool:
    """runtime.Less (used by sort, sortBy, max)."""
    return lt(a, b)


def need_bool(v: Any) -> bool:
    """The VM's ``.(bool)`` type assertion (jumps of && || ?: and the ! operator)."""
    if type(v) is not bool:
        raise interface_conversion(v, "bool")
    return v


# -- membership, strings ----------------------------------------------------------------------


def map_lookup(m: dict[Any, Any], key: Any) -> tuple[bool, Any]:
    """reflect's MapIndex on a map[string]interface {} (nil looks up ""; other keys panic)."""
    if key is None:
        key = ""
    elif type(key) is not str:
        if isinstance(key, list | dict) or all(type(k) is str for k in m):
            raise ExpressionError(f"reflect.Value.MapIndex: value of type {_t(key)} is not assignable to type string")
        for k in m:  # a map[interface {}]... (groupBy, fromPairs): keys match by type and value
            if type(k) is type(key) and k == key:
                return True, m[k]
        return False, None
    if key in m:
        return True, m[key]
    return False, None


def contains_in(needle: Any, haystack: Any) -> bool:
    """runtime.In."""
    t = type(haystack)
    if t is list:
        for x in haystack:
            if equal(x, needle):
                return True
        return False
    if t is dict:
        return map_lookup(haystack, needle)[0]
    if haystack is None:
        return False
    raise ExpressionError(f'operator "in" not defined on {_t(haystack)}')


def in_string_set(needle: Any, options: frozenset[str]) -> bool:
    """``x in ["a", "b"]`` after expr's optimizer turned the literal into a map[string]struct{}."""
    if type(needle) is str:
        return needle in options
    if needle is None:
        return "" in options
    raise ExpressionError(f"reflect.Value.MapIndex: value of type {_t(needle)} is not assignable to type string")


def in_int_set(needle: Any, options: frozenset[int]) -> bool:
    """``x in [1, 2]`` for an int x, after expr's optimizer made the literal a map[int]struct{}."""
    if type(needle) is int:
        return needle in options
    if needle is None:
        return 0 in options
    raise ExpressionError(f"reflect.Value.MapIndex: value of type {_t(needle)} is not assignable to type int")


def string_op(op: str, a: Any, b: Any) -> bool:
    """contains / startsWith / endsWith: nil on either side is false, else both must be strings."""
    if a is None or b is None:
        return False
    if type(a) is not str:
        raise interface_conversion(a, "string")
    if type(b) is not str:
        raise interface_conversion(b, "string")
    if op == "contains":
        return b in a
    if op == "startsWith":
        return a.startswith(b)
    return a.endswith(b)


def matches(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if type(b) is not str:
        raise interface_conversion(b, "string")
    pattern = regex(b)
    if type(a) is str:
        return pattern.search(a) is not None
    if type(a) is bytes:
        return pattern.search(a.decode("utf-8", "replace")) is not None
    raise interface_conversion(a, "[]uint8")


_POSIX = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "0-9A-Za-z", "upper": "A-Z", "lower": "a-z",
          "space": r"\t\n\v\f\r ", "xdigit": "0-9A-Fa-f", "word": "0-9A-Za-z_", "punct": r"!-/:-@\[-`{-~",
          "blank": r"\t ", "cntrl": r"\x00-\x1f\x7f", "print": r" -~", "graph": r"!-~", "ascii": r"\x00-\x7f"}


@lru_cache(maxsize=512)
def regex(pattern: str) -> re.Pattern[str]:
    """Compile a Go RE2 pattern with Python's re, rejecting what RE2 rejects."""
    try:
        return re.compile(_translate(pattern))
    except re.error as exc:
        raise ExpressionError(f"error parsing regexp: {exc}: `{pattern}`") from None


def _translate(p: str) -> str:
    multiline = re.search(r"\(\?[a-zA-Z]*m[a-zA-Z]*[):]", p) is not None
    out: list[str] = []
    i, n = 0, len(p)
    in_class = False
    while i < n:
        c = p[i]
        if c == "\\" and i + 1 < n:
            e = p[i + 1]
            if e.isdigit() and e != "0":
                raise ExpressionError(f"error parsing regexp: invalid escape sequence: `\\{e}`")
            if e == "z":
                out.append(r"\Z")
            elif e == "Z":
                raise ExpressionError("error parsing regexp: invalid escape sequence: `\\Z`")
            elif e in "dDwWsSbB" and not in_class:
                out.append({"d": "[0-9]", "D": "[^0-9]", "w": "[0-9A-Za-z_]", "W": "[^0-9A-Za-z_]",
                            "s": r"[\t\n\f\r ]", "S": r"[^\t\n\f\r ]"}.get(e, "\\" + e))
            elif e in "dws" and in_class:
                out.append({"d": "0-9", "w": "0-9A-Za-z_", "s": r"\t\n\f\r "}[e])
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if c == "[" and p.startswith("[:", i):
                end = p.find(":]", i + 2)
                name = p[i + 2:end] if end > 0 else ""
                neg = name.startswith("^")
                cls = _POSIX.get(name.lstrip("^"))
                if cls is not None and not neg:
                    out.append(cls)
                    i = end + 2
                    continue
                raise ExpressionError(f"error parsing regexp: invalid character class range: `{p[i:end + 2]}`")
            if c == "]":
                in_class = False
            elif c == "[":
                out.append("\\[")
                i += 1
                continue
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and p[i] == "^":
                out.append("^")
                i += 1
            if i < n and p[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "(" and p.startswith("(?", i):
            rest = p[i + 2:i + 4]
            if rest[:1] in ("=", "!", ">") or rest in ("<=", "<!"):
                raise ExpressionError(f"error parsing regexp: invalid or unsupported Perl syntax: `{p[i:i + 3]}`")
            if rest[:1] == "<":
                out.append("(?P<")
                i += 3
                continue
        if c == "$" and not multiline:
            out.append(r"\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


# -- member access ----------------------------------------------------------------------------


def to_int(v: Any) -> int:
    """runtime.ToInt."""
    t = type(v)
    if t is int:
        return int(v)
    if t is float:
        return float_to_int(v)
    raise ExpressionError(f"invalid operation: int({_t(v)})")


def fetch(obj: Any, key: Any) -> Any:
    """runtime.Fetch: index arrays/strings (negative from the end), look maps up (missing is nil)."""
    t = type(obj)
    if t is dict:
        return map_lookup(obj, key)[1]
    if t is list or t is str or t is bytes:
        i = to_int(key)
        data = obj.encode() if t is str else obj
        n = len(data)
        if i < 0:
            i += n
        if i < 0 or i >= n:
            raise ExpressionError(f"index out of range: {i} (array length is {n})")
        return data[i]
    raise ExpressionError(f"cannot fetch {fmt_key(key)} from {_t(obj)}")


def fmt_key(key: Any) -> str:
    from analyzer.core.expr.values import format_value

    return format_value(key)


def slice_of(obj: Any, lo: Any, hi: Any) -> Any:
    """runtime.Slice: bounds are clamped, never an error."""
    t = type(obj)
    if t is str:
        data: Any = obj.encode()
    elif t is list or t is bytes:
        data = obj
    else:
        raise ExpressionError(f"cannot slice {fmt_key(lo)}")
    n = len(data)
    a = 0 if lo is None else to_int(lo)
    b = n if hi is None else to_int(hi)
    if a < 0:
        a = max(n + a, 0)
    if b < 0:
        b = max(n + b, 0)
    b = min(b, n)
    a = min(a, b)
    out = data[a:b]
    return out.decode("utf-8", "replace") if t is str else out


def length(v: Any) -> int:
    """runtime.Len (OpLen: bytes of a string)."""
    t = type(v)
    if t is list or t is dict or t is bytes:
        return len(v)
    if t is str:
        return len(v.encode())
    raise ExpressionError(f"invalid argument for len (type {_t(v)})")


def make_range(a: Any, b: Any) -> list[int]:
    lo, hi = to_int(a), to_int(b)
    size = hi - lo + 1
    if size >= 1_000_000:
        raise ExpressionError("memory budget exceeded")
    return list(range(lo, hi + 1)) if size > 0 else []


def items_of(coll: Any) -> list[Any] | bytes:
    """What a predicate builtin iterates over (the VM's OpBegin)."""
    t = type(coll)
    if t is list:
        return coll  # type: ignore[no-any-return]
    if t is str:
        return coll.encode()  # type: ignore[no-any-return]
    if t is bytes:
        return coll  # type: ignore[no-any-return]
    if t is dict:
        if not coll:
            return []
        raise ExpressionError("reflect: call of reflect.Value.Index on map Value")
    if coll is None:
        raise ExpressionError("reflect: call of reflect.Value.Len on zero Value")
    raise ExpressionError(f"reflect: call of reflect.Value.Len on {_t(coll)} Value")
