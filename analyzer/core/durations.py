"""Go ``time.ParseDuration``: the duration syntax Argo accepts (``ns us µs ms s m h``, no ``d``)."""

from __future__ import annotations

from datetime import timedelta

_UNIT_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX = 1 << 63


def _quote(s: str) -> str:
    """The time package's quote(): non-ASCII and control characters become \\x.. bytes."""
    out = ['"']
    for ch in s:
        if ord(ch) >= 0x80 or ord(ch) < 0x20:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def _digits(s: str, i: int) -> int:
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return i


def parse_go_duration(text: str) -> timedelta:
    """Parse like Go; errors carry Go's wording (``time: unknown unit "d" in duration "1d"``)."""
    return timedelta(seconds=parse_go_duration_seconds(text))


def parse_go_duration_seconds(text: str) -> float:
    """Go's ``time.ParseDuration`` (same grammar, limits and error texts), in seconds."""
    invalid = ValueError("time: invalid duration " + _quote(text))
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if s == "":
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        i = _digits(s, 0)
        whole, s = s[:i], s[i:]
        frac = ""
        if s.startswith("."):
            j = _digits(s, 1)
            frac, s = s[1:j], s[j:]
        elif not whole:
            raise invalid
        if not whole and not frac:
            raise invalid  # no digits, e.g. ".s"
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise ValueError("time: missing unit in duration " + _quote(text))
        unit_name, s = s[:k], s[k:]
        unit = _UNIT_NS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_name)} in duration {_quote(text)}")
        v = int(whole or "0")
        if v > _MAX // unit:
            raise invalid
        v *= unit
        if frac:
            v += int(int(frac[:18]) / 10 ** len(frac[:18]) * unit)
            if v > _MAX:
                raise invalid
        total += v
        if total > _MAX:
            raise invalid
    if not neg and total > _MAX - 1:
        raise invalid
    return (-total if neg else total) / 1e9


def format_go_duration(seconds: float) -> str:
    """Go's Duration.String() for whole-second-ish values (``1m0s``, ``10s``, ``1h30m0s``)."""
    if seconds == 0:
        return "0s"
    neg = seconds < 0
    seconds = abs(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    out += f"{s:g}s" if s != int(s) else f"{int(s)}s"
    return ("-" if neg else "") + out
