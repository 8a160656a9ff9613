"""Pratt-style parser following expr-lang's operator table and associativity."""

from __future__ import annotations

from analyzer.core.expr import ast
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.lexer import Token, tokenize

# (precedence, right-associative) as in expr-lang's parser/operator package.
BINARY: dict[str, tuple[int, bool]] = {
    "or": (10, False), "||": (10, False),
    "and": (15, False), "&&": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False),
    "<=": (20, False), ">=": (20, False), "in": (20, False), "matches": (20, False),
    "contains": (20, False), "startsWith": (20, False), "endsWith": (20, False),
    "..": (25, False),
    "+": (30, False), "-": (30, False),
    "*": (60, False), "/": (60, False), "%": (60, False),
    "**": (100, True), "^": (100, True),
    "??": (500, False),
}
UNARY: dict[str, int] = {"not": 50, "!": 50, "-": 90, "+": 90}
NORMALIZE = {"and": "&&", "or": "||", "not": "!", "^": "**"}
# Builtins whose arguments after the first are predicates (``{# > 1}`` or a bare ``# > 1``).
PREDICATE_BUILTINS = {"all", "any", "none", "one", "filter", "map", "count", "find", "findIndex",
                      "findLast", "findLastIndex", "sum", "groupBy", "sortBy"}
NEGATABLE = {"in", "matches", "contains", "startsWith", "endsWith"}


class Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.closure_depth = 0

    @property
    def cur(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> ExpressionError:
        tok = tok or self.cur
        return ExpressionError(message, self.source, tok.pos + 1)

    def unexpected(self) -> ExpressionError:
        tok = self.cur
        if tok.kind == "eof":
            return self.error("unexpected token EOF")
        kind = {"op": "Operator", "name": "Identifier", "number": "Number", "string": "String"}[tok.kind]
        return self.error(f'unexpected token {kind}("{tok.value}")')

    def expect(self, op: str) -> Token:
        if not self.cur.is_op(op):
            raise self.unexpected()
        return self.next()

    def parse(self) -> ast.Node:
        if self.cur.kind == "eof":
            raise self.error("unexpected token EOF")
        node = self.expression(0)
        if self.cur.kind != "eof":
            raise self.unexpected()
        return node

    def expression(self, precedence: int) -> ast.Node:
        left = self.primary()
        while self.cur.kind == "op":
            tok = self.cur
            op = str(tok.value)
            negate = False
            if op == "not" and self.tokens[self.i + 1].is_op(*NEGATABLE):
                # "a not in b" is "not (a in b)"
                op = str(self.tokens[self.i + 1].value)
                negate = True
            if op not in BINARY:
                break
            prec, right_assoc = BINARY[op]
            if prec < precedence:
                break
            self.next()
            if negate:
                self.next()
            right = self.expression(prec if right_assoc else prec + 1)
            node: ast.Node = ast.Binary(tok.pos, NORMALIZE.get(op, op), left, right)
            if negate:
                node = ast.Unary(tok.pos, "!", node)
            left = node
        if precedence == 0:
            left = self.conditional(left)
        return left

    def conditional(self, node: ast.Node) -> ast.Node:
        while self.cur.is_op("?"):
            tok = self.next()
            if self.cur.is_op(":"):
                # Elvis "a ?: b": a if truthy else b.
                self.next()
                other = self.expression(0)
                node = ast.Conditional(tok.pos, node, node, other)
                continue
            then = self.expression(0)
            self.expect(":")
            other = self.expression(0)
            node = ast.Conditional(tok.pos, node, then, other)
        return node

    def primary(self) -> ast.Node:
        tok = self.cur
        if tok.kind == "op" and tok.value in UNARY:
            self.next()
            operand = self.expression(UNARY[str(tok.value)])
            node: ast.Node = ast.Unary(tok.pos, NORMALIZE.get(str(tok.value), str(tok.value)), operand)
            return self.postfix(node)
        if tok.is_op("("):
            self.next()
            inner = self.expression(0)
            self.expect(")")
            return self.postfix(inner)
        return self.postfix(self.operand())

    def operand(self) -> ast.Node:
        tok = self.next()
        if tok.kind == "number" or tok.kind == "string":
            return ast.Const(tok.pos, tok.value)
        if tok.kind == "name":
            name = str(tok.value)
            if name == "true":
                return ast.Const(tok.pos, True)
            if name == "false":
                return ast.Const(tok.pos, False)
            if name == "nil":
                return ast.Const(tok.pos, None)
            if self.cur.is_op("("):
                return self.call(tok)
            return ast.Name(tok.pos, name)
        if tok.is_op("#"):
            if self.closure_depth == 0:
                raise self.error("cannot use pointer accessor outside predicate", tok)
            if self.cur.kind == "name" and self.cur.pos == tok.pos + 1:
                return ast.Pointer(tok.pos, "#" + str(self.next().value))
            return ast.Pointer(tok.pos, "#")
        if tok.is_op(".") and self.closure_depth > 0 and self.cur.kind == "name":
            # ".field" inside a predicate is "#.field"
            name_tok = self.next()
            return ast.Member(tok.pos, ast.Pointer(tok.pos, "#"), ast.Const(name_tok.pos, name_tok.value), False)
        if tok.is_op("["):
            items = self.sequence("]")
            return ast.Array(tok.pos, tuple(items))
        if tok.is_op("{"):
            return self.map_literal(tok)
        self.i -= 1 if tok.kind != "eof" else 0
        raise self.unexpected()

    def sequence(self, closer: str) -> list[ast.Node]:
        items: list[ast.Node] = []
        while not self.cur.is_op(closer):
            items.append(self.expression(0))
            if self.cur.is_op(","):
                self.next()
                continue
            if not self.cur.is_op(closer):
                raise self.unexpected()
        self.next()
        return items

    def map_literal(self, start: Token) -> ast.Node:
        pairs: list[tuple[ast.Node, ast.Node]] = []
        while not self.cur.is_op("}"):
            key_tok = self.next()
            if key_tok.kind in ("name", "string", "number"):
                key: ast.Node = ast.Const(key_tok.pos, key_tok.value if key_tok.kind != "number"
                                          else key_tok.value)
            elif key_tok.is_op("("):
                key = self.expression(0)
                self.expect(")")
            else:
                self.i -= 1
                raise self.unexpected()
            self.expect(":")
            pairs.append((key, self.expression(0)))
            if self.cur.is_op(","):
                self.next()
            elif not self.cur.is_op("}"):
                raise self.unexpected()
        self.next()
        return ast.MapLit(start.pos, tuple(pairs))

    def call(self, name_tok: Token) -> ast.Node:
        name = str(name_tok.value)
        self.expect("(")
        args: list[ast.Node] = []
        while not self.cur.is_op(")"):
            if args and name in PREDICATE_BUILTINS:
                args.append(self.closure())
            else:
                args.append(self.expression(0))
            if self.cur.is_op(","):
                self.next()
            elif not self.cur.is_op(")"):
                raise self.unexpected()
        self.next()
        return ast.Call(name_tok.pos, name, tuple(args))

    def closure(self) -> ast.Node:
        start = self.cur
        self.closure_depth += 1
        try:
            if start.is_op("{"):
                self.next()
                body = self.expression(0)
                self.expect("}")
            else:
                body = self.expression(0)
        finally:
            self.closure_depth -= 1
        return ast.Closure(start.pos, body)

    def postfix(self, node: ast.Node) -> ast.Node:
        while True:
            tok = self.cur
            if tok.is_op(".", "?."):
                self.next()
                name = self.next()
                if name.kind not in ("name", "op") or name.kind == "op" and name.value not in (
                        "in", "matches", "contains", "startsWith", "endsWith", "and", "or", "not"):
                    if name.is_op("[") and tok.value == "?.":
                        node = self.index(node, name, optional=True)
                        continue
                    self.i -= 1
                    raise self.error("expected name", name)
                node = ast.Member(tok.pos, node, ast.Const(name.pos, name.value), tok.value == "?.")
            elif tok.is_op("["):
                self.next()
                node = self.index(node, tok, optional=False)
            else:
                return node

    def index(self, node: ast.Node, tok: Token, optional: bool) -> ast.Node:
        if self.cur.is_op(":"):
            self.next()
            hi = None if self.cur.is_op("]") else self.expression(0)
            self.expect("]")
            return ast.Slice(tok.pos, node, None, hi)
        first = self.expression(0)
        if self.cur.is_op(":"):
            self.next()
            hi = None if self.cur.is_op("]") else self.expression(0)
            self.expect("]")
            return ast.Slice(tok.pos, node, first, hi)
        self.expect("]")
        return ast.Member(tok.pos, node, first, optional)


def parse(source: str) -> ast.Node:
    return Parser(source).parse()
