"""AST -> Python closures, with expr's compile-time type check folded in.

Argo compiles each condition with the concrete ``result`` in the environment, so expr's
checker rejects e.g. ``result > 1`` on a vector even inside a branch that would never run.
We mirror that: every node is compiled together with its static type (a Go type name, or
None when unknown), mismatches of two known types are compile errors, and unknown types are
checked again at run time by :mod:`ops`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyzer.core.expr import ast, ops
from analyzer.core.expr import values as v
from analyzer.core.expr.builtins import BUILTINS, Context
from analyzer.core.expr.errors import ExpressionError


class Env:
    __slots__ = ("ctx", "elem", "index")

    def __init__(self, ctx: Context, elem: Any = None, index: int = 0) -> None:
        self.ctx = ctx
        self.elem = elem
        self.index = index


Fn = Callable[[Env], Any]
Compiled = tuple[Fn, v.StaticType]

_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": ops.add, "-": ops.sub, "*": ops.mul, "/": ops.div, "%": ops.mod, "**": ops.power,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"<": ops.lt, ">": ops.gt, "<=": ops.le, ">=": ops.ge}
_ORDERED = {v.INT, v.FLOAT, v.STRING, v.TIME, v.DURATION}


class Compiler:
    def __init__(self, source: str, result_type: v.StaticType) -> None:
        self.source = source
        self.result_type = result_type

    def fail(self, node: ast.Node, message: str) -> ExpressionError:
        return ExpressionError(message, self.source, node.pos + 1)

    def compile(self, node: ast.Node) -> Compiled:
        method = getattr(self, "c_" + type(node).__name__)
        result: Compiled = method(node)
        return result

    def c_Const(self, node: ast.Const) -> Compiled:
        value = node.value
        return (lambda env: value), (v.go_type(value) if value is not None else v.NIL)

    def c_Name(self, node: ast.Name) -> Compiled:
        if node.name == "result":
            return (lambda env: env.ctx.result), self.result_type
        raise self.fail(node, f"unknown name {node.name}")

    def c_Pointer(self, node: ast.Pointer) -> Compiled:
        if node.name == "#":
            return (lambda env: env.elem), None
        if node.name == "#index":
            return (lambda env: env.index), v.INT
        raise self.fail(node, f"unknown pointer {node.name}")

    def c_Array(self, node: ast.Array) -> Compiled:
        items = [self.compile(i)[0] for i in node.items]
        return (lambda env: [f(env) for f in items]), v.ANY_ARRAY

    def c_MapLit(self, node: ast.MapLit) -> Compiled:
        pairs = [(self.compile(k)[0], self.compile(val)[0]) for k, val in node.pairs]
        return (lambda env: {k(env): f(env) for k, f in pairs}), v.MAP

    def c_Closure(self, node: ast.Closure) -> Compiled:
        return self.compile(node.body)

    def c_Unary(self, node: ast.Unary) -> Compiled:
        f, t = self.compile(node.operand)
        if node.op == "!":
            if t is not None and t != v.BOOL:
                raise self.fail(node, f"invalid operation: ! (mismatched type {t})")
            return (lambda env: not ops.need_bool("!", f(env))), v.BOOL
        if t is not None and t not in v.NUMERIC and t != v.DURATION:
            raise self.fail(node, f"invalid operation: {node.op} (mismatched type {t})")
        if node.op == "-":
            return (lambda env: ops.negate(f(env))), t
        return (lambda env: ops.plus(f(env))), t

    def c_Conditional(self, node: ast.Conditional) -> Compiled:
        c, ct = self.compile(node.cond)
        a, at = self.compile(node.then)
        b, bt = self.compile(node.other)
        if node.then is node.cond:
            # "a ?: b" keeps a when it is truthy (non-nil, non-zero, non-empty)
            return (lambda env: _elvis(c(env), b, env)), None
        if ct is not None and ct != v.BOOL:
            raise self.fail(node, f"non-bool expression (type {ct}) used as condition")

        def cond(env: Env) -> Any:
            test = c(env)
            if type(test) is not bool:
                raise ExpressionError(f"non-bool expression (type {v.go_type(test)}) used as condition")
            return a(env) if test else b(env)
        return cond, (at if at == bt else None)

    def c_Binary(self, node: ast.Binary) -> Compiled:
        op = node.op
        lf, lt = self.compile(node.left)
        rf, rt = self.compile(node.right)
        known = lt is not None and rt is not None and lt != v.NIL and rt != v.NIL

        def mismatch() -> ExpressionError:
            return self.fail(node, f"invalid operation: {op} (mismatched types {lt} and {rt})")

        if op in ("&&", "||"):
            for t in (lt, rt):
                if t is not None and t != v.BOOL:
                    raise mismatch()
            if op == "&&":
                return (lambda env: ops.need_bool(op, lf(env)) and ops.need_bool(op, rf(env))), v.BOOL
            return (lambda env: ops.need_bool(op, lf(env)) or ops.need_bool(op, rf(env))), v.BOOL
        if op in ("==", "!="):
            if known and lt != rt and not (lt in v.NUMERIC and rt in v.NUMERIC) \
                    and not (v.is_array(lt) and v.is_array(rt)):
                raise mismatch()
            if op == "==":
                return (lambda env: v.equal(lf(env), rf(env))), v.BOOL
            return (lambda env: not v.equal(lf(env), rf(env))), v.BOOL
        if op in _COMPARE:
            if known and not (lt in v.NUMERIC and rt in v.NUMERIC) and not (lt == rt and lt in _ORDERED):
                raise mismatch()
            if lt in v.NUMERIC and rt in v.NUMERIC:
                return _fast_compare(op, lf, rf), v.BOOL
            cmp = _COMPARE[op]
            return (lambda env: cmp(lf(env), rf(env))), v.BOOL
        if op in _ARITH:
            return self._arith(node, lf, lt, rf, rt, known, mismatch)
        if op == "in":
            if rt is not None and rt != v.NIL and not v.is_array(rt) and rt != v.MAP:
                raise mismatch()
            return (lambda env: ops.contains_in(lf(env), rf(env))), v.BOOL
        if op in ("contains", "startsWith", "endsWith", "matches"):
            if (lt is not None and lt != v.STRING) or (rt is not None and rt != v.STRING):
                raise mismatch()
            if op == "matches" and isinstance(node.right, ast.Const) and isinstance(node.right.value, str):
                try:
                    ops.regex(node.right.value)
                except ExpressionError as exc:
                    raise self.fail(node.right, exc.message) from None
            return (lambda env: ops.string_op(op, lf(env), rf(env))), v.BOOL
        if op == "..":
            if known and (lt != v.INT or rt != v.INT):
                raise mismatch()
            return (lambda env: ops.make_range(lf(env), rf(env))), v.ANY_ARRAY
        if op == "??":
            def coalesce(env: Env) -> Any:
                left = lf(env)
                return rf(env) if left is None else left
            return coalesce, (lt if lt == rt else None)
        raise self.fail(node, f"unknown operator {op}")

    def _arith(self, node: ast.Binary, lf: Fn, lt: v.StaticType, rf: Fn, rt: v.StaticType, known: bool,
               mismatch: Callable[[], ExpressionError]) -> Compiled:
        op = node.op
        fn = _ARITH[op]
        out: v.StaticType = None
        if known:
            nums = lt in v.NUMERIC and rt in v.NUMERIC
            if op == "%":
                if not (lt == v.INT and rt == v.INT):
                    raise mismatch()
                out = v.INT
            elif op in ("/", "**"):
                if not nums:
                    raise mismatch()
                out = v.FLOAT
            elif nums:
                out = v.INT if lt == rt == v.INT else v.FLOAT
            elif op == "+" and lt == rt == v.STRING:
                out = v.STRING
            elif {lt, rt} <= {v.TIME, v.DURATION} and op in ("+", "-"):
                out = v.DURATION if (op == "-" and lt == rt == v.TIME) or lt == rt == v.DURATION else v.TIME
            elif op == "*" and lt == v.DURATION and rt == v.INT:
                out = v.DURATION
            else:
                raise mismatch()
        elif op in ("/", "**"):
            out = v.FLOAT
        return (lambda env: fn(lf(env), rf(env))), out

    def c_Member(self, node: ast.Member) -> Compiled:
        of, ot = self.compile(node.obj)
        kf, kt = self.compile(node.prop)
        if ot is not None and ot != v.NIL:
            if ot in (v.INT, v.FLOAT, v.BOOL, v.TIME, v.DURATION):
                key = node.prop.value if isinstance(node.prop, ast.Const) else "index"
                raise self.fail(node, f"type {ot}[{kt or 'interface {}'}] is undefined"
                                if not isinstance(node.prop, ast.Const) or not isinstance(key, str)
                                else f"type {ot} has no field {key}")
            if (v.is_array(ot) or ot == v.STRING) and kt is not None and kt != v.INT and kt != v.NIL:
                raise self.fail(node, f"array elements can only be selected using an integer (got {kt})")
        out = v.elem_type(ot) if v.is_array(ot) else (v.STRING if ot == v.STRING else None)
        if isinstance(node.prop, ast.Const):
            key_value = node.prop.value
            if node.optional:
                return (lambda env: _optional_fetch(of(env), key_value)), out
            return (lambda env: ops.fetch(of(env), key_value)), out
        if node.optional:
            return (lambda env: _optional_fetch(of(env), kf(env))), out
        return (lambda env: ops.fetch(of(env), kf(env))), out

    def c_Slice(self, node: ast.Slice) -> Compiled:
        of, ot = self.compile(node.obj)
        lo = self.compile(node.lo)[0] if node.lo is not None else None
        hi = self.compile(node.hi)[0] if node.hi is not None else None
        return (lambda env: ops.slice_of(of(env), lo(env) if lo else None, hi(env) if hi else None)), ot

    def c_Call(self, node: ast.Call) -> Compiled:
        spec = BUILTINS.get(node.name)
        if spec is None:
            raise self.fail(node, f"unknown name {node.name}")
        n = len(node.args)
        if n < spec.min_args:
            raise self.fail(node, f"not enough arguments to call {node.name}")
        if n > spec.max_args:
            raise self.fail(node, f"too many arguments to call {node.name}")
        compiled = [self.compile(a) for a in node.args]
        types = [t for _, t in compiled]
        if spec.float_arg and types[0] is not None and types[0] not in v.NUMERIC:
            raise self.fail(node, f"cannot use {types[0]} as argument (type float64) to call {node.name}")
        fns: list[Fn] = []
        for arg, (f, _) in zip(node.args, compiled, strict=True):
            fns.append(_predicate(f) if isinstance(arg, ast.Closure) else f)
        impl = spec.impl
        return (lambda env: impl(env.ctx, [f(env) for f in fns])), spec.returns(types, self.result_type)


def _predicate(body: Fn) -> Fn:
    """A closure argument evaluates to a Python callable taking (element, index)."""
    def bind(env: Env) -> Callable[[Any, int], Any]:
        ctx = env.ctx
        return lambda elem, index: body(Env(ctx, elem, index))
    return bind


def _optional_fetch(obj: Any, key: Any) -> Any:
    return None if obj is None else ops.fetch(obj, key)


def _elvis(value: Any, other: Fn, env: Env) -> Any:
    if value is None or value is False or value == 0 or value == "" or value == [] or value == {}:
        return other(env)
    return value


def _fast_compare(op: str, lf: Fn, rf: Fn) -> Fn:
    # Both sides are statically numbers: Python's comparison matches Go's (NaN compares false).
    if op == "<":
        return lambda env: lf(env) < rf(env)
    if op == ">":
        return lambda env: lf(env) > rf(env)
    if op == "<=":
        return lambda env: lf(env) <= rf(env)
    return lambda env: lf(env) >= rf(env)
