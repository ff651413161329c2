"""The output transaction (irralctl.utils.outputs) when a Ctrl-C lands right after a system call
returns: Python raises it there, between a step and the next line, so each step must already be
under the transaction's care."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from irralctl.utils import outputs
from irralctl.utils.outputs import Interrupted, output_dir, output_in_place


def _interrupt_after(monkeypatch, obj, name: str, *, when=lambda *a, **k: True):
    """Patch `obj.name` so that the real call completes, then a Ctrl-C is raised (once)."""
    real = getattr(obj, name)
    fired = []

    def call(*args, **kwargs):
        result = real(*args, **kwargs)
        if not fired and when(*args, **kwargs):
            fired.append(args)
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(obj, name, call)
    return fired


@contextlib.contextmanager
def _stopped(message: str):
    """The block ends in one `Interrupted` whose message matches (a raw KeyboardInterrupt is a failure
    here, not the end of the test session)."""
    with pytest.raises(BaseException) as info:
        yield
    assert isinstance(info.value, Interrupted), f"{type(info.value).__name__} escaped the transaction"
    assert re.search(message, str(info.value)), str(info.value)


def _listing(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() if p.is_file() else "/" for p in sorted(folder.rglob("*"))}


def test_a_ctrl_c_as_the_stage_is_created_leaves_no_stage(tmp_path, monkeypatch):
    target = tmp_path / "out"
    fired = _interrupt_after(monkeypatch, Path, "mkdir")
    with _stopped("nothing was written"):
        with output_dir(target, overwrite=False):
            pytest.fail("the block must not run")
    assert fired, "the patched mkdir was never called"
    assert _listing(tmp_path) == {}


def test_a_ctrl_c_as_a_resumable_stage_is_reopened_keeps_its_work(tmp_path, monkeypatch):
    target, stage = tmp_path / "out", tmp_path / ".out.partial"
    stage.mkdir()
    (stage / "work").write_text("decoded")
    _interrupt_after(monkeypatch, Path, "mkdir")
    with _stopped(r"1 file kept in .*\.out\.partial"):
        with output_dir(target, overwrite=False, stage=stage, keep=lambda s, e: "1 file"):
            pytest.fail("the block must not run")
    assert _listing(tmp_path) == {".out.partial": "/", ".out.partial/work": "decoded"}


@pytest.mark.parametrize("step", ["moved aside", "created", "marked"])
def test_a_ctrl_c_between_the_steps_of_an_in_place_output_puts_the_previous_one_back(step, tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("previous")
    before = _listing(tmp_path)
    if step == "moved aside":
        fired = _interrupt_after(monkeypatch, os, "replace")
    elif step == "created":
        fired = _interrupt_after(monkeypatch, Path, "mkdir")
    else:
        fired = _interrupt_after(monkeypatch, Path, "write_text", when=lambda self, *a, **k: self.name == outputs.IN_PROGRESS)
    with _stopped("the previous output is back in place"):
        with output_in_place(target, overwrite=True):
            pytest.fail("the block must not run")
    assert fired
    monkeypatch.undo()
    assert _listing(tmp_path) == before


def test_an_in_place_output_that_cannot_move_the_previous_one_leaves_it(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("previous")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(Exception, match="cannot create the output"):
        with output_in_place(target, overwrite=True):
            pytest.fail("the block must not run")
    monkeypatch.undo()
    assert _listing(tmp_path) == {"out": "/", "out/old.txt": "previous"}


def test_a_new_in_place_output_interrupted_as_it_is_created_leaves_nothing(tmp_path, monkeypatch):
    _interrupt_after(monkeypatch, Path, "mkdir")
    with _stopped("nothing was written"):
        with output_in_place(tmp_path / "out", overwrite=False):
            pytest.fail("the block must not run")
    assert _listing(tmp_path) == {}
