"""Tokenizer following expr-lang's lexer (parser/lexer/state.go) token for token.

Token kinds are expr's: Identifier, Number, String, Bytes, Operator, Bracket, EOF. Positions
are rune offsets (Python string indexes). A lexing error does not raise at once: it becomes a
final ``error`` token, so that (as in expr, whose lexer runs lazily) an earlier parse error
wins over a later lexing error.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.core.expr.errors import ExpressionError

IDENT = "Identifier"
NUMBER = "Number"
STRING = "String"
BYTES = "Bytes"
OPERATOR = "Operator"
BRACKET = "Bracket"
EOF = "EOF"
ERROR = "error"

WORD_OPERATORS = {"in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let", "if", "else", "not"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str
    pos: int  # 0-based rune offset

    def is_(self, kind: str, *values: str) -> bool:
        return self.kind == kind and (not values or self.value in values)

    def __str__(self) -> str:
        if self.value == "":
            return self.kind
        return f"{self.kind}({go_quote(self.value)})"


def go_quote(s: str) -> str:
    """Go's %#v of a string (strconv.Quote)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def is_alpha(c: str) -> bool:
    return c == "_" or c == "$" or c.isalpha()


def is_alnum(c: str) -> bool:
    return is_alpha(c) or (c.isdigit() and c.isdecimal())


def is_space(c: str) -> bool:
    return c.isspace() and c not in "\x1c\x1d\x1e\x1f"


class _LexError(Exception):
    def __init__(self, message: str, pos: int) -> None:
        self.message = message
        self.pos = pos


def tokenize(src: str) -> list[Token]:
    """All tokens; the last one is EOF, or an ``error`` token carrying the message."""
    out: list[Token] = []
    try:
        _Lexer(src, out).run()
    except _LexError as exc:
        out.append(Token(ERROR, exc.message, exc.pos))
    return out


class _Lexer:
    def __init__(self, src: str, out: list[Token]) -> None:
        self.src = src
        self.n = len(src)
        self.out = out
        self.start = 0
        self.end = 0

    # -- primitives (mirroring Lexer.next/peek/backup/accept)
    def next(self) -> str:
        if self.end >= self.n:
            self.end = self.n + 1  # past EOF, so that backup() returns to n
            return ""
        c = self.src[self.end]
        self.end += 1
        return c

    def peek(self) -> str:
        return self.src[self.end] if self.end < self.n else ""

    def backup(self) -> None:
        self.end -= 1

    def accept(self, valid: str) -> bool:
        c = self.peek()
        if c != "" and c in valid:
            self.end += 1
            return True
        return False

    def accept_run(self, valid: str) -> None:
        while self.accept(valid):
            pass

    def word(self) -> str:
        return self.src[self.start:min(self.end, self.n)]

    def emit(self, kind: str, value: str | None = None) -> None:
        self.out.append(Token(kind, self.word() if value is None else value, self.start))
        self.start = min(self.end, self.n)

    def error(self, message: str) -> _LexError:
        # expr reports the rune before the lexer's position (the offending one)
        return _LexError(message, max(min(self.end, self.n + 1) - 1, 0))

    # -- states
    def run(self) -> None:
        while True:
            c = self.next()
            if c == "":
                # expr places EOF on the last rune; we point just past it (the CLI's contract)
                self.out.append(Token(EOF, "", self.n))
                return
            if is_space(c):
                self.start = self.end
            elif c in "'\"":
                self.scan_string(c)
                self.emit(STRING, unescape(self.word(), self))
            elif c == "`":
                self.scan_raw_string()
            elif c in "bB" and self.peek() in ("'", '"'):
                quote = self.next()
                self.scan_string(quote)
                self.emit(BYTES, unescape(self.word()[1:], self, raw_bytes=True))
            elif "0" <= c <= "9":
                self.backup()
                self.number()
            elif c == "?":
                self.accept(".?")
                self.emit(OPERATOR)
            elif c == "/":
                if self.accept("/"):
                    while True:
                        r = self.next()
                        if r == "" or r == "\n":
                            break
                    if self.end > self.n:
                        self.end = self.n
                    self.start = self.end
                elif self.accept("*"):
                    while True:
                        r = self.next()
                        if r == "":
                            raise self.error("unclosed comment")
                        if r == "*" and self.accept("/"):
                            break
                    self.start = self.end
                else:
                    self.emit(OPERATOR)
            elif c == "#":
                self.accept("#")
                self.emit(OPERATOR)
                while is_alnum(self.peek()):
                    self.end += 1
                if self.word():
                    self.emit(IDENT)
            elif c == "|":
                self.accept("|")
                self.emit(OPERATOR)
            elif c == ":":
                self.accept(":")
                self.emit(OPERATOR)
            elif c in "([{)]}":
                self.emit(BRACKET)
            elif c in ",;%+-^":
                self.emit(OPERATOR)
            elif c in "&!=*<>":
                self.accept("&=*")
                self.emit(OPERATOR)
            elif c == ".":
                if "0" <= self.peek() <= "9":
                    self.backup()
                    self.number()
                else:
                    self.accept(".")
                    self.emit(OPERATOR)
            elif is_alnum(c):
                while is_alnum(self.peek()):
                    self.end += 1
                w = self.word()
                self.emit(OPERATOR if w in WORD_OPERATORS else IDENT)
            else:
                raise self.error(f"unrecognized character: U+{ord(c):04X} {c!r}".replace('"', "'"))

    def number(self) -> None:
        if self.peek() == ".":
            # ".5": the dot state consumed the dot and one digit, then backed up the digit
            self.end += 1
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        saved = self.end
        ok = True
        if self.accept("."):
            if self.peek() == ".":
                self.end = saved
                self.emit(NUMBER)
                return
            self.accept_run(digits)
        if self.accept("eE"):
            self.accept("+-")
            self.accept_run(digits)
        if is_alnum(self.peek()):
            self.end += 1
            ok = False
        if not ok:
            raise self.error(f"bad number syntax: {go_quote(self.word())}")
        self.emit(NUMBER)

    def scan_string(self, quote: str) -> None:
        c = self.next()
        while c != quote:
            if c == "\n" or c == "":
                raise self.error("literal not terminated")
            if c == "\\":
                c = self.scan_escape(quote)
            else:
                c = self.next()

    def scan_digits(self, c: str, base: int, n: int) -> str:
        while n > 0 and _digit_val(c) < base:
            c = self.next()
            n -= 1
        if n > 0:
            raise self.error("invalid char escape")
        return c

    def scan_escape(self, quote: str) -> str:
        c = self.next()
        if c != "" and c in "abfnrtv\\" + quote:
            return self.next()
        if c != "" and c in "01234567":
            return self.scan_digits(c, 8, 3)
        if c == "x":
            return self.scan_digits(self.next(), 16, 2)
        if c == "u":
            if self.peek() == "{":
                self.next()
                count = 0
                while self.peek() != "}":
                    if _digit_val(self.peek()) >= 16 or count >= 6:
                        raise self.error("invalid char escape")
                    self.next()
                    count += 1
                if count == 0:
                    raise self.error("invalid char escape")
                self.next()
                return self.next()
            return self.scan_digits(self.next(), 16, 4)
        if c == "U":
            return self.scan_digits(self.next(), 16, 8)
        raise self.error("invalid char escape")

    def scan_raw_string(self) -> None:
        escaped = 0
        while True:
            c = self.next()
            while c == "`" and self.peek() == "`":
                self.next()
                c = self.next()
                escaped += 1
            if c == "`":
                break
            if c == "":
                raise self.error("literal not terminated")
        text = self.src[self.start + 1:self.end - 1]
        if escaped:
            text = text.replace("``", "`")
        self.emit(STRING, text)


