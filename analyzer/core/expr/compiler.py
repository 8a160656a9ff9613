"""AST -> Python closures, with expr-lang's checker and optimizer folded in.

Argo compiles each condition with the concrete ``result`` in the environment (a map env, so
``result`` has the nature of its value), so expr's checker rejects e.g. ``result > 1`` on a
vector even inside a branch that would never run, and a nil ``result`` (nature nil, not
unknown) fails ``result < 5``, ``result.x`` or ``!result`` at compile time. We mirror that: every
node is compiled together with its :class:`~analyzer.core.expr.values.Nature` (checker/checker.go
rules), mismatches are compile errors, unknown natures are checked again at run time by
:mod:`ops` (vm/runtime rules).

After checking, expr's optimizer runs; the parts with observable effects are mirrored: constant
folding (``x && false`` is ``false`` without evaluating ``x``, ``1 % 0`` is a compile error),
``x in ["a", "b"]`` becoming a map[string] lookup (a non-string ``x`` is then an error),
``count(...) > 0`` becoming ``any(...)``, ``filter(...)[0]`` becoming ``find``, ``sum([a, b])``
becoming ``a + b`` and ``x in 1..9`` for an int ``x`` becoming two comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyzer.core.expr import ast, ops
from analyzer.core.expr import values as v
from analyzer.core.expr.builtins import (
    ENV_FUNCS,
    IMPL,
    TYPES,
    VALIDATE,
    Context,
    Scope,
    SignatureError,
    get,
    sort_values,
)
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.parser import BUILTIN_NAMES, PREDICATES
from analyzer.core.expr.values import Nature

Env = Context
Fn = Callable[[Context], Any]


class _NoConst:
    def __repr__(self) -> str:
        return "NOCONST"


NOCONST: Any = _NoConst()
ENV_NAMES = frozenset({"result", *ENV_FUNCS})


class _ChainNil(Exception):
    """A ``?.`` met nil: the enclosing optional chain evaluates to nil."""


_CHAIN_NIL = _ChainNil()


class Code:
    __slots__ = ("fn", "nat", "const")

    def __init__(self, fn: Fn, nat: Nature, const: Any = NOCONST) -> None:
        self.fn = fn
        self.nat = nat
        self.const = const


def _const(value: Any, nat: Nature) -> Code:
    return Code(lambda env: value, nat, value)


def _is_num_const(c: Any) -> bool:
    t = type(c)
    return t is int or t is float


def _float_leaves(node: ast.Node) -> ast.Node:
    """expr's traverseAndReplaceIntegerNodesWithFloatNodes (int argument for a float64 param)."""
    if isinstance(node, ast.Const) and type(node.value) is int:
        return ast.Const(node.pos, float(node.value))
    if isinstance(node, ast.Unary):
        return ast.Unary(node.pos, node.op, _float_leaves(node.operand))
    if isinstance(node, ast.Binary) and node.op in ("+", "-", "*"):
        return ast.Binary(node.pos, node.op, _float_leaves(node.left), _float_leaves(node.right))
    return node


_BOOL_PREDICATES = {"all", "none", "any", "one", "filter", "count", "find", "findIndex", "findLast", "findLastIndex"}


