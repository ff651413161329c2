"""Reading what `irralctl score` scores: a predictions file, and references from it, from a file
of references, or from a prepared dataset.

Predictions, told apart by extension (docs/formats.md, "What `score` reads"):
* JSONL (`.jsonl`, and any other extension): one object per study: `id` (string or integer),
  `prediction` (string), `reference` (string; not needed with `--references`), and optionally
  `prediction_labels` / `reference_labels` (14 CheXpert values);
* a coco-caption results file (`.json`): `[{"image_id": ..., "caption": ...}, ...]`;
* CSV / TSV (`.csv`, `.tsv`): `id, prediction[, reference]` without a header, or with a header
  naming `id`, `prediction` and optionally `reference` (generate's `--format csv` output);
* text (`.txt`): one prediction per line, line-aligned with a `.txt` of references, or
  `id<TAB>prediction` per line (generate's `--format txt` output; rank 1 of `--n-best`).

References (`--references`): a prepared dataset (its split's `target` texts, or `legacy_target`
truncated and vocabulary-mapped as R2Gen scores, with `labels.chexpert` as reference labels), a
coco-caption annotations file (`{"annotations": [{"image_id", "caption"}]}`), a CSV / TSV
(`id, reference`), a JSONL (`{"id", "reference"}`) or a text file (one per line, aligned with a
text file of predictions). Every problem stops with the file, the line (or item) and the field.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.data.cleaning import get_cleaner
from irralctl.errors import ConfigError, InputError
from irralctl.metrics.clinical import validate_labels
from irralctl.utils.io import decoded_lines, iter_jsonl, read_json, sha256_file

_SPLIT_NAME = re.compile(r"^[A-Za-z][\w-]*$")
# R2Gen's max_seq_length (IU 60, MIMIC 100) counts the BOS token it puts first, so a reference
# keeps max_seq_length - 1 words after decoding.
LEGACY_MAX_SEQ_LENGTH = {"iu_xray": 60, "mimic_cxr": 100}


@dataclass
class Studies:
    """Aligned inputs: ids, texts and optional labels, in the predictions file's order."""

    ids: list[str]
    predictions: list[str]
    references: list[str]
    pred_labels: list | None = None
    ref_labels: list | None = None
    ref_labels_source: str | None = None
    sources: dict = field(default_factory=dict)


def _list_ids(ids, limit: int = 10) -> str:
    ids = list(ids)
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


# How a file's extension says what it holds (anything else is JSONL).
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_HINT_REFERENCES = "give references with --references (a prepared dataset, coco annotations, CSV/TSV, JSONL or text)"


def is_text_file(spec: str | Path | None) -> bool:
    """A `.txt` file given as --references: predictions from a `.txt` are then aligned by line."""
    return spec is not None and Path(spec).suffix.lower() == ".txt"


def read_predictions(path: str | Path, *, need_reference: bool, line_aligned: bool = False) -> Studies:
    """Read and check a predictions file of any format the module docstring lists.

    `line_aligned`: a `.txt` holds one prediction per line (ids are line numbers), to be matched
    with a text file of references; otherwise a `.txt` is `id<TAB>prediction` per line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    suffix = path.suffix.lower()
    if suffix == ".json" and _is_coco(path):
        fmt, rows = "coco-caption results", _coco_items(path, "predictions")
    elif suffix in TABLE_SUFFIXES:
        fmt, rows = suffix[1:], _table_rows(path, "prediction", TABLE_SUFFIXES[suffix], optional="reference")
    elif suffix == ".txt" and line_aligned:
        fmt, rows = "text, one per line", _text_lines(path)
    elif suffix == ".txt":
        fmt, rows = "id<TAB>prediction", _tab_rows(path)
    else:
        return _read_jsonl(path, need_reference=need_reference)
    return _studies(path, fmt, rows, need_reference=need_reference)


def _studies(path: Path, fmt: str, rows: Iterator[tuple], *, need_reference: bool) -> Studies:
    """Studies from (record, id, prediction, reference or None) rows, checked as JSONL is."""
    ids, preds, refs, first = [], [], [], {}
    duplicates: dict[str, list] = {}
    for record, sid, prediction, reference in rows:
        if sid in first:
            duplicates.setdefault(sid, [first[sid]]).append(record)
        first.setdefault(sid, record)
        if need_reference and reference is None:
            raise InputError("no reference", path=path, record=record, field="reference",
                             hint=_HINT_REFERENCES if fmt != "coco-caption results" else
                             "a coco-caption results file has no references: give the annotations with --references FILE")
        ids.append(sid)
        preds.append(prediction)
        refs.append(reference)
    if not ids:
        raise InputError("no records (the file is empty)", path=path)
    if duplicates:
        where = "; ".join(f"{k} ({', '.join(map(str, v))})" for k, v in list(duplicates.items())[:10])
        raise InputError(f"{len(duplicates)} duplicate id(s): {where}", path=path)
    return Studies(ids=ids, predictions=preds, references=refs,
                   sources={"predictions": {"path": str(path), "sha256": sha256_file(path), "format": fmt}})


def _identifier(value, path: Path, record, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"expected a string or integer, got {type(value).__name__}", path=path, record=record, field=name)
    return str(value)


def _is_coco(path: Path) -> bool:
    """A `.json` holding one JSON list or coco annotations (otherwise JSONL under a .json name,
    as irralctl read any predictions file before it knew coco-caption's files)."""
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, list) or (isinstance(data, dict) and "annotations" in data)


