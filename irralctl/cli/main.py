"""Entry point: wires the command modules together and maps known errors to one line + exit 1.

Set IRRALCTL_DEBUG=1 to see full tracebacks.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler
from rich.markup import escape

import irralctl
from irralctl.cli import ablate as _ablate
from irralctl.cli import compare as _compare
from irralctl.cli import demo as _demo
from irralctl.cli import export as _export
from irralctl.cli import generate as _generate
from irralctl.cli import heatmap as _heatmap
from irralctl.cli import label as _label
from irralctl.cli import plot as _plot
from irralctl.cli import prepare as _prepare
from irralctl.cli import score as _score
from irralctl.cli import train as _train
from irralctl.cli._commands import Command, Group
from irralctl.cli._common import err_console, start_error_line
from irralctl.errors import IrralError


def _report(error: IrralError) -> None:
    start_error_line()
    # Messages quote file contents and paths: escape them so "[...]" is never read as rich markup.
    err_console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)
    if error.hint:
        err_console.print(f"[yellow]hint:[/] {escape(error.hint)}", highlight=False, soft_wrap=True)


def _debug() -> bool:
    return os.environ.get("IRRALCTL_DEBUG", "") not in ("", "0")


def _is_usage_error(e: BaseException) -> bool:
    """A command-line mistake found by the parser (click's UsageError, or Typer's vendored copy of it)."""
    return any(c.__name__ == "UsageError" for c in type(e).__mro__) and hasattr(e, "format_message")


def _os_error_line(e: OSError) -> str:
    """The path and reason of an OSError; for a failed copy of a folder (shutil.Error, which lists
    (source, destination, reason) per file), the first file that could not be written."""
    import shutil

    from irralctl.utils.io import describe_copy_error, describe_os_error

    if isinstance(e, shutil.Error):
        _, destination, reason = describe_copy_error(e)
        more = f" (and {len(e.args[0]) - 1} more file(s))" if isinstance(e.args[0], list) and len(e.args[0]) > 1 else ""
        return f"could not copy to {destination}: {reason}{more}"
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{describe_os_error(e)}"


class _Root(Group):
    """The root group and the one error handler of the CLI: every subcommand is parsed and run
    inside `invoke`.

    Known errors (`IrralError`) and command-line mistakes (an unknown option, a value outside its
    choices or range) become one red line, plus a hint, and exit code 1; IRRALCTL_DEBUG=1 shows
    the traceback of a known error instead.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IrralError as e:
            if _debug():
                raise
            _report(e)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if _debug():
                raise
            _report(IrralError("interrupted"))
            raise typer.Exit(1) from None
        except OSError as e:
            # The net under every reader and writer: a full disk, a read-only folder, a folder
            # given for a file, a parent that is a file... one line naming the path.
            if _debug():
                raise
            _report(IrralError(_os_error_line(e)))
            raise typer.Exit(1) from None
        except Exception as e:
            if not _is_usage_error(e):
                raise
            command = e.ctx.command_path if getattr(e, "ctx", None) is not None else "irralctl"
            _report(IrralError(e.format_message().replace("Value error, ", ""), hint=f"see `{command} --help`"))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    name="irralctl",
    help="Chest X-ray report generation: prepare data, label, train IRRAL-Net, generate, score, explain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
# In pipeline order, as `irralctl --help` lists them.
app.add_typer(_prepare.app, name="prepare")
app.command("label", epilog=_label.EPILOG, cls=Command)(_label.label)
app.command("train", epilog=_train.EPILOG, cls=Command)(_train.train)
app.command("ablate", epilog=_ablate.EPILOG, cls=Command)(_ablate.ablate)
app.command("generate", epilog=_generate.EPILOG, cls=Command)(_generate.generate)
app.command("score", epilog=_score.EPILOG, cls=Command)(_score.score)
app.command("compare", epilog=_compare.EPILOG, cls=Command)(_compare.compare)
app.command("plot", epilog=_plot.EPILOG, cls=Command)(_plot.plot)
app.command("heatmap", epilog=_heatmap.EPILOG, cls=Command)(_heatmap.heatmap)
app.command("export", epilog=_export.EPILOG, cls=Command)(_export.export)
app.command("demo", cls=Command)(_demo.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"irralctl {irralctl.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                     help="Print the version and exit.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar="", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


def _interrupt(signum, frame) -> None:
    # SIGTERM (a scheduler, `kill`) stops a command as Ctrl-C does: outputs are cleaned up or kept
    # for a rerun by the same code paths.
    raise KeyboardInterrupt


def main() -> None:
    import signal
    import sys

    signal.signal(signal.SIGTERM, _interrupt)
    code: int | str | None = 0
    try:
        app()
    except KeyboardInterrupt:
        # Ctrl-C before the root group's `invoke` runs (while Typer builds the command): the same
        # one line as during the command.
        if _debug():
            raise
        _report(IrralError("interrupted"))
        code = 1
    except SystemExit as e:
        code = e.code
        if code == 130:  # Typer's silent exit for a Ctrl-C while it parses the arguments
            _report(IrralError("interrupted"))
            code = 1
    # CPython marks a KeyboardInterrupt raised inside exec()'d source (dataclasses and namedtuples
    # build their methods that way while a command imports its modules) as unhandled even after it
    # was caught, and then ends the process by SIGINT instead of with this exit code. Running any
    # source clears that mark.
    exec("None")  # noqa: S102 (a constant: see the comment above)
    sys.exit(code)
