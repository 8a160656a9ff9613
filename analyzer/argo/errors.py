"""Errors for people: file, field path, reason."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    path: str
    reason: str
    warning: bool = False

    def render(self, source: str) -> str:
        where = f"{source}: " if source else ""
        kind = "warning: " if self.warning else ""
        return f"{where}{self.path}: {kind}{self.reason}" if self.path else f"{where}{kind}{self.reason}"


class TemplateError(Exception):
    """One or more problems in a template; ``errors`` keeps them all."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = errors
        super().__init__("\n".join(e.render(source) for e in errors))


class Problems:
    """Collects every problem of one document (errors and warnings) with its field path."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.warnings: list[FieldError] = []

    def err(self, path: str, reason: str) -> None:
        self.errors.append(FieldError(path, reason))

    def warn(self, path: str, reason: str) -> None:
        self.warnings.append(FieldError(path, reason, warning=True))

    def unknown(self, obj: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in obj:
            if key not in allowed:
                match = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.75)
                self.err(f"{path}.{key}" if path else str(key),
                         "unknown field" + (f" (did you mean '{match[0]}'?)" if match else ""))
