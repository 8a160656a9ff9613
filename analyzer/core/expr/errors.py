"""The one exception the expression language raises."""

from __future__ import annotations


class ExpressionError(Exception):
    """A compile or evaluation error.

    ``message`` is the bare text (what Argo puts in a measurement message, e.g.
    ``unexpected token EOF``); ``str()`` adds the expression and the 1-based column.
    """

    def __init__(self, message: str, expression: str = "", column: int | None = None) -> None:
        self.message = message
        self.expression = expression
        self.column = column
        super().__init__(message)

    def __str__(self) -> str:
        where = f" at column {self.column}" if self.column is not None else ""
        if self.expression:
            return f"{self.message}{where} in expression {self.expression!r}"
        return f"{self.message}{where}"

    def copy(self) -> ExpressionError:
        """A fresh instance (cached errors are re-raised as copies, tracebacks stay short)."""
        return ExpressionError(self.message, self.expression, self.column)

    def located(self, expression: str) -> ExpressionError:
        if self.expression:
            return self
        return ExpressionError(self.message, expression, self.column)
