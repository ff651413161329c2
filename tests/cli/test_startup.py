"""Start-up: each command imports what it needs and nothing else (import-graph checks, not timings).

`irralctl --help` renders with typer and rich alone: no command module, no config, no torch, numpy,
PIL, transformers or pydantic (typer converts option values with pydantic; our `Command` does it
without for plain values), no labeller. `irralctl label` loads the labeller and nothing heavy;
`irralctl score --no-clinical` neither the labeller nor torch. The targets these keep within reach
(PERFORMANCE.md: `--help` under 0.3 s, `label` of one report under 0.5 s) are measured by
scripts/bench_all.py on a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from irralctl.cli._commands import Group, _fast_conversion
from irralctl.cli.main import COMMANDS, SUMMARIES, _Root, app, load_command

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
# Never needed to start a command: imported, if at all, by the work of the commands that use them.
HEAVY = ("torch", "numpy", "transformers", "tokenizers", "PIL", "pydantic", "matplotlib", "safetensors",
         "simplejpeg", "pydicom", "yaml", "nltk", "sacrebleu")
# The labeller's rules and phrase lists (compiled when a Labeler is built).
LABELLER = ("irralctl.labeling.labeler", "irralctl.labeling._rules")
# What rendering `irralctl --help` needs of irralctl itself.
HELP_MODULES = {"irralctl", "irralctl.cli", "irralctl.cli.main", "irralctl.cli._commands", "irralctl.cli._common",
                "irralctl.errors"}


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    """The modules loaded when `code` has run (or exited) in a fresh interpreter (the tests that start
    one are marked slow: the full suite runs them)."""
    out = tmp_path / "modules.json"
    prologue = ("import atexit, json, sys\n"
                f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", prologue + code], cwd=tmp_path, env=env, capture_output=True, text=True,
                   timeout=120, check=False)
    return set(json.loads(out.read_text()))


def _run_cli(argv: list[str], tmp_path: Path) -> set[str]:
    return _modules_after(f"sys.argv = {['irralctl', *argv]!r}\nfrom irralctl.cli.main import main\nmain()\n",
                          tmp_path)


def _loaded(modules: set[str], names) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.slow  # a fresh interpreter
def test_importing_the_cli_imports_no_command_and_nothing_heavy(tmp_path):
    modules = _modules_after("import irralctl.cli.main\n", tmp_path)
    assert _loaded(modules, HEAVY + LABELLER) == []
    assert {m for m in modules if m.startswith("irralctl")} <= HELP_MODULES, "a command module or config was imported"
    assert "rich.logging" not in modules  # built on the first log record (see main._RichLogHandler)


@pytest.mark.slow  # a fresh interpreter
def test_help_imports_only_typer_rich_and_the_entry_point(tmp_path):
    modules = _run_cli(["--help"], tmp_path)
    assert "typer.rich_utils" in modules, "the check ran no --help"
    assert _loaded(modules, HEAVY + LABELLER) == []
    assert {m for m in modules if m.startswith("irralctl")} <= HELP_MODULES


@pytest.mark.slow  # a fresh interpreter
def test_label_imports_the_labeller_and_nothing_heavy(tmp_path):
    (tmp_path / "r.txt").write_text("Heart size normal. No pleural effusion.\n")
    modules = _run_cli(["label", "r.txt", "--out", "l.csv"], tmp_path)
    assert (tmp_path / "l.csv").is_file(), "the command did not run"
    assert _loaded(modules, HEAVY) == []
    assert set(LABELLER) <= modules
    commands = {m for m in modules if m.startswith("irralctl.cli.") and m.rsplit(".", 1)[1] in COMMANDS}
    assert commands == {"irralctl.cli.label"}


@pytest.mark.slow  # a fresh interpreter
def test_score_without_clinical_efficacy_loads_neither_labeller_nor_torch(tmp_path):
    rows = [{"id": f"s{i}", "prediction": "the lungs are clear .", "reference": "no acute disease ."} for i in range(3)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    modules = _run_cli(["score", "p.jsonl", "--meteor", "off", "--no-clinical", "--json", "s.json"], tmp_path)
    assert (tmp_path / "s.json").is_file(), "the command did not run"
    assert "numpy" in modules  # the NLG metrics are vectorised
    assert _loaded(modules, tuple(m for m in HEAVY if m != "numpy") + LABELLER) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_summary_is_the_command_help(name):
    help_text = load_command(name).help
    first = " ".join(help_text.strip().split("\n\n")[0].split())
    assert SUMMARIES[name] == first


def test_help_lists_the_commands_as_when_every_command_is_loaded(monkeypatch):
    lazy = runner.invoke(app, ["--help"], terminal_width=80)
    assert lazy.exit_code == 0, lazy.output
    monkeypatch.setattr(_Root, "format_help", Group.format_help)  # lists the loaded commands themselves
    eager = runner.invoke(app, ["--help"], terminal_width=80)
    assert eager.output == lazy.output
    assert list(COMMANDS) == [line.split()[1] for line in lazy.output.splitlines()
                              if line.startswith("│ ") and line.split()[1] in COMMANDS]


def _every_param():
    def walk(command, path):
        for param in command.params:
            yield f"{path} {param.name}", param
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    for name in COMMANDS:
        yield from walk(load_command(name), name)
    yield from walk(typer.main.get_command(app), "irralctl")


def _outcome(runtime, value, param, ctx):
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
        return "ok", type(result), result
    except Exception as e:  # noqa: BLE001 (the error itself is what is compared)
        return "error", type(e), str(e)


def test_option_values_convert_as_typer_converts_them(tmp_path):
    """`Command`'s conversion without pydantic gives Typer's value or Typer's error, for every option of
    every command: its default and a few typed values."""
    build_runtime_param = pytest.importorskip("typer._coercion", reason="a Typer without pydantic conversion "
                                              "(before 0.2x): nothing to compare with").build_runtime_param

    ctx = typer.main.get_command(app).make_context("irralctl", ["label", "--help"], resilient_parsing=True)
    typed = ["3", "-2", "0", "1.5", "abc", " 7", "1e-3", "x", "auto", "a/b", ""]
    checked = 0
    for where, param in _every_param():
        fast = _fast_conversion(param)
        if fast is None:
            continue
        slow = build_runtime_param(param.type_descriptor)
        values = [param.default, None]
        if param.multiple:
            values += [("a", "b,c"), ()]
        elif param.nargs > 1:
            values += [tuple(typed[:param.nargs]), tuple(typed[:1])]
        else:
            values += typed + [str(c) for c in (fast.param.type_descriptor.choices or ())]
        for value in values:
            assert _outcome(fast, value, param, ctx) == _outcome(slow, value, param, ctx), (where, value)
            checked += 1
    assert checked > 500
