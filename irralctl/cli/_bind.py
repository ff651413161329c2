"""Command-line options generated from a command's frozen config.

A config field declared with `irralctl.utils.config.option(default, help, ...)` becomes one flag:
its name is the field's (`d_model` -> `--d-model`; nested configs are flattened, so every leaf
name is unique across a command), its default and help are the field's, its panel in `--help` is
the field's or its group's. Booleans that default to false are a single switch (`--no-image`,
`--overwrite`); those that default to true get an opposite (`--augment/--no-augment`,
`--no-image/--image`). Flags show no metavar; a long list of choices shows a NAME (the help text
names the choices), so that every command's help fits an 80-column terminal (a test renders them).

`bind(Config, handler, extra=...)` returns a function Typer can register. When the command runs,
the handler receives the flat values (`{"optim.lr": 1e-4, ...}`), the set of those the user
typed on the command line (so a config file or a resumed run can be overridden by exactly those),
and the extra parameters. `build(Config, values, given, base)` turns them into the config; with
IRRALCTL_TINY=1 it substitutes the `tiny=` value of every field that declares one, typed or not
(and the command says so first), so that the README's examples and other scripts run in seconds.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from irralctl.errors import ConfigError
from irralctl.utils.config import (
    _unwrap_optional,
    field_types,
    fixed_length,
    flatten,
    from_dict,
    opposite_flag,
    tiny_mode,
    tiny_values,
    to_jsonable,
    unflatten,
)

log = logging.getLogger(__name__)

# The longest list of choices shown as an option's metavar (`<bpe|legacy>`) in an 80-column help;
# a longer one shows a NAME, and the help text names every choice.
CHOICES_SHOWN = 17

# Where a value came from, as click (or Typer's vendored copy of it) names the sources: typed ones
# override a config file or a resumed run; defaults do not.
_TYPED = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


@dataclass(frozen=True)
class Leaf:
    """One option: a non-dataclass field reached through nested configs."""

    path: tuple[str, ...]          # ("optim", "lr")
    field: dataclasses.Field
    type: Any                      # the resolved annotation
    panel: str | None

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def meta(self) -> Any:
        return self.field.metadata

    @property
    def flag(self) -> str:
        return self.meta.get("flag") or "--" + self.name.replace("_", "-")

    @property
    def default(self) -> Any:
        f = self.field
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            return f.default_factory()  # type: ignore[misc]
        return dataclasses.MISSING


def leaves(cls: type, path: tuple[str, ...] = (), panel: str | None = None) -> Iterator[Leaf]:
    """Every CLI-visible leaf field of `cls`, depth first in declaration order."""
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        tp = hints[f.name]
        inner, _ = _unwrap_optional(tp)
        if dataclasses.is_dataclass(inner):
            yield from leaves(inner, (*path, f.name), f.metadata.get("panel") or panel)
        else:
            yield Leaf((*path, f.name), f, tp, f.metadata.get("panel") or panel)


# Short type names beside the flags (Typer's `<int range>`, `<path>` take a third of an 80-column help).
_METAVARS = {int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH"}


def _metavar(tp: Any) -> str | None:
    if typing.get_origin(tp) is tuple:
        return "A,B,..."
    return _METAVARS.get(tp)


def _param(leaf: Leaf) -> inspect.Parameter:
    meta, default = leaf.meta, leaf.default
    tp, optional = _unwrap_optional(leaf.type)
    unset = meta.get("default_text") is not None  # the real default is decided later (a preset, a run)
    show: bool | str = meta.get("default_text") or True
    if default is dataclasses.MISSING or default is None:
        show = meta.get("default_text") or False
    elif meta.get("cpu") is not None:  # a size: the paper's default, and the small model's (--size cpu)
        show = f"{default}; cpu: {meta['cpu']}"
    kw: dict[str, Any] = {"help": meta.get("help") or "", "show_default": show, "rich_help_panel": leaf.panel}
    kw["metavar"] = meta.get("metavar") or (leaf.name.upper() if meta.get("argument") else _metavar(tp))
    if meta.get("min") is not None:
        kw["min"] = meta["min"]
    if meta.get("max") is not None:
        kw["max"] = meta["max"]
    if meta.get("choices"):
        choices = tuple(str(c) for c in meta["choices"])
        if not meta.get("canonical"):
            tp = typing.Literal.__getitem__(choices)  # typer checks Literal choices
        # (with `canonical`, other spellings are accepted and mapped to a choice by `_from_cli`)
        if meta.get("metavar"):
            pass
        elif len("|".join(choices)) <= CHOICES_SHOWN:
            kw["metavar"] = "<" + "|".join(choices) + ">" if meta.get("canonical") else None  # Typer shows Literals
        else:
            kw["metavar"] = leaf.name.split("_")[-1].upper()
            if not all(re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", kw["help"]) for c in choices):
                kw["help"] = f"{kw['help']} One of: {', '.join(choices)}."
    typing_origin = typing.get_origin(tp)
    if fixed_length(tp):
        optional = True  # n values after one flag (`--from-r2gen ANNOTATION IMAGES`), or none
    elif typing_origin is tuple:
        tp = list[str]  # repeatable, and each value may hold a comma-separated list
        if default is not dataclasses.MISSING:
            default = list(map(str, default)) or None
            optional = True
    if meta.get("argument"):
        info = typer.Argument(**{**{k: v for k, v in kw.items() if k not in ("min", "max")}, "show_default": False})
    elif tp is bool:
        decls = (f"{leaf.flag}/{opposite_flag(leaf.flag)}",) if default is True or unset else (leaf.flag,)
        info = typer.Option(*decls, **{**kw, "metavar": ""})  # a flag takes no value: no `<bool>` beside it
    else:
        decls = (leaf.flag, *([meta["short"]] if meta.get("short") else []))
        info = typer.Option(*decls, **kw)
    if unset:
        default, optional = None, True
    annotation = Optional[tp] if optional or default is None else tp
    if default is dataclasses.MISSING:
        default = inspect.Parameter.empty if meta.get("argument") else ...
    return inspect.Parameter(leaf.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


def _from_cli(leaf: Leaf, value: Any) -> Any:
    canonical = leaf.meta.get("canonical")
    if canonical is not None and isinstance(value, str):
        name = canonical(value)
        if name is None:
            raise ConfigError(f"{leaf.flag}: {value!r} is not one of {', '.join(map(str, leaf.meta['choices']))} "
                              "(or a usual spelling of one, such as Bleu_4 or CIDEr)")
        return name
    tp, _ = _unwrap_optional(leaf.type)
    if fixed_length(tp):
        return None if value is None else tuple(value)
    if typing.get_origin(tp) is tuple:
        items = [value] if isinstance(value, str) else list(value or [])
        texts = tuple(v.strip() for item in items for v in str(item).split(",") if v.strip())
        if (typing.get_args(tp) or (str,))[0] is int:  # a list of integers (`--seed-list 0,7,42`)
            bad = [t for t in texts if not t.lstrip("-").isdigit()]
            if bad:
                raise ConfigError(f"{leaf.flag}: expected integers, comma-separated, not {', '.join(map(repr, bad))}")
            return tuple(int(t) for t in texts)
        if (typing.get_args(tp) or (str,))[0] is float:  # a list of numbers (`--bertscore-baseline 0.8,0.8,0.8`)
            try:
                return tuple(float(t) for t in texts)
            except ValueError:
                raise ConfigError(f"{leaf.flag}: expected numbers, comma-separated, not {', '.join(map(repr, texts))}") from None
        return texts
    return value


def bind(cls: type, handler: Callable[..., None], *, extra: list[inspect.Parameter] = (),
         exclude: tuple[str, ...] = ()) -> Callable[..., None]:
    """A Typer command function whose options are `extra` followed by the leaves of `cls`.

    `handler(values=..., given=..., **extra_values)`; `values` maps dotted field paths to the
    parsed values (leaves left unset are absent), `given` holds the paths the user typed.
    """
    all_leaves = [leaf for leaf in leaves(cls) if leaf.dotted not in exclude and leaf.name not in exclude]
    names = [leaf.name for leaf in all_leaves] + [p.name for p in extra]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TypeError(f"{cls.__name__}: option names must be unique across nested configs: {duplicated}")
    params = [*extra, *(_param(leaf) for leaf in all_leaves)]
    # Required positional arguments first, as Python signatures need; Typer passes its context as `ctx`.
    params.sort(key=lambda p: 0 if p.default is inspect.Parameter.empty else 1)
    params.insert(0, inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
    extra_names = {p.name for p in extra}

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        if tiny_mode() and tiny_values(cls):
            log.warning("IRRALCTL_TINY is set: tiny sizes replace %s, typed or not (a smoke test, not a result)",
                        ", ".join(f"--{p.split('.')[-1].replace('_', '-')} {v}" for p, v in tiny_values(cls).items()))
        values: dict[str, Any] = {}
        given: set[str] = set()
        for leaf in all_leaves:
            value = kwargs.pop(leaf.name)
            source = ctx.get_parameter_source(leaf.name)
            if source is not None and source.name in _TYPED:
                given.add(leaf.dotted)
            if value is None and (leaf.meta.get("default_text") is not None
                                  or (leaf.default is not None and leaf.default is not dataclasses.MISSING)):
                continue  # not given, decided by the config's default / preset / saved run
            values[leaf.dotted] = _from_cli(leaf, value)
        handler(values=values, given=given, **{k: v for k, v in kwargs.items() if k in extra_names})

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = handler.__doc__
    command.__name__ = handler.__name__.lstrip("_")
    command.__module__ = handler.__module__
    return command


def build(cls: type, values: dict[str, Any], given: set[str], base: dict | None = None,
          changes: dict[str, Any] | None = None) -> Any:
    """The config: `base` (a config file, a saved run) or the defaults, then the typed values.

    Without a base every value counts (the CLI's defaults are the config's); with one, only the
    values the user typed override it. `changes` (dotted path -> value) are applied next, and
    under IRRALCTL_TINY=1 the tiny sizes last.
    """
    if base is None:
        data = {k: to_jsonable(v) for k, v in values.items()}
    else:
        data = flatten(base)
        data.update({k: to_jsonable(v) for k, v in values.items() if k in given})
    data.update({k: to_jsonable(v) for k, v in (changes or {}).items()})
    if tiny_mode():
        data.update({k: to_jsonable(v) for k, v in tiny_values(cls).items()})
    return from_dict(cls, unflatten(data))


def extra_option(name: str, annotation: Any, info: Any, default: Any = None) -> inspect.Parameter:
    """A parameter of a bound command that is not part of its config (e.g. `--config FILE`)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[annotation, info])


__all__ = ["Leaf", "bind", "build", "extra_option", "leaves"]