class Compiler:
    def __init__(self, source: str, result_nature: Nature) -> None:
        self.source = source
        self.result_nature = result_nature
        self.scopes: list[tuple[Nature, dict[str, Nature]]] = []
        self.vars: list[tuple[str, int, Nature]] = []
        self.var_ids = 0

    def fail(self, node: ast.Node, message: str) -> ExpressionError:
        return ExpressionError(message, self.source, node.pos + 1)

    def compile(self, node: ast.Node) -> Code:
        method: Callable[[Any], Code] = getattr(self, "c_" + type(node).__name__)
        return method(node)

    # -- leaves -----------------------------------------------------------------------------
    def c_Const(self, node: ast.Const) -> Code:
        value = node.value
        t = type(value)
        if t is bool:
            return _const(value, v.BOOL)
        if t is int:
            return _const(value, v.INT)
        if t is float:
            return _const(value, v.FLOAT)
        if t is str:
            return _const(value, v.STRING)
        if t is bytes:
            return Code(lambda env: value, v.BYTES)
        return Code(lambda env: None, v.NIL)

    def c_Name(self, node: ast.Name) -> Code:
        name = node.name
        for var_name, key, nat in reversed(self.vars):
            if var_name == name:
                return Code(_var_reader(key), nat)
        if name == "result":
            return Code(lambda env: env.result, self.result_nature)
        if name == "$env":
            return Code(_env_map, v.UNKNOWN)
        if name in ENV_FUNCS:
            impl = ENV_FUNCS[name][2]
            return Code(lambda env: (lambda *a: impl(env, list(a))), v.FUNC)
        if name in BUILTIN_NAMES:
            # the checker knows builtins by name, but Argo's env map has no such key: nil
            return Code(lambda env: None, v.FUNC)
        raise self.fail(node, f"unknown name {name}")

    def c_Pointer(self, node: ast.Pointer) -> Code:
        if not self.scopes:
            raise self.fail(node, "cannot use pointer accessor outside predicate")
        coll, names = self.scopes[-1]
        if node.name == "":
            if coll.kind == "unknown":
                nat = v.UNKNOWN
            elif coll.kind == "array":
                nat = v.elem_of(coll)
            else:
                raise self.fail(node, f"cannot use {coll} as array")
            return Code(lambda env: env.scope.item, nat)  # type: ignore[union-attr]
        if node.name in names:
            if node.name == "index":
                return Code(lambda env: env.scope.index, names["index"])  # type: ignore[union-attr]
            return Code(lambda env: env.scope.acc, names[node.name])  # type: ignore[union-attr]
        raise self.fail(node, f"unknown pointer #{node.name}")

    # -- operators --------------------------------------------------------------------------
    def c_Unary(self, node: ast.Unary) -> Code:
        c = self.compile(node.operand)
        f, nat = c.fn, c.nat
        if node.op == "!":
            if nat.kind not in ("bool", "unknown"):
                raise self.fail(node, f"invalid operation: ! (mismatched type {nat})")
            if type(c.const) is bool:
                return _const(not c.const, v.BOOL)
            if nat.kind == "bool":
                return Code(lambda env: not f(env), v.BOOL)
            return Code(lambda env: not ops.need_bool(f(env)), v.BOOL)
        if not v.is_number(nat) and nat.kind != "unknown":
            raise self.fail(node, f"invalid operation: {node.op} (mismatched type {nat})")
        out = nat if v.is_number(nat) else v.UNKNOWN
        if _is_num_const(c.const):
            value = c.const if node.op == "+" else (ops.wrap(-c.const) if type(c.const) is int else -c.const)
            return _const(value, out)
        if node.op == "+":
            return Code(f, out)
        return Code(lambda env: ops.negate(f(env)), out)

    def c_Binary(self, node: ast.Binary) -> Code:
        lc = self.compile(node.left)
        rc = self.compile(node.right)
        out = self._check_binary(node, lc.nat, rc.nat)
        folded = self._fold(node, lc, rc, out)
        if folded is not None:
            return folded
        special = self._optimize_binary(node, lc, rc)
        if special is not None:
            return special
        return Code(self._binary_fn(node, lc, rc), out)

    def _mismatch(self, node: ast.Binary, ln: Nature, rn: Nature) -> ExpressionError:
        return self.fail(node, f"invalid operation: {node.op} (mismatched types {ln} and {rn})")

    def _check_binary(self, node: ast.Binary, ln: Nature, rn: Nature) -> Nature:
        op = node.op
        lk, rk = ln.kind, rn.kind
        num_l, num_r = v.is_number(ln), v.is_number(rn)
        if op in ("==", "!="):
            if v.comparable(ln, rn):
                return v.BOOL
        elif op in ("&&", "||"):
            if (lk == "bool" and rk == "bool") or v.maybe(ln, rn, "bool"):
                return v.BOOL
        elif op in ("<", ">", "<=", ">="):
            if (num_l and num_r) or (lk == rk and lk in ("string", "time", "duration")) \
                    or v.maybe(ln, rn, "int", "float", "string", "time", "duration"):
                return v.BOOL
        elif op == "-":
            if num_l and num_r:
                return v.INT if lk == rk == "int" else v.FLOAT
            if lk == "time" and rk == "time":
                return v.DURATION
            if lk == "time" and rk == "duration":
                return v.TIME
            if lk == "duration" and rk == "duration":
                return v.DURATION
            if v.maybe(ln, rn, "int", "float", "time", "duration"):
                return v.UNKNOWN
        elif op == "*":
            if num_l and num_r:
                return v.INT if lk == rk == "int" else v.FLOAT
            if (num_l or lk == "duration") and (num_r or rk == "duration"):
                return v.DURATION
            if v.maybe(ln, rn, "int", "float", "duration"):
                return v.UNKNOWN
        elif op in ("/", "**"):
            if (num_l and num_r) or v.maybe(ln, rn, "int", "float"):
                return v.FLOAT
        elif op == "%":
            if (lk == "int" and rk == "int") or v.maybe(ln, rn, "int"):
                return v.INT
        elif op == "+":
            if num_l and num_r:
                return v.INT if lk == rk == "int" else v.FLOAT
            if lk == "string" and rk == "string":
                return v.STRING
            if (lk, rk) in (("time", "duration"), ("duration", "time")):
                return v.TIME
            if lk == "duration" and rk == "duration":
                return v.DURATION
            if v.maybe(ln, rn, "int", "float", "string", "time", "duration"):
                return v.UNKNOWN
        elif op == "in":
            if rk == "map":
                key = v.STRING if rn.name.startswith("map[string]") else v.UNKNOWN
                if lk != "unknown" and not v.assignable(ln, key):
                    raise self.fail(node, f"cannot use {ln} as type {key} in map key")
                return v.BOOL
            if rk == "array":
                elem = v.elem_of(rn)
                if not v.comparable(ln, elem):
                    raise self.fail(node, f"cannot use {ln} as type {elem} in array")
                return v.BOOL
            if lk == "unknown" and rk in ("string", "array", "map"):
                return v.BOOL
            if rk == "unknown":
                return v.BOOL
        elif op == "matches":
            if isinstance(node.right, ast.Const) and type(node.right.value) is str:
                try:
                    ops.regex(node.right.value)
                except ExpressionError as exc:
                    raise self.fail(node, exc.message) from None
            if (lk == "string" or ln.name == "[]uint8") and rk == "string":
                return v.BOOL
            if v.maybe(ln, rn, "string"):
                return v.BOOL
        elif op in ("contains", "startsWith", "endsWith"):
            if (lk == "string" and rk == "string") or v.maybe(ln, rn, "string"):
                return v.BOOL
        elif op == "..":
            if (lk == "int" and rk == "int") or v.maybe(ln, rn, "int"):
                return v.INT_RANGE
        elif op == "??":
            if lk == "nil" and rk != "nil":
                return rn
            if lk != "nil" and rk == "nil":
                return ln
            if lk == "nil" and rk == "nil":
                return v.NIL
            if v.assignable(rn, ln):
                return ln
            return v.UNKNOWN
        else:
            raise self.fail(node, f"unknown operator ({op})")
        raise self._mismatch(node, ln, rn)

    def _fold(self, node: ast.Binary, lc: Code, rc: Code, out: Nature) -> Code | None:
        """expr's optimizer/fold.go on literal operands."""
        op, a, b = node.op, lc.const, rc.const
        # "true && x" becomes x, but keeps the type the checker gave the && node (bool)
        if op == "&&":
            if a is True:
                return Code(rc.fn, out, rc.const)
            if b is True:
                return Code(lc.fn, out, lc.const)
            if a is False or b is False:
                return _const(False, v.BOOL)
            return None
        if op == "||":
            if a is False:
                return Code(rc.fn, out, rc.const)
            if b is False:
                return Code(lc.fn, out, lc.const)
            if a is True or b is True:
                return _const(True, v.BOOL)
            return None
        if a is NOCONST or b is NOCONST:
            return None
        ta, tb = type(a), type(b)
        if op == "==":
            if (ta is tb) and ta in (int, str, bool):
                return _const(a == b, v.BOOL)
            return None
        if op == "%" and ta is int and tb is int:
            if b == 0:
                raise self.fail(node, "integer divide by zero")
            return _const(ops.mod(a, b), v.INT)
        if op == "+" and ta is str and tb is str:
            return _const(a + b, v.STRING)
        if not (_is_num_const(a) and _is_num_const(b)):
            return None
        if op == "/":
            return _const(ops.div(a, b), v.FLOAT)
        if op == "**":
            return _const(ops.go_pow(float(a), float(b)), v.FLOAT)
        if op in ("+", "-", "*"):
            fn = {"+": ops.add, "-": ops.sub, "*": ops.mul}[op]
            value = fn(a, b)
            return _const(value, v.INT if type(value) is int else v.FLOAT)
        return None

    def _optimize_binary(self, node: ast.Binary, lc: Code, rc: Code) -> Code | None:
        op = node.op
        if op == "in":
            right = node.right
            # optimizer/in_array.go: a literal array of ints (for an int x) or of strings (for
            # anything else) becomes a map lookup: nil looks up the zero value, other types fail
            if isinstance(right, ast.Array) and right.items:
                consts: list[Any] = [i.value if isinstance(i, ast.Const) else None for i in right.items]
                lf = lc.fn
                if lc.nat.name == "int" and all(type(c) is int for c in consts):
                    ints: frozenset[int] = frozenset(consts)
                    return Code(lambda env: ops.in_int_set(lf(env), ints), v.BOOL)
                if lc.nat.name != "int" and all(type(c) is str for c in consts):
                    options: frozenset[str] = frozenset(consts)
                    return Code(lambda env: ops.in_string_set(lf(env), options), v.BOOL)
            # optimizer/in_range.go: int x in a..b with literal bounds
            if isinstance(right, ast.Binary) and right.op == ".." and lc.nat.name == "int":
                lo_c, hi_c = self.compile(right.left).const, self.compile(right.right).const
                if type(lo_c) is int and type(hi_c) is int:
                    lf, lo, hi = lc.fn, lo_c, hi_c
                    return Code(lambda env: lo <= lf(env) <= hi, v.BOOL)
            return None
        if op in ("&&", "||"):
            return self._combine_predicates(node)
        if op in (">", ">=", "<", "<=") and isinstance(node.left, ast.Builtin) and node.left.name == "count" \
                and len(node.left.args) == 2 and type(rc.const) is int:
            k = rc.const
            if (op == ">" and k == 0) or (op == ">=" and k == 1):
                return self._predicate_builtin(node.left, "any")
            if k >= 0:
                threshold = {">": k + 1, ">=": k, "<": k, "<=": k + 1}[op]
                if threshold > 1:
                    counted = self._predicate_builtin(node.left, "count", threshold=threshold)
                    return Code(self._binary_fn(node, counted, rc), v.BOOL)
        return None

    def _combine_predicates(self, node: ast.Binary) -> Code | None:
        """optimizer/predicate_combination.go: all(x, p) && all(x, q) is all(x, p && q); likewise
        any(...) || any(...) and none(...) && none(...) (as none(x, p || q))."""
        left, right = node.left, node.right
        if not (isinstance(left, ast.Builtin) and isinstance(right, ast.Builtin) and left.name == right.name):
            return None
        combined = {("all", "&&"): "&&", ("any", "||"): "||", ("none", "&&"): "||"}.get((left.name, node.op))
        if combined is None or len(left.args) != 2 or len(right.args) != 2 \
                or not _same_tree(left.args[0], right.args[0]):
            return None
        lp, rp = left.args[1], right.args[1]
        if not (isinstance(lp, ast.Predicate) and isinstance(rp, ast.Predicate)):
            return None
        if self.compile(left.args[0]).nat != self.compile(right.args[0]).nat:
            return None
        body = ast.Binary(node.pos, combined, lp.body, rp.body)
        merged = ast.Builtin(left.pos, left.name, (left.args[0], ast.Predicate(lp.pos, body)))
        return self._predicate_builtin(merged, left.name)

    def _binary_fn(self, node: ast.Binary, lc: Code, rc: Code) -> Fn:
        op = node.op
        lf, rf = lc.fn, rc.fn
        lk, rk = lc.nat.kind, rc.nat.kind
        nums = lk in v.NUMBER_KINDS and rk in v.NUMBER_KINDS
        if op == "==" or op == "!=":
            ln, rn = lc.nat.name, rc.nat.name
            if (ln == rn == "int") or (ln == rn == "string"):
                # OpEqualInt / OpEqualString: both sides are type-asserted at run time
                want = int if ln == "int" else str
                go_name = ln

                def strict_eq(env: Context) -> bool:
                    a = lf(env)
                    b = rf(env)
                    if type(a) is not want:
                        raise ops.interface_conversion(a, go_name)
                    if type(b) is not want:
                        raise ops.interface_conversion(b, go_name)
                    return bool(a == b)
                if op == "==":
                    return strict_eq
                return lambda env: not strict_eq(env)
            if nums or (lk == rk == "bool"):
                if op == "==":
                    return lambda env: lf(env) == rf(env)
                return lambda env: lf(env) != rf(env)
            eq = v.equal
            if op == "==":
                return lambda env: eq(lf(env), rf(env))
            return lambda env: not eq(lf(env), rf(env))
        if op == "&&":
            if lk == "bool":
                return lambda env: lf(env) and rf(env)
            return lambda env: rf(env) if ops.need_bool(lf(env)) else False
        if op == "||":
            if lk == "bool":
                return lambda env: lf(env) or rf(env)
            return lambda env: True if ops.need_bool(lf(env)) else rf(env)
        if op in ("<", ">", "<=", ">="):
            if nums or (lk == rk and lk in ("string", "duration")):
                return _fast_compare(op, lc, rc)
            cmp = {"<": ops.lt, ">": ops.gt, "<=": ops.le, ">=": ops.ge}[op]
            return lambda env: cmp(lf(env), rf(env))
        if op in ("+", "-", "*") and lk == rk == "float":
            if op == "+":
                return lambda env: lf(env) + rf(env)
            if op == "-":
                return lambda env: lf(env) - rf(env)
            return lambda env: lf(env) * rf(env)
        arith = {"+": ops.add, "-": ops.sub, "*": ops.mul, "/": ops.div, "%": ops.mod, "**": ops.power}
        if op in arith:
            fn = arith[op]
            return lambda env: fn(lf(env), rf(env))
        if op == "in":
            return lambda env: ops.contains_in(lf(env), rf(env))
        if op == "matches":
            if isinstance(node.right, ast.Const) and type(node.right.value) is str:
                pattern = ops.regex(node.right.value)

                def match_const(env: Context) -> bool:
                    a = lf(env)
                    if a is None:
                        return False
                    if type(a) is str:
                        return pattern.search(a) is not None
                    return ops.matches(a, node.right.value)  # type: ignore[attr-defined]
                return match_const
            return lambda env: ops.matches(lf(env), rf(env))
        if op in ("contains", "startsWith", "endsWith"):
            return lambda env: ops.string_op(op, lf(env), rf(env))
        if op == "..":
            return lambda env: ops.make_range(lf(env), rf(env))
        if op == "??":
            def coalesce(env: Context) -> Any:
                left = lf(env)
                return rf(env) if left is None else left
            return coalesce
        raise self.fail(node, f"unknown operator ({op})")

    def c_Conditional(self, node: ast.Conditional) -> Code:
        cc = self.compile(node.cond)
        if cc.nat.kind not in ("bool", "unknown"):
            raise self.fail(node.cond, f"non-bool expression (type {cc.nat}) used as condition")
        tc = cc if node.elvis else self.compile(node.then)
        oc = self.compile(node.other)
        t1, t2 = tc.nat, oc.nat
        if t1.kind == "nil" and t2.kind != "nil":
            nat = t2
        elif t1.kind != "nil" and t2.kind == "nil":
            nat = t1
        elif t1.kind == "nil":
            nat = v.NIL
        elif v.assignable(t1, t2):
            nat = t1
            if t1.kind == "array" and t2.kind == "array":
                e1, e2 = v.elem_of(t1), v.elem_of(t2)
                if not (v.assignable(e1, e2) and v.assignable(e2, e1)):
                    nat = v.ANY_ARRAY
        else:
            nat = v.UNKNOWN
        cf, of = cc.fn, oc.fn
        if node.elvis:
            return Code(lambda env: True if ops.need_bool(cf(env)) else of(env), nat)
        tf = tc.fn
        return Code(lambda env: tf(env) if ops.need_bool(cf(env)) else of(env), nat)

    # -- member access ----------------------------------------------------------------------
    def c_Chain(self, node: ast.Chain) -> Code:
        inner = self.compile(node.node)
        f = inner.fn

        def chain(env: Context) -> Any:
            try:
                return f(env)
            except _ChainNil:
                return None
        return Code(chain, inner.nat)

    def c_Member(self, node: ast.Member) -> Code:
        if isinstance(node.obj, ast.Name) and node.obj.name == "$env" and not self._is_var("$env"):
            return self._env_member(node)
        if isinstance(node.obj, ast.Builtin) and node.obj.name == "filter" and len(node.obj.args) == 2 \
                and not node.optional:
            pc = self.compile(node.prop)
            if pc.const in (0, -1) and type(pc.const) is int:
                self.compile(node.obj)  # the checker sees the original expression
                # optimizer/filter_first.go, filter_last.go
                return self._predicate_builtin(node.obj, "find" if pc.const == 0 else "findLast", throws=True)
        oc = self.compile(node.obj)
        pc = self.compile(node.prop)
        base, prop = oc.nat, pc.nat
        name = node.prop.value if isinstance(node.prop, ast.Const) and type(node.prop.value) is str else None
        out = v.UNKNOWN
        if base.kind != "unknown":
            if name is not None and base.kind == "nil":
                raise self.fail(node, f"type nil has no field {name}")
            if base.kind == "map":
                key = v.STRING if base.name.startswith("map[string]") else v.UNKNOWN
                if not v.assignable(prop, key) and prop.kind != "unknown":
                    raise self.fail(node.prop, f"cannot use {prop} to get an element from {base}")
                out = v.elem_of(base)
            elif base.kind == "array":
                if prop.kind != "int" and prop.kind != "unknown":
                    raise self.fail(node.prop, f"array elements can only be selected using an integer (got {prop})")
                out = v.elem_of(base)
            elif name is not None:
                what = "method" if node.method else "field"
                raise self.fail(node, f"type {base} has no {what} {name}")
            else:
                raise self.fail(node, f"type {base}[{prop}] is undefined")
        of, kf = oc.fn, pc.fn
        if node.optional:
            def optional(env: Context) -> Any:
                obj = of(env)
                if obj is None:
                    raise _CHAIN_NIL
                return ops.fetch(obj, kf(env))
            return Code(optional, out)
        key_const = pc.const
        if base.kind == "array" and base.name != "[]uint8" and type(key_const) is int:
            k = key_const

            def index(env: Context) -> Any:
                seq = of(env)
                try:
                    return seq[k]
                except IndexError:
                    n = len(seq)
                    raise ExpressionError(f"index out of range: {k + n if k < 0 else k} (array length is {n})") \
                        from None
            return Code(index, out)
        if base.kind == "map" and type(key_const) is str:
            s = key_const
            return Code(lambda env: of(env).get(s), out)
        return Code(lambda env: ops.fetch(of(env), kf(env)), out)

    def _env_member(self, node: ast.Member) -> Code:
        if isinstance(node.prop, ast.Const) and type(node.prop.value) is str:
            name = node.prop.value
            if name in ENV_NAMES:
                return self.compile(ast.Name(node.pos, name))
            if node.optional:
                return Code(lambda env: None, v.UNKNOWN)
            raise self.fail(node, f"unknown name {name}")
        pc = self.compile(node.prop)
        kf = pc.fn
        return Code(lambda env: ops.fetch(_env_map(env), kf(env)), v.UNKNOWN)

    def c_Slice(self, node: ast.Slice) -> Code:
        oc = self.compile(node.obj)
        nat = oc.nat
        if nat.kind != "unknown" and nat.kind not in ("string", "array"):
            raise self.fail(node, f"cannot slice {nat}")
        lo = self.compile(node.lo) if node.lo is not None else None
        hi = self.compile(node.hi) if node.hi is not None else None
        for part, c in ((node.lo, lo), (node.hi, hi)):
            if part is not None and c is not None and c.nat.kind not in ("int", "unknown"):
                raise self.fail(part, f"non-integer slice index {c.nat}")
        of = oc.fn
        lf = lo.fn if lo is not None else None
        hf = hi.fn if hi is not None else None

        def slicer(env: Context) -> Any:
            obj = of(env)
            high = hf(env) if hf is not None else ops.length(obj)
            low = lf(env) if lf is not None else 0
            return ops.slice_of(obj, low, high)
        return Code(slicer, nat if nat.kind != "unknown" else v.UNKNOWN)

    # -- calls ------------------------------------------------------------------------------
    def c_Call(self, node: ast.Call) -> Code:
        callee = node.callee
        if isinstance(callee, ast.Member):
            return self._method_call(node, callee)
        assert isinstance(callee, ast.Name)
        name = callee.name
        if not self._is_var(name) and name in ENV_FUNCS:
            params, out, impl = ENV_FUNCS[name]
            fns, _ = self._check_arguments(name, params, out, node.args, node)
            return Code(_caller(impl, fns), out)
        if name == "$env" and not self._is_var(name):
            raise self.fail(node, "map[string]interface {} is not callable")
        cc = self.compile(callee)
        for arg in node.args:
            self.compile(arg)
        if cc.nat.kind == "unknown":
            cf = cc.fn

            def dynamic(env: Context) -> Any:
                value = cf(env)
                raise ExpressionError("invalid operation: cannot call nil" if value is None else
                                      f"invalid operation: cannot call non-function of type {v.go_type(value)}")
            return Code(dynamic, v.UNKNOWN)
        if cc.nat.kind == "nil":
            raise self.fail(node, f"{name} is nil; cannot call nil as function")
        raise self.fail(node, f"{cc.nat} is not callable")

    def _method_call(self, node: ast.Call, member: ast.Member) -> Code:
        oc = self.compile(member.obj)
        name = member.prop.value  # type: ignore[attr-defined]
        spec = _METHODS.get((oc.nat.kind, name))
        if spec is None:
            if oc.nat.kind == "nil":
                raise self.fail(member, f"type nil has no field {name}")
            raise self.fail(member, f"type {oc.nat} has no method {name}")
        params, out, impl = spec
        fns, _ = self._check_arguments(name, params, out, node.args, node)
        of = oc.fn
        return Code(lambda env: impl(of(env), *[f(env) for f in fns]), out)

    def _check_arguments(self, name: str, params: tuple[Nature, ...], out: Nature,
                         args: tuple[ast.Node, ...], node: ast.Node,
                         compiled: list[Code] | None = None) -> tuple[list[Fn], Nature]:
        """checker.checkArguments for a function with fixed parameters."""
        codes = compiled if compiled is not None else [self.compile(a) for a in args]
        if len(args) > len(params):
            raise self.fail(node, f"too many arguments to call {name}")
        if len(args) < len(params):
            raise self.fail(node, f"not enough arguments to call {name}")
        fns: list[Fn] = []
        for arg, code, param in zip(args, codes, params, strict=True):
            nat = code.nat
            if param.kind == "float" and nat.kind == "int":
                fns.append(self.compile(_float_leaves(arg)).fn)
                continue
            if param.kind == "int" and nat.kind == "int":
                fns.append(code.fn)
                continue
            if nat.kind == "nil":
                if param.kind in ("unknown", "location"):
                    fns.append(code.fn)
                    continue
                raise self.fail(arg, f"cannot use nil as argument (type {param}) to call {name}")
            if not v.assignable(nat, param) and nat.kind != "unknown":
                raise self.fail(arg, f"cannot use {nat} as argument (type {param}) to call {name} ")
            fns.append(code.fn)
        return fns, out

    def c_Builtin(self, node: ast.Builtin) -> Code:
        name = node.name
        if name in PREDICATES:
            if name == "sum" and len(node.args) == 1 and isinstance(node.args[0], ast.Array) \
                    and len(node.args[0].items) >= 2:
                checked = self._predicate_builtin(node, name)
                items = [self.compile(i) for i in node.args[0].items]
                if any(c.const is NOCONST for c in items):
                    # optimizer/sum_array.go (an all-literal array was already folded to a constant)
                    return Code(_sum_chain([c.fn for c in items]), checked.nat)
                return checked
            return self._predicate_builtin(node, name)
        if name in ("first", "last") and len(node.args) == 1 and isinstance(node.args[0], ast.Builtin) \
                and node.args[0].name == "filter" and len(node.args[0].args) == 2:
            self.compile(node.args[0])
            return self._predicate_builtin(node.args[0], "find" if name == "first" else "findLast")
        if name == "get":
            return self._builtin_get(node)
        codes = [self.compile(a) for a in node.args]
        if name in VALIDATE:
            try:
                out = VALIDATE[name]([c.nat for c in codes])
            except SignatureError as exc:
                raise self.fail(node, str(exc)) from None
            fns = [c.fn for c in codes]
        else:
            last: ExpressionError | None = None
            for params, result in TYPES[name]:
                try:
                    fns, out = self._check_arguments(name, params, result, node.args, node, codes)
                    break
                except ExpressionError as exc:
                    last = exc
            else:
                assert last is not None
                raise last
        return Code(_caller(IMPL[name], fns), out)

    def _builtin_get(self, node: ast.Builtin) -> Code:
        if len(node.args) != 2:
            for a in node.args:
                self.compile(a)
            raise self.fail(node, f"invalid number of arguments (expected 2, got {len(node.args)})")
        bc, pc = self.compile(node.args[0]), self.compile(node.args[1])
        base, prop = bc.nat, pc.nat
        out = v.UNKNOWN
        if base.kind == "array":
            if prop.kind not in ("int", "unknown"):
                raise self.fail(node.args[1], f"non-integer slice index {prop}")
            out = v.elem_of(base)
        elif base.kind == "map":
            key = v.STRING if base.name.startswith("map[string]") else v.UNKNOWN
            if not v.assignable(prop, key) and prop.kind != "unknown":
                raise self.fail(node.args[1], f"cannot use {prop} to get an element from {base}")
            out = v.elem_of(base)
        elif base.kind != "unknown":
            raise self.fail(node.args[0], f"type {base} does not support indexing")
        bf, pf = bc.fn, pc.fn
        return Code(lambda env: get(bf(env), pf(env)), out)

    def _predicate_builtin(self, node: ast.Builtin, name: str, threshold: int | None = None,
                           throws: bool = False) -> Code:
        args = node.args
        cc = self.compile(args[0])
        coll = cc.nat
        if coll.kind not in ("array", "unknown"):
            raise self.fail(args[0], f"builtin {node.name} takes only array (got {coll})")
        if name in ("count", "sum") and len(args) == 1:
            if name == "count":
                return Code(_count_items(cc.fn), v.INT)
            return Code(_sum_items(cc.fn, None), v.UNKNOWN if coll.kind == "unknown" else v.elem_of(coll))
        names: dict[str, Nature] = {}
        if name == "map":
            names = {"index": v.INT}
        elif name == "reduce":
            names = {"index": v.INT, "acc": v.UNKNOWN}
        self.scopes.append((coll, names))
        try:
            pred = args[1]
            body = self.compile(pred.body if isinstance(pred, ast.Predicate) else pred)
        finally:
            self.scopes.pop()
        bn = body.nat
        order: Code | None = None
        if name == "sortBy" and len(args) == 3:
            order = self.compile(args[2])
            if order.nat.kind not in ("string", "unknown"):
                raise self.fail(args[2], f"sortBy order argument must be a string (got {order.nat})")
        if name == "reduce" and len(args) == 3:
            order = self.compile(args[2])
        if bn.kind == "nil":
            what = "two input" if name == "reduce" else "one input"
            raise self.fail(args[1], f"predicate should has {what} and one output param")
        if name in _BOOL_PREDICATES and bn.kind not in ("bool", "unknown"):
            raise self.fail(args[1], f"predicate should return boolean (got {bn})")
        cf, bf = cc.fn, body.fn
        if name in ("all", "any", "none", "one"):
            return Code(_quantifier(name, cf, bf), v.BOOL)
        if name == "filter":
            return Code(_filter(cf, bf), v.ANY_ARRAY if coll.kind == "unknown" else v.array_of(v.elem_of(coll)))
        if name == "map":
            return Code(_map(cf, bf), v.array_of(bn))
        if name == "count":
            return Code(_count(cf, bf, threshold), v.INT)
        if name == "sum":
            return Code(_sum_items(cf, bf), bn)
        if name in ("find", "findLast", "findIndex", "findLastIndex"):
            out = v.INT if name.endswith("Index") else (v.UNKNOWN if coll.kind == "unknown" else v.elem_of(coll))
            return Code(_find(name, cf, bf, throws), out)
        if name == "groupBy":
            return Code(_group_by(cf, bf), v.GROUP_MAP)
        if name == "sortBy":
            of = order.fn if order is not None else None
            return Code(_sort_by(cf, bf, of), coll)
        # reduce
        init = order.fn if order is not None else None
        return Code(_reduce(cf, bf, init), bn)

    def c_Predicate(self, node: ast.Predicate) -> Code:
        return self.compile(node.body)

    # -- literals, variables ---------------------------------------------------------------
    def c_Array(self, node: ast.Array) -> Code:
        codes = [self.compile(i) for i in node.items]
        kinds = {c.nat.kind for c in codes}
        nat = v.array_of(codes[-1].nat) if len(kinds) == 1 else v.ANY_ARRAY if codes else v.ANY_ARRAY
        fns = [c.fn for c in codes]
        if codes and all(c.const is not NOCONST for c in codes):
            value = [c.const for c in codes]
            return Code(lambda env: value, nat)
        return Code(lambda env: [f(env) for f in fns], nat)

    def c_MapLit(self, node: ast.MapLit) -> Code:
        pairs = [(self.compile(k).fn, self.compile(x).fn) for k, x in node.pairs]

        def build(env: Context) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for kf, xf in pairs:
                key = kf(env)
                value = xf(env)
                if type(key) is not str:
                    raise ops.interface_conversion(key, "string")
                out[key] = value
            return out
        return Code(build, v.MAP)

    def _is_var(self, name: str) -> bool:
        return any(n == name for n, _, _ in self.vars)

    def c_Let(self, node: ast.Let) -> Code:
        name = node.name
        if name in ENV_NAMES:
            raise self.fail(node, f"cannot redeclare {name}")
        if name in BUILTIN_NAMES:
            raise self.fail(node, f"cannot redeclare builtin {name}")
        if self._is_var(name):
            raise self.fail(node, f"cannot redeclare variable {name}")
        value = self.compile(node.value)
        key = self.var_ids
        self.var_ids += 1
        self.vars.append((name, key, value.nat))
        try:
            body = self.compile(node.body)
        finally:
            self.vars.pop()
        vf, bf = value.fn, body.fn

        def let(env: Context) -> Any:
            if env.vars is None:
                env.vars = {}
            env.vars[key] = vf(env)
            return bf(env)
        return Code(let, body.nat)

    def c_Sequence(self, node: ast.Sequence) -> Code:
        codes = [self.compile(n) for n in node.nodes]
        fns = [c.fn for c in codes]

        def seq(env: Context) -> Any:
            out = None
            for f in fns:
                out = f(env)
            return out
        return Code(seq, codes[-1].nat)


