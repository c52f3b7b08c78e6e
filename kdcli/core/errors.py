"""Exceptions the library raises; the CLI maps them to exit codes.

`KdcliError` is bad input (exit 2): its message is one line that names the bad value and the fix.
`CheckFailedError` means the work ran but a quality check failed (exit 1), e.g. export verification.
"""

from __future__ import annotations


class KdcliError(Exception):
    """Bad usage or bad input. The message names the value, what is allowed, and what to change."""


class CheckFailedError(Exception):
    """A requested check failed after the work was done (outputs exist but are marked failed)."""

    def __init__(self, message: str, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


def one_line(text: object) -> str:
    """Collapse an exception text from a third-party library to one readable line."""
    line = " ".join(str(text).split())
    return line if len(line) <= 300 else line[:297] + "..."