def _coco_items(path: Path, role: str) -> Iterator[tuple]:
    """coco-caption's results list `[{"image_id", "caption"}]` (predictions), or its annotations
    `{"annotations": [{"image_id", "caption"}, ...]}` (references; a bare list is accepted too)."""
    data = read_json(path)
    if isinstance(data, dict):
        if role == "predictions" and "annotations" in data:
            raise InputError("a coco-caption annotations file (references), not a results list [{image_id, caption}]",
                             path=path, hint="give it with --references")
        if "annotations" not in data:
            raise InputError("expected coco-caption's {\"annotations\": [{\"image_id\", \"caption\"}, ...]}"
                             if role == "references" else "expected coco-caption's results list [{\"image_id\", \"caption\"}, ...]",
                             path=path)
        data = data["annotations"]
    if not isinstance(data, list):
        raise InputError(f"expected a list of {{image_id, caption}} objects, got {type(data).__name__}", path=path)
    for k, item in enumerate(data, start=1):
        record = f"item {k}"
        if not isinstance(item, dict):
            raise InputError("expected an object {image_id, caption}", path=path, record=record)
        for name in ("image_id", "caption"):
            if name not in item:
                raise InputError("missing field", path=path, record=record, field=name)
        if not isinstance(item["caption"], str):
            raise InputError(f"expected a string, got {type(item['caption']).__name__}", path=path, record=record, field="caption")
        yield record, _identifier(item["image_id"], path, record, "image_id"), item["caption"], None


def _decoded_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break), strictly UTF-8 (`utils.io.decoded_lines`)."""
    for lineno, line in decoded_lines(path):
        yield lineno, line.rstrip("\r\n")


def _table_rows(path: Path, text: str, delimiter: str, *, optional: str | None = None) -> Iterator[tuple]:
    """CSV/TSV rows `id, <text>[, <optional>]` without a header, or columns picked by name under a
    header naming `id` and `<text>` (other columns ignored: generate's --format csv output)."""
    lines = _decoded_lines(path)
    at: list[int] = []

    def source() -> Iterator[str]:
        for lineno, line in lines:
            at.append(lineno)
            yield line + "\n"

    reader = csv.reader(source(), delimiter=delimiter, strict=True)
    kind = "CSV" if delimiter == "," else "TSV"
    columns: dict[str, int] | None = None
    width = None  # the header's number of columns; None without a header
    try:
        for cells in reader:
            lineno = at[-1]
            if not cells or cells == [""]:
                continue
            if columns is None:
                names = [c.strip().lower() for c in cells]
                if "id" in names and text in names:
                    columns = {n: names.index(n) for n in ("id", text, optional) if n and n in names}
                    width = len(names)
                    continue
                columns = {"id": 0, text: 1}
            if width is not None and len(cells) != width:
                raise InputError(f"{len(cells)} cells, the header has {width}", path=path, record=lineno)
            if width is None and len(cells) not in ((2, 3) if optional else (2,)):
                layout = f"id, {text}" + (f"[, {optional}]" if optional else "")
                raise InputError(f"{len(cells)} cells, expected {layout}", path=path, record=lineno,
                                 hint=f"quote cells that hold a {'comma' if delimiter == ',' else 'tab'}, or name the "
                                      f"columns in a header ({layout.replace('[', '').replace(']', '')})")
            if width is not None:
                extra = cells[columns[optional]] if optional in columns else None
            else:
                extra = cells[2] if len(cells) == 3 else None
            yield lineno, cells[columns["id"]], cells[columns[text]], extra
    except csv.Error as e:
        raise InputError(f"not valid {kind} ({e})", path=path, record=at[-1] if at else 1) from None


_TXT_UNESCAPE = re.compile(r"\\\\|\\t|\\n|\\r")
_TXT_CHARS = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _txt_field(text: str) -> str:
    """A field of generate's --format txt, unescaped (backslash, tab and line breaks)."""
    return _TXT_UNESCAPE.sub(lambda m: _TXT_CHARS[m.group(0)], text)


def _tab_rows(path: Path) -> Iterator[tuple]:
    """generate's --format txt: `id<TAB>prediction`, or `id<TAB>rank<TAB>prediction` with --n-best
    (rank 1 kept)."""
    for lineno, line in _decoded_lines(path):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) == 3 and cells[1].isdigit():
            if cells[1] != "1":
                continue
            cells = [cells[0], cells[2]]
        if len(cells) != 2:
            raise InputError(f"{len(cells)} tab-separated cells, expected id<TAB>prediction", path=path, record=lineno,
                             hint="for one prediction per line, give the references as a text file too: --references refs.txt")
        yield lineno, _txt_field(cells[0]), _txt_field(cells[1]), None


