"""The consoles every command renders with (results on stdout, progress and errors on stderr)."""

from __future__ import annotations

import sys

from rich.console import Console


class _Stderr:
    """sys.stderr as it is at each write (tests swap it), remembering whether the last write ended
    its line: an error then starts a line of its own even after a progress bar that a Ctrl-C cut off
    in the middle of its line."""

    def __init__(self) -> None:
        self.at_line_start = True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return sys.stderr.write(text)

    def __getattr__(self, name: str):
        return getattr(sys.stderr, name)


_stderr = _Stderr()
console = Console(stderr=False)
err_console = Console(file=_stderr)  # type: ignore[arg-type]


def start_error_line() -> None:
    """End a line that something left unfinished on stderr, so that what follows starts a line."""
    if not _stderr.at_line_start:
        err_console.line()
