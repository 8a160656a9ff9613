"""``{{args.x}}`` substitution, done the way Argo does it (argo-semantics.md §3.2).

Argo (``utils/analysis/factory.go ResolveMetricArgs``, ``utils/template/template.go``) marshals
the typed Metric to JSON with Go's ``encoding/json``, runs ``fasttemplate`` over that text with
``{{``/``}}`` tags, and unmarshals the result. Everything observable follows from that, so it is
reproduced here rather than approximated:

* the JSON text is Go's: struct field order, ``omitempty``, HTML-safe escaping of ``<>&``, and
  the always-present ``authentication`` struct of the Prometheus and web providers — which
  decides which unresolved placeholder is "last", and the exact ``Cannot find end tag`` text;
* per metric, the checks run in Go's order: unclosed ``{{`` (fasttemplate parse), then any
  argument without a value, then unresolved tags (the last one reported), then the JSON decode;
* argument values are escaped like ``strconv.Quote`` (minus the outer quotes), so quotes,
  newlines and tabs survive, while ``\\a``, ``\\v``, ``\\x..`` escapes break the JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

OPEN, CLOSE = "{{", "}}"

# Field order of Argo's Metric struct: it decides which unresolved tag is reported last.
METRIC_FIELD_ORDER = ("name", "interval", "initialDelay", "count", "successCondition", "failureCondition",
                      "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "provider",
                      "consecutiveSuccessLimit")


class ArgError(Exception):
    """An argument problem; ``str()`` is Argo's message after ``Unable to resolve metric arguments: ``."""


@dataclass(frozen=True)
class Arg:
    name: str
    value: str | None = None
    secret_name: str | None = None
    secret_key: str | None = None

    @property
    def has_source(self) -> bool:
        return self.value is not None or self.secret_name is not None


# --- Go string formatting -------------------------------------------------------------------

