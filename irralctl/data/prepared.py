"""Reading a prepared dataset directory (what `train`, `generate`, `score`, `label` and `heatmap` use).

The format is documented in docs/formats.md. In short: `dataset.json`, one JSONL manifest per
split, `tokenizers/`, `images/` (the image store) and `problems.csv`. `irralctl.data.pipeline`
writes it.
"""

from __future__ import annotations

from pathlib import Path

from irralctl.constants import SPLITS
from irralctl.data.store import ImageStore
from irralctl.data.tokenizers import ReportTokenizer, load_tokenizer
from irralctl.errors import InputError
from irralctl.utils.io import iter_jsonl, read_json

FORMAT_VERSION = 1
TOKENIZER_FILES = {"bpe": "tokenizers/bpe.json", "legacy": "tokenizers/legacy.json"}


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
