"""Public face of the expression language: compile once, evaluate many times.

``evaluate_condition`` is the stable API other tools call. Values follow Go: numbers coming
from providers are float64, so Python ints inside ``result`` are turned into floats first (a
JSON ``1`` is ``1.0`` in Argo); integer literals in the expression stay ints.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from analyzer.core.expr import ast
from analyzer.core.expr import values as v
from analyzer.core.expr.builtins import Context
from analyzer.core.expr.compiler import Compiler, Env, Fn
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.parser import parse

__all__ = ["ExpressionError", "check", "evaluate", "evaluate_condition", "normalize_result"]


@lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Node:
    return parse(source)


@lru_cache(maxsize=8192)
def _compile(source: str, result_type: v.StaticType) -> Fn:
    try:
        node = _parse(source)
    except ExpressionError as exc:
        raise exc.located(source) from None
    fn, _ = Compiler(source, result_type).compile(node)
    return fn


def compile_for(source: str, result: Any) -> Fn:
    """The compiled program for ``source`` given the shape of ``result`` (cached)."""
    return _compile(source, v.static_type_of_result(result))


def check(source: str) -> None:
    """Syntax and name check without a result (for lint). Raises ExpressionError."""
    _compile(source, None)


def normalize_result(value: Any) -> Any:
    """Give a Python value the types Argo's providers produce (ints become float64)."""
    t = type(value)
    if t is float or t is str or t is bool or value is None:
        return value
    if t is int:
        return float(value)
    if t is list or t is tuple:
        if all(type(x) is float for x in value):
            return value if t is list else list(value)
        return [normalize_result(x) for x in value]
    if isinstance(value, Mapping):
        return {str(k): normalize_result(x) for k, x in value.items()}
    return value


def evaluate(source: str, env: Mapping[str, Any] | None = None, *, now: datetime | None = None) -> Any:
    """Evaluate an expression to any value. ``env`` may bind ``result``; ``now`` backs ``now()``."""
    result = (env or {}).get("result")
    fn = compile_for(source, result)
    try:
        return fn(Env(Context(result, now)))
    except ExpressionError as exc:
        raise exc.located(source) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply", source) from None


def evaluate_condition(expression: str, result: Any) -> bool:
    """Evaluate an Argo success/failure condition against a provider result.

    Raises :class:`ExpressionError` on any compile or evaluation error, a non-bool outcome
    included (``expected bool, but got <type>``).
    """
    result = normalize_result(result)
    fn = compile_for(expression, result)
    try:
        out = fn(Env(Context(result, None)))
    except ExpressionError as exc:
        raise exc.located(expression) from None
    except RecursionError:
        raise ExpressionError("expression nested too deeply", expression) from None
    if type(out) is not bool:
        raise ExpressionError(f"expected bool, but got {v.go_type(out) if out is not None else 'nil'}", expression)
    return out
