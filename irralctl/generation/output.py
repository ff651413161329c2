"""Writing generated reports: one row per study, a crash-safe journal, and the final file.

Rows (JSONL; docs/formats.md, "Predictions"): `id`, `prediction`, `reference` (when known),
`views`, `observations` (CheXpert name -> probability from the clinical head), `flags`, `score`
(sum of log-probabilities of the best hypothesis), `length` (its report tokens), and with
n-best > 1 `hypotheses` (each with `prediction`, `score`, `rank_score`, `length`). The scorer
reads `id`, `prediction` and `reference` and ignores the rest.

How a run writes (so that OUT is never torn and a long run can resume):

* rows go to a journal beside OUT, `OUT.partial` (JSONL), appended one batch at a time with a
  single write followed by fsync; `OUT.partial.json` holds the run's settings;
* when every study is done the journal becomes OUT: renamed onto it (jsonl) or converted into a
  temporary file renamed onto it (txt, csv); an existing OUT is replaced only then;
* a crash leaves OUT as it was and the journal with whole batches, at worst followed by one
  incomplete line; `--resume` cuts that line off, skips the studies already written and appends
  the rest. Without a journal, `--resume` continues from a finished jsonl OUT (its ids skipped).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from irralctl.errors import ConfigError, InputError
from irralctl.generation.config import FORMATS
from irralctl.utils.io import atomic_write, dumps, read_json, write_json

log = logging.getLogger(__name__)


def journal_paths(out: Path) -> tuple[Path, Path]:
    """(journal, journal settings) of output `out`."""
    return out.with_name(out.name + ".partial"), out.with_name(out.name + ".partial.json")


def config_path(out: Path) -> Path:
    return out.with_name(out.name + ".config.json")


def staged_config_path(out: Path) -> Path:
    """Where a run's options wait for its output: they move onto `config_path` with it."""
    return out.with_name(out.name + ".partial.config.json")


def _complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset after the line, line) for each newline-terminated line of `path`."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            yield offset, line


def recover_journal(path: Path) -> list[str]:
    """Ids written in a journal; a torn or unparsable tail (a crash mid-write) is cut off in place."""
    ids: list[str] = []
    good = 0
    for end, line in _complete_lines(path):
        try:
            row = json.loads(line)
            ids.append(str(row["id"]))
        except (ValueError, KeyError, TypeError):
            break
        good = end
    size = path.stat().st_size
    if good < size:
        log.warning("cutting %d byte(s) of an incomplete batch off %s", size - good, path)
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return ids


class Journal:
    """Appends batches of rows to the journal: one write and one fsync per batch."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)

    def append(self, rows: Iterable[dict]) -> None:
        data = "".join(dumps(r) + "\n" for r in rows).encode("utf-8")
        view = memoryview(data)
        while view:  # os.write may write less than asked (signals, some file systems)
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_output(out: Path, fmt: str, settings: dict, *, resume: bool, overwrite: bool) -> tuple[Journal, set[str]]:
    """The journal to append to and the ids already generated (with `resume`), after every check."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    journal, journal_cfg = journal_paths(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged_config_path(out).unlink(missing_ok=True)  # left by a run killed as it finished
    done: list[str] = []
    if resume:
        if journal.exists():
            previous = read_json(journal_cfg) if journal_cfg.is_file() else None
            _check_same(previous, settings, journal_cfg)
            done = recover_journal(journal)
        elif out.exists():
            if fmt != "jsonl":
                raise InputError(f"--resume continues an interrupted run, or a finished jsonl output; this {fmt} "
                                 "output is finished", path=out, hint="pass --overwrite to generate it again")
            previous = read_json(config_path(out)).get("settings") if config_path(out).is_file() else None
            _check_same(previous, settings, config_path(out))
            data = out.read_bytes()
            with atomic_write(journal, "wb") as f:
                f.write(data if not data or data.endswith(b"\n") else data + b"\n")
            done = recover_journal(journal)
        else:
            log.info("nothing to resume at %s: starting afresh", out)
    else:
        discard_journal(out)  # a journal without a complete row (a run killed early) blocks nothing
        if journal.exists() and not overwrite:
            raise InputError("an interrupted run left its journal here", path=journal,
                             hint="continue it with --resume, or pass --overwrite to start again")
        if out.exists() and not overwrite:
            raise InputError("output already exists", path=out,
                             hint="choose another --out, pass --overwrite to replace it, or --resume to add missing studies")
    if not resume or not journal.exists():
        journal.unlink(missing_ok=True)
        journal.touch()
    write_json(journal_cfg, settings)
    return Journal(journal), set(done)


def _check_same(previous: dict | None, settings: dict, where: Path) -> None:
    if previous is None:
        return
    changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
    if changed:
        raise ConfigError(f"--resume with other settings than the interrupted run ({', '.join(changed)} differ; see {where})",
                          hint="rerun with the same checkpoint and decoding options, or pass --overwrite to start again")


def finish_output(out: Path, fmt: str, observation_names: Iterable[str]) -> int:
    """Turn the journal into `out` (atomically) and remove it, and move the staged options (if
    written) onto `OUT.config.json` with it; returns the rows written."""
    journal, journal_cfg = journal_paths(out)
    rows = sum(1 for _ in _complete_lines(journal))
    if fmt == "jsonl":
        os.replace(journal, out)
    else:
        with atomic_write(out, newline="") as f:
            _convert(journal, f, fmt, list(observation_names))
        journal.unlink()
    staged = staged_config_path(out)
    if staged.exists():
        os.replace(staged, config_path(out))
    journal_cfg.unlink(missing_ok=True)
    return rows


_TXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def txt_field(text: str) -> str:
    """A field of the txt format: backslash, tab and line breaks escaped, so one line stays one row."""
    return str(text).translate(_TXT_ESCAPES)


def _convert(journal: Path, f, fmt: str, names: list[str]) -> None:
    if fmt == "txt":
        # id TAB report per study; with --n-best N, one line per hypothesis: id TAB rank TAB report.
        for _, line in _complete_lines(journal):
            row = json.loads(line)
            hypotheses = row.get("hypotheses")
            if hypotheses:
                for rank, h in enumerate(hypotheses, start=1):
                    f.write(f"{txt_field(row['id'])}\t{rank}\t{txt_field(h['prediction'])}\n")
            else:
                f.write(f"{txt_field(row['id'])}\t{txt_field(row['prediction'])}\n")
        return
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "prediction", "reference", "flags", "views", "score", *names])
    for _, line in _complete_lines(journal):
        row = json.loads(line)
        obs = row.get("observations") or {}
        w.writerow([row["id"], row["prediction"], row.get("reference", ""), ";".join(row.get("flags", [])),
                    ";".join(f"{v['id']}:{v['view']}" for v in row.get("views", [])), row.get("score", ""),
                    *[obs.get(n, "") for n in names]])


def discard_journal(out: Path) -> int:
    """Remove a journal without a complete row (nothing to resume), and the staged options of a run
    that did not finish; returns the rows kept."""
    journal, journal_cfg = journal_paths(out)
    staged_config_path(out).unlink(missing_ok=True)
    if not journal.exists():
        journal_cfg.unlink(missing_ok=True)  # settings written for a journal that never came to be
        return 0
    rows = sum(1 for _ in _complete_lines(journal))
    if rows == 0:
        journal.unlink()
        journal_cfg.unlink(missing_ok=True)
    return rows


def read_rows(path: str | Path) -> list[dict]:
    """Rows of a jsonl output (tests, tools)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    return [json.loads(line) for _, line in _complete_lines(path)]
