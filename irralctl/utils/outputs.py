"""The one output transaction of every command that writes: nothing is lost, nothing is half-written.

    with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=[cfg.dataset]) as stage:
        ... write everything into `stage` ...
    # here `cfg.out` holds the new output; an old one was replaced only now

* An output may not be, contain, or lie inside any input of the command (a dataset, a run, a raw
  archive, a predictions file): `check_output` refuses it before anything is written.
* Outputs are built in a stage beside the target (`.NAME.stage-PID`, or `.NAME.partial` for a
  stage that can be resumed) and moved onto the target only when the command succeeded. An
  existing target is kept until then (with `--overwrite`), and removed only after the new one is
  in place.
* On any failure or interruption (Ctrl-C; SIGTERM, which the CLI turns into an interruption) the
  stage is removed, unless it holds work that a rerun continues (decoded images, training
  checkpoints, generated rows): then it stays and the error says where. A stage left by a killed
  process (SIGKILL) is removed by the next run of the command for the same output, and so is a
  replacement it cut short: the previous output comes back, or its leftover copy goes.
* Stray temporary files (`.x.tmp`) never reach a finished output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from irralctl.errors import ConfigError, InputError, IrralError
from irralctl.utils.io import describe_os_error


class Interrupted(IrralError):
    """The user stopped a command (Ctrl-C, SIGTERM)."""


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def check_output(out: str | Path, inputs: Iterable[str | Path | None], *, flag: str = "--out") -> None:
    """Refuse an output that is, contains, or lies inside one of `inputs` (names both)."""
    target = _real(out)
    for given in inputs:
        if given is None or str(given) == "":
            continue
        source = _real(given)
        if target == source:
            why = "is"
        elif target in source.parents:
            why = "contains"
        elif source in target.parents:
            why = "lies inside"
        else:
            continue
        raise ConfigError(f"{flag} {out} {why} an input of this command ({given}): writing it could destroy that input",
                          hint=f"choose a {flag} outside every input")


def _sibling(target: Path, tag: str) -> Path:
    return target.parent / f".{target.name}.{tag}"


def clean_stale_stages(target: Path) -> None:
    """Remove `.NAME.stage-PID` stages of `target` whose process is gone (killed with SIGKILL)."""
    parent = target.parent
    if not parent.is_dir():
        return
    for stage in parent.glob(f".{target.name}.stage-*"):
        pid = stage.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(stage)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stray_temporaries(directory: Path) -> None:
    """Delete `.*.tmp` files an interrupted atomic write left (they never belong in an output)."""
    for tmp in directory.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink()


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def replace(stage: Path, target: Path) -> Path | None:
    """Move a finished `stage` onto `target`. An existing target is moved aside first and put back
    if the stage does not get in; otherwise its aside path is returned, for the caller to remove
    once it is committed (that removal can no longer fail the new output)."""
    if not _present(target):
        os.replace(stage, target)
        return None
    old = _sibling(target, f"old-{os.getpid()}")
    _remove(old)
    try:
        os.replace(target, old)
        os.replace(stage, target)
    except BaseException:  # a Ctrl-C may land between the two renames, too
        if _present(old) and not _present(target):
            os.replace(old, target)
        raise
    return old


def _discard_previous(moved: list[tuple[Path, Path | None]]) -> None:
    """Remove the previous outputs (target, its old copy aside) once the new ones are in place. A Ctrl-C
    meanwhile lets the removal finish first (no half-removed copy is left), then stops the command
    saying the output is complete."""
    interrupted = False
    for _, old in moved:
        if old is None:
            continue
        try:
            _remove(old)
        except KeyboardInterrupt:
            interrupted = True
            _remove(old)
    if interrupted:
        raise Interrupted(f"interrupted after the new output was in place: {moved[0][0]} is complete") from None


def check_replaceable(target: Path, *, overwrite: bool, flag: str = "--out", directory: bool = True) -> None:
    """Refuse an existing `target` without `overwrite` (or of the wrong kind). What a killed
    replacement of `target` left is repaired first, so the check sees the real previous output."""
    recover_aside(target)
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise InputError("already exists", path=target,
                             hint=f"choose another {flag}, or pass --overwrite to replace it once the new one is complete")
        if directory and not target.is_dir():
            raise InputError("is a file; this output is a folder", path=target, hint=f"choose another {flag}")
        if not directory and target.is_dir():
            raise InputError("is a folder; this output is a file", path=target, hint=f"choose another {flag}")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise InputError("its parent is a file, not a folder", path=target, hint=f"choose another {flag}")


@contextlib.contextmanager
def output_dir(target: str | Path, *, overwrite: bool, inputs: Iterable[str | Path | None] = (), flag: str = "--out",
               stage: Path | None = None, keep: Callable[[Path, BaseException], str | None] | None = None,
               exists_ok: bool = False, again: str = "run the same command again to continue") -> Iterator[Path]:
    """Build a directory output in a stage and move it onto `target` when the block succeeds.

    `stage`: a fixed, resumable stage (default: `.NAME.stage-PID`, removed on failure).
    `keep(stage, error)` says, after a failure, what in the stage is worth keeping for a rerun
    (None: nothing, remove it), and `again` how the user continues from it. `exists_ok`: the
    caller already checked an existing target.
    """
    target = Path(target)
    check_output(target, inputs, flag=flag)
    if not exists_ok:
        check_replaceable(target, overwrite=overwrite, flag=flag)
    clean_stale_stages(target)
    stage = stage or _sibling(target, f"stage-{os.getpid()}")
    try:
        # Created inside the transaction: a Ctrl-C is raised as soon as a system call returns, so one
        # that lands while mkdir runs must find the stage already under this block's care.
        try:
            stage.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the output: {describe_os_error(e)}", path=target) from None
        yield stage
        remove_stray_temporaries(stage)
        old = replace(stage, target)
    except BaseException as error:
        kept = None
        if keep is not None and stage.exists():
            with contextlib.suppress(Exception):
                kept = keep(stage, error)
        if kept is None:
            _remove(stage)
        if isinstance(error, KeyboardInterrupt):
            tail = f"; {kept} kept in {stage}: {again}" if kept else "; nothing was written"
            raise Interrupted(f"interrupted{tail}") from None
        if kept and isinstance(error, IrralError):
            error.message = f"{error.message}; {kept} kept in {stage}: {again}"
        if kept and isinstance(error, OSError):  # a full disk: the kept stage must be named all the same
            where = f"{error.filename}: " if error.filename else ""
            raise IrralError(f"{where}{describe_os_error(error)}; {kept} kept in {stage}: {again}") from None
        raise
    _discard_previous([(target, old)])


IN_PROGRESS = ".in-progress"


def recover_aside(target: Path) -> None:
    """Undo what a killed replacement left (`replace`, `output_in_place`): a half-built target (or
    none) gives way to the old one; beside a complete target, the old one is removed."""
    for old in target.parent.glob(f".{target.name}.old-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if (target / IN_PROGRESS).exists() or not target.exists():
            _remove(target)
            os.replace(old, target)
        else:
            _remove(old)


@contextlib.contextmanager
def output_in_place(target: str | Path, *, overwrite: bool, inputs: Iterable[str | Path | None] = (),
                    flag: str = "--out") -> Iterator[Path]:
    """Build a directory output at `target` itself, for outputs whose files record their own paths
    (the demo's runs name their dataset): an existing target is moved aside first and comes back
    if the block fails; it is removed only once the new output is complete."""
    target = Path(target)
    check_output(target, inputs, flag=flag)
    recover_aside(target)
    check_replaceable(target, overwrite=overwrite, flag=flag)
    # Where the previous output waits. Every step below runs inside the transaction, and what is
    # undone is read from the disk, not from variables: a Ctrl-C can land between a rename and the
    # next line.
    aside = _sibling(target, f"old-{os.getpid()}") if _present(target) else None
    try:
        try:
            if aside is not None:
                os.replace(target, aside)
            target.mkdir(parents=True)
            (target / IN_PROGRESS).write_text(str(os.getpid()))
        except OSError as e:
            raise InputError(f"cannot create the output: {describe_os_error(e)}", path=target) from None
        yield target
        remove_stray_temporaries(target)
        (target / IN_PROGRESS).unlink()
    except BaseException as error:
        back = aside is not None and _present(aside)
        if aside is None or back:  # else the previous output never moved: it is still the target
            _remove(target)
        if back:
            os.replace(aside, target)
        if isinstance(error, KeyboardInterrupt):
            raise Interrupted("interrupted; " + ("the previous output is back in place" if back else "nothing was written")) from None
        raise
    _discard_previous([(target, aside)])


@contextlib.contextmanager
def output_files(targets: Iterable[str | Path], *, overwrite: bool, inputs: Iterable[str | Path | None] = (),
                 flag: str = "--out") -> Iterator[list[Path]]:
    """Stage several output files (an output and its sidecars) and move them into place together,
    when the block succeeds; existing ones are replaced only then. Yields the stage paths."""
    targets = [Path(t) for t in targets]
    for t in targets:
        check_output(t, inputs, flag=flag)
        check_replaceable(t, overwrite=overwrite, flag=flag, directory=False)
        clean_stale_stages(t)
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the output's folder: {describe_os_error(e)}", path=t) from None
    stages = [_sibling(t, f"stage-{os.getpid()}") for t in targets]
    moved: list[tuple[Path, Path | None]] = []  # (target replaced, its previous version aside)
    try:
        yield stages
        for s, t in zip(stages, targets):
            if s.exists():
                moved.append((t, replace(s, t)))
    except BaseException as error:
        for t, old in reversed(moved):  # all or nothing: files already moved in give way again
            if old is None:
                _remove(t)
            else:
                os.replace(old, t)
        for s in stages:
            _remove(s)
        if isinstance(error, KeyboardInterrupt):
            raise Interrupted("interrupted; nothing was written") from None
        raise
    _discard_previous(moved)
