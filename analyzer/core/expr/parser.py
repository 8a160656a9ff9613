"""Parser following expr-lang's parser/parser.go (precedence climbing, same quirks).

Notable expr behaviours kept: ``**``/``^`` are right-associative; unary ``-`` binds looser than
``**`` (``-2 ** 2 == -4``); comparison chains (``1 < x < 3`` is ``1 < x && x < 3``); ``??``
cannot be mixed with other binary operators without parentheses; ``a not in b``; ``a ?: b``;
``x | f(y)`` pipes; ``let x = ...; body``; ``if c { a } else { b }``; ``;`` sequences;
predicates ``{# > 1}`` or bare ``# > 1`` with ``.field`` shorthand; number/bool/nil literals
take no postfix (``1.x`` is a syntax error).
"""

from __future__ import annotations

from analyzer.core.expr import ast
from analyzer.core.expr.errors import ExpressionError
from analyzer.core.expr.lexer import (
    BRACKET,
    BYTES,
    EOF,
    ERROR,
    IDENT,
    NUMBER,
    OPERATOR,
    STRING,
    Token,
    tokenize,
)

# (precedence, right-associative): parser/operator/operator.go
BINARY: dict[str, tuple[int, bool]] = {
    "|": (0, False),
    "or": (10, False), "||": (10, False),
    "and": (15, False), "&&": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False),
    ">=": (20, False), "<=": (20, False), "in": (20, False), "matches": (20, False),
    "contains": (20, False), "startsWith": (20, False), "endsWith": (20, False),
    "..": (25, False),
    "+": (30, False), "-": (30, False),
    "*": (60, False), "/": (60, False), "%": (60, False),
    "**": (100, True), "^": (100, True),
    "??": (500, False),
}
UNARY: dict[str, int] = {"not": 50, "!": 50, "-": 90, "+": 90}
NORMALIZE = {"and": "&&", "or": "||", "not": "!", "^": "**"}
COMPARISON = {"<", ">", ">=", "<="}
NEGATABLE = {"contains", "matches", "startsWith", "endsWith", "in"}

EXPR, PRED, OPT = 1, 2, 128
PREDICATES: dict[str, tuple[int, ...]] = {
    "all": (EXPR, PRED), "none": (EXPR, PRED), "any": (EXPR, PRED), "one": (EXPR, PRED),
    "filter": (EXPR, PRED), "map": (EXPR, PRED),
    "count": (EXPR, PRED | OPT), "sum": (EXPR, PRED | OPT),
    "find": (EXPR, PRED), "findIndex": (EXPR, PRED), "findLast": (EXPR, PRED), "findLastIndex": (EXPR, PRED),
    "groupBy": (EXPR, PRED), "sortBy": (EXPR, PRED, EXPR | OPT), "reduce": (EXPR, PRED, EXPR | OPT),
}
BUILTIN_NAMES = frozenset(PREDICATES) | frozenset((
    "len", "type", "abs", "ceil", "floor", "round", "int", "float", "string", "trim", "trimPrefix",
    "trimSuffix", "upper", "lower", "split", "splitAfter", "replace", "repeat", "join", "indexOf",
    "lastIndexOf", "hasPrefix", "hasSuffix", "max", "min", "mean", "median", "toJSON", "fromJSON",
    "toBase64", "fromBase64", "now", "duration", "date", "timezone", "first", "last", "get", "take",
    "keys", "values", "toPairs", "fromPairs", "reverse", "uniq", "concat", "flatten", "sort",
    "bitand", "bitor", "bitxor", "bitnand", "bitshl", "bitshr", "bitushr", "bitnot",
))
MAX_NODES = 10_000


def _valid_identifier(s: str) -> bool:
    from analyzer.core.expr.lexer import is_alnum, is_alpha

    return bool(s) and is_alpha(s[0]) and all(is_alnum(c) for c in s[1:])


