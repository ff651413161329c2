"""Reading what `irralctl score` scores: a predictions file, and references from it or a dataset.

Predictions are JSONL, one object per study: `id` (string or integer), `prediction` (string),
`reference` (string; not needed with a prepared dataset), and optionally `prediction_labels` /
`reference_labels` (14 CheXpert values). Every problem stops with the file, the line and the field.
With a prepared dataset (docs/formats.md) the references are the split's `target` texts, or
`legacy_target` truncated and vocabulary-mapped as R2Gen scores (`legacy_references`), and its
`labels.chexpert` can serve as reference labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.data.cleaning import get_cleaner
from irralctl.errors import ConfigError, InputError
from irralctl.metrics.clinical import validate_labels
from irralctl.utils.io import iter_jsonl, read_json, sha256_file

_SPLIT_NAME = re.compile(r"^[A-Za-z][\w-]*$")
# R2Gen's max_seq_length (IU 60, MIMIC 100) counts the BOS token it puts first, so a reference
# keeps max_len - 1 words after decoding.
LEGACY_MAX_LEN = {"iu_xray": 60, "mimic_cxr": 100}


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


def read_predictions(path: str | Path, *, need_reference: bool) -> Studies:
    """Read and check a predictions file (see the module docstring)."""
    path = Path(path)
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
                                 hint="give references with --references DATASET[:split]" if name == "reference" else None)
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
    studies = Studies(ids=ids, predictions=preds, references=refs, sources={"predictions": {"path": str(path), "sha256": sha256_file(path)}})
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


def legacy_reference(text: str, vocab: set[str], max_len: int) -> str:
    """R2Gen's evaluated ground truth: first max_len - 1 tokens, out-of-vocabulary words -> <unk>."""
    tokens = text.split()[: max(max_len - 1, 0)]
    return " ".join(t if t in vocab else "<unk>" for t in tokens)


def legacy_references(studies: Studies, *, vocab_path: str | Path | None, dataset: Dataset | None,
                      max_len: int | None, kind: str | None) -> dict:
    """Rewrite `studies.references` as R2Gen evaluated them; returns the protocol details."""
    if vocab_path is None:
        if dataset is None:
            raise ConfigError("--legacy-eval needs the legacy vocabulary: pass --vocab FILE or --references DATASET")
        vocab_path = dataset.root / "tokenizers" / "legacy.json"
    vocab = load_vocabulary(vocab_path)
    kind = kind or (dataset.name if dataset is not None and dataset.name in LEGACY_MAX_LEN else "iu_xray")
    if kind not in LEGACY_MAX_LEN:
        raise ConfigError(f"unknown dataset kind {kind!r} for --legacy-eval (iu_xray or mimic_cxr)")
    max_len = LEGACY_MAX_LEN[kind] if max_len is None else max_len
    cleaner_name = None
    if dataset is None:
        # References from the predictions file are cleaned here; a dataset's legacy_target already is.
        cleaner_name, _, clean = get_cleaner("legacy", kind)
        texts = [clean(t) for t in studies.references]
    else:
        texts = studies.references
    studies.references = [legacy_reference(t, vocab, max_len) for t in texts]
    return {"vocabulary": str(vocab_path), "vocabulary_size": len(vocab), "max_seq_length": max_len,
            "kept_tokens": max_len - 1, "dataset_kind": kind, "cleaner": cleaner_name or "dataset legacy_target"}
