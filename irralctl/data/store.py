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

import itertools
import logging
import os
import signal
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
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
        try:
            with np.load(index_path, allow_pickle=False) as index:
                self.ids: np.ndarray = index["ids"]
                self.offsets: np.ndarray = index["offsets"]
                self.shapes: np.ndarray = index["shapes"]
        except Exception as e:  # numpy raises zip, value and key errors for a damaged index
            raise InputError(f"damaged image-store index ({type(e).__name__}: {e})", path=index_path,
                             hint="prepare the dataset again") from None
        n = len(self.ids)
        consistent = (self.offsets.shape == (n + 1,) and self.shapes.shape == (n, 2) and int(self.offsets[0]) == 0
                      and np.array_equal(np.diff(self.offsets), self.shapes[:, 0].astype(np.int64) * self.shapes[:, 1]))
        if not consistent:
            raise InputError("damaged image-store index: its offsets and shapes disagree", path=index_path,
                             hint="prepare the dataset again")
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


def _decode_one(item: tuple[str, str, int | None]) -> tuple[str, np.ndarray | None, str]:
    # Returns the error as text so one bad file never kills a pool or a run.
    from irralctl.data.images import load_grey

    image_id, path, shorter = item
    try:
        return image_id, np.ascontiguousarray(load_grey(path, shorter)), ""
    except IrralError as e:
        return image_id, None, e.message
    except Exception as e:  # a decoder bug on one file must not lose the whole run
        return image_id, None, f"{type(e).__name__}: {e}"


def _decode_group(group: list[tuple[str, str, int | None]]) -> list[tuple[str, np.ndarray | None, str]]:
    # One task = several images, so the per-task IPC cost is small next to the decoding.
    return [_decode_one(item) for item in group]


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the parent should react (and stop cleanly).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decoded_groups(
    todo: list[tuple[str, str, int | None]], workers: int, group: int
) -> Iterator[list[tuple[str, np.ndarray | None, str]]]:
    """Decode `todo` in groups, yielding each group's results in input order.

    With several workers at most `2 * workers` groups are in flight: memory stays bounded
    however many images there are, and the pool never idles at a batch boundary (a sliding
    window, unlike `map` over fixed batches, which waits for the slowest image of each batch).
    """
    groups = [todo[k:k + group] for k in range(0, len(todo), group)]
    if workers <= 1 or len(groups) <= 1:
        for g in groups:
            yield _decode_group(g)
        return
    pool = ProcessPoolExecutor(min(workers, len(groups)), initializer=_ignore_sigint)
    try:
        pending: deque = deque()
        queue = iter(groups)
        for g in itertools.islice(queue, 2 * workers):
            pending.append(pool.submit(_decode_group, g))
        while pending:
            results = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(_decode_group, nxt))
            yield results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_journal(directory: Path) -> tuple[list[tuple[str, str, int, int, int, str]], int]:
    """Entries (id, status, h, w, offset, failure reason) written so far, and the byte length
    they cover. One pass; the caller indexes what it needs."""
    path = directory / JOURNAL_FILE
    entries, end = [], 0
    if not path.exists():
        return entries, end
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn last line from an interruption: ignore it, it is redone
            parts = line[:-1].split("\t")
            h, w, offset = int(parts[2]), int(parts[3]), int(parts[4])
            entries.append((parts[0], parts[1], h, w, offset, parts[5] if len(parts) > 5 else ""))
            if parts[1] == "ok":
                end = offset + h * w
    return entries, end


def decoded_count(directory: Path) -> int:
    """Images decoded so far into a (possibly unfinished) store: what a rerun would not redo."""
    directory = Path(directory)
    if (directory / JOURNAL_FILE).exists():
        return sum(1 for e in _read_journal(directory)[0] if e[1] == "ok")
    if (directory / INDEX_FILE).is_file():
        with np.load(directory / INDEX_FILE, allow_pickle=False) as index:
            return len(index["ids"])
    return 0


def _trim_torn_line(path: Path) -> None:
    """Cut a journal after its last complete line, so appended lines never join a torn one."""
    if not path.exists():
        return
    size = path.stat().st_size
    with open(path, "rb+") as f:
        back = min(size, 1 << 16)  # far longer than any journal line
        f.seek(size - back)
        tail = f.read(back)
        cut = tail.rfind(b"\n")
        keep = size - back + cut + 1 if cut >= 0 else (0 if back == size else size)
        if keep != size:
            f.truncate(keep)


