"""`irralctl.progress.Progress` rendered with rich: a bar per task, figures beside it, a line per event."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from irralctl.cli._common import err_console


class _Task:
    def __init__(self, bars: Progress, task_id: int, transient: bool):
        self.bars, self.id, self.transient = bars, task_id, transient

    def advance(self, n: int = 1, **info: float) -> None:
        text = " ".join(f"{k.replace('_per_s', '/s').replace('images', 'img')} {v:.3g}" for k, v in info.items())
        self.bars.update(self.id, advance=n, info=text)

    def close(self) -> None:
        if self.transient:
            self.bars.remove_task(self.id)
        else:
            self.bars.stop_task(self.id)

    def __enter__(self) -> _Task:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RichProgress:
    """Bars on stderr. `transient` tasks vanish when done (training's epochs); `on_event` renders events."""

    def __init__(self, bars: Progress, *, transient: bool, on_event: Callable[[str, dict], None] | None):
        self.bars, self.transient, self.on_event = bars, transient, on_event

    def task(self, description: str, total: int | None = None, done: int = 0) -> _Task:
        return _Task(self.bars, self.bars.add_task(description, total=total, completed=done, info=""), self.transient)

    def event(self, name: str, record: dict) -> None:
        if self.on_event is not None:
            self.on_event(name, record)


@contextlib.contextmanager
def progress_bars(*, transient: bool = False, on_event: Callable[[str, dict], None] | None = None,
                  enabled: bool = True) -> Iterator[RichProgress]:
    """A `Progress` for a command's library call. Disabled (e.g. on torchrun's other ranks): silent."""
    from irralctl.progress import SILENT

    if not enabled:
        yield SILENT  # type: ignore[misc]
        return
    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err_console, transient=transient)
    with bars:
        yield RichProgress(bars, transient=transient, on_event=on_event)
