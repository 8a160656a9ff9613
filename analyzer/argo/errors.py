"""Errors for people: file, field path, reason."""

from __future__ import annotations

from dataclasses import dataclass


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