def _journal_from_index(directory: Path) -> None:
    """Turn a finished store back into a journal, so a rerun after a later failure (say a
    --strict stop, or an error while fitting tokenisers) reuses every decoded image."""
    index_path, data_path = directory / INDEX_FILE, directory / STORE_FILE
    if (directory / JOURNAL_FILE).exists() or not index_path.is_file() or not data_path.is_file():
        return
    with np.load(index_path, allow_pickle=False) as index:
        ids, offsets, shapes = index["ids"], index["offsets"], index["shapes"]
    if data_path.stat().st_size < int(offsets[-1]):
        return  # not the store this index describes: start afresh
    with open(directory / JOURNAL_FILE, "w", encoding="utf-8") as jf:
        for k, image_id in enumerate(ids):
            jf.write(f"{image_id}\tok\t{shapes[k][0]}\t{shapes[k][1]}\t{offsets[k]}\n")
    index_path.unlink()


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

    Images are decoded by `workers` processes and written in `items` order; every `chunk`
    images the pixels are flushed to disk and then journalled, so an interruption loses at most
    one chunk of work. Work is linear in the number of images (a set of journalled ids, one
    pass over the journal), which matters at MIMIC-CXR's 377k images.
    Failed decodes are returned (and journalled), not raised: the caller decides whether a
    skipped image is fatal (`--strict`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids = [str(i) for i, _ in items]
    if len(set(ids)) != len(ids):
        dup = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
        raise IrralError(f"duplicate image ids in the store input: {', '.join(dup)}")

    _journal_from_index(directory)
    _trim_torn_line(directory / JOURNAL_FILE)
    journal, end = _read_journal(directory)
    done = {e[0] for e in journal}
    if journal:
        log.info("resuming image store: %d of %d images already done", len(done), len(items))
        if progress:
            progress(len(done))
    data_path = directory / STORE_FILE
    with open(data_path, "ab"):
        pass
    os.truncate(data_path, end)  # drop pixels written after the last journalled image

    todo = [(i, str(p), shorter) for i, p in items if str(i) not in done]
    # Small groups for reduced images (a few hundred KB per group in flight), full-size ones alone;
    # never more than a chunk, so an interruption loses at most one chunk.
    group = max(1, min(chunk, 8 if shorter is not None else 1))
    with open(data_path, "ab") as data, open(directory / JOURNAL_FILE, "a", encoding="utf-8") as jf:
        offset, lines = end, []

        def commit() -> None:
            # Pixels reach the disk before the journal says they exist.
            data.flush()
            os.fsync(data.fileno())
            jf.write("".join(lines))
            jf.flush()
            lines.clear()

        for results in _decoded_groups(todo, max(1, workers), group):
            for image_id, arr, err in results:
                if arr is None:
                    lines.append(f"{image_id}\tfail\t0\t0\t{offset}\t{_one_line(err)}\n")
                    continue
                data.write(arr.data)
                h, w = arr.shape
                lines.append(f"{image_id}\tok\t{h}\t{w}\t{offset}\n")
                offset += h * w
            if len(lines) >= chunk:
                commit()
            if progress:
                progress(len(results))
        commit()

    return _finalize(directory, ids, {str(i): str(p) for i, p in items})


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("\t", " ")


def _finalize(directory: Path, order: list[str], paths: dict[str, str]) -> StoreResult:
    journal, _ = _read_journal(directory)
    by_id = {e[0]: e for e in journal}
    failed_reasons = {e[0]: e[5] for e in journal if e[1] == "fail"}
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


def write_image_store(
    images: Iterable[tuple[str, np.ndarray]],
    directory: str | Path,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write already-decoded (id, (H, W) uint8) images as a store; returns id -> row.

    For generated images (phantoms): they are streamed to disk as they come, and the index is
    written last, so a store without `index.npz` is never mistaken for a finished one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ids, shapes, offsets = [], [], [0]
    with open(directory / STORE_FILE, "wb") as data:
        for image_id, arr in images:
            arr = np.ascontiguousarray(arr, dtype=np.uint8)
            if arr.ndim != 2:
                raise IrralError(f"image {image_id}: expected a (H, W) array, got shape {arr.shape}")
            data.write(arr.data)
            ids.append(str(image_id))
            shapes.append(arr.shape)
            offsets.append(offsets[-1] + arr.size)
            if progress:
                progress(1)
        data.flush()
        os.fsync(data.fileno())
    if len(set(ids)) != len(ids):
        raise IrralError("duplicate image ids in the store input")
    np.savez(directory / ".index.tmp.npz", ids=np.array(ids, dtype=str) if ids else np.zeros(0, dtype="<U1"),
             offsets=np.array(offsets, dtype=np.int64), shapes=np.array(shapes, dtype=np.int32).reshape(-1, 2))
    os.replace(directory / ".index.tmp.npz", directory / INDEX_FILE)
    return {i: k for k, i in enumerate(ids)}
