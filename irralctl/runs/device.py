"""The one device and precision policy of training, generation and heatmaps.

* `resolve_device("auto" | "cpu" | "cuda" | "cuda:N", local_rank)`: `auto` is this process's GPU
  when CUDA is present, else the CPU; `cuda` means cuda:LOCAL_RANK (one GPU per torchrun process).
* `amp_dtype(precision, device)`: `auto` is bf16 autocast on a GPU that supports it, fp16 on one
  that does not, and plain fp32 on the CPU (CPU autocast is slower than fp32 for these models);
  `bf16` / `fp16` / `fp32` are taken as asked, and a GPU without bf16 refuses `bf16` rather than
  silently running something else.
* `autocast(device, dtype)`: the matching context (a no-op for fp32).
* `CpuShare` and `threads_for_small_steps`: how many intra-op threads a CPU step of a few rows
  (beam-search decoding of a few studies) uses: the CPUs the machine's other processes leave
  free, measured while the command was starting.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from irralctl.constants import PRECISIONS
from irralctl.errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` -> this process's GPU when CUDA is present, else the CPU; `cuda` -> cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA GPU is visible to torch", hint="use --device cpu or auto")
        try:
            device = torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)
        except RuntimeError:
            raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) are visible")
        return device
    if name != "cpu":
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")
    return torch.device("cpu")


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "fp32" or (precision == "auto" and not cuda):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU does not support bfloat16", hint="use --precision fp16 or auto")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast to `dtype` on `device`, or nothing for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def setup_device(device: torch.device) -> None:
    """Fast kernels on GPUs: cuDNN autotuning and TF32 matrix products (fp32 parts of a bf16 step)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# -- intra-op threads for small CPU steps -------------------------------------------------------

SMALL_STEP_ROWS = 64  # CPU steps of fewer rows than this follow `threads_for_small_steps`


class CpuSample(NamedTuple):
    busy_s: float   # CPU time every process of the machine has used (Linux /proc/stat)
    own_s: float    # CPU time this process has used (all its threads) and its waited-for children
    wall_s: float   # a monotonic clock
    cpus: int       # CPUs /proc/stat counts


def read_cpu_sample() -> CpuSample | None:
    """The machine's busy CPU time and this process's, now; None where /proc/stat is missing."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return None
    ticks = [int(x) for x in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    cpus = sum(1 for line in lines[1:] if line.startswith(b"cpu"))
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return CpuSample(busy / os.sysconf("SC_CLK_TCK"), own, time.monotonic(), cpus)


class CpuShare:
    """How busy the machine's other processes keep its CPUs, measured from creation to each call:
    the machine's busy time less this process's own (and its waited-for children's). Creating it
    is one read of /proc/stat; so is each call."""

    MIN_WINDOW_S = 0.2  # shorter windows say too little (/proc/stat counts in 10 ms ticks)

    def __init__(self, read: Callable[[], CpuSample | None] = read_cpu_sample):
        self._read = read
        self._start = read()

    def _other(self) -> tuple[float, CpuSample] | None:
        """(CPUs other processes used on average, the sample now); None: unknown."""
        now = self._read()
        if self._start is None or now is None or now.wall_s - self._start.wall_s < self.MIN_WINDOW_S:
            return None
        wall = now.wall_s - self._start.wall_s
        return max(0.0, (now.busy_s - self._start.busy_s) - (now.own_s - self._start.own_s)) / wall, now

    def other_cpus(self) -> float | None:
        """CPUs the machine's other processes kept busy on average; None: unknown."""
        found = self._other()
        return None if found is None else found[0]

    def free_cpus(self) -> float | None:
        """CPUs free for this process (this process's own use counts as free); None: unknown."""
        found = self._other()
        if found is None:
            return None
        others, now = found
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else now.cpus
        return max(0.0, min(float(usable), now.cpus - others))


def threads_for_small_steps(free_cpus: float | None, threads: int) -> int:
    """Intra-op threads for a CPU step of a few rows, out of `threads`.

    Such a step is a few hundred operations on matrices of a few rows, bound by reading the
    weights from memory: on an idle machine every core helps (a beam of 3 over 60 tokens with the
    paper-size model: 0.46 s on one thread, 0.28 s on two, 2 cores), but a thread that has to wait
    for a core another process holds stalls every operation (1.5 to 1.9 s on two threads with one
    core busy). So: as many threads as there are free CPUs, one when that is unknown."""
    if free_cpus is None:
        return 1
    return max(1, min(threads, int(free_cpus + 0.25)))


@contextlib.contextmanager
def small_step_threads(device: torch.device, rows: int, share: CpuShare | None) -> Iterator[None]:
    """Run a step of `rows` rows with `threads_for_small_steps` threads on the CPU (every thread
    for big steps and GPUs), then the previous count again."""
    before = torch.get_num_threads()
    if device.type != "cpu" or rows >= SMALL_STEP_ROWS or before == 1:
        yield
        return
    torch.set_num_threads(threads_for_small_steps(share.free_cpus() if share else None, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)
