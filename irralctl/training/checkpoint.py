"""Checkpoints: everything needed to resume a run exactly, or to generate with nothing else.

A checkpoint (`best.pt`, `last.pt`) is one `torch.save` file holding the model's config and
weights, the optimiser, LR controller, grad scaler and Eq. 6 weights, epoch and step, the RNG
states (python, numpy, torch, CUDA), the full training config, the tokeniser JSON and the cleaner
that produced its text field. Only plain containers and tensors are stored, so loading uses
`weights_only=True` (no arbitrary code runs when a checkpoint from elsewhere is opened).

Files are written under a temporary name and renamed into place: a failure while saving (a full
disk) leaves the previous checkpoint untouched.
"""

from __future__ import annotations

import errno
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irralctl.data.tokenizers import ReportTokenizer, tokenizer_from_json
from irralctl.errors import InputError, TrainingError
from irralctl.model import IRRALNet, ModelConfig
from irralctl.training.config import TrainConfig
from irralctl.training.distributed import resolve_device
from irralctl.utils.config import from_dict, to_jsonable
from irralctl.utils.io import atomic_write

log = logging.getLogger(__name__)

FORMAT = "irralctl-checkpoint"
FORMAT_VERSION = 1
BEST, LAST = "best.pt", "last.pt"


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


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically; an OSError (full disk, ...) leaves any previous file intact."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    try:
        with atomic_write(path, "wb") as f:
            torch.save(payload, f)
    except OSError as e:
        reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        kept = "the previous checkpoint is intact" if path.exists() else "no previous checkpoint existed"
        raise TrainingError(f"could not save {path}: {reason}; {kept}",
                            hint="free space on that disk (or choose another --out) and continue with --resume") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False) -> dict[str, Any]:
    """`mmap`: map tensors from the file instead of reading them (inference reads only the weights)."""
    path = Path(path)
    if path.is_dir():
        path = _checkpoint_in(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path=path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:
        raise InputError(f"not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                         path=path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError("not an irralctl checkpoint", path=path)
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise InputError(f"checkpoint format {ckpt.get('format_version')} is not supported (this irralctl reads {FORMAT_VERSION})", path=path)
    ckpt["path"] = str(path)
    return ckpt


def _checkpoint_in(run_dir: Path) -> Path:
    for name in (BEST, LAST):
        if (run_dir / name).is_file():
            return run_dir / name
    raise InputError(f"no {BEST} or {LAST} in this run directory", path=run_dir,
                     hint="point at a run directory written by `irralctl train`, or at a .pt file")


def model_config_of(ckpt: dict) -> ModelConfig:
    return from_dict(ModelConfig, ckpt["model_config"])


def train_config_of(ckpt: dict) -> TrainConfig:
    data = dict(ckpt["train_config"])
    for key in ("dataset", "out", "visual_weights", "text_encoder"):
        if data.get(key) is not None:
            data[key] = Path(data[key])
    return from_dict(TrainConfig, data)


def tokenizer_of(ckpt: dict) -> ReportTokenizer:
    return tokenizer_from_json(ckpt["tokenizer"]["json"], source=ckpt.get("path", "<checkpoint>"))


def model_from_checkpoint(ckpt: dict) -> IRRALNet:
    """The model a loaded checkpoint describes, with its weights (on the CPU, train mode)."""
    model = IRRALNet(model_config_of(ckpt))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise InputError(f"weights do not fit the saved model config ({str(e).splitlines()[0]})", path=ckpt["path"]) from None
    return model


def load_for_inference(run_dir_or_file: str | Path, device: str | torch.device = "auto") -> tuple[IRRALNet, ReportTokenizer, TrainConfig]:
    """The trained model (eval mode, on `device`), its tokeniser and its training config.

    A run directory gives its `best.pt` (else `last.pt`). Nothing else is read: the checkpoint
    holds the model config, weights and tokeniser.
    """
    ckpt = load_checkpoint(run_dir_or_file)
    model = model_from_checkpoint(ckpt)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev).eval(), tokenizer_of(ckpt), train_config_of(ckpt)


def config_payload(cfg: TrainConfig, model_cfg: ModelConfig) -> dict[str, Any]:
    return {"train_config": to_jsonable(cfg), "model_config": to_jsonable(model_cfg)}
