"""The command and group classes of every irralctl command: Typer's, with a `--help` that shows no
metavar (it is a flag: it takes no value; Typer would print `<bool>` beside it), and option values
converted without pydantic where that gives the same value.

Typer (0.29 and later) converts every option value, defaults included, with a pydantic
`TypeAdapter`: importing pydantic and building one adapter per option costs each command's start
about 0.1 s (`python -X importtime -m irralctl label r.txt --out l.csv`), more than the rest of
`irralctl label` on one report. Our options are plain: str, int, float (with bounds), Path,
Literal choices, lists and fixed-length tuples of those. `Command` converts such a value itself
when the conversion is unambiguous (an int written in ASCII digits within its bounds, a path
typer would accept without looking at it, a choice spelled exactly) and hands every other value
to Typer's own conversion, so that every error message stays Typer's.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.core import TyperCommand, TyperGroup


def _bare(option):
    if option is not None:
        option.metavar = ""
    return option


class _Slow(Exception):
    """The value needs Typer's own conversion (pydantic): an error to report, or an unusual form."""


_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def _plain_path_options(info: Any) -> bool:
    """A Path option with none of Typer's path checks asked for (the file need not exist, ...)."""
    return (not getattr(info, "exists", False) and getattr(info, "file_okay", True) and getattr(info, "dir_okay", True)
            and not getattr(info, "writable", False) and not getattr(info, "resolve_path", False)
            and not getattr(info, "allow_dash", False) and getattr(info, "path_type", None) is None)


def _leaf(annotation: Any, info: Any) -> Callable[[Any], Any] | None:
    """A converter of one value of `annotation` that raises `_Slow` when unsure; None if the
    annotation is not one we convert."""
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return None
    lo, hi = getattr(info, "min", None), getattr(info, "max", None)

    def bounded(v):
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise _Slow  # Typer's "Input should be greater than or equal to ..."
        return v

    if annotation is bool:
        def convert(v):
            if type(v) is bool:
                return v
            raise _Slow
    elif annotation is str:
        def convert(v):
            if isinstance(v, str):
                return v
            raise _Slow
    elif annotation is int:
        def convert(v):
            if isinstance(v, str) and _INT.match(v):
                return bounded(int(v))
            if type(v) is int:
                return bounded(v)
            raise _Slow
    elif annotation is float:
        def convert(v):
            if isinstance(v, str) and _FLOAT.match(v):
                return bounded(float(v))
            if type(v) in (int, float):
                return bounded(float(v))
            raise _Slow
    elif annotation is Path and _plain_path_options(info):
        readable = getattr(info, "readable", True)

        def convert(v):
            if not isinstance(v, (str, Path)):
                raise _Slow
            # Typer refuses an existing path it cannot read; a missing one is fine (not `exists`).
            if readable and os.path.exists(v) and not os.access(v, os.R_OK):
                raise _Slow
            return v if isinstance(v, Path) else Path(v)
    elif typing.get_origin(annotation) is typing.Literal and getattr(info, "case_sensitive", True):
        choices = typing.get_args(annotation)
        if not all(type(c) is str for c in choices):
            return None
        allowed = frozenset(choices)

        def convert(v):
            if type(v) is str and v in allowed:
                return v
            raise _Slow
    else:
        return None
    return convert


class _FastConversion:
    """Stands in for Typer's per-option `RuntimeParam` (same `coerce` call): converts the plain
    values itself, the others with the `RuntimeParam` Typer would have built."""

    def __init__(self, param: Any, convert: Callable[[Any], Any], arity: int | None, many: bool) -> None:
        self.param = param
        self.convert = convert
        self.arity = arity   # a fixed-length tuple: the number of values after the flag
        self.many = many     # a list: the flag repeated
        self._typer: Any = None

    def _slow(self) -> Any:
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(self.param.type_descriptor)
        return self._typer

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None  # as Typer's RuntimeParam.coerce
        try:
            if ctx is not None and ctx.token_normalize_func is not None:
                raise _Slow
            if self.many:
                if not isinstance(value, (list, tuple)):
                    raise _Slow
                return [self.convert(v) for v in value]
            if self.arity is not None:
                if not isinstance(value, (list, tuple)) or len(value) != self.arity:
                    raise _Slow
                return tuple(self.convert(v) for v in value)
            if multi:
                raise _Slow
            return self.convert(value)
        except _Slow:
            return self._slow().coerce(value, param=param, ctx=ctx)


def _fast_conversion(param: Any) -> _FastConversion | None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(descriptor, "file_annotation", None) is not None:
        return None
    annotation, info = descriptor.annotation, descriptor.parameter_info
    origin = typing.get_origin(annotation)
    if origin is list:
        args = typing.get_args(annotation)
        convert = _leaf(args[0], info) if len(args) == 1 else None
        return _FastConversion(param, convert, None, True) if convert else None
    if origin is tuple:
        args = typing.get_args(annotation)
        if not args or Ellipsis in args or len(set(args)) != 1:
            return None
        convert = _leaf(args[0], info)
        return _FastConversion(param, convert, len(args), False) if convert else None
    convert = _leaf(annotation, info)
    return _FastConversion(param, convert, None, False) if convert else None


def _install_fast_conversion(params) -> None:
    """Give each option Typer has not converted yet a `_FastConversion` where one applies. Typer
    keeps the converter of an option in `_runtime_param` (built on first use); an older or newer
    Typer without it is left alone."""
    for param in params:
        if getattr(param, "_runtime_param", False) is None:
            fast = _fast_conversion(param)
            if fast is not None:
                param._runtime_param = fast


class _Wired:
    """What every command and group of irralctl changes in typer's: a bare --help, fast conversions."""

    def get_help_option(self, ctx):
        return _bare(super().get_help_option(ctx))

    def parse_args(self, ctx, args):
        _install_fast_conversion(self.get_params(ctx))
        return super().parse_args(ctx, args)


class Command(_Wired, TyperCommand):
    pass


class Group(_Wired, TyperGroup):
    pass
