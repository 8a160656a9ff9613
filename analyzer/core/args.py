"""``{{args.x}}`` substitution, done the way Argo does it (argo-semantics.md §3.2):
on the JSON text of the whole metric, single pass, values escaped so the JSON round trip
restores them, the *last* unresolved placeholder reported."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``{{ args.name }}``; raise ArgError naming the last unresolved tag."""
    out: list[str] = []
    pos = 0
    unresolved: str | None = None
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(text[pos:])
            break
        end = text.find("}}", start + 2)
        if end < 0:
            raise ArgError(f'Cannot find end tag="}}}}" in the template={text!r}')
        out.append(text[pos:start])
        tag = text[start + 2:end].strip()
        name = tag[5:] if tag.startswith("args.") else None
        if name is not None and name in values:
            out.append(values[name])
        else:
            unresolved = text[start:end + 2]
            out.append(text[start:end + 2])
        pos = end + 2
    if unresolved is not None:
        raise ArgError(f"failed to resolve {unresolved}")
    return "".join(out)


def ordered_metric(metric: Mapping[str, Any]) -> dict[str, Any]:
    known = {k: metric[k] for k in METRIC_FIELD_ORDER if k in metric}
    known.update({k: v for k, v in metric.items() if k not in known})
    return known


def resolve_metric(metric: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """Substitute args in every string of the metric, through its JSON text like Argo."""
    text = json.dumps(ordered_metric(metric), ensure_ascii=False, allow_nan=False)
    escaped = {k: json.dumps(v, ensure_ascii=False)[1:-1] for k, v in values.items()}
    resolved = substitute(text, escaped)
    try:
        parsed: dict[str, Any] = json.loads(resolved)
    except json.JSONDecodeError as exc:
        raise ArgError(f"invalid metric after argument substitution: {exc.msg}") from None
    return parsed


def placeholders(text: str) -> list[str]:
    """Argument names referenced as ``{{args.name}}`` in a text (others are returned with their tag)."""
    names: list[str] = []
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            break
        names.append(text[start + 2:end].strip())
        pos = end + 2
    return names
