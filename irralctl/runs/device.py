"""The one device and precision policy of training, generation and heatmaps.

* `resolve_device("auto" | "cpu" | "cuda" | "cuda:N", local_rank)`: `auto` is this process's GPU
  when CUDA is present, else the CPU; `cuda` means cuda:LOCAL_RANK (one GPU per torchrun process).
* `amp_dtype(precision, device)`: `auto` is bf16 autocast on a GPU that supports it, fp16 on one
  that does not, and plain fp32 on the CPU (CPU autocast is slower than fp32 for these models);
  `bf16` / `fp16` / `fp32` are taken as asked, and a GPU without bf16 refuses `bf16` rather than
  silently running something else.
* `autocast(device, dtype)`: the matching context (a no-op for fp32).
"""

from __future__ import annotations

import contextlib

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
