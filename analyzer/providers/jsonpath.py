"""Kubernetes client-go JSONPath (``k8s.io/client-go/util/jsonpath``), as Argo's web provider runs it.

A faithful port of the parser and evaluator, quirks included, because users' templates were
written against the Go behaviour: errors such as ``x is not found`` surface verbatim in
measurements, a filter comparison only works between values of the same Go kind (JSON numbers
are float64, so ``[?(@.v>1)]`` fails with ``incompatible types for comparison`` while
``[?(@.v>1.0)]`` works), and a filter over an item lacking the field fails with ``<f> is not
found`` because Argo does not enable ``AllowMissingKeys``.

Values are those of ``json.loads``: dicts, lists, str, float, bool, ``None``. Inside documents
``None`` is Go's nil interface (skipped by most steps); a JSON ``null`` *document* is Go's
invalid ``reflect.Value`` instead, represented by :data:`INVALID` (Argo panics on it).
Go iterates maps in random order; this port uses document order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["INVALID", "JsonPath", "JsonPathError", "parse"]


class JsonPathError(ValueError):
    """A parse or evaluation error; ``str()`` is client-go's error text."""

    def __init__(self, message: str, partial: list[Any] | None = None) -> None:
        super().__init__(message)
        # What the failing Go step returned alongside its error: an "exists" filter counts it.
        self.partial: list[Any] = partial if partial is not None else []


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()
"""Go's invalid ``reflect.Value``: the root of a JSON ``null`` document."""


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _List:
    nodes: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Param:
    value: int = 0
    known: bool = False
    derived: bool = False


@dataclass(frozen=True)
class _Array:
    params: tuple[_Param, _Param, _Param]


@dataclass(frozen=True)
class _Filter:
    left: _List
    right: _List
    op: str


@dataclass(frozen=True)
class _Literal:  # Go's IntNode, FloatNode and BoolNode
    value: Any


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Recursive:
    pass


@dataclass(frozen=True)
class _Union:
    lists: list[_List]


@dataclass(frozen=True)
class _Identifier:
    name: str


_EOF = ""
_DICT_KEY = re.compile(r"'([^']*)'")
_SLICE = re.compile(r"(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?")
_FILTER = re.compile(r"([^!<>=]+)([!<>=]+)(.+?)")
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def _is_alnum(r: str) -> bool:
    return r == "_" or r.isalpha() or r.isdecimal()


def _is_terminator(r: str) -> bool:
    return r in (_EOF, " ", "\t", "\r", "\n", ".", ",", "[", "]", "$", "@", "{", "}")


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_NUMERIC_ESCAPES = {"x": (2, 16), "u": (4, 16), "U": (8, 16), **{d: (3, 8) for d in "01234567"}}


