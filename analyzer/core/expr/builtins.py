"""Built-in functions: expr-lang's common set plus Argo's isNaN, isInf, isNil, default, asInt,
asFloat. ``isNil`` and ``default`` look at the whole ``result``, not their argument, exactly as
Argo's EvalCondition defines them (argo-semantics.md §4.1)."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analyzer.core.durations import parse_go_duration
from analyzer.core.expr import values as v
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.ops import fetch


@dataclass(frozen=True)
class Context:
    result: Any
    now: datetime | None


Predicate = Callable[[Any, int], Any]
Impl = Callable[[Context, list[Any]], Any]
TypeRule = Callable[[list[v.StaticType], v.StaticType], v.StaticType]


@dataclass(frozen=True)
class Builtin:
    impl: Impl
    min_args: int
    max_args: int
    returns: TypeRule
    float_arg: bool = False  # the first argument must be a float64 (isNaN, isInf)


def _ret(t: v.StaticType) -> TypeRule:
    return lambda args, result: t


def _same_as_first(args: list[v.StaticType], result: v.StaticType) -> v.StaticType:
    return args[0] if args else None


def _elem_of_first(args: list[v.StaticType], result: v.StaticType) -> v.StaticType:
    return v.elem_type(args[0]) if args else None


def _array(x: Any, fn: str) -> list[Any]:
    if isinstance(x, list):
        return x
    if isinstance(x, dict):
        return list(x.values())
    raise ExpressionError(f"cannot iterate over {v.go_type(x) if x is not None else 'nil'} in {fn}")


def _truth(value: Any, fn: str) -> bool:
    if type(value) is not bool:
        raise ExpressionError(f"predicate of {fn} must return bool, got {v.go_type(value)}")
    return value


def _numbers(items: list[Any], fn: str) -> list[Any]:
    for x in items:
        if not v.is_num(x):
            raise ExpressionError(f"invalid argument for {fn} (type {v.go_type(x)})")
    return items


def _len(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    if isinstance(x, list | dict | str):
        return len(x)
    raise ExpressionError(f"invalid argument for len (type {v.go_type(x)})")


def _abs(ctx: Context, a: list[Any]) -> Any:
    if v.is_num(a[0]):
        return abs(a[0])
    raise ExpressionError(f"invalid argument for abs (type {v.go_type(a[0])})")


def _extreme(pick: Callable[[Any, Any], bool], name: str) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> Any:
        items = a[0] if len(a) == 1 and isinstance(a[0], list) else a
        _numbers(items, name)
        best: Any = None
        for x in items:
            if best is None or pick(x, best):
                best = x
        return best
    return impl


def _sum(ctx: Context, a: list[Any]) -> Any:
    items = _array(a[0], "sum")
    if len(a) > 1:
        items = [a[1](x, i) for i, x in enumerate(items)]
    _numbers(items, "sum")
    if all(type(x) is int for x in items):
        return sum(items)
    return math.fsum(float(x) for x in items) if all(math.isfinite(float(x)) for x in items) \
        else sum(float(x) for x in items)


def _mean(ctx: Context, a: list[Any]) -> float:
    items = _numbers(a[0] if len(a) == 1 and isinstance(a[0], list) else a, "mean")
    if not items:
        return 0.0
    return float(sum(float(x) for x in items) / len(items))


def _median(ctx: Context, a: list[Any]) -> float:
    items = _numbers(a[0] if len(a) == 1 and isinstance(a[0], list) else a, "median")
    if not items:
        return 0.0
    return float(statistics.median(float(x) for x in items))


def _first(ctx: Context, a: list[Any]) -> Any:
    items = _array(a[0], "first")
    return items[0] if items else None


def _last(ctx: Context, a: list[Any]) -> Any:
    items = _array(a[0], "last")
    return items[-1] if items else None


def _predicate(kind: str) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> Any:
        items = _array(a[0], kind)
        pred: Predicate = a[1]
        if kind == "map":
            return [pred(x, i) for i, x in enumerate(items)]
        if kind == "filter":
            return [x for i, x in enumerate(items) if _truth(pred(x, i), kind)]
        hits = (_truth(pred(x, i), kind) for i, x in enumerate(items))
        if kind == "all":
            return all(hits)
        if kind == "any":
            return any(hits)
        if kind == "none":
            return not any(hits)
        if kind == "one":
            return sum(1 for h in hits if h) == 1
        if kind == "count":
            return sum(1 for h in hits if h)
        found = [i for i, x in enumerate(items) if _truth(pred(x, i), kind)]
        if kind == "find":
            return items[found[0]] if found else None
        if kind == "findLast":
            return items[found[-1]] if found else None
        if kind == "findIndex":
            return found[0] if found else -1
        return found[-1] if found else -1  # findLastIndex
    return impl


def _string_fn(fn: Callable[..., Any], name: str, nargs: int = 1) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> Any:
        for x in a[:nargs]:
            if type(x) is not str:
                raise ExpressionError(f"invalid argument for {name} (type {v.go_type(x)})")
        return fn(*a)
    return impl


def _trim(s: str, chars: str | None = None) -> str:
    return s.strip(chars) if chars is not None else s.strip(" \t\n\r\v\f")


def _round_half_away(x: float) -> float:
    return float(math.floor(x + 0.5)) if x >= 0 else float(math.ceil(x - 0.5))


def _math(fn: Callable[[float], float], name: str) -> Impl:
    def impl(ctx: Context, a: list[Any]) -> Any:
        if not v.is_num(a[0]):
            raise ExpressionError(f"invalid argument for {name} (type {v.go_type(a[0])})")
        x = float(a[0])
        return x if math.isnan(x) or math.isinf(x) else fn(x)
    return impl


def _to_int(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    if type(x) is int:
        return x
    if type(x) is float:
        if math.isnan(x) or math.isinf(x):
            return -(2 ** 63)
        return int(x)
    if type(x) is str:
        try:
            return int(x.strip())
        except ValueError:
            raise ExpressionError(f'strconv.Atoi: parsing "{x}": invalid syntax') from None
    raise ExpressionError(f"invalid operation: int({v.go_type(x)})")


def _to_float(ctx: Context, a: list[Any]) -> float:
    x = a[0]
    if v.is_num(x) and type(x) is not bool:
        return float(x)
    if type(x) is str:
        return _parse_float(x)
    raise ExpressionError(f"invalid operation: float({v.go_type(x)})")


_GO_FLOAT = re.compile(r"[+-]?(inf|infinity|nan|(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?|0[xX][0-9a-fA-F.]+[pP][+-]?\d+)",
                       re.IGNORECASE)


def _parse_float(s: str) -> float:
    if not _GO_FLOAT.fullmatch(s):
        raise ExpressionError(f'strconv.ParseFloat: parsing "{s}": invalid syntax')
    if "x" in s.lower():
        return float.fromhex(s)
    return float(s.replace("_", ""))


def _to_string(ctx: Context, a: list[Any]) -> str:
    return a[0] if type(a[0]) is str else v.format_value(a[0])


def _is_nan(ctx: Context, a: list[Any]) -> bool:
    x = _need_float(a[0], "isNaN")
    return math.isnan(x)


def _is_inf(ctx: Context, a: list[Any]) -> bool:
    x = _need_float(a[0], "isInf")
    return math.isinf(x)


def _need_float(x: Any, fn: str) -> float:
    if type(x) is float or type(x) is int:
        return float(x)
    got = "nil" if x is None else v.go_type(x)
    raise ExpressionError(f"cannot use {got} as argument (type float64) to call {fn}")


def _is_nil(ctx: Context, a: list[Any]) -> bool:
    return ctx.result is None


def _default(ctx: Context, a: list[Any]) -> Any:
    return a[1] if ctx.result is None else ctx.result


def _as_int(ctx: Context, a: list[Any]) -> int:
    x = a[0]
    if type(x) is float:
        if math.isnan(x) or math.isinf(x):
            return -(2 ** 63)
        return int(x)
    if type(x) is int:
        return x
    if type(x) is str:
        if not re.fullmatch(r"[+-]?\d+", x):
            raise ExpressionError(f'strconv.ParseInt: parsing "{x}": invalid syntax')
        return int(x)
    raise ExpressionError(f"asInt() not implemented for {'nil' if x is None else v.go_type(x)}")


def _as_float(ctx: Context, a: list[Any]) -> float:
    x = a[0]
    if type(x) is float or type(x) is int:
        return float(x)
    if type(x) is str:
        return _parse_float(x)
    raise ExpressionError(f"asFloat() not implemented for {'nil' if x is None else v.go_type(x)}")


def _now(ctx: Context, a: list[Any]) -> datetime:
    if ctx.now is None:
        raise ExpressionError("now() is not available here")
    return ctx.now


def _duration(ctx: Context, a: list[Any]) -> timedelta:
    if type(a[0]) is not str:
        raise ExpressionError(f"invalid argument for duration (type {v.go_type(a[0])})")
    try:
        return parse_go_duration(a[0])
    except ValueError as exc:
        raise ExpressionError(str(exc)) from None


def _date(ctx: Context, a: list[Any]) -> datetime:
    s = a[0]
    if type(s) is not str:
        raise ExpressionError(f"invalid argument for date (type {v.go_type(s)})")
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ExpressionError(f'cannot parse "{s}" as time') from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _keys(ctx: Context, a: list[Any]) -> list[Any]:
    if not isinstance(a[0], dict):
        raise ExpressionError(f"invalid argument for keys (type {v.go_type(a[0])})")
    return list(a[0].keys())


def _values(ctx: Context, a: list[Any]) -> list[Any]:
    if not isinstance(a[0], dict):
        raise ExpressionError(f"invalid argument for values (type {v.go_type(a[0])})")
    return list(a[0].values())


def _join(ctx: Context, a: list[Any]) -> str:
    items = _array(a[0], "join")
    sep = a[1] if len(a) > 1 else ""
    if not all(type(x) is str for x in items):
        raise ExpressionError("invalid argument for join: array of strings expected")
    return str(sep).join(items)


def _get(ctx: Context, a: list[Any]) -> Any:
    try:
        return fetch(a[0], a[1])
    except ExpressionError:
        return None


BUILTINS: dict[str, Builtin] = {
    "len": Builtin(_len, 1, 1, _ret(v.INT)),
    "abs": Builtin(_abs, 1, 1, _same_as_first),
    "max": Builtin(_extreme(lambda x, b: x > b, "max"), 1, 1 << 16, _ret(None)),
    "min": Builtin(_extreme(lambda x, b: x < b, "min"), 1, 1 << 16, _ret(None)),
    "sum": Builtin(_sum, 1, 2, _ret(None)),
    "mean": Builtin(_mean, 1, 1 << 16, _ret(v.FLOAT)),
    "median": Builtin(_median, 1, 1 << 16, _ret(v.FLOAT)),
    "first": Builtin(_first, 1, 1, _elem_of_first),
    "last": Builtin(_last, 1, 1, _elem_of_first),
    "all": Builtin(_predicate("all"), 2, 2, _ret(v.BOOL)),
    "any": Builtin(_predicate("any"), 2, 2, _ret(v.BOOL)),
    "none": Builtin(_predicate("none"), 2, 2, _ret(v.BOOL)),
    "one": Builtin(_predicate("one"), 2, 2, _ret(v.BOOL)),
    "filter": Builtin(_predicate("filter"), 2, 2, _same_as_first),
    "map": Builtin(_predicate("map"), 2, 2, _ret(v.ANY_ARRAY)),
    "count": Builtin(_predicate("count"), 2, 2, _ret(v.INT)),
    "find": Builtin(_predicate("find"), 2, 2, _elem_of_first),
    "findLast": Builtin(_predicate("findLast"), 2, 2, _elem_of_first),
    "findIndex": Builtin(_predicate("findIndex"), 2, 2, _ret(v.INT)),
    "findLastIndex": Builtin(_predicate("findLastIndex"), 2, 2, _ret(v.INT)),
    "lower": Builtin(_string_fn(str.lower, "lower"), 1, 1, _ret(v.STRING)),
    "upper": Builtin(_string_fn(str.upper, "upper"), 1, 1, _ret(v.STRING)),
    "trim": Builtin(_string_fn(_trim, "trim", 2), 1, 2, _ret(v.STRING)),
    "trimPrefix": Builtin(_string_fn(lambda s, p=" ": s.removeprefix(p), "trimPrefix", 2), 1, 2, _ret(v.STRING)),
    "trimSuffix": Builtin(_string_fn(lambda s, p=" ": s.removesuffix(p), "trimSuffix", 2), 1, 2, _ret(v.STRING)),
    "hasPrefix": Builtin(_string_fn(str.startswith, "hasPrefix", 2), 2, 2, _ret(v.BOOL)),
    "hasSuffix": Builtin(_string_fn(str.endswith, "hasSuffix", 2), 2, 2, _ret(v.BOOL)),
    "indexOf": Builtin(_string_fn(str.find, "indexOf", 2), 2, 2, _ret(v.INT)),
    "split": Builtin(_string_fn(lambda s, sep: s.split(sep) if sep else list(s), "split", 2), 2, 2,
                     _ret(v.ANY_ARRAY)),
    "replace": Builtin(_string_fn(str.replace, "replace", 3), 3, 3, _ret(v.STRING)),
    "repeat": Builtin(lambda c, a: _string_fn(lambda s: s, "repeat")(c, a[:1]) * int(a[1]), 2, 2, _ret(v.STRING)),
    "join": Builtin(_join, 1, 2, _ret(v.STRING)),
    "keys": Builtin(_keys, 1, 1, _ret(v.ANY_ARRAY)),
    "values": Builtin(_values, 1, 1, _ret(v.ANY_ARRAY)),
    "reverse": Builtin(lambda c, a: list(reversed(_array(a[0], "reverse"))), 1, 1, _same_as_first),
    "get": Builtin(_get, 2, 2, _ret(None)),
    "ceil": Builtin(_math(lambda x: float(math.ceil(x)), "ceil"), 1, 1, _ret(v.FLOAT)),
    "floor": Builtin(_math(lambda x: float(math.floor(x)), "floor"), 1, 1, _ret(v.FLOAT)),
    "round": Builtin(_math(_round_half_away, "round"), 1, 1, _ret(v.FLOAT)),
    "int": Builtin(_to_int, 1, 1, _ret(v.INT)),
    "float": Builtin(_to_float, 1, 1, _ret(v.FLOAT)),
    "string": Builtin(_to_string, 1, 1, _ret(v.STRING)),
    "now": Builtin(_now, 0, 0, _ret(v.TIME)),
    "duration": Builtin(_duration, 1, 1, _ret(v.DURATION)),
    "date": Builtin(_date, 1, 3, _ret(v.TIME)),
    # Argo's additions (utils/evaluate/evaluate.go)
    "isNaN": Builtin(_is_nan, 1, 1, _ret(v.BOOL), float_arg=True),
    "isInf": Builtin(_is_inf, 1, 1, _ret(v.BOOL), float_arg=True),
    "isNil": Builtin(_is_nil, 1, 1, _ret(v.BOOL)),
    "default": Builtin(_default, 2, 2, lambda args, result: result),
    "asInt": Builtin(_as_int, 1, 1, _ret(v.INT)),
    "asFloat": Builtin(_as_float, 1, 1, _ret(v.FLOAT)),
}
