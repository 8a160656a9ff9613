"""Go ``time.ParseDuration``: the duration syntax Argo accepts (``ns us µs ms s m h``, no ``d``)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-zµμ]*)")


def parse_go_duration(text: str) -> timedelta:
    """Parse like Go; errors carry Go's wording (``time: unknown unit "d" in duration "1d"``)."""
    return timedelta(seconds=parse_go_duration_seconds(text))


def parse_go_duration_seconds(text: str) -> float:
    s = text
    quoted = f'"{text}"'
    if s == "":
        raise ValueError(f"time: invalid duration {quoted}")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if s == "":
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f"time: invalid duration {quoted}")
        number, unit = m.group(1), m.group(2)
        if unit == "":
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float(number) * _UNITS[unit]
        pos = m.end()
    return sign * total


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