def _text_lines(path: Path) -> Iterator[tuple]:
    """One text per line, the line number its id (empty lines are empty texts: alignment counts)."""
    for lineno, line in _decoded_lines(path):
        yield lineno, str(lineno), line, None


def _read_jsonl(path: Path, *, need_reference: bool) -> Studies:
    """Predictions JSONL: {id, prediction, reference?, prediction_labels?, reference_labels?} per line."""
    ids, preds, refs, p_labels, r_labels = [], [], [], [], []
    first_line: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    for lineno, obj in iter_jsonl(path):
        sid = obj.get("id")
        if sid is None:
            raise InputError("missing field", path=path, record=lineno, field="id")
        if isinstance(sid, bool) or not isinstance(sid, (str, int)):
            raise InputError(f"expected a string or integer, got {type(sid).__name__}", path=path, record=lineno, field="id")
        sid = str(sid)
        if sid in first_line:
            duplicates.setdefault(sid, [first_line[sid]]).append(lineno)
        first_line.setdefault(sid, lineno)
        wanted = ("prediction", "reference") if need_reference else ("prediction",)
        for name in wanted:
            if name not in obj:
                raise InputError("missing field", path=path, record=lineno, field=name,
                                 hint=_HINT_REFERENCES if name == "reference" else None)
            if not isinstance(obj[name], str):
                raise InputError(f"expected a string, got {type(obj[name]).__name__}", path=path, record=lineno, field=name)
        ids.append(sid)
        preds.append(obj["prediction"])
        refs.append(obj.get("reference") if isinstance(obj.get("reference"), str) else None)
        for name, store in (("prediction_labels", p_labels), ("reference_labels", r_labels)):
            store.append(validate_labels(obj[name], path=path, record=lineno, field=name) if name in obj else None)
    if not ids:
        raise InputError("no records (the file is empty)", path=path)
    if duplicates:
        where = "; ".join(f"{k} (lines {', '.join(map(str, v))})" for k, v in list(duplicates.items())[:10])
        raise InputError(f"{len(duplicates)} duplicate id(s): {where}", path=path)
    studies = Studies(ids=ids, predictions=preds, references=refs, sources={"predictions": {"path": str(path), "sha256": sha256_file(path), "format": "jsonl"}})
    studies.pred_labels = _all_or_none(p_labels, "prediction_labels", path)
    studies.ref_labels = _all_or_none(r_labels, "reference_labels", path)
    if studies.ref_labels is not None:
        studies.ref_labels_source = "input file (reference_labels)"
    return studies


def _all_or_none(rows: list, name: str, path: Path):
    present = [r is not None for r in rows]
    if all(present):
        return rows
    if any(present):
        missing = [i + 1 for i, p in enumerate(present) if not p]
        raise InputError(f"given on some records but missing on {len(missing)} (record(s) {_list_ids(missing)}); give it on all or none", path=path, field=name)
    return None


def parse_dataset_spec(spec: str) -> tuple[Path, str]:
    """`DIR[:split]` -> (DIR, split); the split defaults to `test`."""
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if _SPLIT_NAME.match(tail) and not Path(spec).exists():
            return Path(head), tail
    return Path(spec), "test"


@dataclass
class Dataset:
    root: Path
    split: str
    name: str | None
    records: dict[str, dict]
    info: dict


