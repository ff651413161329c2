"""Frozen per-command configs: turning them into JSON and back, and recording provenance."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import importlib.metadata
import platform
from pathlib import Path
from typing import Any, TypeVar

import irralctl
from irralctl.utils.io import write_json

T = TypeVar("T")

# Packages whose versions change results; recorded beside every output.
_TRACKED_PACKAGES = (
    "torch", "torchvision", "numpy", "tokenizers", "transformers", "pillow", "pydicom",
    "sacrebleu", "rouge-score", "nltk", "pycocoevalcap",
)


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a (possibly nested) frozen dataclass; unknown keys are ignored, tuples restored."""
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, f in hints.items():
        if name not in data:
            continue
        value = data[name]
        ftype = f.type if not isinstance(f.type, str) else None
        if ftype is not None and dataclasses.is_dataclass(ftype) and isinstance(value, dict):
            value = from_dict(ftype, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def package_versions() -> dict[str, str]:
    out = {"irralctl": irralctl.__version__, "python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def provenance() -> dict[str, Any]:
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "versions": package_versions(),
    }


def save_config(path: str | Path, config: Any, **extra: Any) -> None:
    """Write a command's frozen config, with provenance, as JSON next to its outputs."""
    write_json(path, {"config": to_jsonable(config), **provenance(), **to_jsonable(extra)})
