"""Reading Hugging Face `datasets` data from local files, without decoding or downloading anything.

Accepted sources:

* a folder written by `DatasetDict.save_to_disk` (`dataset_dict.json` and one folder per split) or
  by `Dataset.save_to_disk` (`state.json`): opened with `datasets.load_from_disk`, memory-mapped;
* a `.parquet` file, or a folder holding `.parquet` files (a Hub snapshot such as
  `data/train-00000-of-00002.parquet`): read with pyarrow a batch at a time.

Rows come back as plain Python values of the Arrow storage: an `Image` is its
`{"bytes": ..., "path": ...}` struct, never a decoded picture, so images are decoded once, by the
image store. A part's split is the DatasetDict's key, or a parquet file's name (`train-*`,
`validation-*`, `test-*`, or a folder of that name), mapped to train / val / test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import InputError

# Split names in the wild -> irralctl's.
SPLIT_NAMES = {"train": "train", "training": "train", "validation": "val", "valid": "val", "val": "val",
               "dev": "val", "test": "test", "testing": "test"}
_BATCH = 64
_SPLIT_IN_NAME = re.compile(r"^(train|training|validation|valid|val|dev|test|testing)(?:[-_.]|$)", re.I)


def split_name(value: object) -> str | None:
    """train / val / test for a split name as datasets spell them (validation, dev, ...), else None."""
    return SPLIT_NAMES.get(value.strip().lower()) if isinstance(value, str) else None


@dataclass
class Part:
    """One table of the source: a DatasetDict split, a Dataset, or a parquet file."""

    name: str                     # for messages: the split key or the file
    split: str | None             # train | val | test when the source says, else None
    columns: list[str]
    base: Path                    # what relative image paths are relative to
    batches: Callable[[], Iterator[list[dict]]]


def offline_datasets():
    """The `datasets` module, told never to reach the network and to draw no progress bars."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _dataset_part(name: str, split: str | None, ds, base: Path) -> Part:
    def batches() -> Iterator[list[dict]]:
        # Arrow format: the stored values (Image structs), no decoding.
        for table in ds.with_format("arrow").iter(batch_size=_BATCH):
            yield table.to_pylist()

    return Part(name=name, split=split, columns=list(ds.column_names), base=base, batches=batches)


def _parquet_part(path: Path, root: Path) -> Part:
    import pyarrow.parquet as pq

    try:
        columns = list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(f"unreadable parquet file ({type(e).__name__}: {e})", path=path) from None
    split = None
    for piece in [path.name, *(p.name for p in path.relative_to(root).parents if p.name)]:
        m = _SPLIT_IN_NAME.match(piece)
        if m:
            split = split_name(m.group(1))
            break

    def batches() -> Iterator[list[dict]]:
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH):
                yield batch.to_pylist()
        except OSError as e:
            raise InputError(f"unreadable parquet file ({e})", path=path) from None

    return Part(name=str(path), split=split, columns=columns, base=path.parent, batches=batches)


def open_source(path: str | Path) -> list[Part]:
    """The parts of a local `datasets` folder or parquet source (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError("not found", path=path,
                         hint="give a folder written by save_to_disk, a .parquet file or a folder of them")
    if path.is_file():
        if path.suffix.lower() != ".parquet":
            raise InputError("not a parquet file", path=path,
                             hint="give a folder written by datasets' save_to_disk, a .parquet file or a folder of "
                                  "them")
        return [_parquet_part(path, path.parent)]
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        datasets = offline_datasets()
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises many types for a damaged folder
            raise InputError(f"cannot open this datasets folder ({type(e).__name__}: {e})", path=path) from None
        if isinstance(loaded, datasets.DatasetDict):
            return [_dataset_part(key, split_name(key), ds, path) for key, ds in loaded.items()]
        return [_dataset_part(path.name, None, loaded, path)]
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise InputError("no dataset_dict.json, state.json or .parquet file in this folder", path=path,
                         hint="give a folder written by datasets' save_to_disk, a .parquet file or a folder of them")
    return [_parquet_part(f, path) for f in files]


def image_values(value: object, where: str, column: str) -> list[tuple[bytes | None, str | None]]:
    """(bytes, path) of each image in a cell: one image or a list; an Image struct, bytes or a path."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    out = []
    for k, item in enumerate(items):
        if isinstance(item, dict) and ("bytes" in item or "path" in item):
            data, path = item.get("bytes"), item.get("path")
        elif isinstance(item, (bytes, bytearray)):
            data, path = bytes(item), None
        elif isinstance(item, str):
            data, path = None, item
        else:
            raise InputError(f"image {k} is {type(item).__name__}, not an image (a datasets Image, bytes or a path)",
                             record=where, field=column)
        if not data and not path:
            raise InputError(f"image {k} has neither bytes nor a path", record=where, field=column)
        out.append((data or None, path or None))
    return out
