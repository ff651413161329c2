"""`irralctl label`: label a file of reports (or a prepared dataset) and write CSV or JSONL.

Inputs, told apart by what the path is:
* a directory: a prepared dataset (docs/formats.md); `report` of every record of train.jsonl,
  val.jsonl and test.jsonl, rows keyed by `id` and `split`;
* `*.csv`: one report per row in column `column`, rows keyed by their number (and `id` if the
  file has such a column);
* `*.jsonl`: one JSON object per line, the report in field `field`, keyed by line (and `id`);
* anything else: plain text, one report per line.

With `format="chexpert"` (`--format chexpert`) the command is a drop-in for the Stanford CheXpert
labeler (`python label.py --reports_path R.csv --output_path L.csv`): a `*.csv` input is read as
its input (no header, one report per row, quoted where it holds commas or line breaks), and the
output is its `labeled_reports.csv` layout: a `Reports` column with each report as read, then the
14 observations in its column order with 1.0, 0.0, -1.0 or blank, written as pandas writes it.

The output (`*.csv` or `*.jsonl`) is written under a temporary name and renamed into place only
when every input record was read and labelled, so a bad record never leaves a partial file.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from irralctl.constants import OBSERVATIONS, SPLITS
from irralctl.errors import ConfigError, InputError
from irralctl.labeling.config import LABEL_FORMATS, LabelConfig
from irralctl.labeling.labeler import Labeler
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import save_config
from irralctl.utils.io import decoded_lines, iter_jsonl
from irralctl.utils.outputs import check_output, check_replaceable, output_files

DATASET_SPLITS = SPLITS
_SNIFF_BYTES = 8192
_VALUE_TEXT = {1: "1", 0: "0", -1: "-1", None: ""}
# The Stanford labeler's output: a float column per observation, NaN for blank (pandas' to_csv).
CHEXPERT_REPORTS_COLUMN = "Reports"
_CHEXPERT_VALUE_TEXT = {1: "1.0", 0: "0.0", -1: "-1.0", None: ""}


@dataclass(frozen=True)
class LabelSummary:
    input_kind: str
    reports: int
    counts: dict[str, dict[str, int]]   # observation -> {"positive", "negative", "uncertain", "blank"}
    seconds: float
    output: Path
    config_path: Path

    @property
    def reports_per_second(self) -> float:
        return self.reports / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class _Record:
    keys: dict
    text: str


def config_path_for(out: Path) -> Path:
    """The options beside an output: `OUT.config.json` (the full name, as every command names it)."""
    return out.with_name(f"{out.name}.config.json")


def label_reports(config: LabelConfig, progress: Progress = SILENT) -> LabelSummary:
    """Label every report of `config.input` into `config.out`."""
    out = Path(config.out)
    fmt = out.suffix.lower()
    chexpert = config.format == "chexpert"
    if config.format not in LABEL_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(LABEL_FORMATS)}")
    if chexpert and fmt != ".csv":
        raise ConfigError(f"--format chexpert writes the CheXpert labeler's CSV: --out must end in .csv, got '{out.name}'")
    if fmt not in (".csv", ".jsonl"):
        raise ConfigError(f"--out must end in .csv or .jsonl, got '{out.name}'")
    source = Path(config.input)
    if chexpert and source.suffix.lower() == ".csv" and config.column != "report":
        raise ConfigError("--column names a column of a CSV with a header; the CheXpert labeler's input has none "
                          "(its one column is the report)", hint="drop --column, or drop --format chexpert")
    check_output(out, [source])
    config_file = config_path_for(out)
    for target in (out, config_file):
        check_replaceable(target, overwrite=config.overwrite, directory=False)
    kind, key_names, records = _open_input(source, column=config.column, field=config.field, chexpert=chexpert)

    labeler = Labeler(no_finding=config.no_finding)
    counts = {name: {"positive": 0, "negative": 0, "uncertain": 0, "blank": 0} for name in OBSERVATIONS}
    count_names = {1: "positive", 0: "negative", -1: "uncertain", None: "blank"}
    n = 0
    started = time.perf_counter()

    task = progress.task("labelling")

    def rows() -> Iterator[tuple[_Record, list[int | None], list[dict] | None]]:
        nonlocal n
        for record in records:
            if config.explain:
                explained = labeler.explain(record.text)
                values = [e["value"] for e in explained]
            else:
                explained, values = None, labeler.label(record.text)
            for name, v in zip(OBSERVATIONS, values):
                counts[name][count_names[v]] += 1
            n += 1
            if n % 256 == 0:
                task.advance(256)
            yield record, values, explained

    # The labels and their options are written together, or not at all.
    with task, output_files([out, config_file], overwrite=config.overwrite, inputs=[source]) as (staged, staged_config):
        with open(staged, "w", encoding="utf-8", newline="") as f:
            if chexpert:
                _write_chexpert(f, rows(), config.explain)
            elif fmt == ".csv":
                _write_csv(f, key_names, rows(), config.explain)
            else:
                _write_jsonl(f, rows())
        if n == 0:
            raise InputError("no reports found (the input is empty)", path=source)
        save_config(staged_config, config, labeler=labeler.info(), input_kind=kind, reports=n, counts=counts)
    seconds = time.perf_counter() - started
    return LabelSummary(kind, n, counts, seconds, out, config_file)


# --- reading -------------------------------------------------------------------------------------
def _open_input(path: Path, *, column: str, field: str, chexpert: bool = False) -> tuple[str, list[str], Iterator[_Record]]:
    """(input kind, key column names, records). Checks what can be checked before any output.
    `chexpert`: a .csv is the Stanford labeler's input (no header, the report its only column)."""
    if path.is_dir():
        files = [(split, path / f"{split}.jsonl") for split in DATASET_SPLITS if (path / f"{split}.jsonl").is_file()]
        if not files:
            raise InputError(
                "not a prepared dataset: none of train.jsonl, val.jsonl, test.jsonl is there", path=path,
                hint="give a prepared dataset directory, or a .txt, .csv or .jsonl file of reports",
            )
        return "dataset", ["id", "split"], _dataset_records(files, field)
    if not path.is_file():
        raise InputError("file not found", path=path)
    _reject_binary(path)
    suffix = path.suffix.lower()
    if suffix == ".csv" and chexpert:
        return "chexpert csv", ["row"], _chexpert_records(path)
    if suffix == ".csv":
        header, records = _csv_records(path, column)
        keys = ["row"] + (["id"] if "id" in header and column != "id" else [])
        return "csv", keys, records
    if suffix == ".jsonl":
        return "jsonl", ["line", "id"], _jsonl_records(path, field)
    return "text", ["line"], _text_records(path)


