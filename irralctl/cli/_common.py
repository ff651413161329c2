"""The consoles every command renders with (results on stdout, progress and errors on stderr)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)
