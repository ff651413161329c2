"""A trained run opened for inference: what `generate`, `heatmap`, training's final test and the
demo use (training never opens a run this way; it resumes through `load_checkpoint`).

The checkpoint is memory-mapped (it also holds optimiser state, two or three times the weights,
which inference never reads) and its inference part verified. A directory written by `irralctl
export RUN --to safetensors` opens the same way (`read_export`): the sha256 of its weights and
tokeniser files must be those config.json records, and non-finite weights are refused. For both,
every tensor's name and shape are checked against the model its config builds, and any problem
names the file. Besides the model, a `LoadedRun` keeps what decoding and matching need: the
tokeniser and the record field it was trained on, the run's default generation length, the
cleaner of its targets, and the training dataset's fingerprint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from irralctl.data.cleaning import get_cleaner
from irralctl.data.tokenizers import ReportTokenizer, tokenizer_from_json
from irralctl.errors import ConfigError, InputError
from irralctl.model import IRRALNet, ModelConfig
from irralctl.runs.checkpoint import load_checkpoint, verify_checkpoint
from irralctl.runs.device import resolve_device
from irralctl.runs.layout import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, ExportLayout, checkpoint_file
from irralctl.utils.config import from_dict
from irralctl.utils.io import read_json, sha256_file

log = logging.getLogger(__name__)


def model_config_of(ckpt: dict) -> ModelConfig:
    return from_dict(ModelConfig, ckpt["model_config"], saved=True)


def tokenizer_of(ckpt: dict) -> ReportTokenizer:
    return tokenizer_from_json(ckpt["tokenizer"]["json"], source=ckpt.get("path", "<checkpoint>"))


def check_weights(model: torch.nn.Module, weights: dict, path: str | Path) -> None:
    """Refuse weights whose tensor names or shapes differ from `model`'s, naming the first few."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    shapes = [f"{k} is {tuple(weights[k].shape)}, the model's {tuple(v.shape)}" for k, v in expected.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    problems = ([f"{len(missing)} missing (e.g. {', '.join(missing[:3])})"] if missing else []) \
        + ([f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})"] if unexpected else []) \
        + ([f"{len(shapes)} of another shape ({'; '.join(shapes[:2])})"] if shapes else [])
    if problems:
        raise InputError("weights do not fit the saved model config: " + "; ".join(problems), path=path,
                         hint="the weights and the model config come from different runs, or a file was edited")


def model_from_checkpoint(ckpt: dict) -> IRRALNet:
    """The model a loaded checkpoint describes, with its weights (on the CPU, train mode).

    Built without drawing initial weights, and given the checkpoint's own tensors (memory-mapped
    from the file by `load_run`) rather than copies: drawing 60 M random weights and copying 240 MB
    over them was a second of `generate` on a CPU. The names and shapes are checked first, so no
    parameter is left uninitialised; the model owns the tensors from then on (a mapping is
    copy-on-write: the file is never changed)."""
    from irralctl.model.init import initial_weights_skipped

    with initial_weights_skipped():
        model = IRRALNet(model_config_of(ckpt))
    weights = ckpt["model"]
    check_weights(model, weights, ckpt["path"])
    expected = model.state_dict()
    # `assign` keeps the loaded tensors' dtype: cast any that differ from the model's (none in files
    # irralctl writes).
    weights = {k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype) for k, v in weights.items()}
    try:
        model.load_state_dict(weights, assign=True)
    except RuntimeError as e:
        raise InputError(f"weights do not fit the saved model config ({str(e).splitlines()[0]})", path=ckpt["path"]) from None
    return model


def _refuse_export(path: Path, why: str) -> InputError:
    return InputError(why, path=path, hint="export the run again: irralctl export RUN --to safetensors DIR")


