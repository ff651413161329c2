"""Frozen per-command configs: declaring options, turning configs into JSON and back, provenance.

Every command has one frozen dataclass config (nested for `train`), which is the single source of
its option names, defaults and help: each field is declared with `option(default, help, ...)`, and
the CLI builds its flags from those fields (`irralctl.cli._bind`). The same config is saved beside
every output (`save_config`) and read back with `from_dict` (nested dataclasses, paths and tuples
restored; unknown keys refused with their dotted name) or from a JSON / YAML / TOML file
(`load_config_file`).

A field may also declare its value in two smaller settings: `cpu=` (the small model of
`irralctl train --size cpu`, see `irralctl.training.config`) and `tiny=` (what `IRRALCTL_TINY=1`
substitutes, typed or not, so that scripts and the README's examples run in seconds; `tiny_mode`
reads the variable, `tiny_values` collects the values, the CLI applies them).

This module imports nothing heavy: the CLI reads every config at start-up.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import os
import platform
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import irralctl
from irralctl.errors import ConfigError, InputError
from irralctl.utils.io import write_json

T = TypeVar("T")

# Packages whose versions change results; recorded beside every output.
_TRACKED_PACKAGES = (
    "torch", "torchvision", "numpy", "tokenizers", "transformers", "pillow", "pydicom",
    "sacrebleu", "rouge-score", "nltk", "pycocoevalcap", "datasets", "safetensors",
)


def option(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None,
           short: str | None = None, argument: bool = False, cli: bool = True, choices: tuple | None = None,
           canonical: Any = None, min: float | None = None, max: float | None = None, panel: str | None = None,
           metavar: str | None = None, default_text: str | None = None, factory: Any = None,
           cpu: Any = None, tiny: Any = None) -> Any:
    """A config field with its CLI metadata.

    `help` says what the option means and its unit, never its default (the CLI shows that once);
    `flag` overrides the flag name (default: the field name with '-' for '_'); `short` adds a
    one-letter alias; `argument` makes it positional; `cli=False` keeps it out of the CLI (a value
    derived at run time, such as the vocabulary size); `choices`, `min`, `max` are checked by the
    CLI before the config's own checks; `canonical` (text -> one of `choices`, or None) lets the CLI
    accept other spellings of a choice, such as metric aliases (`Bleu_4` for `bleu_4`); `panel`
    groups it in `--help`; `default_text` replaces the shown default (e.g. "from --preset"); `cpu` is
    the value of `--size cpu` (a train option's small-model size, shown beside the default); `tiny`
    the value `IRRALCTL_TINY=1` substitutes.
    """
    meta = {"help": help, "flag": flag, "short": short, "argument": argument, "cli": cli, "choices": choices,
            "canonical": canonical, "min": min, "max": max, "panel": panel, "metavar": metavar,
            "default_text": default_text, "cpu": cpu, "tiny": tiny}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- options several commands share, declared once ---------------------------------------------

def device_option(panel: str | None = None) -> Any:
    return option("auto", "auto, cpu, cuda or cuda:N; auto picks a GPU when one is present.", panel=panel)


def overwrite_option(panel: str | None = "Output") -> Any:
    return option(False, "Replace an existing output, only once the new one is complete.", panel=panel)


def workers_option(panel: str | None = None) -> Any:
    return option(0, "Worker processes (0 = all CPU cores).", short="-j", min=0, panel=panel)


def out_dir_option(panel: str | None = "Output") -> Any:
    return option(help="Output directory (created; must not exist unless --overwrite).", short="-o", panel=panel)


def seed_option(default: int, help: str, panel: str | None = None) -> Any:
    return option(default, help, min=0, max=2**32 - 1, panel=panel)


# -- sizes declared beside the fields: --size cpu and IRRALCTL_TINY ------------------------------

TINY_ENV = "IRRALCTL_TINY"


def tiny_mode() -> bool:
    """Whether IRRALCTL_TINY asks for tiny sizes (set and not 0): the one place it is read."""
    return os.environ.get(TINY_ENV, "") not in ("", "0")


def declared_values(cls: type, key: str, prefix: str = "") -> dict[str, Any]:
    """Dotted field path -> the value each field of `cls` (nested configs included) declares under
    `key` ("cpu" or "tiny"); fields that declare none are left out."""
    out: dict[str, Any] = {}
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        inner, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(inner):
            out.update(declared_values(inner, key, f"{prefix}{f.name}."))
        elif f.metadata.get(key) is not None:
            out[prefix + f.name] = f.metadata[key]
    return out


def field_default(cls: type, dotted: str) -> Any:
    """The default of a (nested) field: field_default(TrainConfig, "model.d_model") == 512."""
    head, _, rest = dotted.partition(".")
    f = next(f for f in dataclasses.fields(cls) if f.name == head)
    if rest:
        inner, _ = _unwrap_optional(field_types(cls)[head])
        return field_default(inner, rest)
    return _default_of(f)


def tiny_values(cls: type) -> dict[str, Any]:
    """What IRRALCTL_TINY=1 substitutes in a `cls` built from the command line (dotted paths)."""
    return declared_values(cls, "tiny")


def opposite_flag(flag: str) -> str:
    """The flag that turns a boolean option the other way: --augment -> --no-augment, --no-image -> --image."""
    name = flag.removeprefix("--")
    return "--" + name.removeprefix("no-") if name.startswith("no-") else "--no-" + name


def field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass (they are strings under `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None` / Optional[X]; (tp, False) otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def fixed_length(tp: Any) -> int | None:
    """n for a fixed-length tuple type (`tuple[Path, Path]`: an option taking n values); None otherwise."""
    tp, _ = _unwrap_optional(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and args and Ellipsis not in args:
        return len(args)
    return None


def leaf_paths(cls: type, path: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """Leaf field name -> its path through nested dataclasses ({"lr": ("optim", "lr"), ...})."""
    out: dict[str, tuple[str, ...]] = {}
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        inner, _ = _unwrap_optional(hints[f.name])
        sub = leaf_paths(inner, (*path, f.name)) if dataclasses.is_dataclass(inner) else {f.name: (*path, f.name)}
        for name, p in sub.items():
            if name in out:
                raise TypeError(f"{cls.__name__}: leaf name {name!r} is not unique across nested configs")
            out[name] = p
    return out


def from_flat(cls: type[T], **values: Any) -> T:
    """A nested config from leaf names, as the CLI's flags name them: from_flat(TrainConfig, lr=1e-3, d_model=64)."""
    paths = leaf_paths(cls)
    unknown = sorted(set(values) - set(paths))
    if unknown:
        raise ConfigError(f"unknown option(s) for {cls.__name__}: {', '.join(unknown)}")
    data: dict[str, Any] = {}
    for name, value in values.items():
        node = data
        *parents, last = paths[name]
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = to_jsonable(value)
    return from_dict(cls, data)


def to_flags(config: Any) -> list[str]:
    """The command-line arguments that give `config` from the defaults of its fields.

    Positional arguments come first, in field order; then a flag per option that differs from its
    default (for a train config, the default of its --size), named as the CLI names it
    (`--d-model 64`, `--no-augment`, `--overwrite`). Used to
    print the command that reproduces an output (the demo, `irralctl ablate`).
    """
    args: list[str] = []
    flags: list[str] = []
    _flags_of(config, args, flags)
    return args + flags


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _flags_of(config: Any, args: list[str], flags: list[str], defaults: dict[str, Any] | None = None) -> None:
    # What the CLI gives an option that is not typed: its field's default, unless the config says
    # otherwise (`cli_defaults()`: a train config's --size sets the sizes of its fields).
    defaults = {**(defaults or {}), **(config.cli_defaults() if hasattr(config, "cli_defaults") else {})}
    hints = field_types(type(config))
    for f in dataclasses.fields(config):
        if not f.metadata.get("cli", True):
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            inner = {k.split(".", 1)[1]: v for k, v in defaults.items() if k.startswith(f.name + ".")}
            _flags_of(value, args, flags, inner)
            continue
        if f.metadata.get("argument"):
            if value is not None:
                args.append(str(value))
            continue
        if value == defaults.get(f.name, _default_of(f)) or value is None:
            continue
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            # True over a false default is the switch itself (--overwrite, --no-image); False over
            # a true default is its opposite (--no-augment, --image).
            flags.append(flag if value else opposite_flag(flag))
        elif fixed_length(hints[f.name]):  # an option of n values: `--from-r2gen A B`
            flags += [flag, *map(str, value)]
        elif isinstance(value, (tuple, list)):
            flags += [flag, ",".join(map(str, value))]
        else:
            flags += [flag, str(value)]


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


def _coerce(tp: Any, value: Any, where: str, saved: bool = False) -> Any:
    """`value` (from JSON) as the field type `tp`: nested dataclass, Path, tuple, or as is."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional or tp is Any:
            return None
        raise ConfigError(f"config key '{where}' may not be null")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{where}' must be a table of options, not {type(value).__name__}")
        return from_dict(tp, value, prefix=f"{where}.", saved=saved)
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"config key '{where}' must be a path (text), not {value!r}")
        return Path(value)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{where}' must be a list, not {value!r}")
        args = typing.get_args(tp)
        if fixed_length(tp) is not None and len(value) != len(args):
            raise ConfigError(f"config key '{where}' must hold {len(args)} values, not {len(value)}")
        item = args[0] if args else Any
        return tuple(_coerce(args[k] if fixed_length(tp) else item, v, where) for k, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{where}' must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{where}' must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{where}' must be a number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{where}' must be text, not {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict, *, prefix: str = "", strict: bool = True, saved: bool = False) -> T:
    """Rebuild a (nested) frozen dataclass from `to_jsonable` output.

    Missing keys take their defaults; with `strict`, an unknown key is a `ConfigError` naming its
    dotted path (a misspelt option in a config file must not be silently ignored). A key the class
    lists in its `RENAMED` table ({old: new}) is read under its new name. With `saved` (a config
    irralctl wrote beside an output or into a checkpoint), a key the class lists in its `ADDED`
    table ({key: value}) and the config lacks takes that value, what the saved run did before the
    option existed, rather than today's default.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config{' ' + prefix.rstrip('.') if prefix else ''} must be a table of options")
    # Keys renamed since a config was saved (`RENAMED = {"old": "new"}` on the class) still load.
    for old, new in getattr(cls, "RENAMED", {}).items():
        if old in data and new not in data:
            data = {(new if k == old else k): v for k, v in data.items()}
    if saved:
        data = {**{k: v for k, v in getattr(cls, "ADDED", {}).items() if k not in data}, **data}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown and strict:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}",
                          hint=f"known keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(names))}")
    hints = field_types(cls)
    kwargs = {name: _coerce(hints[name], data[name], prefix + name, saved) for name in names if name in data}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"incomplete config{' ' + prefix.rstrip('.') if prefix else ''}: {e}") from None


