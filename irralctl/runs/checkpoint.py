"""Checkpoints: saving, loading and verifying them (the one checkpoint loader of irralctl).

A checkpoint (`best.pt`, `last.pt`) is one `torch.save` file of plain containers and tensors:

    format, format_version        "irralctl-checkpoint", 2
    model_config, model           the model's config (a dict) and weights: all inference needs,
    tokenizer                     with the tokeniser {kind, json, text_field},
    inference                     {max_tokens}: generation's default length (the run's),
    cleaner, dataset              the cleaner of the texts and the dataset's name and fingerprint
    train_config, epoch, step     the training config (a dict) and position
    optimizer, scheduler, scaler, obs_weights, mfa, progress, rng, text_encoder   training state
    sha256                        {"inference": ..., "training": ...}: content hashes of the two parts

Loading uses `weights_only=True`, so opening a checkpoint from elsewhere runs no code. Every load
recomputes the hash of what it will use (the inference part for `generate`, both parts to resume)
and refuses a mismatch (a flipped bit, a torn copy) and non-finite weights, naming the file.
Files are written under a temporary name and renamed into place: a failure while saving (a full
disk) leaves the previous checkpoint untouched and says why.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irralctl.errors import InputError, IrralError
from irralctl.utils.io import atomic_write, describe_os_error

FORMAT = "irralctl-checkpoint"
FORMAT_VERSION = 2
# What `generate` and `heatmap` read; everything else is training state.
INFERENCE_KEYS = ("format", "format_version", "model_config", "model", "tokenizer", "inference", "cleaner", "dataset")


# -- RNG state ----------------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- content hashes -----------------------------------------------------------------------------

def _feed(h: Any, obj: Any) -> None:
    """Hash a nested structure of tensors and JSON-like values in a fixed order."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    elif isinstance(obj, dict):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(repr(key).encode())
            _feed(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(json.dumps(obj, sort_keys=True, default=repr).encode())


def content_hashes(payload: dict[str, Any], parts: tuple[str, ...] = ("inference", "training")) -> dict[str, str]:
    """sha256 of the inference part and of the training part of a checkpoint payload (of `parts`
    only: verifying what `generate` reads must not read the optimiser state, twice the weights)."""
    hashes = {part: hashlib.sha256() for part in parts}
    for key in sorted(payload):
        if key == "sha256":
            continue
        target = hashes.get("inference" if key in INFERENCE_KEYS else "training")
        if target is None:
            continue
        target.update(key.encode())
        _feed(target, payload[key])
    return {part: h.hexdigest() for part, h in hashes.items()}


# -- saving -------------------------------------------------------------------------------------

class _RecordingFile:
    """A file whose write errors are kept: torch.save turns an OSError into a RuntimeError whose
    message has lost the errno (a full disk would read as a PyTorch bug).

    Once the save is over (`done`), writes are dropped: a zip writer that a failure or a Ctrl-C
    left unfinished writes its end when it is destroyed, into a file closed by then, and an
    exception raised there aborts the whole process (std::terminate)."""

    def __init__(self, f):
        self.f, self.error, self.done = f, None, False

    def write(self, data) -> int:
        if self.done:
            return len(data)
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        if not self.done:
            self.f.flush()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically, with its content hashes. On failure the previous file is intact."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    payload["sha256"] = content_hashes(payload)
    recording = None
    try:
        with atomic_write(path, "wb") as f:
            recording = _RecordingFile(f)
            try:
                torch.save(payload, recording)
            finally:
                recording.done = True
    except (OSError, RuntimeError) as e:
        if _interrupted(e):  # Ctrl-C while torch.save wrote: it reports the torn archive as a RuntimeError
            raise KeyboardInterrupt from None
        cause = recording.error if recording is not None and recording.error is not None else e
        if not isinstance(cause, OSError):
            raise
        kept = "the previous checkpoint is intact" if path.exists() else "no previous checkpoint existed"
        raise IrralError(f"could not save {path}: {describe_os_error(cause)}; {kept}",
                         hint="free space on that disk (or choose another --out) and continue with --resume"
                         if cause.errno == errno.ENOSPC else None) from None


def _interrupted(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in `error`'s chain (raised inside a write that torch.save made)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


# -- loading ------------------------------------------------------------------------------------

def _refuse(path: Path, why: str, hint: str | None = None) -> InputError:
    return InputError(why, path=path, hint=hint or "point at a best.pt or last.pt written by `irralctl train`")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False,
                    verify: str = "inference") -> dict[str, Any]:
    """Read and check a checkpoint file. `verify`: "inference" (the weights and what generation
    reads), "all" (also the training state, to resume) or "none". `mmap` maps tensors from the
    file instead of reading them (inference never reads the optimiser state)."""
    path = Path(path)
    if path.is_dir():
        raise _refuse(path, "is a directory, not a checkpoint file",
                      hint="give the run directory where a run is expected, or its best.pt / last.pt")
    if not path.is_file():
        raise _refuse(path, "checkpoint not found")
    size = path.stat().st_size
    if size == 0:
        raise _refuse(path, "empty file (0 bytes): not a checkpoint")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise _refuse(path, "not a PyTorch checkpoint (the file is not the zip archive torch.save writes)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises many types for torn, truncated or foreign files
        message = str(e)
        if "weights_only" in message or "Unsupported global" in message or "UnpicklingError" in type(e).__name__:
            raise _refuse(path, "holds Python objects that a checkpoint must not contain; refused without "
                                "running them (irralctl checkpoints hold only tensors and plain values)") from None
        raise _refuse(path, f"unreadable checkpoint: truncated or damaged ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise _refuse(path, "not an irralctl checkpoint (a PyTorch file without irralctl's format marker)")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise _refuse(path, f"checkpoint format {version} is not supported (this irralctl reads {FORMAT_VERSION})",
                      hint="train the run again with this version of irralctl")
    if verify != "none":
        verify_checkpoint(path, ckpt, verify)
    ckpt["path"] = str(path)
    return ckpt


def verify_checkpoint(path: Path, ckpt: dict[str, Any], verify: str = "inference") -> None:
    """Refuse a loaded checkpoint whose content hash (of the inference part, or of both parts with
    "all") differs from the stored one, or whose weights hold NaN or infinities. Reads every byte
    of those parts: `load_run` may run it in a thread beside other work (hashing and numpy's sums
    release the GIL)."""
    stored = ckpt.get("sha256") or {}
    parts = ("inference", "training") if verify == "all" else ("inference",)
    actual = content_hashes(ckpt, parts)
    for part in parts:
        if stored.get(part) != actual[part]:
            raise _refuse(path, f"damaged checkpoint: the content hash of its {part} part does not match "
                                "(a flipped bit or a torn copy)", hint="use another copy of the file, or train again")
    for name, t in ckpt["model"].items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not all_finite(t):
            raise _refuse(path, f"weights {name} hold NaN or infinite values", hint="use an earlier checkpoint")


def all_finite(t: torch.Tensor) -> bool:
    """Whether a floating-point tensor holds no NaN or infinity: one single-threaded pass of numpy
    over its values (torch's isfinite + all allocates a mask, and on a busy machine its thread pool
    made checking a checkpoint's 60 M weights take seconds)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: NaN and infinities have every exponent bit set
        bits = t.contiguous().view(torch.int16).numpy()
        return not bool(((bits & 0x7F80) == 0x7F80).any())
    values = t.contiguous().numpy().reshape(-1)
    # A NaN or an infinity makes the sum non-finite; finite float32/float16 values cannot overflow
    # a float64 sum. A non-finite sum of float64 values is checked value by value.
    return math.isfinite(np.add.reduce(values, dtype=np.float64)) or bool(np.isfinite(values).all())