def read_dataset(spec: str) -> Dataset:
    root, split = parse_dataset_spec(spec)
    if not root.is_dir():
        raise InputError("not a prepared dataset directory", path=root)
    info = read_json(root / "dataset.json") if (root / "dataset.json").is_file() else {}
    split_file = root / f"{split}.jsonl"
    if not split_file.is_file():
        have = sorted(p.stem for p in root.glob("*.jsonl"))
        raise InputError(f"no split '{split}' (have: {', '.join(have) or 'none'})", path=split_file)
    records: dict[str, dict] = {}
    for lineno, obj in iter_jsonl(split_file):
        sid = obj.get("id")
        if sid is None:
            raise InputError("missing field", path=split_file, record=lineno, field="id")
        if str(sid) in records:
            raise InputError(f"duplicate id {sid!r}", path=split_file, record=lineno)
        obj["_line"] = lineno
        records[str(sid)] = obj
    return Dataset(root=root, split=split, name=info.get("name"), records=records,
                   info={"path": str(root), "split": split, "name": info.get("name"),
                         "fingerprint": info.get("fingerprint"), "cleaner": info.get("cleaner"),
                         "split_sha256": sha256_file(split_file)})


def attach_dataset(studies: Studies, ds: Dataset, *, legacy: bool, allow_subset: bool) -> None:
    """Replace the references with the dataset's, matched by id; labels.chexpert as reference labels."""
    missing = [i for i in studies.ids if i not in ds.records]
    if missing:
        raise InputError(f"{len(missing)} prediction id(s) not in split '{ds.split}': {_list_ids(missing)}", path=ds.root / f"{ds.split}.jsonl")
    if not allow_subset:
        have = set(studies.ids)
        unscored = [k for k in ds.records if k not in have]
        if unscored:
            raise InputError(
                f"{len(unscored)} stud(y/ies) of split '{ds.split}' have no prediction: {_list_ids(unscored)}",
                path=studies.sources["predictions"]["path"], hint="pass --allow-subset to score only the predicted studies")
    field_name = "legacy_target" if legacy else "target"
    split_file = ds.root / f"{ds.split}.jsonl"
    refs = []
    for sid in studies.ids:
        rec = ds.records[sid]
        text = rec.get(field_name)
        if not isinstance(text, str):
            raise InputError("missing or not a string", path=split_file, record=rec["_line"], field=field_name)
        refs.append(text)
    studies.references = refs
    studies.sources["references"] = {**ds.info, "field": field_name}
    if studies.ref_labels is None:
        labels = [(ds.records[s].get("labels") or {}).get("chexpert") for s in studies.ids]
        if all(v is not None for v in labels):
            studies.ref_labels = [validate_labels(v, path=split_file, record=ds.records[s]["_line"], field="labels.chexpert")
                                  for s, v in zip(studies.ids, labels)]
            studies.ref_labels_source = f"dataset labels.chexpert ({(ds.info.get('name') or 'dataset')}:{ds.split})"


def attach_references(studies: Studies, spec: str, *, legacy: bool, allow_subset: bool) -> Dataset | None:
    """Replace the references with those of `--references`: a prepared dataset (returned, for
    --legacy-eval) or a file of references (module docstring), matched by id, or by line for text."""
    path = Path(spec)
    if not path.is_file() and not path.is_dir() and path.suffix.lower() in (".txt", ".json", ".jsonl", *TABLE_SUFFIXES):
        raise InputError("file of references not found", path=path)
    if not path.is_file():
        dataset = read_dataset(spec)
        attach_dataset(studies, dataset, legacy=legacy, allow_subset=allow_subset)
        return dataset
    suffix = path.suffix.lower()
    if suffix == ".txt":
        fmt, rows = "text, one per line", _text_lines(path)
        if studies.sources["predictions"].get("format") != fmt:
            raise InputError("a text file of references is matched line by line with a text file of predictions", path=path,
                             hint="give the predictions as a .txt too, or the references with ids (CSV/TSV, JSONL, coco annotations)")
    elif suffix == ".json":
        fmt, rows = "coco-caption annotations", _coco_items(path, "references")
    elif suffix in TABLE_SUFFIXES:
        fmt, rows = suffix[1:], _table_rows(path, "reference", TABLE_SUFFIXES[suffix])
    else:
        fmt, rows = "jsonl", _jsonl_references(path)
    found: dict[str, str] = {}
    where: dict[str, list] = {}
    for record, sid, text, _ in rows:
        where.setdefault(sid, []).append(record)
        found.setdefault(sid, text)
    several = {k: v for k, v in where.items() if len(v) > 1}
    if several:
        listed = "; ".join(f"{k} ({', '.join(map(str, v))})" for k, v in list(several.items())[:10])
        raise InputError(f"{len(several)} id(s) with several references: {listed}", path=path,
                         hint="irralctl scores one reference per study (as R2Gen and CMN do): keep one per id")
    if fmt == "text, one per line" and len(found) != len(studies.ids):
        raise InputError(f"{len(found)} reference line(s) for {len(studies.ids)} prediction line(s): line-aligned files "
                         "need as many lines", path=path)
    missing = [k for k in studies.ids if k not in found]
    if missing:
        raise InputError(f"{len(missing)} prediction id(s) have no reference: {_list_ids(missing)}", path=path)
    if not allow_subset and len(found) > len(studies.ids):
        have = set(studies.ids)
        raise InputError(f"{len(found) - len(have)} reference(s) have no prediction: {_list_ids(k for k in found if k not in have)}",
                         path=studies.sources["predictions"]["path"], hint="pass --allow-subset to score only the predicted studies")
    studies.references = [found[k] for k in studies.ids]
    studies.sources["references"] = {"path": str(path), "sha256": sha256_file(path), "format": fmt}
    return None


