"""The command and group classes of every irralctl command: Typer's, with a `--help` that shows no
metavar (it is a flag: it takes no value; Typer would print `<bool>` beside it)."""

from __future__ import annotations

from typer.core import TyperCommand, TyperGroup


def _bare(option):
    if option is not None:
        option.metavar = ""
    return option


class Command(TyperCommand):
    def get_help_option(self, ctx):
        return _bare(super().get_help_option(ctx))


class Group(TyperGroup):
    def get_help_option(self, ctx):
        return _bare(super().get_help_option(ctx))
