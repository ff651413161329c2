"""Entry point: wires the command modules together and maps known errors to one line + exit 1.

Set IRRALCTL_DEBUG=1 to see full tracebacks.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated, Optional

import click
import typer
from rich.logging import RichHandler
from typer.core import TyperGroup

import irralctl
from irralctl.cli import label as _label
from irralctl.cli import prepare as _prepare
from irralctl.cli._common import err_console
from irralctl.errors import IrralError


class _UserError(click.ClickException):
    """An `IrralError` on its way out: one red line, an optional hint, exit code 1."""

    exit_code = 1

    def __init__(self, error: IrralError):
        super().__init__(error.message)
        self.error = error

    def show(self, file=None) -> None:  # noqa: ARG002 - click's signature
        err_console.print(f"[bold red]error:[/] {self.error.message}", highlight=False, soft_wrap=True, markup=True)
        if self.error.hint:
            err_console.print(f"[yellow]hint:[/] {self.error.hint}", highlight=False, soft_wrap=True)


class _Root(TyperGroup):
    """The root group: every subcommand runs inside `invoke`, so this is the one error handler."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except IrralError as e:
            if os.environ.get("IRRALCTL_DEBUG", "") not in ("", "0"):
                raise
            raise _UserError(e) from e


app = typer.Typer(
    cls=_Root,
    name="irralctl",
    help="Chest X-ray report generation: prepare data, label, train IRRAL-Net, generate, score, explain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(_prepare.app, name="prepare")
app.command("label", epilog=_label.EPILOG)(_label.label)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"irralctl {irralctl.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


def main() -> None:
    app()
