"""The project's exception types.

Library code raises these and never prints or exits; the CLI turns each into one line
(plus an optional hint) and exit code 1. `InputError` names the file, the record (line,
row or member) and the field that were wrong, so a user can find the problem at once.
"""

from __future__ import annotations

from pathlib import Path


class IrralError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(IrralError):
    """Bad user input: a missing, unreadable or malformed file, record or field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        record: str | int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        where = []
        if path is not None:
            where.append(str(path))
        if record is not None:
            where.append(f"line {record}" if isinstance(record, int) else str(record))
        if field is not None:
            where.append(f"field '{field}'")
        full = (": ".join([", ".join(where), message])) if where else message
        super().__init__(full, hint=hint)
        self.path = None if path is None else Path(path)
        self.record = record
        self.field = field


class ConfigError(IrralError):
    """Options that contradict each other or the data they are applied to."""


class TrainingError(IrralError):
    """Training could not go on (non-finite loss, out of memory, ...)."""


class StrictStop(InputError):
    """`--strict` refused inputs that would otherwise have been skipped and listed."""