def _unquote(quoted: str) -> str:
    """Go's ``UnquoteExtend``: ``strconv.Unquote`` that also accepts single-quoted strings."""
    quote, body = quoted[0], quoted[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c, esc = body[i], body[i + 1 : i + 2]
        if c == quote:
            break
        if c != "\\":
            out.append(c)
            i += 1
        elif esc in _ESCAPES or esc == quote:
            out.append(_ESCAPES.get(esc, esc))
            i += 2
        elif esc in _NUMERIC_ESCAPES:
            width, base = _NUMERIC_ESCAPES[esc]
            first = i + 1 if base == 8 else i + 2
            digits = body[first : first + width]
            pattern = "[0-7]" if base == 8 else "[0-9a-fA-F]"
            code = int(digits, base) if re.fullmatch(f"{pattern}{{{width}}}", digits) else -1
            if code < 0 or code > (255 if base == 8 else 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
                break
            out.append(chr(code))
            i = first + width
        else:
            break
    else:
        return "".join(out)
    raise JsonPathError(f"unquote string {quoted} error invalid syntax")


class _Parser:
    """Mirrors client-go's ``Parser`` method by method, so error texts and quirks match."""

    def __init__(self, text: str) -> None:
        self.input, self.pos, self.start, self.width = text, 0, 0, 0
        self.root: list[Any] = []

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.width = 0
            return _EOF
        self.width = 1
        self.pos += 1
        return self.input[self.pos - 1]

    def backup(self) -> None:
        self.pos -= self.width

    def peek(self) -> str:
        r = self.next()
        self.backup()
        return r

    def consume(self) -> str:
        value = self.input[self.start : self.pos]
        self.start = self.pos
        return value

    def parse(self) -> list[Any]:
        while True:
            brace = self.input.find("{", self.pos)
            self.pos = len(self.input) if brace < 0 else brace
            if self.pos > self.start:
                self.root.append(_Text(self.consume()))
            if brace < 0:
                return self.root
            self.pos += 1
            self.consume()
            action = _List()
            self.root.append(action)
            self.parse_inside_action(action.nodes)

    def parse_inside_action(self, cur: list[Any]) -> None:
        while True:
            rest = self.input[self.pos :]
            if rest.startswith("}"):
                self.pos += 1
                self.consume()
                return
            if rest.startswith("[?("):
                self.parse_filter(cur)
                continue
            if rest.startswith(".."):
                self.parse_recursive(cur)
                continue
            r = self.next()
            if r in (_EOF, "\r", "\n"):
                raise JsonPathError("unclosed action")
            if r in " @$":
                self.consume()
            elif r == "[":
                self.parse_array(cur)
            elif r in "\"'":
                self.parse_quote(cur, r)
            elif r == ".":
                self.parse_field(cur)
            elif r in "+-" or r.isdecimal():
                self.backup()
                self.parse_number(cur)
            elif _is_alnum(r):
                self.backup()
                self.parse_identifier(cur)
            else:
                shown = f" '{r}'" if r.isprintable() else ""
                raise JsonPathError(f"unrecognized character in action: U+{ord(r):04X}{shown}")

    def parse_identifier(self, cur: list[Any]) -> None:
        while not _is_terminator(self.next()):
            pass
        self.backup()
        value = self.consume()
        cur.append(_Literal(value == "true") if value in ("true", "false") else _Identifier(value))

    def parse_recursive(self, cur: list[Any]) -> None:
        if cur and isinstance(cur[-1], _Recursive):
            raise JsonPathError("invalid multiple recursive descent")
        self.pos += 2
        self.consume()
        cur.append(_Recursive())
        if _is_alnum(self.peek()):
            self.parse_field(cur)

    def parse_number(self, cur: list[Any]) -> None:
        if self.peek() in ("+", "-"):
            self.next()
        while True:
            r = self.next()
            if r != "." and not r.isdecimal():
                self.backup()
                break
        value = self.consume()
        if _GO_INT.fullmatch(value) and abs(int(value)) < 2**63:
            cur.append(_Literal(int(value)))
        elif _GO_FLOAT.fullmatch(value):
            cur.append(_Literal(float(value)))
        else:
            raise JsonPathError(f"cannot parse number {value}")

    def parse_array(self, cur: list[Any]) -> None:
        while (r := self.next()) != "]":
            if r in (_EOF, "\n"):
                raise JsonPathError("unterminated array")
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            cur.append(_Union([_parse_action(f"[{p.strip(' ')}]") for p in parts]))
            return
        key = _DICT_KEY.fullmatch(text)
        if key:
            cur.extend(_parse_action(f".{key[1]}").nodes)
            return
        m = _SLICE.fullmatch(text)
        if m is None:
            raise JsonPathError(f"invalid array index {text}")
        raw = [g or "" for g in m.groups()]
        params: list[_Param] = []
        for i, value in enumerate(raw):
            if i > 0 and value:
                value = value[1:]
                if not value:
                    params.append(_Param())
                    continue
            if value:
                if not _GO_INT.fullmatch(value):
                    raise JsonPathError(f"array index {value} is not a number")
                params.append(_Param(int(value), known=True))
            elif i == 1:
                params.append(_Param(params[0].value + 1, known=True, derived=True))
            else:
                params.append(_Param())
        cur.append(_Array((params[0], params[1], params[2])))

    def parse_filter(self, cur: list[Any]) -> None:
        self.pos += 3
        self.consume()
        begin = end = False
        pair = ""
        while True:
            r = self.next()
            if r in (_EOF, "\n"):
                raise JsonPathError("unterminated filter")
            if r in "\"'":
                if not begin:
                    begin, pair = True, r
                    continue
                if self.input[self.pos - 2] != "\\" and r == pair:
                    end = True
            elif r == ")" and begin == end:
                break
        if self.next() != "]":
            raise JsonPathError("unclosed array expect ]")
        text = self.consume()[:-2]
        m = _FILTER.fullmatch(text)
        if m is None:
            cur.append(_Filter(_parse_action(text), _List(), "exists"))
        else:
            cur.append(_Filter(_parse_action(m[1]), _parse_action(m[3]), m[2]))

    def parse_quote(self, cur: list[Any], end: str) -> None:
        while True:
            r = self.next()
            if r in (_EOF, "\n"):
                raise JsonPathError("unterminated quoted string")
            if r == end and self.input[self.pos - 2] != "\\":
                break
        cur.append(_Text(_unquote(self.consume())))

    def parse_field(self, cur: list[Any]) -> None:
        self.consume()
        while True:
            r = self.next()
            if r == "\\":
                self.next()
            elif _is_terminator(r):
                self.backup()
                break
        value = self.consume()
        cur.append(_Wildcard() if value == "*" else _Field(value.replace("\\", "")))


def _parse_action(text: str) -> _List:
    first = _Parser("{" + text + "}").parse()[0]
    assert isinstance(first, _List)
    return first


@dataclass
class _RangeState:
    begin: int = 0
    inside: int = 0
    end: int = 0
    last_end: int = -1


@dataclass(frozen=True)
class JsonPath:
    """A parsed template: text segments and ``{...}`` action segments."""

    template: str
    segments: tuple[Any, ...]

    def find_results(self, data: Any) -> list[list[Any]]:
        """client-go ``FindResults``: one match list per segment (``range`` bodies once per item).

        Every segment is evaluated, so an error in any of them raises :class:`JsonPathError`.
        """
        return self._find(0, data, _RangeState())

    def first_matches(self, data: Any) -> list[Any]:
        """The first non-empty match list, or ``[]``: Argo uses its first element as ``result``."""
        return next((results for results in self.find_results(data) if results), [])

    def _find(self, start: int, data: Any, st: _RangeState) -> list[list[Any]]:
        cur = [INVALID if data is None else data]
        full: list[list[Any]] = []
        i = start
        while i < len(self.segments):
            results = _walk(cur, self.segments[i], st)
            if 0 < st.end <= st.inside:
                st.end -= 1
                st.last_end = i
                break
            if st.begin > 0:
                st.begin -= 1
                st.inside += 1
                for item in results:
                    full.extend(self._find(i + 1, item, st))
                if not results:  # Go still walks the body, on nil, to find the matching {end}
                    self._find(i + 1, None, st)
                st.inside -= 1
                if i < st.last_end:
                    i = st.last_end
            else:
                full.append(results)
            i += 1
        return full


def parse(template: str) -> JsonPath:
    """Parse a client-go JSONPath template; raises :class:`JsonPathError` (e.g. ``unclosed action``)."""
    return JsonPath(template, tuple(_Parser(template).parse()))


def _walk(values: list[Any], node: Any, st: _RangeState) -> list[Any]:
    if isinstance(node, _List):
        for child in node.nodes:
            values = _walk(values, child, st)
        return values
    if isinstance(node, _Text):
        return [node.text]
    if isinstance(node, _Literal):
        return [node.value for _ in values]
    if isinstance(node, _Field):
        return _eval_field(values, node.name)
    if isinstance(node, _Array):
        return _eval_array(values, node.params)
    if isinstance(node, _Filter):
        return _eval_filter(values, node, st)
    if isinstance(node, _Wildcard):
        return [child for v in values for child in _children(v)]
    if isinstance(node, _Recursive):
        return _eval_recursive(values)
    if isinstance(node, _Union):
        out: list[Any] = []
        for sub in node.lists:
            try:
                out.extend(_walk(values, sub, st))
            except JsonPathError as exc:
                raise JsonPathError(str(exc), values) from None
        return out
    assert isinstance(node, _Identifier)
    if node.name == "range":
        st.begin += 1
        return values
    if node.name == "end":
        if st.inside <= 0:
            raise JsonPathError("not in range, nothing to end")
        st.end += 1
        return []
    raise JsonPathError(f"unrecognized identifier {node.name}", values)


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return list(value.encode())  # Go indexes a string by byte
    return []


def _eval_field(values: list[Any], name: str) -> list[Any]:
    if not values:
        return []
    results = [v[name] for v in values if isinstance(v, dict) and name in v]
    if not results:
        raise JsonPathError(f"{name} is not found")
    return results


def _eval_array(values: list[Any], params: tuple[_Param, _Param, _Param]) -> list[Any]:
    result: list[Any] = []
    for value in values:
        if value is None:
            continue
        if not isinstance(value, list):
            raise JsonPathError(f"{_go_type(value)} is not array or slice", values)
        length = len(value)
        start = params[0].value if params[0].known else 0
        stop = params[1].value if params[1].known else length
        if start < 0:
            start += length
        if stop < 0 or (stop == 0 and params[1].derived):
            stop += length
        if start == stop:
            return result  # sic: Go stops at the first empty selection, dropping later inputs
        if start >= length or start < 0:
            raise JsonPathError(f"array index out of bounds: index {start}, length {length}", values)
        if stop > length or stop < 0:
            raise JsonPathError(f"array index out of bounds: index {stop - 1}, length {length}", values)
        if start > stop:
            raise JsonPathError(f"starting index {start} is greater than ending index {stop}", values)
        if params[2].known and params[2].value <= 0:
            raise JsonPathError("step must be > 0", values)
        result.extend(value[start : stop : params[2].value if params[2].known else 1])
    return result


def _eval_recursive(values: list[Any]) -> list[Any]:
    result: list[Any] = []
    for value in values:
        children = [] if value is None else _children(value)
        if children:
            result.append(value)
            result.extend(_eval_recursive(children))
    return result


def _eval_filter(values: list[Any], node: _Filter, st: _RangeState) -> list[Any]:
    results: list[Any] = []
    for value in values:
        if not isinstance(value, list):
            raise JsonPathError(f"{_go_v(value)} is not array or slice and cannot be filtered", values)
        for item in value:
            try:
                lefts, error = _walk([item], node.left, st), None
            except JsonPathError as exc:
                lefts, error = exc.partial, exc
            if node.op == "exists":
                if lefts:
                    results.append(item)
                continue
            if error is not None:
                raise JsonPathError(str(error), values)
            if not lefts:
                continue
            if len(lefts) > 1:
                raise JsonPathError("can only compare one element at a time", values)
            try:
                rights = _walk([item], node.right, st)
            except JsonPathError as exc:
                raise JsonPathError(str(exc), values) from None
            if len(rights) > 1:
                raise JsonPathError("can only compare one element at a time", values)
            try:
                if rights and _compare(node.op, lefts[0], rights[0]):
                    results.append(item)
            except JsonPathError as exc:
                raise JsonPathError(str(exc), results) from None
    return results


def _kind(value: Any) -> str:
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind.__name__
    raise JsonPathError("invalid type for comparison")


def _compare(op: str, left: Any, right: Any) -> bool:
    """Go's text/template ``eq``/``lt``/...: same basic kind required, ordering not on bools."""
    if op not in ("<", ">", "==", "!=", "<=", ">="):
        raise JsonPathError(f"unrecognized filter operator {op}")
    kinds = {_kind(left), _kind(right)}
    if len(kinds) > 1:
        raise JsonPathError("incompatible types for comparison")
    if op in ("==", "!="):
        return bool(left == right) == (op == "==")
    if kinds == {"bool"}:
        raise JsonPathError("invalid type for comparison")
    return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    if value is INVALID:
        return "<nil>"  # Go panics here (reflect: call of Value.Type on zero Value)
    return {bool: "bool", int: "int", float: "float64", str: "string"}.get(type(value), type(value).__name__)


def _go_v(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value, for error messages."""
    if value is None:
        return "<nil>"
    if value is INVALID:
        return "<invalid reflect.Value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_g(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    return str(value)


def _go_g(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form outside [1e-4, 1e6)."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    number = Decimal(repr(value)).normalize()
    sign, digits, exp = number.as_tuple()
    assert isinstance(exp, int)
    x = len(digits) + exp - 1
    if value == 0 or -4 <= x < 6:
        return format(number, "f")
    mantissa = "".join(map(str, digits))
    mantissa = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{x:+03d}"