# -- run-time helpers ------------------------------------------------------------------------


def _same_tree(a: ast.Node, b: ast.Node) -> bool:
    """Structural equality ignoring positions (expr compares the nodes' printed form)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, ast.Const):
        return type(a.value) is type(b.value) and a.value == b.value  # type: ignore[attr-defined]
    for name in a.__slots__:
        if name == "pos":
            continue
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, ast.Node):
            if not (isinstance(y, ast.Node) and _same_tree(x, y)):
                return False
        elif isinstance(x, tuple):
            if not isinstance(y, tuple) or len(x) != len(y):
                return False
            for p, q in zip(x, y, strict=True):
                if isinstance(p, tuple):
                    if not all(_same_tree(i, j) for i, j in zip(p, q, strict=True)):
                        return False
                elif not _same_tree(p, q):
                    return False
        elif x != y:
            return False
    return True


def _var_reader(key: int) -> Fn:
    return lambda env: env.vars[key] if env.vars is not None else None


def _env_map(env: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"result": env.result}
    for name, (_, _, impl) in ENV_FUNCS.items():
        out[name] = (lambda i: (lambda *a: i(env, list(a))))(impl)
    return out


def _caller(impl: Callable[[Context, list[Any]], Any], fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        f0 = fns[0]
        return lambda env: impl(env, [f0(env)])
    return lambda env: impl(env, [f(env) for f in fns])


def _fast_compare(op: str, lc: Code, rc: Code) -> Fn:
    lf, rf = lc.fn, rc.fn
    if rc.const is not NOCONST:
        k = rc.const
        if op == "<":
            return lambda env: lf(env) < k
        if op == ">":
            return lambda env: lf(env) > k
        if op == "<=":
            return lambda env: lf(env) <= k
        return lambda env: lf(env) >= k
    if op == "<":
        return lambda env: lf(env) < rf(env)
    if op == ">":
        return lambda env: lf(env) > rf(env)
    if op == "<=":
        return lambda env: lf(env) <= rf(env)
    return lambda env: lf(env) >= rf(env)


def _enter(env: Context) -> tuple[Scope, Scope | None]:
    scope = Scope()
    saved = env.scope
    env.scope = scope
    return scope, saved


def _quantifier(name: str, cf: Fn, bf: Fn) -> Fn:
    need = ops.need_bool

    def run(env: Context) -> bool:
        items = ops.items_of(cf(env))
        scope, saved = _enter(env)
        try:
            hits = 0
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                hit = need(bf(env))
                if name == "all":
                    if not hit:
                        return False
                elif name == "any":
                    if hit:
                        return True
                elif name == "none":
                    if hit:
                        return False
                elif hit:
                    hits += 1
            return name != "any" if name != "one" else hits == 1
        finally:
            env.scope = saved
    return run


def _filter(cf: Fn, bf: Fn) -> Fn:
    need = ops.need_bool

    def run(env: Context) -> list[Any]:
        items = ops.items_of(cf(env))
        scope, saved = _enter(env)
        try:
            out = []
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                if need(bf(env)):
                    out.append(x)
            return out
        finally:
            env.scope = saved
    return run


def _map(cf: Fn, bf: Fn) -> Fn:
    def run(env: Context) -> list[Any]:
        items = ops.items_of(cf(env))
        scope, saved = _enter(env)
        try:
            out = []
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                out.append(bf(env))
            return out
        finally:
            env.scope = saved
    return run


def _count(cf: Fn, bf: Fn, threshold: int | None) -> Fn:
    need = ops.need_bool

    def run(env: Context) -> int:
        items = ops.items_of(cf(env))
        scope, saved = _enter(env)
        try:
            n = 0
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                if need(bf(env)):
                    n += 1
                    if threshold is not None and n >= threshold:
                        break
            return n
        finally:
            env.scope = saved
    return run


def _count_items(cf: Fn) -> Fn:
    def run(env: Context) -> int:
        return sum(1 for x in ops.items_of(cf(env)) if ops.need_bool(x))
    return run


def _sum_items(cf: Fn, bf: Fn | None) -> Fn:
    def run(env: Context) -> Any:
        items = ops.items_of(cf(env))
        acc: Any = 0
        if bf is None:
            for x in items:
                acc = ops.add(x, acc)
            return acc
        scope, saved = _enter(env)
        try:
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                acc = ops.add(bf(env), acc)
            return acc
        finally:
            env.scope = saved
    return run


def _sum_chain(fns: list[Fn]) -> Fn:
    def run(env: Context) -> Any:
        values = [f(env) for f in fns]
        acc = values[-1]
        for x in reversed(values[:-1]):
            acc = ops.add(x, acc)
        return acc
    return run


def _find(name: str, cf: Fn, bf: Fn, throws: bool) -> Fn:
    need = ops.need_bool
    backwards = name.startswith("findLast")
    want_index = name.endswith("Index")

    def run(env: Context) -> Any:
        items = ops.items_of(cf(env))
        scope, saved = _enter(env)
        try:
            order = range(len(items) - 1, -1, -1) if backwards else range(len(items))
            for i in order:
                scope.item, scope.index = items[i], i
                if need(bf(env)):
                    return i if want_index else items[i]
            if throws:
                raise ExpressionError("reflect: slice index out of range")
            return None
        finally:
            env.scope = saved
    return run


def _group_by(cf: Fn, bf: Fn) -> Fn:
    def run(env: Context) -> dict[Any, list[Any]]:
        items = ops.items_of(cf(env))
        scope, saved = _enter(env)
        try:
            out: dict[Any, list[Any]] = {}
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                key = bf(env)
                if isinstance(key, list | dict):
                    raise ExpressionError(f"runtime error: hash of unhashable type {v.go_type(key)}")
                out.setdefault(key, []).append(x)
            return out
        finally:
            env.scope = saved
    return run


def _sort_by(cf: Fn, bf: Fn, of: Fn | None) -> Fn:
    def run(env: Context) -> list[Any]:
        items = ops.items_of(cf(env))
        order = of(env) if of is not None else "asc"
        if type(order) is not str:
            raise ExpressionError("sortBy order argument must be a string")
        if order not in ("asc", "desc"):
            raise ExpressionError("unknown order, use asc or desc")
        scope, saved = _enter(env)
        try:
            keys = []
            for i, x in enumerate(items):
                scope.item, scope.index = x, i
                keys.append(bf(env))
        finally:
            env.scope = saved
        return sort_values(list(items), keys, order == "desc")
    return run


def _reduce(cf: Fn, bf: Fn, init: Fn | None) -> Fn:
    def run(env: Context) -> Any:
        items = ops.items_of(cf(env))
        start = 0
        if init is not None:
            acc = init(env)
        else:
            if len(items) == 0:
                raise ExpressionError("reduce of empty array with no initial value")
            acc, start = items[0], 1
        scope, saved = _enter(env)
        try:
            for i in range(start, len(items)):
                scope.item, scope.index, scope.acc = items[i], i, acc
                acc = bf(env)
            return acc
        finally:
            env.scope = saved
    return run


# -- methods of time.Time and time.Duration (the few a condition might use) ------------------


def _seconds(d: Any) -> float:
    return float(d.total_seconds())


def _ns(d: Any) -> int:
    return int((d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000)


def _need_time(x: Any) -> Any:
    from datetime import datetime

    if not isinstance(x, datetime):
        raise ops.interface_conversion(x, "time.Time")
    return x


_METHODS: dict[tuple[str, str], tuple[tuple[Nature, ...], Nature, Callable[..., Any]]] = {
    ("duration", "Hours"): ((), v.FLOAT, lambda d: _seconds(d) / 3600),
    ("duration", "Minutes"): ((), v.FLOAT, lambda d: _seconds(d) / 60),
    ("duration", "Seconds"): ((), v.FLOAT, _seconds),
    ("duration", "Milliseconds"): ((), v.INT64, lambda d: _ns(d) // 1_000_000 if _ns(d) >= 0 else -(-_ns(d) // 1_000_000)),
    ("duration", "Microseconds"): ((), v.INT64, lambda d: int(_ns(d) / 1000)),
    ("duration", "Nanoseconds"): ((), v.INT64, _ns),
    ("duration", "String"): ((), v.STRING, v.format_duration),
    ("time", "Year"): ((), v.INT, lambda t: t.year),
    ("time", "Day"): ((), v.INT, lambda t: t.day),
    ("time", "Hour"): ((), v.INT, lambda t: t.hour),
    ("time", "Minute"): ((), v.INT, lambda t: t.minute),
    ("time", "Second"): ((), v.INT, lambda t: t.second),
    ("time", "YearDay"): ((), v.INT, lambda t: t.timetuple().tm_yday),
    ("time", "Unix"): ((), v.INT64, lambda t: int(t.timestamp() // 1)),
    ("time", "UnixMilli"): ((), v.INT64, lambda t: int(t.timestamp() * 1000 // 1)),
    ("time", "Before"): ((v.TIME,), v.BOOL, lambda t, u: t < _need_time(u)),
    ("time", "After"): ((v.TIME,), v.BOOL, lambda t, u: t > _need_time(u)),
    ("time", "Equal"): ((v.TIME,), v.BOOL, lambda t, u: t == _need_time(u)),
    ("time", "Sub"): ((v.TIME,), v.DURATION, lambda t, u: t - _need_time(u)),
    ("time", "String"): ((), v.STRING, v.format_time),
}