def load_config_file(path: str | Path) -> dict:
    """A config from a JSON, YAML or TOML file, as a plain dict.

    A `config.json` that irralctl saved beside an output (`{"config": {...}, "created": ...}`) is
    accepted as is: its "config" table is returned.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path=path)
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix in (".yaml", ".yml"):
            import yaml  # pyyaml: a dependency of transformers

            data = yaml.safe_load(text)
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as e:  # json, yaml and tomllib raise their own types
        raise InputError(f"not a readable {suffix.lstrip('.') or 'JSON'} config ({type(e).__name__}: {e})", path=path) from None
    if not isinstance(data, dict):
        raise InputError("a config file must hold a table of options", path=path)
    if isinstance(data.get("config"), dict) and "versions" in data:
        data = data["config"]
    return data


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1}} -> {"optim.lr": 1}."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"optim.lr": 1} -> {"optim": {"lr": 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def package_versions() -> dict[str, str]:
    """irralctl's, Python's and each installed tracked package's version.

    Read from the names of the `NAME-VERSION.dist-info` folders on sys.path, the first per
    package as `importlib.metadata` finds them, in one listing per folder: asking
    `importlib.metadata.version` per package lists every folder again for each (and importing
    it costs every command's start some 30 ms). A package found only as `.egg-info`, whose name
    may carry no version, is asked to `importlib.metadata`.
    """
    out = {"irralctl": irralctl.__version__, "python": platform.python_version()}
    wanted = {_normalise(name): name for name in _TRACKED_PACKAGES}
    found: dict[str, str] = {}
    ask: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            stem, dot, kind = folder.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            name, _, version = stem.partition("-")
            key = _normalise(name)
            if key in wanted and wanted[key] not in found and wanted[key] not in ask:
                if kind == "dist-info" and version:
                    found[wanted[key]] = version
                else:
                    ask.add(wanted[key])
    if ask:
        import importlib.metadata

        for name in ask:
            try:
                found[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pass
    out.update((name, found[name]) for name in _TRACKED_PACKAGES if name in found)
    return out


def _normalise(name: str) -> str:
    """A distribution name as dist-info folders spell it (PEP 503, with '_')."""
    return re.sub(r"[-_.]+", "_", name).lower()


def provenance() -> dict[str, Any]:
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "versions": package_versions(),
    }


def save_config(path: str | Path, config: Any, **extra: Any) -> None:
    """Write a command's frozen config, with provenance, as JSON next to its outputs."""
    write_json(path, {"config": to_jsonable(config), **provenance(), **to_jsonable(extra)})
