"""Worker processes: how many a command may start (never more than this machine has cores), and
starting them so that Ctrl-C reaches only the parent."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(requested: int, *, flag: str = "--workers", zero_means_all: bool = False) -> int:
    """`requested` capped at the cores (with a warning); 0 means every core when `zero_means_all`."""
    cores = cpu_count()
    if requested == 0:
        return cores if zero_means_all else 0
    if requested > cores:
        log.warning("%s %d: this machine has %d core(s); using %d", flag, requested, cores, cores)
        return cores
    return requested


def spawn_quietly(loader: Iterable) -> Iterator:
    """`iter(loader)`, with the worker processes it forks deaf to Ctrl-C from their first instruction.

    A terminal's Ctrl-C goes to the whole process group. A worker that receives it while still
    starting (before PyTorch's worker loop catches KeyboardInterrupt) prints a traceback of its own
    beside the parent's one-line "interrupted". During the fork the parent's SIGINT handler only
    notes the signal; the children keep that handler (they never react), and the parent, once its
    workers exist, restores its own and raises the interruption it noted.
    """
    if threading.current_thread() is not threading.main_thread():
        return iter(loader)  # signal handlers belong to the main thread
    noted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        batches = iter(loader)
    finally:
        signal.signal(signal.SIGINT, previous)
    if noted:
        with contextlib.suppress(Exception):
            del batches  # shuts its workers down
        raise KeyboardInterrupt
    return batches
