"""Errors for people: where (file, line or field path) and why."""

from __future__ import annotations


class JudgeInputError(ValueError):
    """Bad judge input: a config or series problem. ``str()`` is ``source: where: reason`` lines."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in problems))

    def with_source(self, source: str) -> JudgeInputError:
        return JudgeInputError(self.problems, source)
