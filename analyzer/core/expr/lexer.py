"""Tokenizer for the expr-lang subset."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.core.expr.errors import ExpressionError

# Longest first, so that "**" wins over "*" and "?." over "?".
OPERATORS = (
    "?.", "??", "...", "..", "**", "==", "!=", "<=", ">=", "&&", "||",
    "+", "-", "*", "/", "%", "^", "<", ">", "!", "?", ":", ".", ",", "(", ")", "[", "]",
    "{", "}", "|", "#",
)
WORD_OPERATORS = {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"}

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "0": "\0"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "number", "string", "name", "op", "eof"
    value: str | int | float
    pos: int  # 0-based offset in the source

    def is_op(self, *values: str) -> bool:
        return self.kind == "op" and self.value in values


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()
                           and not (tokens and tokens[-1].is_op(".", "?."))):
            i = _number(src, i, tokens)
            continue
        if c in "\"'":
            i = _string(src, i, tokens)
            continue
        if c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise ExpressionError("literal not terminated", src, i + 1)
            tokens.append(Token("string", src[i + 1:end], i))
            i = end + 1
            continue
        if c.isalpha() or c == "_" or c == "$":
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] in "_$"):
                j += 1
            word = src[i:j]
            tokens.append(Token("op" if word in WORD_OPERATORS else "name", word, i))
            i = j
            continue
        for op in OPERATORS:
            if src.startswith(op, i):
                # "1..2" must lex as range, but "?.1" is not optional chaining in expr either.
                tokens.append(Token("op", op, i))
                i += len(op)
                break
        else:
            raise ExpressionError(f"unrecognized character: U+{ord(c):04X} '{c}'", src, i + 1)
    tokens.append(Token("eof", "EOF", n))
    return tokens


def _number(src: str, i: int, out: list[Token]) -> int:
    n = len(src)
    j = i
    if src.startswith(("0x", "0X"), i):
        j = i + 2
        while j < n and (src[j] in "0123456789abcdefABCDEF_"):
            j += 1
        out.append(Token("number", int(src[i + 2:j].replace("_", ""), 16), i))
        return j
    is_float = False
    while j < n and (src[j].isdigit() or src[j] == "_"):
        j += 1
    # A dot followed by a digit is a fraction; ".." is the range operator.
    if j < n and src[j] == "." and not src.startswith("..", j) and (j + 1 >= n or not src[j + 1].isalpha()):
        is_float = True
        j += 1
        while j < n and (src[j].isdigit() or src[j] == "_"):
            j += 1
    if j < n and src[j] in "eE":
        k = j + 1
        if k < n and src[k] in "+-":
            k += 1
        if k < n and src[k].isdigit():
            is_float = True
            j = k
            while j < n and src[j].isdigit():
                j += 1
    text = src[i:j].replace("_", "")
    try:
        value: int | float = float(text) if is_float else int(text)
    except ValueError:
        raise ExpressionError(f"invalid number literal {text!r}", src, i + 1) from None
    out.append(Token("number", value, i))
    return j


def _string(src: str, i: int, out: list[Token]) -> int:
    quote = src[i]
    j = i + 1
    n = len(src)
    buf: list[str] = []
    while j < n:
        c = src[j]
        if c == quote:
            out.append(Token("string", "".join(buf), i))
            return j + 1
        if c == "\\":
            if j + 1 >= n:
                break
            e = src[j + 1]
            if e in _ESCAPES:
                buf.append(_ESCAPES[e])
                j += 2
                continue
            if e in "uUx":
                width = {"u": 4, "U": 8, "x": 2}[e]
                digits = src[j + 2:j + 2 + width]
                try:
                    buf.append(chr(int(digits, 16)))
                except ValueError:
                    raise ExpressionError("invalid char escape", src, j + 1) from None
                j += 2 + width
                continue
            raise ExpressionError("invalid char escape", src, j + 1)
        buf.append(c)
        j += 1
    raise ExpressionError("literal not terminated", src, i + 1)
