"""Every command's `--help` fits an 80-column terminal: no option name cut short, no line too long,
options grouped in panels, each default shown once, flags without a metavar, no `--no-no-` flag,
and the examples of each epilog on lines of their own."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from irralctl.cli.main import app

runner = CliRunner()
WIDTH = 80
ROOT = typer.main.get_command(app)
UNGROUPED = 4          # a command with more options than PANELS_FROM keeps at most this many outside a panel
PANELS_FROM = 10


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(ROOT))


def _help(path) -> str:
    r = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert r.exit_code == 0, r.output
    return r.output


def _options(command, ctx):
    return [p for p in command.get_params(ctx) if p.param_type_name == "option"]


def _default_shown(param, ctx) -> bool:
    """Whether the help renders a `[default: ...]` for `param` (as typer's rich help decides)."""
    value = param._extract_default_help_str(ctx=ctx)
    as_text = isinstance(param.show_default, str)
    if not (as_text or (value is not None and param.show_default)):
        return False
    return bool(param._get_default_string(ctx=ctx, show_default_is_str=as_text, default_value=value))


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "irralctl")
def test_help_fits_80_columns(path):
    out = _help(path)
    command = COMMANDS[path]
    ctx = command.context_class(command, info_name=" ".join(path) or "irralctl")
    assert "…" not in out, f"something was cut short:\n{out}"
    assert max(len(line) for line in out.splitlines()) <= WIDTH
    tokens = set(re.findall(r"(?<![\w-])-{1,2}[\w][\w-]*", out))
    options = _options(command, ctx)
    for param in options:
        for flag in (*param.opts, *param.secondary_opts):
            assert flag in tokens, f"{flag} is not shown in full"
            assert not flag.startswith("--no-no-"), flag
        if param.is_flag:
            assert param.display_type_rich(ctx) in ("", None), f"{param.opts[0]} shows a metavar"
        if _default_shown(param, ctx):
            assert not re.search(r"\(default\b|\bdefault:|\bby default\b", param.help or "", re.I), \
                f"{param.opts[0]} states its default twice"
    assert "<bool>" not in out
    if len(options) > PANELS_FROM:
        loose = [p.opts[0] for p in options if not getattr(p, "rich_help_panel", None) and p.opts[0] != "--help"]
        assert len(loose) <= UNGROUPED, f"options outside any panel: {loose}"
    for line in (command.epilog or "").splitlines():
        example = line.strip()
        if example.startswith(("irralctl ", "torchrun ")):
            lines = [l.strip(" │") for l in out.splitlines()]
            assert any(l.startswith(example[:40]) for l in lines), f"example not on its own line: {example}"


def test_the_opposite_of_a_negative_switch_is_its_positive():
    from irralctl.utils.config import opposite_flag

    assert opposite_flag("--no-image") == "--image" and opposite_flag("--augment") == "--no-augment"
    train = _help(("train",))
    assert "--no-image" in train and "--image" in train and "--no-no-image" not in train
