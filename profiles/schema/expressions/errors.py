"""The two errors of the expression language: refused when compiled (with a position), and a
value an expression cannot work with, found while evaluating one event."""

from __future__ import annotations

__all__ = ["ExpressionError", "ExpressionSyntaxError"]


class ExpressionSyntaxError(ValueError):
    """An expression refused at compile time: the reason and where (1-based line, column)."""

    def __init__(self, reason: str, line: int, column: int, hint: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.hint = hint
        message = f"{reason} at {line}:{column}"
        super().__init__(f"{message}; {hint}" if hint else message)


class ExpressionError(ValueError):
    """A value an expression cannot work with, found while evaluating one event."""

    def __init__(self, reason: str, where: str | None = None, label: str | None = None) -> None:
        self.reason = reason
        self.where = where  # "tolower() at 1:5"
        self.label = label  # "tolower()"
        super().__init__(f"{where}: {reason}" if where else reason)

    def located(self, label: str, line: int, column: int) -> ExpressionError:
        """The same error naming the innermost function or operator that raised it."""
        if self.where:
            return self
        return ExpressionError(self.reason, f"{label} at {line}:{column}", label)
