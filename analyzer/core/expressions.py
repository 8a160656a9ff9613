"""Public face of the expression language: compile once, evaluate many times.

``evaluate_condition`` is the stable API other tools call. It behaves like Argo's
``EvalCondition`` (utils/evaluate/evaluate.go) running expr-lang v1.17.8: the condition is
compiled with the concrete ``result`` in the environment, so type errors are compile-time
errors whenever ``result`` has a concrete type (even in a branch that never runs), a nil
``result`` has expr's *nil* nature (``result < 5``, ``result.x``, ``!result`` do not compile,
``result == nil`` does), and the program must produce a bool.

Values follow Go: numbers coming from providers are float64, so Python ints inside ``result``
are turned into floats first (a JSON ``1`` is ``1.0`` in Argo); integer literals in the
expression stay ints.

Where this deliberately differs from expr-lang/Argo:

* The Go type of a ``result`` list is inferred from the Python value: a list whose elements
  are all numbers (a Prometheus vector, also when empty) is a ``[]float64``; a list holding
  anything else (strings, maps, bools, nil, lists) is a ``[]interface {}``. Go knows which
  provider produced the value, and a web provider's JSON array of numbers is really a
  ``[]interface {}``; that only matters for compile-time checks that compare an element with
  a non-number (``result[0] == "x"`` is a compile error here, false in Argo).
* ``now()`` inside ``evaluate`` uses the ``now`` argument (deterministic range queries); in
  ``evaluate_condition`` it is the wall clock, as in Go.
* Regular expressions are Go RE2 patterns translated to Python's ``re`` (``$`` means end of
  text, ``\\d`` ``\\w`` ``\\s`` are ASCII, POSIX classes are expanded, look-around and
  back-references are rejected as RE2 does); exotic RE2 syntax (``\\pL``, ``\\Q..\\E``,
  ``(?U)``) is not supported.
* ``date()`` understands the common Go layout elements only; ``time.Time``/``time.Duration``
  have a small set of methods (``Hours()``, ``Seconds()``, ``Year()``, ``Before()``, ...).
* Error columns are 1-based rune offsets into the whole expression (Argo strips expr's
  location anyway); "unexpected token EOF" points just past the end, not at the last rune.
* Float->int conversions (``int()``, ``asInt()``) of NaN, ±Inf and out-of-range values give
  MinInt64, as Go does on amd64 (the Go spec leaves this implementation-defined).
* Durations are Python timedeltas (microsecond resolution, not nanoseconds); ``sort`` and
  ``sortBy`` are stable (Go's sort is not, so equal keys may come out in another order there).
* ``check`` (template lint) compiles with an unknown-typed ``result``, so it reports syntax
  errors and unknown names only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from analyzer.core.expr import ast
from analyzer.core.expr import values as v
from analyzer.core.expr.builtins import Context
from analyzer.core.expr.compiler import ENV_NAMES, Compiler, Fn
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.parser import parse

__all__ = ["ExpressionError", "check", "evaluate", "evaluate_condition", "normalize_result"]

_FLOAT_ARRAY = v.FLOAT_ARRAY


@lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Node | ExpressionError:
    try:
        return parse(source, ENV_NAMES)
    except ExpressionError as exc:
        return exc.located(source)
    except RecursionError:
        return ExpressionError("expression nested too deeply", source)


@lru_cache(maxsize=8192)
def _compile(source: str, result_nature: v.Nature) -> Fn | ExpressionError:
    node = _parse(source)
    if isinstance(node, ExpressionError):
        return node
    try:
        return Compiler(source, result_nature).compile(node).fn
    except ExpressionError as exc:
        return exc.located(source)
    except RecursionError:
        return ExpressionError("expression nested too deeply", source)


def _program(source: str, nature: v.Nature) -> Fn:
    fn = _compile(source, nature)
    if isinstance(fn, ExpressionError):
        raise fn.copy()
    return fn


def nature_of_result(value: Any) -> v.Nature:
    """The nature expr's checker gives ``result`` (for a value as passed by a provider)."""
    t = type(value)
    if value is None:
        return v.NIL
    if t is float or t is int:
        return v.FLOAT
    if t is bool:
        return v.BOOL
    if t is str:
        return v.STRING
    if t is list or t is tuple:
        for x in value:
            tx = type(x)
            if tx is not float and tx is not int:
                return v.ANY_ARRAY
        return _FLOAT_ARRAY
    if isinstance(value, Mapping):
        return v.MAP
    return v.UNKNOWN


def compile_for(source: str, result: Any) -> Fn:
    """The compiled program for ``source`` given the shape of ``result`` (cached)."""
    return _program(source, nature_of_result(result))


def check(source: str) -> None:
    """Syntax and name check without a result (for lint). Raises ExpressionError."""
    _program(source, v.UNKNOWN)


def normalize_result(value: Any) -> Any:
    """Give a Python value the types Argo's providers produce (ints become float64)."""
    t = type(value)
    if t is float or t is str or t is bool or value is None:
        return value
    if t is int:
        return float(value)
    if t is list or t is tuple:
        for x in value:
            if type(x) is not float:
                return [normalize_result(x) for x in value]
        return value if t is list else list(value)
    if isinstance(value, Mapping):
        return {str(k): normalize_result(x) for k, x in value.items()}
    return value


# What expr's VM would report as a recovered panic; these only escape our closures where a
# statically typed fast path meets a value of another type (a nil from find(), say).
_PANICS = (TypeError, ValueError, AttributeError, IndexError, KeyError, ZeroDivisionError, OverflowError)


def _run(fn: Fn, source: str, ctx: Context) -> Any:
    try:
        return fn(ctx)
    except ExpressionError as exc:
        raise exc.located(source) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply", source) from None
    except _PANICS as exc:
        raise ExpressionError(f"runtime error: {exc}", source) from None


def evaluate(source: str, env: Mapping[str, Any] | None = None, *, now: datetime | None = None) -> Any:
    """Evaluate an expression to any value. ``env`` may bind ``result``; ``now`` backs ``now()``."""
    env = env or {}
    if "result" in env:
        raw = env["result"]
        nature = nature_of_result(raw)
        result = normalize_result(raw)
    else:
        nature, result = v.UNKNOWN, None
    return _run(_program(source, nature), source, Context(result, now))


def evaluate_condition(expression: str, result: Any, *, now: datetime | None = None) -> bool:
    """Evaluate an Argo success/failure condition against a provider result.

    Raises :class:`ExpressionError` on any compile or evaluation error, a non-bool outcome
    included (``expected bool, but got <type>``). ``now`` backs ``now()``: the core reads no
    clock, so a condition calling ``now()`` without it is an error (``analyzer.evaluate_condition``
    and the measurement path pass the measurement time).
    """
    t = type(result)
    if t is list:
        for x in result:
            if type(x) is not float:
                nature = nature_of_result(result)
                result = normalize_result(result)
                break
        else:
            nature = _FLOAT_ARRAY
    elif t is float:
        nature = v.FLOAT
    else:
        nature = nature_of_result(result)
        result = normalize_result(result)
    fn = _compile(expression, nature)
    if isinstance(fn, ExpressionError):
        raise fn.copy()
    try:
        out = fn(Context(result, now))
    except ExpressionError as exc:
        raise exc.located(expression) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply", expression) from None
    except _PANICS as exc:
        raise ExpressionError(f"runtime error: {exc}", expression) from None
    if type(out) is not bool:
        raise ExpressionError(f"expected bool, but got {v.go_type(out)}", expression)
    return out