_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` (also what ``%q`` prints for a string)."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():  # = Go's IsPrint: letters, marks, numbers, punctuation, symbols, ASCII space
            out.append(ch)
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_trim_space(s: str) -> str:
    """Go's ``strings.TrimSpace`` (unicode.IsSpace; Python's strip() also drops \\x1c-\\x1f)."""
    start, end = 0, len(s)
    while start < end and s[start] in _GO_SPACE:
        start += 1
    while end > start and s[end - 1] in _GO_SPACE:
        end -= 1
    return s[start:end]


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json_string(s: str) -> str:
    """A JSON string as Go's ``encoding/json`` writes it (HTML-safe: ``<`` is ``\\u003c``)."""
    out = ['"']
    for ch in s:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_float(x: float) -> str:
    """encoding/json's float64: shortest digits, positional unless < 1e-6 or >= 1e21."""
    if math.isnan(x) or math.isinf(x):
        return go_json_string(str(x))  # Go refuses to marshal these; YAML numbers never are
    if x == 0 or 1e-6 <= abs(x) < 1e21:
        text = format(Decimal(repr(x)), "f")
        return text[:-2] if text.endswith(".0") else text
    mantissa, exp = repr(x).split("e")
    return f"{mantissa}e{exp[0]}{int(exp[1:])}" if exp[0] in "+-" else f"{mantissa}e{exp}"


def go_json(value: Any) -> str:
    """Compact JSON for an untyped value (maps keep their order, as the API server hands them on)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return go_json_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{go_json_string(str(k))}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return go_json_string(str(value))


# --- Go's marshalling of v1alpha1.Metric ----------------------------------------------------
# A field is (json name, rule). Rules: "s" string omitempty, "A" always (zero value ""),
# "p" pointer (omitted only when absent), "b" bool omitempty, "i" int omitempty,
# "l" slice omitempty, "r" json.RawMessage omitempty, a Struct (always emitted: Go's omitempty
# never omits a struct value), ("*", Struct) pointer to struct, ("[]", Struct) slice of structs.

Struct = tuple[tuple[str, Any], ...]
_SIGV4: Struct = (("region", "s"), ("profile", "s"), ("roleArn", "s"))
_OAUTH2: Struct = (("tokenUrl", "s"), ("clientId", "s"), ("clientSecret", "s"), ("scopes", "l"))
_BASIC: Struct = (("username", "s"), ("password", "s"))
_AUTH: Struct = (("sigv4", _SIGV4), ("oauth2", _OAUTH2), ("basicAuth", _BASIC))
_HEADER: Struct = (("key", "A"), ("value", "A"))
_RANGE: Struct = (("start", "s"), ("end", "s"), ("step", "s"))
_PROMETHEUS: Struct = (("address", "s"), ("query", "s"), ("authentication", _AUTH), ("timeout", "p"),
                       ("insecure", "b"), ("headers", ("[]", _HEADER)), ("rangeQuery", ("*", _RANGE)))
_WEB: Struct = (("method", "s"), ("url", "A"), ("headers", ("[]", _HEADER)), ("body", "s"),
                ("timeoutSeconds", "i"), ("jsonPath", "s"), ("insecure", "b"), ("jsonBody", "r"),
                ("authentication", _AUTH))
# MetricProvider: every provider is a pointer (omitempty); plugin is a map (sorted keys).
PROVIDER_ORDER = ("prometheus", "kayenta", "web", "datadog", "wavefront", "newRelic", "job", "cloudWatch",
                  "graphite", "influxdb", "skywalking", "plugin",
                  "judge")  # ours (core.metric.EXTENSION_PROVIDER_KINDS), kept through substitution
_TYPED_PROVIDERS: dict[str, Struct] = {"prometheus": _PROMETHEUS, "web": _WEB}


def _emit_struct(obj: Any, fields: Struct) -> str:
    if obj is None:
        obj = {}
    if not isinstance(obj, Mapping):
        return go_json(obj)
    parts = []
    for key, rule in fields:
        text = _emit_field(obj.get(key), rule)
        if text is not None:
            parts.append(f"{go_json_string(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def _emit_field(value: Any, rule: Any) -> str | None:
    if isinstance(rule, tuple) and rule and rule[0] == "*":
        return None if value is None else _emit_struct(value, rule[1])
    if isinstance(rule, tuple) and rule and rule[0] == "[]":
        if not value:
            return None
        if not isinstance(value, list | tuple):
            return go_json(value)
        return "[" + ",".join(_emit_struct(v, rule[1]) for v in value) + "]"
    if isinstance(rule, tuple):
        return _emit_struct(value, rule)
    if rule == "A":
        return go_json_string("") if value is None else go_json(value)
    if value is None:
        return None
    if rule == "s" and value == "":
        return None
    if rule == "b" and value is False:
        return None
    if rule == "i" and value == 0 and not isinstance(value, bool):
        return None
    if rule == "l" and isinstance(value, list | tuple) and not value:
        return None
    return go_json(value)


def _emit_provider(provider: Any) -> str:
    if not isinstance(provider, Mapping):
        return "{}"
    parts = []
    for kind in PROVIDER_ORDER:
        block = provider.get(kind)
        if block is None:
            continue
        if kind == "plugin":
            if not isinstance(block, Mapping) or not block:
                continue
            text = "{" + ",".join(f"{go_json_string(str(k))}:{go_json(block[k])}" for k in sorted(block)) + "}"
        elif kind in _TYPED_PROVIDERS:
            text = _emit_struct(block, _TYPED_PROVIDERS[kind])
        else:
            text = go_json(block)
        parts.append(f"{go_json_string(kind)}:{text}")
    return "{" + ",".join(parts) + "}"


_METRIC: tuple[tuple[str, str], ...] = (
    ("name", "A"), ("interval", "s"), ("initialDelay", "s"), ("count", "p"), ("successCondition", "s"),
    ("failureCondition", "s"), ("failureLimit", "p"), ("inconclusiveLimit", "p"), ("consecutiveErrorLimit", "p"),
    ("provider", "provider"), ("consecutiveSuccessLimit", "p"))


def metric_json(metric: Mapping[str, Any]) -> str:
    """``json.Marshal(v1alpha1.Metric)`` for a metric given as YAML/JSON data (unknown fields drop out)."""
    parts = []
    for key, rule in _METRIC:
        text = _emit_provider(metric.get(key)) if rule == "provider" else _emit_field(metric.get(key), rule)
        if text is not None:
            parts.append(f"{go_json_string(key)}:{text}")
    return "{" + ",".join(parts) + "}"


# --- fasttemplate ---------------------------------------------------------------------------

def _tags(text: str) -> list[tuple[int, int]]:
    """(start, end) of every ``{{...}}``; raises fasttemplate's error for an unclosed one."""
    tags: list[tuple[int, int]] = []
    pos = 0
    while (start := text.find(OPEN, pos)) >= 0:
        end = text.find(CLOSE, start + len(OPEN))
        if end < 0:
            rest = text[start + len(OPEN):]
            raise ArgError(f"Cannot find end tag={go_quote(CLOSE)} in the template={go_quote(text)} "
                           f"starting from {go_quote(rest)}")
        tags.append((start, end))
        pos = end + len(CLOSE)
    return tags


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{ args.name }}`` in ``text`` (values inserted as given).

    Raises ArgError for an unclosed ``{{`` and, after the whole pass, for the *last* tag that did
    not resolve (``failed to resolve {{<tag as written>}}``).
    """
    tags = _tags(text)
    return _execute(text, tags, {f"args.{k}": v for k, v in values.items()})


def _execute(text: str, tags: list[tuple[int, int]], by_tag: Mapping[str, str]) -> str:
    out: list[str] = []
    pos = 0
    unresolved: str | None = None
    for start, end in tags:
        out.append(text[pos:start])
        tag = text[start + len(OPEN):end]
        value = by_tag.get(go_trim_space(tag))
        if value is None:
            unresolved = tag
        else:
            out.append(value)
        pos = end + len(CLOSE)
    out.append(text[pos:])
    if unresolved is not None:
        raise ArgError(f"failed to resolve {OPEN}{unresolved}{CLOSE}")
    return "".join(out)


def resolve_text(text: str, args: Sequence[tuple[str, str | None]]) -> str:
    """``templateutil.ResolveQuotedArgs``: parse tags, demand every arg has a value, substitute."""
    tags = _tags(text) if OPEN in text else []
    by_tag: dict[str, str] = {}
    for name, value in args:
        if value is None:
            raise ArgError(f'argument "{name}" was not supplied')
        by_tag[f"args.{name}"] = go_quote(value)[1:-1]
    return _execute(text, tags, by_tag) if tags else text


_VALID_ESCAPES = frozenset('bfnrt\\/"u')


def _json_error(text: str, exc: json.JSONDecodeError) -> str:
    """Go's json.Unmarshal message for the only breakage substitution can cause: a bad escape."""
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                nxt = text[i + 1] if i + 1 < len(text) else ""
                if nxt not in _VALID_ESCAPES:
                    quoted = "'\\''" if nxt == "'" else "'" + go_quote(nxt)[1:-1] + "'"
                    return f"invalid character {quoted} in string escape code"
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        i += 1
    return exc.msg


def resolve_metric(metric: Mapping[str, Any], args: Sequence[tuple[str, str | None]] | Mapping[str, str]
                   ) -> dict[str, Any]:
    """``ResolveMetricArgs``: the metric after substitution, as Go's JSON round trip leaves it.

    ``args`` are (name, value-or-None) pairs in spec order (a mapping means all have values).
    """
    pairs: Sequence[tuple[str, str | None]] = list(args.items()) if isinstance(args, Mapping) else args
    text = resolve_text(metric_json(metric), pairs)
    try:
        parsed: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArgError(_json_error(text, exc)) from None
    return parsed


def placeholders(text: str) -> list[str]:
    """The trimmed text of every ``{{...}}`` in a string (for lint), unclosed ones ignored."""
    names: list[str] = []
    pos = 0
    while (start := text.find(OPEN, pos)) >= 0:
        end = text.find(CLOSE, start + len(OPEN))
        if end < 0:
            break
        names.append(go_trim_space(text[start + len(OPEN):end]))
        pos = end + len(CLOSE)
    return names


# Kept for callers that want Argo's field order on a plain dict.
def ordered_metric(metric: Mapping[str, Any]) -> dict[str, Any]:
    known = {k: metric[k] for k in METRIC_FIELD_ORDER if k in metric}
    known.update({k: v for k, v in metric.items() if k not in known})
    return known


__all__ = ["Arg", "ArgError", "METRIC_FIELD_ORDER", "PROVIDER_ORDER", "go_json", "go_json_string", "go_quote",
           "go_trim_space", "metric_json", "ordered_metric", "placeholders", "resolve_metric", "resolve_text",
           "substitute"]
