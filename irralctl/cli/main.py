"""Entry point: wires the command modules together and maps known errors to one line + exit 1.

Set IRRALCTL_DEBUG=1 to see full tracebacks.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Optional

import typer
from rich.markup import escape

import irralctl
from irralctl.cli._commands import Command, Group
from irralctl.cli._common import err_console, start_error_line
from irralctl.errors import IrralError

# Every command, in pipeline order, as `irralctl --help` lists them: name -> (module, attribute), a
# command function bound to its config or a Typer group. A module is imported only when its command
# runs or shows its own help: each one imports its config (dataclasses built at import), and none of
# them is needed to list the commands (`irralctl --help` stays well under the 0.3 s target).
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("irralctl.cli.prepare", "app"),
    "label": ("irralctl.cli.label", "label"),
    "train": ("irralctl.cli.train", "train"),
    "ablate": ("irralctl.cli.ablate", "ablate"),
    "generate": ("irralctl.cli.generate", "generate"),
    "score": ("irralctl.cli.score", "score"),
    "compare": ("irralctl.cli.compare", "compare"),
    "plot": ("irralctl.cli.plot", "plot"),
    "heatmap": ("irralctl.cli.heatmap", "heatmap"),
    "export": ("irralctl.cli.export", "export"),
    "demo": ("irralctl.cli.demo", "demo"),
}
# What `irralctl --help` shows beside each command without importing it: the first paragraph of
# the command's own help (tests/cli/test_startup.py checks they stay equal).
SUMMARIES: dict[str, str] = {
    "prepare": "Build a prepared dataset (manifests, tokenisers, image store, labels) from raw files.",
    "label": "Label reports with the 14 CheXpert observations: 1 positive, 0 negative, -1 uncertain, blank not "
             "mentioned.",
    "train": "Train a report generator; writes checkpoints, metrics.jsonl and test predictions to --out.",
    "ablate": "Train every preset with every seed (same options, shared initial weights per seed), then compare "
              "them.",
    "generate": "Generate a report for every study: beam search on CPU or GPU, with the clinical head's "
                "observations.",
    "score": "Score generated reports as coco-caption does (BLEU, METEOR, ROUGE-L, CIDEr-D) plus clinical efficacy.",
    "compare": "Compare trained runs on their test split: a table over seeds and paired tests against a reference.",
    "plot": "Draw training runs as PNGs: losses per step, validation per epoch, test CE F1, clinical head, lengths.",
    "heatmap": "Overlay the decoder's cross-attention for each word on each view of a study (the paper's Fig. 3).",
    "export": "Export a prepared dataset (Hugging Face datasets, R2Gen's layout) or a run (safetensors and a model "
              "card).",
    "demo": "Run the whole pipeline on synthetic phantoms on this machine's CPU.",
}


def load_command(name: str):
    """The click command of `name`, built from its module as Typer builds a registered command."""
    module_name, attribute = COMMANDS[name]
    module = importlib.import_module(module_name)
    target = getattr(module, attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)  # as add_typer would: no completion options
    else:
        single = typer.Typer(rich_markup_mode="rich", add_completion=False, pretty_exceptions_enable=False)
        single.command(name, epilog=getattr(module, "EPILOG", None), cls=Command)(target)
        command = typer.main.get_command(single)  # one command and no callback: the command itself
    command.name = name
    return command


class _Commands(MutableMapping):
    """The root group's commands, each built on first access (`irralctl score ...` imports the score
    command alone; `irralctl --help` none, see `_Root.format_help`)."""

    def __init__(self) -> None:
        self.loaded: dict[str, typer.core.TyperCommand] = {}

    def __getitem__(self, name: str):
        if name not in self.loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self.loaded[name] = load_command(name)
        return self.loaded[name]

    def __setitem__(self, name: str, command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self.loaded))


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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands()  # type: ignore[assignment]
        self._listing = False

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx, name: str):
        if self._listing and name in COMMANDS and name not in self.commands.loaded:  # type: ignore[attr-defined]
            # `irralctl --help` lists the commands: their summaries, without importing them.
            return Command(name=name, help=SUMMARIES[name])
        return self.commands.get(name)

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

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
        handlers=[_RichLogHandler()],
        force=True,
    )


class _RichLogHandler(logging.Handler):
    """rich's log handler, imported and built on the first record: most commands log nothing, and
    `rich.logging` costs every command's start-up some 20 ms."""

    def __init__(self) -> None:
        super().__init__()
        self._rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._rich is None:
            from rich.logging import RichHandler

            self._rich = RichHandler(console=err_console, show_path=False, show_time=False)
            self._rich.setFormatter(self.formatter)
        self._rich.emit(record)


def _interrupt(signum, frame) -> None:
    # SIGTERM (a scheduler, `kill`) stops a command as Ctrl-C does: outputs are cleaned up or kept
    # for a rerun by the same code paths.
    raise KeyboardInterrupt


def main() -> None:
    import signal

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
    _exit(code)


def _exit(code: int | str | None) -> None:
    """End the process with `code` once what must happen at exit has happened, without tearing the
    interpreter down. Unloading torch's native libraries alone takes about 0.4 s (`python -c
    "import torch"`: 1.80 s, 1.35 s when it ends with os._exit): a third of what `generate` of one
    study costs beyond importing torch. The command is over and its outputs are closed and renamed;
    what remains is done here: other non-daemon threads are joined, the atexit handlers run
    (logging flushes, multiprocessing reaps its workers), the standard streams are flushed."""
    import atexit
    import sys
    import threading

    if isinstance(code, str):  # sys.exit's convention: a message, then status 1
        print(code, file=sys.stderr)
        code = 1
    status = 0 if code is None else int(code)
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()  # the interpreter's own call at exit (CPython has no public name for it)
    except KeyboardInterrupt:  # a Ctrl-C now changes nothing: the command has ended
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`irralctl ... | head`), a closed stream
            pass
    os._exit(status)