def _digit_val(c: str) -> int:
    if "0" <= c <= "9":
        return ord(c) - 48
    if "a" <= c.lower() <= "f" and len(c) == 1:
        return ord(c.lower()) - 87
    return 16


_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}


def unescape(quoted: str, lexer: _Lexer, raw_bytes: bool = False) -> str:
    """expr's unescape (parser/lexer/utils.go) of a quoted literal, quotes included."""
    value = quoted.replace("\r\n", "\n").replace("\r", "\n")[1:-1]
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise lexer.error("unable to unescape string, found '\\' as last character")
        e = value[i + 1]
        i += 2
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
        elif e in "xXuU":
            if e == "u" and i < n and value[i] == "{" and not raw_bytes:
                j = value.find("}", i)
                digits = value[i + 1:j] if j > 0 else ""
                if j < 0 or not digits or len(digits) > 6 or any(_digit_val(d) >= 16 for d in digits):
                    raise lexer.error("unable to unescape string")
                code = int(digits, 16)
                i = j + 1
            else:
                width = 2 if e in "xX" else 4 if e == "u" else 8
                if raw_bytes and e not in "xX":
                    raise lexer.error("unable to unescape string")
                digits = value[i:i + width]
                if len(digits) < width or any(_digit_val(d) >= 16 for d in digits):
                    raise lexer.error("unable to unescape string")
                code = int(digits, 16)
                i += width
            if code > 0x10FFFF:
                raise lexer.error("unable to unescape string")
            out.append("\ufffd" if 0xD800 <= code <= 0xDFFF and not raw_bytes else chr(code))
        elif e in "0123":
            digits = value[i:i + 2]
            if len(digits) < 2 or any(d not in "01234567" for d in digits):
                raise lexer.error("unable to unescape octal sequence in string")
            out.append(chr(int(e + digits, 8)))
            i += 2
        else:
            raise lexer.error("unable to unescape string")
    return "".join(out)


def raise_token_error(tok: Token, source: str) -> ExpressionError:
    return ExpressionError(tok.value, source, tok.pos + 1)