class Parser:
    def __init__(self, source: str, env_names: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.depth = 0  # predicate nesting
        self.nodes = 0
        self.env_names = env_names

    # -- token helpers
    @property
    def cur(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind == ERROR:
            raise ExpressionError(tok.value, self.source, tok.pos + 1)
        return tok

    def next(self) -> None:
        if self.tokens[self.i].kind not in (EOF, ERROR):
            self.i += 1
        self.cur  # noqa: B018 - surfaces a lexing error as soon as it is reached

    def error(self, message: str, tok: Token | None = None) -> ExpressionError:
        tok = tok if tok is not None else self.cur
        return ExpressionError(message, self.source, tok.pos + 1)

    def unexpected(self, tok: Token | None = None) -> ExpressionError:
        tok = tok if tok is not None else self.cur
        return self.error(f"unexpected token {tok}", tok)

    def expect(self, kind: str, *values: str) -> None:
        if self.cur.is_(kind, *values):
            self.next()
            return
        raise self.unexpected()

    def node(self, n: ast.Node) -> ast.Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error("compilation failed: expression exceeds maximum allowed nodes")
        return n

    # -- grammar
    def parse(self) -> ast.Node:
        self.cur  # noqa: B018
        node = self.sequence()
        if not self.cur.is_(EOF):
            raise self.unexpected()
        return node

    def sequence(self) -> ast.Node:
        nodes = [self.expression(0)]
        while self.cur.is_(OPERATOR, ";"):
            self.next()
            if self.cur.is_(EOF):
                break
            nodes.append(self.expression(0))
        if len(nodes) == 1:
            return nodes[0]
        return self.node(ast.Sequence(nodes[0].pos, tuple(nodes)))

    def expression(self, precedence: int) -> ast.Node:
        if precedence == 0 and self.cur.is_(OPERATOR, "let"):
            return self.let()
        if precedence == 0 and self.cur.is_(OPERATOR, "if"):
            return self.if_else()
        left = self.primary()
        prev_op = ""
        op_tok = self.cur
        while op_tok.is_(OPERATOR):
            negate = op_tok.value == "not"
            not_tok = op_tok
            if negate:
                following = self.tokens[self.i + 1]
                if following.kind == ERROR:
                    self.next()
                if following.value in NEGATABLE:
                    if BINARY[following.value][0] >= precedence:
                        self.next()
                        op_tok = self.cur
                    else:
                        break  # leave "not" for an outer level
                else:
                    self.next()
                    raise self.unexpected()
            spec = BINARY.get(op_tok.value)
            if spec is None or spec[0] < precedence:
                break
            prec, right_assoc = spec
            self.next()
            op = op_tok.value
            if op == "|":
                ident = self.cur
                self.expect(IDENT)
                left = self.call(ident, [left], check_overrides=True)
            elif prev_op == "??" and op != "??":
                raise self.error(f"Operator ({op}) and coalesce expressions (??) cannot be mixed. "
                                 "Wrap either by parentheses.", op_tok)
            elif op in COMPARISON:
                left = self.comparison(left, op_tok, prec)
            else:
                right = self.expression(prec if right_assoc else prec + 1)
                left = self.node(ast.Binary(op_tok.pos, NORMALIZE.get(op, op), left, right))
                if negate:
                    left = self.node(ast.Unary(not_tok.pos, "!", left))
            prev_op = op
            op_tok = self.cur
        if precedence == 0:
            left = self.conditional(left)
        return left

    def comparison(self, left: ast.Node, tok: Token, precedence: int) -> ast.Node:
        root: ast.Node | None = None
        while True:
            right = self.expression(precedence + 1)
            cmp = self.node(ast.Binary(tok.pos, tok.value, left, right))
            root = cmp if root is None else self.node(ast.Binary(tok.pos, "&&", root, cmp))
            left = right
            tok = self.cur
            if not (tok.is_(OPERATOR) and tok.value in COMPARISON):
                break
            self.next()
        return root

    def let(self) -> ast.Node:
        self.expect(OPERATOR, "let")
        name = self.cur
        self.expect(IDENT)
        self.expect(OPERATOR, "=")
        value = self.expression(0)
        self.expect(OPERATOR, ";")
        body = self.sequence()
        return self.node(ast.Let(name.pos, name.value, value, body))

    def if_else(self) -> ast.Node:
        start = self.cur
        self.next()
        cond = self.expression(0)
        self.expect(BRACKET, "{")
        then = self.sequence()
        self.expect(BRACKET, "}")
        self.expect(OPERATOR, "else")
        if self.cur.is_(OPERATOR, "if"):
            other = self.if_else()
        else:
            self.expect(BRACKET, "{")
            other = self.sequence()
            self.expect(BRACKET, "}")
        return self.node(ast.Conditional(start.pos, cond, then, other))

    def conditional(self, node: ast.Node) -> ast.Node:
        while self.cur.is_(OPERATOR, "?"):
            tok = self.cur
            self.next()
            if not self.cur.is_(OPERATOR, ":"):
                then = self.expression(0)
                self.expect(OPERATOR, ":")
                other = self.expression(0)
                node = self.node(ast.Conditional(tok.pos, node, then, other))
            else:
                self.next()
                other = self.expression(0)
                node = self.node(ast.Conditional(tok.pos, node, node, other, elvis=True))
        return node

    def primary(self) -> ast.Node:
        tok = self.cur
        if tok.is_(OPERATOR) and tok.value in UNARY:
            self.next()
            operand = self.expression(UNARY[tok.value])
            return self.postfix(self.node(ast.Unary(tok.pos, NORMALIZE.get(tok.value, tok.value), operand)))
        if tok.is_(BRACKET, "("):
            self.next()
            inner = self.sequence()
            self.expect(BRACKET, ")")
            return self.postfix(inner)
        if self.depth > 0 and (tok.is_(OPERATOR, "#") or tok.is_(OPERATOR, ".")):
            name = ""
            if tok.value == "#":
                self.next()
                if self.cur.is_(IDENT):
                    name = self.cur.value
                    self.next()
            return self.postfix(self.node(ast.Pointer(tok.pos, name)))
        if tok.is_(OPERATOR, "::"):
            self.next()
            ident = self.cur
            self.expect(IDENT)
            return self.postfix(self.call(ident, [], check_overrides=False))
        return self.secondary()

    def secondary(self) -> ast.Node:
        tok = self.cur
        node: ast.Node
        if tok.kind == IDENT:
            self.next()
            if tok.value == "true":
                return self.node(ast.Const(tok.pos, True))
            if tok.value == "false":
                return self.node(ast.Const(tok.pos, False))
            if tok.value == "nil":
                return self.node(ast.Const(tok.pos, None))
            if self.cur.is_(BRACKET, "("):
                node = self.call(tok, [], check_overrides=True)
            else:
                node = self.node(ast.Name(tok.pos, tok.value))
        elif tok.kind == NUMBER:
            self.next()
            # expr reports a bad literal at the token after it (the parser has moved on)
            return self.node(ast.Const(tok.pos, self.number(tok, self.cur)))
        elif tok.kind == STRING:
            self.next()
            node = self.node(ast.Const(tok.pos, tok.value))
        elif tok.kind == BYTES:
            self.next()
            raw = tok.value
            data = raw.encode("latin-1") if all(ord(c) < 256 for c in raw) else raw.encode("utf-8")
            node = self.node(ast.Const(tok.pos, data))
        elif tok.is_(BRACKET, "["):
            node = self.array(tok)
        elif tok.is_(BRACKET, "{"):
            node = self.map_literal(tok)
        else:
            raise self.unexpected()
        return self.postfix(node)

    def number(self, literal: Token, tok: Token) -> int | float:
        text = literal.value.replace("_", "")
        low = text.lower()
        try:
            if low.startswith("0x"):
                value: int | float = int(text[2:], 16)
            elif "." in low or "e" in low:
                value = float(text)
                if value != value or value in (float("inf"), float("-inf")):
                    raise self.error(f'invalid float literal: strconv.ParseFloat: parsing "{text}": value out of range', tok)
                return value
            elif low.startswith("0b"):
                value = int(text[2:], 2)
            elif low.startswith("0o"):
                value = int(text[2:], 8)
            else:
                if not text.isascii() or not text.isdigit():
                    raise ValueError
                value = int(text, 10)
        except ValueError:
            kind = ("hex" if low.startswith("0x") else "float" if ("." in low or "e" in low)
                    else "binary" if low.startswith("0b") else "octal" if low.startswith("0o") else "integer")
            raise self.error(f'invalid {kind} literal: strconv.Parse{"Float" if kind == "float" else "Int"}: '
                             f'parsing "{text}": invalid syntax', tok) from None
        if value > 2**63 - 1:
            raise self.error("integer literal is too large", tok)
        return value

    def call(self, tok: Token, args: list[ast.Node], check_overrides: bool) -> ast.Node:
        name = tok.value
        overridden = check_overrides and name in self.env_names
        spec = PREDICATES.get(name)
        if spec is not None and not overridden:
            self.expect(BRACKET, "(")
            rest = spec[len(args):]
            for i, kind in enumerate(rest):
                if kind & OPT:
                    if self.cur.is_(BRACKET, ")"):
                        break
                elif self.cur.is_(BRACKET, ")"):
                    raise self.error(f"expected at least {len(rest)} arguments")
                if i > 0:
                    self.expect(OPERATOR, ",")
                args.append(self.expression(0) if kind & EXPR else self.predicate())
            if self.cur.is_(OPERATOR, ","):
                self.next()
            self.expect(BRACKET, ")")
            return self.node(ast.Builtin(tok.pos, name, tuple(args)))
        if name in BUILTIN_NAMES and not overridden:
            return self.node(ast.Builtin(tok.pos, name, tuple(self.arguments(args))))
        callee = self.node(ast.Name(tok.pos, name))
        return self.node(ast.Call(tok.pos, callee, tuple(self.arguments(args))))

    def arguments(self, args: list[ast.Node]) -> list[ast.Node]:
        offset = len(args)
        self.expect(BRACKET, "(")
        while not self.cur.is_(BRACKET, ")"):
            if len(args) > offset:
                self.expect(OPERATOR, ",")
            if self.cur.is_(BRACKET, ")"):
                break
            args.append(self.expression(0))
        self.expect(BRACKET, ")")
        return args

    def predicate(self) -> ast.Node:
        start = self.cur
        braces = start.is_(BRACKET, "{")
        if braces:
            self.next()
        self.depth += 1
        try:
            if braces:
                body = self.sequence()
            else:
                body = self.expression(0)
                if self.cur.is_(OPERATOR, ";"):
                    raise self.error("wrap predicate with brackets { and }")
        finally:
            self.depth -= 1
        if braces:
            self.expect(BRACKET, "}")
        return self.node(ast.Predicate(start.pos, body))

    def array(self, tok: Token) -> ast.Node:
        items: list[ast.Node] = []
        self.expect(BRACKET, "[")
        while not self.cur.is_(BRACKET, "]"):
            if items:
                self.expect(OPERATOR, ",")
                if self.cur.is_(BRACKET, "]"):
                    break
            items.append(self.expression(0))
        self.expect(BRACKET, "]")
        return self.node(ast.Array(tok.pos, tuple(items)))

    def map_literal(self, tok: Token) -> ast.Node:
        self.expect(BRACKET, "{")
        pairs: list[tuple[ast.Node, ast.Node]] = []
        while not self.cur.is_(BRACKET, "}"):
            if pairs:
                self.expect(OPERATOR, ",")
                if self.cur.is_(BRACKET, "}"):
                    break
                if self.cur.is_(OPERATOR, ","):
                    raise self.unexpected()
            key_tok = self.cur
            key: ast.Node
            if key_tok.kind in (NUMBER, STRING, IDENT):
                key = self.node(ast.Const(key_tok.pos, key_tok.value))
                self.next()
            elif key_tok.is_(BRACKET, "("):
                key = self.expression(0)
            else:
                raise self.error("a map key must be a quoted string, a number, a identifier, or an expression "
                                 f"enclosed in parentheses (unexpected token {key_tok})")
            self.expect(OPERATOR, ":")
            pairs.append((key, self.expression(0)))
        self.expect(BRACKET, "}")
        return self.node(ast.MapLit(tok.pos, tuple(pairs)))

    def postfix(self, node: ast.Node) -> ast.Node:
        while True:
            tok = self.cur
            if not (tok.kind == OPERATOR or tok.kind == BRACKET):
                return node
            optional = tok.value == "?."
            if tok.value in (".", "?."):
                self.next()
                prop = self.cur
                if optional and prop.is_(BRACKET, "["):
                    node = self.index(node, prop, optional=True)
                    continue
                if prop.kind == EOF:
                    raise self.error("unexpected end of expression", prop)
                self.next()
                if prop.kind != IDENT and (prop.kind != OPERATOR or not _valid_identifier(prop.value)):
                    raise self.error("expected name", prop)
                is_chain = isinstance(node, ast.Chain)
                base = node.node if isinstance(node, ast.Chain) else node
                key = self.node(ast.Const(prop.pos, prop.value))
                if self.cur.is_(BRACKET, "("):
                    member = ast.Member(prop.pos, base, key, optional, method=True)
                    node = self.node(ast.Call(prop.pos, member, tuple(self.arguments([]))))
                else:
                    node = self.node(ast.Member(prop.pos, base, key, optional))
                if is_chain or optional:
                    node = self.node(ast.Chain(prop.pos, node))
            elif tok.value == "[":
                node = self.index(node, tok, optional=False)
            else:
                return node

    def index(self, node: ast.Node, tok: Token, optional: bool) -> ast.Node:
        self.next()  # "["
        if self.cur.is_(OPERATOR, ":"):
            self.next()
            hi = None if self.cur.is_(BRACKET, "]") else self.expression(0)
            self.expect(BRACKET, "]")
            return self.node(ast.Slice(tok.pos, node, None, hi))
        lo = self.expression(0)
        if self.cur.is_(OPERATOR, ":"):
            self.next()
            hi = None if self.cur.is_(BRACKET, "]") else self.expression(0)
            self.expect(BRACKET, "]")
            return self.node(ast.Slice(tok.pos, node, lo, hi))
        member: ast.Node = self.node(ast.Member(tok.pos, node, lo, optional))
        if optional:
            member = self.node(ast.Chain(tok.pos, member))
        self.expect(BRACKET, "]")
        return member


def parse(source: str, env_names: frozenset[str] = frozenset()) -> ast.Node:
    return Parser(source, env_names).parse()