def _jsonl_references(path: Path) -> Iterator[tuple]:
    """`{"id", "reference"}` per line (a predictions file with references serves as well)."""
    for lineno, obj in iter_jsonl(path):
        for name in ("id", "reference"):
            if name not in obj:
                raise InputError("missing field", path=path, record=lineno, field=name)
        if not isinstance(obj["reference"], str):
            raise InputError(f"expected a string, got {type(obj['reference']).__name__}", path=path, record=lineno,
                             field="reference")
        yield lineno, _identifier(obj["id"], path, lineno, "id"), obj["reference"], None


def load_vocabulary(path: str | Path) -> set[str]:
    """R2Gen vocabulary: a legacy tokeniser JSON (`token2idx`), a JSON object/list of tokens, or one token per line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("vocabulary file not found", path=path)
    if path.suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict) and isinstance(data.get("token2idx"), dict):
            return set(data["token2idx"])
        if isinstance(data, (dict, list)) and all(isinstance(t, str) for t in data):
            return set(data)
        raise InputError("expected {'token2idx': {...}}, an object keyed by token or a list of tokens", path=path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"not a vocabulary: not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    tokens = set()
    for k, line in enumerate(lines, start=1):
        token = line.strip()
        if len(token.split()) > 1:
            raise InputError("not a vocabulary: expected one token per line", path=path, record=k)
        if token:
            tokens.add(token)
    if not tokens:
        raise InputError("not a vocabulary: no token in the file", path=path)
    return tokens


def legacy_reference(text: str, vocab: set[str], max_seq_length: int) -> str:
    """R2Gen's evaluated ground truth: first max_seq_length - 1 tokens, out-of-vocabulary words -> <unk>."""
    tokens = text.split()[: max(max_seq_length - 1, 0)]
    return " ".join(t if t in vocab else "<unk>" for t in tokens)


def legacy_references(studies: Studies, *, vocab_path: str | Path | None, dataset: Dataset | None,
                      max_seq_length: int | None, kind: str | None) -> dict:
    """Rewrite `studies.references` as R2Gen evaluated them; returns the protocol details."""
    if vocab_path is None:
        if dataset is None:
            raise ConfigError("--legacy-eval needs the legacy vocabulary: pass --vocab FILE or --references DATASET")
        vocab_path = dataset.root / "tokenizers" / "legacy.json"
    vocab = load_vocabulary(vocab_path)
    kind = kind or (dataset.name if dataset is not None and dataset.name in LEGACY_MAX_SEQ_LENGTH else "iu_xray")
    if kind not in LEGACY_MAX_SEQ_LENGTH:
        raise ConfigError(f"unknown dataset kind {kind!r} for --legacy-eval (iu_xray or mimic_cxr)")
    max_seq_length = LEGACY_MAX_SEQ_LENGTH[kind] if max_seq_length is None else max_seq_length
    cleaner_name = None
    if dataset is None:
        # References from the predictions file are cleaned here; a dataset's legacy_target already is.
        cleaner_name, _, clean = get_cleaner("legacy", kind)
        texts = [clean(t) for t in studies.references]
    else:
        texts = studies.references
    studies.references = [legacy_reference(t, vocab, max_seq_length) for t in texts]
    return {"vocabulary": str(vocab_path), "vocabulary_size": len(vocab), "max_seq_length": max_seq_length,
            "kept_tokens": max_seq_length - 1, "dataset_kind": kind, "cleaner": cleaner_name or "dataset legacy_target"}
