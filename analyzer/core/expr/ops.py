"""Run-time operators with Go/expr typing rules (used when static types are unknown)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.values import go_type, is_num


def mismatch(op: str, a: Any, b: Any) -> ExpressionError:
    return ExpressionError(f"invalid operation: {op} (mismatched types {_tname(a)} and {_tname(b)})")


def _tname(v: Any) -> str:
    return "unknown" if v is None else go_type(v)


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a + b
    if is_num(a) and is_num(b):
        return float(a) + float(b)
    if ta is str and tb is str:
        return a + b
    if isinstance(a, datetime) and isinstance(b, timedelta):
        return a + b
    if isinstance(a, timedelta) and isinstance(b, datetime | timedelta):
        return a + b
    raise mismatch("+", a, b)


def sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a - b
    if is_num(a) and is_num(b):
        return float(a) - float(b)
    if isinstance(a, datetime) and isinstance(b, datetime | timedelta):
        return a - b
    if isinstance(a, timedelta) and isinstance(b, timedelta):
        return a - b
    raise mismatch("-", a, b)


def mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a * b
    if is_num(a) and is_num(b):
        return float(a) * float(b)
    if isinstance(a, timedelta) and tb is int:
        return a * b
    raise mismatch("*", a, b)


def div(a: Any, b: Any) -> Any:
    # expr's "/" always works on float64, so 1/0 is +Inf rather than an error.
    if is_num(a) and is_num(b):
        x, y = float(a), float(b)
        if y == 0.0:
            if x == 0.0 or math.isnan(x):
                return math.nan
            return math.copysign(math.inf, x) * (math.copysign(1.0, y))
        return x / y
    raise mismatch("/", a, b)


def mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        if b == 0:
            raise ExpressionError("integer divide by zero")
        return int(math.fmod(a, b))  # Go's % truncates toward zero
    raise mismatch("%", a, b)


def power(a: Any, b: Any) -> Any:
    if is_num(a) and is_num(b):
        try:
            return math.pow(float(a), float(b))
        except (OverflowError, ValueError):
            return math.inf if float(a) > 0 else math.nan
    raise mismatch("**", a, b)


def _comparable(a: Any, b: Any) -> bool:
    if is_num(a) and is_num(b):
        return True
    ta = type(a)
    return ta is type(b) and ta in (str, datetime, timedelta)


def lt(a: Any, b: Any) -> bool:
    if not _comparable(a, b):
        raise mismatch("<", a, b)
    return bool(a < b)


def gt(a: Any, b: Any) -> bool:
    if not _comparable(a, b):
        raise mismatch(">", a, b)
    return bool(a > b)


def le(a: Any, b: Any) -> bool:
    if not _comparable(a, b):
        raise mismatch("<=", a, b)
    return bool(a <= b)


def ge(a: Any, b: Any) -> bool:
    if not _comparable(a, b):
        raise mismatch(">=", a, b)
    return bool(a >= b)


def need_bool(op: str, v: Any, other: Any = True) -> bool:
    if type(v) is not bool:
        raise mismatch(op, v, other) if op != "!" else ExpressionError(
            f"invalid operation: ! (mismatched type {_tname(v)})")
    return v


def negate(v: Any) -> Any:
    if is_num(v):
        return -v
    if isinstance(v, timedelta):
        return -v
    raise ExpressionError(f"invalid operation: - (mismatched type {_tname(v)})")


def plus(v: Any) -> Any:
    if is_num(v):
        return v
    raise ExpressionError(f"invalid operation: + (mismatched type {_tname(v)})")


@lru_cache(maxsize=256)
def regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ExpressionError(f"error parsing regexp: {exc}") from None


def string_op(op: str, a: Any, b: Any) -> bool:
    if type(a) is not str or type(b) is not str:
        raise mismatch(op, a, b)
    if op == "contains":
        return b in a
    if op == "startsWith":
        return a.startswith(b)
    if op == "endsWith":
        return a.endswith(b)
    return regex(b).search(a) is not None


def contains_in(a: Any, b: Any) -> bool:
    from analyzer.core.expr.values import equal

    if isinstance(b, list):
        return any(equal(a, x) for x in b)
    if isinstance(b, dict):
        if a is not None and type(a) is not str:
            raise ExpressionError(f"cannot use {_tname(a)} as type string in map key")
        return a in b
    if b is None:
        return False
    raise mismatch("in", a, b)


def make_range(a: Any, b: Any) -> list[int]:
    if type(a) is not int or type(b) is not int:
        raise mismatch("..", a, b)
    return list(range(a, b + 1))


def fetch(obj: Any, key: Any) -> Any:
    """Member or index access: maps give nil for a missing key, arrays allow negative indexes."""
    t = type(obj)
    if t is list or t is tuple:
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is not int:
            raise ExpressionError(f"cannot use {_tname(key)} as index to {go_type(obj)}")
        n = len(obj)
        i = key + n if key < 0 else key
        if i < 0 or i >= n:
            raise ExpressionError(f"index out of range: {key} (array length is {n})")
        return obj[i]
    if t is dict:
        return obj.get(key) if isinstance(key, str) else None
    if t is str:
        if type(key) is not int:
            raise ExpressionError(f"cannot use {_tname(key)} as index to string")
        n = len(obj)
        i = key + n if key < 0 else key
        if i < 0 or i >= n:
            raise ExpressionError(f"index out of range: {key} (array length is {n})")
        return obj[i]
    if obj is None:
        raise ExpressionError(f"cannot fetch {key} from <nil>")
    raise ExpressionError(f"cannot fetch {key} from {go_type(obj)}")


def slice_of(obj: Any, lo: Any, hi: Any) -> Any:
    if not isinstance(obj, list | str):
        raise ExpressionError(f"cannot slice {_tname(obj)}")
    n = len(obj)
    a = 0 if lo is None else lo
    b = n if hi is None else hi
    if type(a) is not int or type(b) is not int:
        raise ExpressionError("slice bounds must be integers")
    a = a + n if a < 0 else a
    b = b + n if b < 0 else b
    if a < 0 or b > n or a > b:
        raise ExpressionError(f"slice bounds out of range [{a}:{b}] with length {n}")
    return obj[a:b]
