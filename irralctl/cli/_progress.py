"""A rich progress bar that library code drives through plain callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from irralctl.cli._common import err_console


@contextlib.contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], Callable[[int], None]]]:
    """Yields `start(description, total, done) -> advance(n)`, the callback shape stages accept."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False,
    ) as bars:
        def start(description: str, total: int, done: int = 0) -> Callable[[int], None]:
            task = bars.add_task(description, total=total, completed=done)
            return lambda n=1: bars.advance(task, n)

        yield start