def read_export(directory: str | Path) -> dict:
    """An exported run (`irralctl export RUN --to safetensors`) as the dict `load_checkpoint` gives:
    model_config, model (tensors), tokenizer, inference, cleaner, dataset, epoch, step, path."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    layout = ExportLayout(Path(directory))
    for f in (layout.config, layout.weights, layout.tokenizer):
        if not f.is_file():
            raise _refuse_export(f, "missing from the exported directory")
    config = read_json(layout.config)
    if not isinstance(config, dict) or config.get("format") != EXPORT_FORMAT:
        raise _refuse_export(layout.config, f"not the config.json of an irralctl export (format {EXPORT_FORMAT!r})")
    if config.get("format_version") != EXPORT_FORMAT_VERSION:
        raise _refuse_export(layout.config, f"export format {config.get('format_version')!r} is not supported "
                                            f"(this irralctl reads {EXPORT_FORMAT_VERSION})")
    for key in ("model", "tokenizer", "inference", "sha256"):
        if not isinstance(config.get(key), dict):
            raise _refuse_export(layout.config, f"missing or not an object: '{key}'")
    try:
        from_dict(ModelConfig, config["model"], saved=True)
    except ConfigError as e:
        raise _refuse_export(layout.config, f"its model config is not this irralctl's ({e.message})") from None
    for f in (layout.weights, layout.tokenizer):
        if sha256_file(f) != config["sha256"].get(f.name):
            raise _refuse_export(f, "damaged: its sha256 differs from the one config.json records (a flipped bit, "
                                    "a torn copy, or another file)")
    try:
        weights = load_file(layout.weights, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _refuse_export(layout.weights, f"unreadable safetensors file ({type(e).__name__}: {e})") from None
    for name, t in weights.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise _refuse_export(layout.weights, f"weights {name} hold NaN or infinite values")
    return {"model_config": config["model"], "model": weights,
            "tokenizer": {**config["tokenizer"], "json": layout.tokenizer.read_text(encoding="utf-8")},
            "inference": config["inference"], "cleaner": config.get("cleaner"), "dataset": config.get("dataset"),
            "epoch": config.get("epoch"), "step": config.get("step"), "path": str(layout.weights)}


@dataclass
class LoadedRun:
    model: IRRALNet               # eval mode, on `device`
    tokenizer: ReportTokenizer
    tokenizer_kind: str           # bpe | legacy
    text_field: str               # the record field the run was trained on (`target` or `legacy_target`)
    max_tokens: int               # report tokens generated by default (the run's validation and test)
    checkpoint: Path              # the .pt file read
    epoch: int | None
    step: int | None
    cleaner: dict | None          # {name, version} of the cleaner behind the training targets
    dataset: dict | None          # {name, fingerprint} of the training dataset
    device: torch.device
    verification: _Verification | None = field(default=None, repr=False)  # still running (see load_run)

    def ready(self) -> None:
        """Wait for the checkpoint's verification when it runs in the background; raise its error.
        Call before the model computes anything that is kept."""
        if self.verification is not None:
            self.verification.wait()

    def settle(self) -> None:
        """Let a background verification end, without raising what it found: called on the way out
        of a command that failed or was interrupted (the failure in hand is the one to report)."""
        if self.verification is not None:
            self.verification.thread.join()

    def describe(self) -> dict:
        return {"path": str(self.checkpoint), "epoch": self.epoch, "step": self.step,
                "tokenizer": self.tokenizer_kind, "text_field": self.text_field,
                "cleaner": self.cleaner, "dataset": self.dataset}

    def normalizer(self) -> Callable[[str], str]:
        """The run's cleaner as a phrase normaliser (no sentence-final ' .' added to a bare phrase)."""
        fn = str.lower
        name = (self.cleaner or {}).get("name")
        if name:
            try:
                fn = get_cleaner(name)[2]
            except ValueError:
                log.warning("unknown cleaner %r in the checkpoint; phrases are only lower-cased", name)

        def normalize(text: str) -> str:
            out = fn(text).strip()
            if out.endswith(" .") and not text.rstrip().endswith("."):
                out = out[:-2].rstrip()
            return " ".join(out.split())

        return normalize

    def check_dataset(self, ds) -> None:
        """Refuse a prepared dataset whose tokeniser (of this run's kind) differs from the run's."""
        theirs = ds.tokenizer(self.tokenizer_kind)
        if theirs.to_json() != self.tokenizer.to_json():
            raise InputError(
                f"the {self.tokenizer_kind} tokeniser of this dataset differs from the one the checkpoint was trained "
                f"with ({theirs.vocab_size} vs {self.tokenizer.vocab_size} tokens): another dataset or another preparation",
                path=ds.dir,
                hint=f"use the dataset the run was trained on (config.json: dataset.path; fingerprint "
                     f"{(self.dataset or {}).get('fingerprint', '?')[:12]}), or give its images as INPUT instead of --dataset")


class _Verification:
    """`verify_checkpoint` in a thread; `wait()` joins it and raises what it raised.

    Not a daemon: Python waits for it before it shuts down. A daemon thread still inside torch's
    C++ code when the interpreter finalises (a command interrupted while it verifies) is ended
    by a forced unwind that aborts the whole process ("terminate called without an active
    exception", exit -6) after the command's own error line."""

    def __init__(self, path: Path, ckpt: dict):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(path, ckpt), name="verify-checkpoint")
        self.thread.start()

    def _run(self, path: Path, ckpt: dict) -> None:
        try:
            verify_checkpoint(path, ckpt, "inference")
        except BaseException as e:  # re-raised in the caller's thread by wait()
            self.error = e

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def load_run(checkpoint: str | Path, device: str | torch.device = "auto", *, verify_in_background: bool = False
             ) -> LoadedRun:
    """The run at `checkpoint` (a run directory: its best.pt, else last.pt; a .pt file; or a directory
    of `irralctl export --to safetensors`, or its model.safetensors) on `device`.

    `verify_in_background`: hash and check the checkpoint's weights in a thread while the caller
    goes on (reading 240 MB of weights costs `generate` a few tenths of a second that decoding the
    images and building the model can hide on a second core); the caller must call `ready()` before
    using what the model computes. By default the run is verified before this returns."""
    path = checkpoint_file(checkpoint)
    verification = None
    if path.suffix == ".safetensors":
        ckpt = read_export(path.parent)
    elif verify_in_background:
        ckpt = load_checkpoint(path, mmap=True, verify="none")
        verification = _Verification(path, ckpt)
    else:
        ckpt = load_checkpoint(path, mmap=True, verify="inference")
    model = model_from_checkpoint(ckpt)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model = model.to(dev).eval()
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    tok = ckpt["tokenizer"]
    return LoadedRun(model=model, tokenizer=tokenizer_of(ckpt), tokenizer_kind=tok["kind"], text_field=tok["text_field"],
                     max_tokens=int(ckpt["inference"]["max_tokens"]), checkpoint=Path(ckpt["path"]),
                     epoch=ckpt.get("epoch"), step=ckpt.get("step"), cleaner=ckpt.get("cleaner"),
                     dataset=ckpt.get("dataset"), device=dev, verification=verification)