def _reject_binary(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte-order mark (Windows "Unicode" text)
        raise InputError("UTF-16 text, not UTF-8", path=path, record=1,
                         hint="convert the file to UTF-8, e.g. iconv -f utf-16 -t utf-8")
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError("binary data (a NUL byte), not a text file of reports", path=path, record=line)


def _text_records(path: Path) -> Iterator[_Record]:
    blank_at = None
    for lineno, line in decoded_lines(path):
        text = line.rstrip("\r\n")
        if not text.strip():
            blank_at = blank_at or lineno
            continue
        if blank_at is not None:
            raise InputError("empty line: one report per line expected", path=path, record=blank_at,
                             hint="remove empty lines; a report must not span several lines")
        yield _Record({"line": lineno}, text)


def _csv_rows(path: Path, strict: bool = False) -> tuple[Iterator[list[str]], list[int]]:
    """A csv reader over the strictly decoded file, and the list whose last item is the line the
    reader has reached (a quoted cell may span lines). `strict`: an unclosed quote is an error."""
    lines = decoded_lines(path)
    line_numbers: list[int] = []

    def source() -> Iterator[str]:
        for lineno, line in lines:
            line_numbers.append(lineno)
            yield line

    return csv.reader(source(), strict=strict), line_numbers


def _chexpert_records(path: Path) -> Iterator[_Record]:
    """The Stanford labeler's input: no header, one report per row (pandas' read_csv with
    header=None, which skips blank lines). A row of several cells is an unquoted comma, which
    pandas would silently turn into an index: refused, naming the line."""
    # Strict: pandas stops at a quote left open; a lenient reader would take the rest of the file as one report.
    reader, line_numbers = _csv_rows(path, strict=True)
    row_number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"not valid CSV ({e})", path=path, record=line_numbers[-1] if line_numbers else 1) from None
        lineno = line_numbers[-1]
        if not row or (len(row) == 1 and not row[0]):
            continue
        if len(row) > 1:
            raise InputError(f"{len(row)} cells; the CheXpert labeler's input has one report per row", path=path,
                             record=lineno, hint='quote reports that hold commas: "Heart normal, lungs clear."')
        if not row[0].strip():
            raise InputError("empty report", path=path, record=lineno)
        row_number += 1
        yield _Record({"row": row_number}, row[0])


