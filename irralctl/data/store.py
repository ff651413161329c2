"""The image store: every view decoded once, 8-bit greyscale, concatenated in one flat file.

Layout (inside a prepared dataset's `images/` folder):

* `store.bin`: the pixels of every image, row-major uint8, one after another;
* `index.npz`: `ids` (str), `offsets` (int64, N+1) and `shapes` (int32, N x 2: height, width).

Reading an image is a slice of a memory map: no decoding, no file opening, no per-image syscalls,
so a loader reads tens of thousands of images per second per core (nanoGPT's `train.bin` idea,
with an index because radiographs differ in aspect).

While a store is being built, a tab-separated journal (`journal.tsv`) records each image after its
pixels are flushed, so an interrupted build resumes where it stopped: `store.bin` is truncated to
the last journalled byte and only the remaining images are decoded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irralctl.errors import InputError, IrralError

log = logging.getLogger(__name__)

STORE_FILE = "store.bin"
INDEX_FILE = "index.npz"
JOURNAL_FILE = "journal.tsv"


class ImageStore:
    """Read-only access to a finished store: `store[row] -> (H, W) uint8` (a view of the memmap)."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        index_path = directory / INDEX_FILE
        if not index_path.is_file():
            raise InputError("image store index missing", path=index_path,
                             hint="the dataset was prepared without images, or preparation did not finish")
        with np.load(index_path, allow_pickle=False) as index:
            self.ids: np.ndarray = index["ids"]
            self.offsets: np.ndarray = index["offsets"]
            self.shapes: np.ndarray = index["shapes"]
        size = int(self.offsets[-1])
        data_path = directory / STORE_FILE
        if not data_path.is_file() or data_path.stat().st_size != size:
            raise InputError(f"image store is truncated or missing (expected {size} bytes)", path=data_path)
        # An empty memmap is not allowed; a store with no pixels has no rows to read anyway.
        self._data = np.memmap(data_path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        self._row = {str(i): k for k, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, row: int) -> np.ndarray:
        h, w = self.shapes[row]
        start = self.offsets[row]
        return self._data[start:start + h * w].reshape(h, w)

    def row_of(self, image_id: str) -> int:
        return self._row[image_id]


@dataclass
class StoreResult:
    rows: dict[str, int]                     # image id -> row
    failed: list[tuple[str, str, str]]       # (image id, source path, reason)


def _decode_one(args: tuple[str, str, int | None]) -> tuple[str, np.ndarray | None, str]:
    # Runs in a worker process; returns the error as text so one bad file never kills a pool.
    from irralctl.data.images import load_grey

    image_id, path, shorter = args
    try:
        return image_id, np.ascontiguousarray(load_grey(path, shorter)), ""
    except IrralError as e:
        return image_id, None, e.message
    except Exception as e:  # a decoder bug on one file must not lose the whole run
        return image_id, None, f"{type(e).__name__}: {e}"


def _read_journal(directory: Path) -> tuple[list[tuple[str, str, int, int, int]], int]:
    """Entries (id, status, h, w, offset) written so far, and the byte length they cover."""
    path = directory / JOURNAL_FILE
    entries, end = [], 0
    if not path.exists():
        return entries, end
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn last line from an interruption: ignore it, it is redone
            parts = line.rstrip("\n").split("\t")
            image_id, status, h, w, offset = parts[0], parts[1], int(parts[2]), int(parts[3]), int(parts[4])
            entries.append((image_id, status, h, w, offset))
            if status == "ok":
                end = offset + h * w
    return entries, end


def build_image_store(
    items: Sequence[tuple[str, str | Path]],
    directory: str | Path,
    *,
    shorter: int | None = 256,
    workers: int = 1,
    chunk: int = 512,
    progress: Callable[[int], None] | None = None,
) -> StoreResult:
    """Decode `items` (image id, source path) into a store in `directory`, resuming if possible.

    Images are decoded by `workers` processes in bounded chunks and written in `items` order.
    Failed decodes are returned (and journalled), not raised: the caller decides whether a
    skipped image is fatal (`--strict`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids = [str(i) for i, _ in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise IrralError(f"duplicate image ids in the store input: {', '.join(dup)}")

    journal, end = _read_journal(directory)
    done = {e[0] for e in journal}
    if journal:
        log.info("resuming image store: %d of %d images already done", len(done), len(items))
        if progress:
            progress(len(done))
    data_path = directory / STORE_FILE
    with open(data_path, "ab"):
        pass
    os.truncate(data_path, end)

    todo = [(i, str(p), shorter) for i, p in items if str(i) not in done]
    workers = max(1, workers)
    with open(data_path, "ab") as data, open(directory / JOURNAL_FILE, "a", encoding="utf-8") as jf:
        offset = end
        pool = ProcessPoolExecutor(workers) if workers > 1 and len(todo) > chunk // 8 else None
        try:
            for start in range(0, len(todo), chunk):
                batch = todo[start:start + chunk]
                results = pool.map(_decode_one, batch, chunksize=8) if pool else map(_decode_one, batch)
                lines = []
                for image_id, arr, err in results:
                    if arr is None:
                        lines.append(f"{image_id}\tfail\t0\t0\t{offset}\t{_one_line(err)}\n")
                        continue
                    data.write(arr.tobytes())
                    h, w = arr.shape
                    lines.append(f"{image_id}\tok\t{h}\t{w}\t{offset}\n")
                    offset += h * w
                # Pixels reach the disk before the journal says they exist.
                data.flush()
                os.fsync(data.fileno())
                jf.write("".join(lines))
                jf.flush()
                if progress:
                    progress(len(batch))
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)

    return _finalize(directory, ids, {str(i): str(p) for i, p in items})


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("\t", " ")


def _finalize(directory: Path, order: list[str], paths: dict[str, str]) -> StoreResult:
    journal, _ = _read_journal(directory)
    by_id = {e[0]: e for e in journal}
    failed_reasons = {}
    with open(directory / JOURNAL_FILE, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 6 and parts[1] == "fail":
                failed_reasons[parts[0]] = parts[5]
    ok = [by_id[i] for i in order if i in by_id and by_id[i][1] == "ok"]
    # Rows follow the store's byte order so offsets stay increasing.
    ok.sort(key=lambda e: e[4])
    ids = np.array([e[0] for e in ok], dtype=str) if ok else np.zeros(0, dtype="<U1")
    shapes = np.array([[e[2], e[3]] for e in ok], dtype=np.int32).reshape(-1, 2)
    offsets = np.zeros(len(ok) + 1, dtype=np.int64)
    if ok:
        offsets[:-1] = [e[4] for e in ok]
        offsets[-1] = ok[-1][4] + int(ok[-1][2]) * int(ok[-1][3])
    np.savez(directory / ".index.tmp.npz", ids=ids, offsets=offsets, shapes=shapes)
    os.replace(directory / ".index.tmp.npz", directory / INDEX_FILE)
    (directory / JOURNAL_FILE).unlink()
    failed = [(i, paths[i], failed_reasons[i]) for i in order if i in failed_reasons]
    return StoreResult(rows={e[0]: k for k, e in enumerate(ok)}, failed=failed)
