"""Reading a prepared dataset directory (what `train`, `generate`, `score`, `label` and `heatmap` use).

The format is documented in docs/formats.md. In short: `dataset.json`, one JSONL manifest per
split, `tokenizers/`, `images/` (the image store) and `problems.csv`. `irralctl.data.pipeline`
writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from irralctl.constants import SPLITS
from irralctl.data.store import ImageStore
from irralctl.data.tokenizers import ReportTokenizer, load_tokenizer
from irralctl.errors import InputError
from irralctl.utils.io import iter_jsonl, read_json, sha256_file

FORMAT_VERSION = 1
TOKENIZER_FILES = {"bpe": "tokenizers/bpe.json", "legacy": "tokenizers/legacy.json"}


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

    def check(self, *, text_fields: Iterable[str] = ("target",), splits: Iterable[str] = SPLITS,
              images: bool | None = None) -> None:
        """Validate the dataset before a command relies on it; the first inconsistency is an
        `InputError` naming the file, the record and the field.

        Cheap checks only, linear in the manifests: the fingerprint over manifests and tokenisers
        (an edited or truncated manifest), the tokenisers load, the image store's index agrees
        with its data file, and every record of `splits` has an id, its text fields, and store
        rows that exist. `images`: whether the caller needs pixels (default: if the dataset has them).
        """
        for split in SPLITS:
            if not (self.dir / f"{split}.jsonl").is_file():
                raise InputError(f"split manifest {split}.jsonl missing", path=self.dir,
                                 hint="the dataset directory is incomplete; prepare it again")
        for kind in TOKENIZER_FILES:
            self.tokenizer(kind)
        expected = self.info.get("fingerprint")
        if expected and dataset_fingerprint(self.dir) != expected:
            raise InputError("a split manifest or tokeniser differs from the one prepared (fingerprint mismatch): "
                             "edited, truncated or copied incompletely", path=self.dir / "dataset.json",
                             field="fingerprint", hint="prepare the dataset again")
        need_images = self.has_images if images is None else images
        n_rows = len(self.images) if need_images else None
        counts = self.info.get("counts") or {}
        fields = tuple(text_fields)
        for split in splits:
            path = self.dir / f"{split}.jsonl"
            if not path.is_file():
                raise InputError("split manifest missing", path=path, hint="the dataset directory is incomplete; "
                                 "prepare it again")
            n = 0
            for line, record in iter_jsonl(path):
                n += 1
                if not isinstance(record.get("id"), (str, int)):
                    raise InputError("missing or not a string", path=path, record=line, field="id")
                for field in fields:
                    if not isinstance(record.get(field), str):
                        raise InputError("missing or not text", path=path, record=line, field=field)
                views = record.get("images")
                if not isinstance(views, list):
                    raise InputError("missing or not a list", path=path, record=line, field="images")
                if n_rows is None:
                    continue
                for k, view in enumerate(views):
                    row = view.get("row") if isinstance(view, dict) else None
                    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < n_rows:
                        raise InputError(f"image-store row {row!r} does not exist (the store has {n_rows} rows)",
                                         path=path, record=line, field=f"images[{k}].row")
            if isinstance(counts.get(split), int) and counts[split] != n:
                raise InputError(f"{n} record(s), but dataset.json says {counts[split]}", path=path,
                                 hint="the dataset directory is damaged; prepare it again")
