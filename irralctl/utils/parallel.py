"""How many worker processes a command may start: never more than this machine has cores."""

from __future__ import annotations

import logging
import os

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
