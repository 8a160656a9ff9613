"""``metav1.Time`` (RFC 3339, whole seconds, UTC) and ``metav1.MicroTime`` (exactly six
fractional digits and a zone) as kube-apiserver decodes and encodes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_MICRO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})(Z|[+-]\d{2}:\d{2})$")
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"
TIME_LAYOUT = "2006-01-02T15:04:05Z07:00"


class TimeParseError(ValueError):
    pass


def now_time() -> str:
    return format_time(datetime.now(UTC))


def now_micro() -> str:
    return format_micro(datetime.now(UTC))


def format_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_dt(text: str, fraction: str | None, zone: str) -> datetime:
    digits = ((fraction or ".")[1:] + "000000")[:6]
    iso = text[:19] + "." + digits + ("+00:00" if zone in ("Z", "z") else zone)
    try:
        return datetime.fromisoformat(iso.replace("t", "T"))
    except ValueError as exc:
        raise TimeParseError(f'parsing time "{text}": {exc}') from exc


def parse_micro(text: str) -> str:
    """Normalise a MicroTime value or raise ``TimeParseError`` with Go's style of message."""
    m = _MICRO.match(text) if isinstance(text, str) else None
    if not m:
        raise TimeParseError(f'parsing time "{text}" as "{MICRO_LAYOUT}": cannot parse "{_tail(text)}" as ".000000"')
    return format_micro(_to_dt(text, "." + m.group(7), m.group(8)))


def parse_time(text: str) -> str:
    m = _RFC3339.match(text) if isinstance(text, str) else None
    if not m:
        raise TimeParseError(f'parsing time "{text}" as "{TIME_LAYOUT}": cannot parse "{text}" as "2006"')
    return format_time(_to_dt(text, m.group(7), m.group(8)))


def _tail(text: object) -> str:
    return text[19:] if isinstance(text, str) and len(text) > 19 else ""


def parse_any(text: str) -> datetime:
    m = _RFC3339.match(text)
    if not m:
        raise TimeParseError(text)
    return _to_dt(text, m.group(7), m.group(8))
