"""The one progress interface of every long stage (preparation, labelling, training, generation).

Library code never prints: it reports to a `Progress` it is given, and the CLI renders that with
rich (`irralctl.cli._progress`). A stage opens a task per phase and advances it; a few stages also
send events (training's end of epoch, with the record written to metrics.jsonl):

    with progress.task("decoding images", total=len(items)) as task:
        for item in items:
            ...
            task.advance(1, loss=0.71)          # optional figures shown beside the bar
    progress.event("epoch", record)

`SILENT` (the default everywhere) does nothing.
"""

from __future__ import annotations

from typing import Any, Protocol


class Task(Protocol):
    def advance(self, n: int = 1, **info: float) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Task: ...
    def __exit__(self, *exc: Any) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None = None, done: int = 0) -> Task: ...
    def event(self, name: str, record: dict) -> None: ...


class _NullTask:
    def advance(self, n: int = 1, **info: float) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NullTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class Silent:
    """A `Progress` that shows nothing."""

    def task(self, description: str, total: int | None = None, done: int = 0) -> Task:
        return _NullTask()  # a new one each time: a caller may wrap it

    def event(self, name: str, record: dict) -> None:
        pass


SILENT = Silent()
