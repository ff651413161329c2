"""The prepared-dataset directory: writing it (shared by every `prepare` source) and reading it.

The format is documented in docs/formats.md. In short: `dataset.json`, one JSONL manifest per
split, `tokenizers/`, `images/` (the image store) and `problems.csv` when inputs were skipped.

Writers build the dataset in a staging folder beside the destination (`.NAME.partial`), which
also holds the resumable image store, and rename it into place only when everything is written.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from irralctl.data.store import ImageStore
from irralctl.data.tokenizers import BPETokenizer, LegacyTokenizer, ReportTokenizer, load_tokenizer
from irralctl.errors import InputError, IrralError
from irralctl.utils.config import provenance, to_jsonable
from irralctl.utils.io import atomic_write, read_json, sha256_file, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
TOKENIZER_FILES = {"bpe": "tokenizers/bpe.json", "legacy": "tokenizers/legacy.json"}


@dataclass(frozen=True)
class Problem:
    """An input that was skipped (or, with --strict, that stopped preparation)."""

    kind: str       # e.g. missing_image, unreadable_image, no_images, no_report, empty_target
    path: str
    record: str
    detail: str

    def line(self) -> str:
        where = ", ".join(x for x in (self.path, self.record) if x)
        return f"{where}: {self.kind}: {self.detail}" if where else f"{self.kind}: {self.detail}"


def describe_source(path: str | Path) -> dict[str, Any]:
    """Provenance of one raw input: archives hashed, folders counted."""
    path = Path(path)
    if path.is_dir():
        n = sum(1 for f in path.rglob("*") if f.is_file())
        return {"path": str(path.resolve()), "kind": "folder", "files": n}
    return {"path": str(path.resolve()), "kind": "file", "size": path.stat().st_size, "sha256": sha256_file(path)}


def staging_dir_for(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def open_staging(out: Path, options: dict, *, overwrite: bool) -> Path:
    """The staging folder for `out`: resumed when its options match, else started afresh."""
    if out.exists() and not overwrite:
        raise InputError("already exists", path=out, hint="choose another --out, or pass --overwrite to replace it")
    staging = staging_dir_for(out)
    marker = staging / "options.json"
    if staging.exists():
        previous = read_json(marker) if marker.exists() else None
        if previous == to_jsonable(options):
            log.info("resuming an interrupted preparation in %s", staging)
            return staging
        log.info("discarding an interrupted preparation with other options in %s", staging)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    write_json(marker, to_jsonable(options))
    return staging


def write_problems(staging: Path, problems: list[Problem]) -> None:
    if not problems:
        return
    with atomic_write(staging / "problems.csv", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kind", "path", "record", "detail"])
        for p in problems:
            w.writerow([p.kind, p.path, p.record, p.detail])


def fit_tokenizers(train_records: list[dict], *, bpe_vocab_size: int, legacy_threshold: int) -> dict[str, ReportTokenizer]:
    targets = [r["target"] for r in train_records]
    if not targets:
        raise IrralError("the train split is empty: no tokeniser can be fitted")
    return {
        "bpe": BPETokenizer.fit(targets, bpe_vocab_size),
        "legacy": LegacyTokenizer.fit((r["legacy_target"] for r in train_records), legacy_threshold),
    }


def finish_dataset(
    staging: Path,
    out: Path,
    *,
    name: str,
    splits: dict[str, list[dict]],
    options: Any,
    sources: list[dict],
    cleaner: dict,
    legacy_cleaner: dict,
    images: dict | None,
    labeler: dict | None,
    counts: dict,
    problems: list[Problem],
    bpe_vocab_size: int,
    legacy_threshold: int,
    example_layout: str = "study",
    extra: dict | None = None,
) -> Path:
    """Write manifests, tokenisers and dataset.json into `staging`, then move it onto `out`."""
    (staging / "tokenizers").mkdir(exist_ok=True)
    toks = fit_tokenizers(splits["train"], bpe_vocab_size=bpe_vocab_size, legacy_threshold=legacy_threshold)
    for kind, tok in toks.items():
        tok.save(staging / TOKENIZER_FILES[kind])
    for split in SPLITS:
        rows = splits.get(split, [])
        with atomic_write(staging / f"{split}.jsonl") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False))
                f.write("\n")
    write_problems(staging, problems)
    fingerprint = dataset_fingerprint(staging)
    info = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "sources": sources,
        "options": to_jsonable(options),
        "cleaner": cleaner,
        "legacy_cleaner": legacy_cleaner,
        "tokenizers": {
            "bpe": {"file": TOKENIZER_FILES["bpe"], "vocab_size": toks["bpe"].vocab_size},
            "legacy": {"file": TOKENIZER_FILES["legacy"], "vocab_size": toks["legacy"].vocab_size,
                       "threshold": legacy_threshold},
        },
        "images": images,
        "labeler": labeler,
        "example_layout": example_layout,
        "counts": {**{s: len(splits.get(s, [])) for s in SPLITS}, **counts, "problems": len(problems)},
        "fingerprint": fingerprint,
        **(extra or {}),
        **provenance(),
    }
    write_json(staging / "dataset.json", info)
    (staging / "options.json").unlink(missing_ok=True)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)
    return out


def dataset_fingerprint(directory: Path) -> str:
    """sha256 over the split manifests and tokenisers: what a run trained on, in one string."""
    h = hashlib.sha256()
    for rel in [f"{s}.jsonl" for s in SPLITS] + list(TOKENIZER_FILES.values()):
        p = directory / rel
        if p.exists():
            h.update(rel.encode())
            h.update(sha256_file(p).encode())
    return h.hexdigest()


class PreparedDataset:
    """Read access to a prepared dataset directory (what `train`, `generate`, `score` use)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        info_path = self.dir / "dataset.json"
        if not self.dir.is_dir():
            raise InputError("dataset directory not found", path=self.dir)
        if not info_path.is_file():
            raise InputError(
                "not a prepared dataset (no dataset.json)", path=self.dir,
                hint="run `irralctl prepare iu-xray|mimic|phantoms ... --out DIR` first and point at DIR",
            )
        self.info: dict = read_json(info_path)
        if self.info.get("format_version") != FORMAT_VERSION:
            raise InputError(f"unsupported format_version {self.info.get('format_version')!r} "
                             f"(this irralctl reads {FORMAT_VERSION})", path=info_path)
        self._images: ImageStore | None = None

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def has_images(self) -> bool:
        return self.info.get("images") is not None

    def records(self, split: str) -> list[dict]:
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        path = self.dir / f"{split}.jsonl"
        if not path.is_file():
            raise InputError("split manifest missing", path=path, hint="the dataset directory is incomplete; prepare it again")
        from irralctl.utils.io import iter_jsonl

        return [obj for _, obj in iter_jsonl(path)]

    def tokenizer(self, kind: str = "bpe") -> ReportTokenizer:
        if kind not in TOKENIZER_FILES:
            raise InputError(f"unknown tokenizer {kind!r}; choose bpe or legacy")
        return load_tokenizer(self.dir / TOKENIZER_FILES[kind])

    def tokenizer_json(self, kind: str = "bpe") -> str:
        return (self.dir / TOKENIZER_FILES[kind]).read_text(encoding="utf-8")

    @property
    def images(self) -> ImageStore:
        if not self.has_images:
            raise InputError("this dataset was prepared without images (text-only)", path=self.dir,
                             hint="prepare it again with --images")
        if self._images is None:
            self._images = ImageStore(self.dir / "images")
        return self._images


def iter_texts(records: Iterable[dict], field: str = "target") -> list[str]:
    return [r[field] for r in records]


ProgressFn = Callable[[int], None]
