"""Atomic file writing and JSON-lines reading.

Every output of irralctl is written under a temporary name in the destination directory and
renamed into place, so an interrupted command never leaves a half-written file behind and an
existing file (a user's dataset or checkpoint) survives any failure before the rename.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from irralctl.errors import InputError, IrralError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it onto `path` when the block succeeds.

    With `overwrite`, an existing `path` is replaced only after the new one is complete.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError("already exists; choose another --out or pass --overwrite", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _non_finite(obj: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinity in `obj`, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "(the value itself)"
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _non_finite(v, f"{where}.{k}" if where else str(k))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Strict JSON: a NaN or infinity is an error naming its key, never a bare `NaN` in a file
    (which is not JSON, and which other tools refuse)."""
    try:
        return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise IrralError(f"refusing to write a non-finite number (NaN or infinity) at {_non_finite(obj)}") from None


def write_json(path: str | Path, obj: Any) -> None:
    text = dumps(obj, indent=2)
    with atomic_write(path) as f:
        f.write(text)
        f.write("\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg} (column {e.colno})", path=path, record=e.lineno) from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every non-blank line; bad lines raise `InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"not UTF-8 text ({e.reason})", path=path, record=lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg})", path=path, record=lineno) from None
            if not isinstance(obj, dict):
                raise InputError("expected a JSON object", path=path, record=lineno)
            yield lineno, obj


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(dumps(row))
            f.write("\n")
            n += 1
    return n


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_OS_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a parent of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder, not a file",
    errno.ENAMETOOLONG: "the file name is too long",
}


def decoded_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line break) of every line, decoded strictly as UTF-8 (a BOM is
    dropped); a line that is not UTF-8 is an error naming it."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"not UTF-8 text ({e.reason} at byte {e.start} of the line)", path=path, record=lineno,
                    hint="convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8",
                ) from None


def describe_copy_error(e: OSError) -> tuple[str | None, str | None, str]:
    """(source, destination, reason) of the first file a copy could not write: shutil.copytree
    gathers its failures into one shutil.Error listing (source, destination, "[Errno N] ...")."""
    import re
    import shutil

    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list) and e.args[0]:
        source, destination, why = e.args[0][0]
        code = re.match(r"\[Errno (\d+)\]", str(why))
        reason = describe_os_error(OSError(int(code.group(1)), os.strerror(int(code.group(1))))) if code else str(why)
        return source, destination, reason
    return getattr(e, "filename", None), getattr(e, "filename2", None), describe_os_error(e)


def describe_os_error(e: OSError) -> str:
    """A short reason for an OSError from a writer ("the disk is full", ...)."""
    return _OS_REASONS.get(e.errno, e.strerror or str(e))