def _csv_records(path: Path, column: str) -> tuple[list[str], Iterator[_Record]]:
    # strict: a stray or unterminated quote is an error, not a report that swallows the rows after it
    reader, line_numbers = _csv_rows(path, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("no reports found (the file is empty)", path=path) from None
    except csv.Error as e:
        raise InputError(f"not valid CSV ({e})", path=path, record=1) from None
    header = [h.strip() for h in header]
    if column not in header:
        raise InputError(
            f"no column '{column}'", path=path, record=1,
            hint=f"the columns are: {', '.join(header) or '(none)'}; choose one with --column",
        )
    index = header.index(column)
    id_index = header.index("id") if "id" in header and column != "id" else None

    def records() -> Iterator[_Record]:
        row_number = 0
        while True:
            starts = line_numbers[-1] + 1 if line_numbers else 1  # the row's first line (a row may span lines)
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise InputError(f"not valid CSV ({e})", path=path, record=starts) from None
            lineno = line_numbers[-1] if line_numbers else 1
            if not row:
                continue  # csv yields [] for a blank line between rows: no report there
            row_number += 1
            if index >= len(row):
                raise InputError(f"the row has {len(row)} cells, no '{column}' cell", path=path,
                                 record=lineno, field=column)
            text = row[index]
            if not text.strip():
                raise InputError("empty report", path=path, record=lineno, field=column)
            keys = {"row": row_number}
            if id_index is not None:
                keys["id"] = row[id_index] if id_index < len(row) else ""
            yield _Record(keys, text)

    return header, records()


def _jsonl_records(path: Path, field: str) -> Iterator[_Record]:
    for lineno, obj in iter_jsonl(path):
        sid = obj.get("id")
        # The id is copied into the output: a NaN would make it invalid JSON (as `irralctl score` reads ids).
        if sid is not None and (isinstance(sid, bool) or not isinstance(sid, (str, int))):
            raise InputError(f"expected a string or integer, got {type(sid).__name__}", path=path, record=lineno,
                             field="id")
        yield _Record({"line": lineno, "id": sid}, _text_field(obj, field, path, lineno))


def _dataset_records(files: list[tuple[str, Path]], field: str) -> Iterator[_Record]:
    for split, path in files:
        for lineno, obj in iter_jsonl(path):
            if "id" not in obj:
                raise InputError("missing field 'id'", path=path, record=lineno, field="id")
            yield _Record({"id": obj["id"], "split": split}, _text_field(obj, field, path, lineno))


def _text_field(obj: dict, field: str, path: Path, lineno: int) -> str:
    if field not in obj:
        raise InputError(f"missing field '{field}'", path=path, record=lineno, field=field,
                         hint=f"the fields are: {', '.join(obj) or '(none)'}; choose one with --field")
    text = obj[field]
    if not isinstance(text, str):
        raise InputError(f"expected a string, got {type(text).__name__}", path=path, record=lineno, field=field)
    if not text.strip():
        raise InputError("empty report", path=path, record=lineno, field=field)
    return text


# --- writing -------------------------------------------------------------------------------------
def _explain_header() -> list[str]:
    return [f"{name} {part}" for name in OBSERVATIONS for part in ("phrase", "sentence", "rule")]


def _explain_cells(explained: list[dict]) -> list[str]:
    return [cell for e in explained for cell in (e["phrase"] or "", e["sentence"] or "", e["rule"])]


def _write_csv(f, key_names: list[str], rows: Iterable, explain: bool) -> None:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(list(key_names) + list(OBSERVATIONS) + (_explain_header() if explain else []))
    for record, values, explained in rows:
        row = [_cell(record.keys.get(k)) for k in key_names] + [_VALUE_TEXT[v] for v in values]
        writer.writerow(row + (_explain_cells(explained) if explain else []))


def _write_chexpert(f, rows: Iterable, explain: bool) -> None:
    # pandas' to_csv(index=False) is Python's csv writer, minimal quoting, "\n" line ends: the
    # same bytes as the Stanford labeler writes.
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow([CHEXPERT_REPORTS_COLUMN, *OBSERVATIONS] + (_explain_header() if explain else []))
    for record, values, explained in rows:
        row = [record.text] + [_CHEXPERT_VALUE_TEXT[v] for v in values]
        writer.writerow(row + (_explain_cells(explained) if explain else []))


def _write_jsonl(f, rows: Iterable) -> None:
    for record, values, explained in rows:
        obj = dict(record.keys)
        obj.update(zip(OBSERVATIONS, values))
        if explained is not None:
            obj["explain"] = explained
        f.write(json.dumps(obj, ensure_ascii=False))
        f.write("\n")


def _cell(value) -> str:
    return "" if value is None else str(value)
