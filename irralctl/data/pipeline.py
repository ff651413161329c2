"""Writing a prepared dataset: the steps every `prepare` source shares.

A source (irralctl.data.sources.*) reads its raw files into records, then uses these: a staging
folder beside the destination (`.NAME.partial`, which also holds the resumable image store that
`decode_images` fills), the problems list (`problems.csv`), tokenisers fitted on the train split,
CheXpert labels (`irralctl.data.labels`), and `finish_dataset`, which writes manifests and
`dataset.json` and renames the staging folder into place only when everything is written.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irralctl.constants import SPLITS
from irralctl.data.cleaning import ReportCleaners
from irralctl.data.prepared import FORMAT_VERSION, TOKENIZER_FILES, dataset_fingerprint
from irralctl.data.tokenizers import BPETokenizer, LegacyTokenizer, ReportTokenizer
from irralctl.errors import IrralError, StrictStop
from irralctl.utils.config import provenance, to_jsonable
from irralctl.utils.io import atomic_write, dumps, read_json, sha256_file, write_json  # noqa: F401
from irralctl.utils.outputs import check_output, check_replaceable, output_dir

if TYPE_CHECKING:
    from irralctl.data.store import StoreResult
    from irralctl.progress import Progress

log = logging.getLogger(__name__)


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


@contextlib.contextmanager
def dataset_stage(out: Path, options: dict, *, overwrite: bool, inputs: Iterable[Path | None]) -> Iterator[Path]:
    """The staging folder of a preparation, moved onto `out` when the block succeeds.

    It sits beside `out` (`.NAME.partial`) and is resumed when its options match those of an
    interrupted run, else started afresh. A failure after images were decoded keeps it, so the
    rerun decodes none of them again (MIMIC-CXR's 377k JPEGs take a while); a `--strict` refusal,
    or a failure before any image was decoded, removes it.
    """
    check_output(out, inputs)
    check_replaceable(out, overwrite=overwrite)
    staging = staging_dir_for(out)
    marker = staging / "options.json"
    if staging.exists():
        previous = read_json(marker) if marker.exists() else None
        if previous == to_jsonable(options):
            log.info("resuming an interrupted preparation in %s", staging)
        else:
            log.info("discarding an interrupted preparation with other options in %s", staging)
            shutil.rmtree(staging)
    # The marker is written inside the transaction: a failure to write it (a full disk) removes a
    # new stage, and keeps one that holds decoded images, as any other failure does.
    with output_dir(out, overwrite=overwrite, inputs=inputs, stage=staging, keep=_resumable, exists_ok=True):
        write_json(marker, to_jsonable(options))
        yield staging
        (staging / "options.json").unlink(missing_ok=True)


def _resumable(staging: Path, error: BaseException) -> str | None:
    """What a failed preparation keeps for its rerun: the images it decoded (not after --strict)."""
    if isinstance(error, StrictStop):
        return None
    from irralctl.data.store import decoded_count

    n = decoded_count(staging / "images")
    return f"{n} decoded image(s)" if n else None


def decode_images(staging: Path, items: Sequence[tuple[str, str | Path]], problems: list[Problem], *,
                  size: int | None, workers: int, progress: Progress) -> StoreResult:
    """Decode each (image id, file) of `items` once into the staging folder's image store (`images/`:
    resumed after an interruption, in `workers` processes, the shorter side reduced to `size`), with
    a "decoding images" progress task. An image that cannot be decoded is skipped and listed in
    `problems` as `unreadable_image` (its reason without the path, which the problem names already);
    the caller decides whether that stops a `--strict` preparation."""
    from irralctl.data.store import build_image_store

    with progress.task("decoding images", len(items)) as task:
        result = build_image_store(items, staging / "images", shorter=size, workers=workers, progress=task.advance)
    for image_id, path, reason in result.failed:
        problems.append(Problem("unreadable_image", path, image_id, reason.removeprefix(f"{path}: ")))
    return result


def write_problems(staging: Path, problems: list[Problem]) -> None:
    """problems.csv, with its header even when no input was skipped (a file to check, not to guess)."""
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
    cleaners: ReportCleaners,
    images: dict | None,
    labeler: dict | None,
    counts: dict,
    problems: list[Problem],
    bpe_vocab_size: int,
    legacy_threshold: int,
    example_layout: str = "study",
    extra: dict | None = None,
) -> Path:
    """Write manifests, tokenisers and dataset.json into `staging` (which `dataset_stage` moves onto `out`)."""
    (staging / "tokenizers").mkdir(exist_ok=True)
    toks = fit_tokenizers(splits["train"], bpe_vocab_size=bpe_vocab_size, legacy_threshold=legacy_threshold)
    for kind, tok in toks.items():
        tok.save(staging / TOKENIZER_FILES[kind])
    for split in SPLITS:
        rows = splits.get(split, [])
        with atomic_write(staging / f"{split}.jsonl") as f:
            for r in rows:
                f.write(dumps(r))
                f.write("\n")
    write_problems(staging, problems)
    fingerprint = dataset_fingerprint(staging)
    info = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "sources": sources,
        "options": to_jsonable(options),
        **cleaners.described,
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
    return out
