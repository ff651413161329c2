"""The image store keeps exact pixels, records failures, and refuses damaged files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irralctl.data.store import ImageStore, build_image_store
from irralctl.errors import InputError, IrralError


def _images(tmp: Path, n: int) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(1)
    items = []
    for k in range(n):
        arr = rng.integers(0, 256, (20 + k, 30 - k), dtype=np.uint8)
        p = tmp / f"{k}.png"
        Image.fromarray(arr).save(p)
        items.append((f"img{k}", p))
    return items


@pytest.mark.parametrize("workers", [1, 2])
def test_pixels_round_trip_and_failures(tmp_path: Path, workers: int):
    items = _images(tmp_path, 12)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    items.insert(5, ("bad", tmp_path / "bad.png"))
    result = build_image_store(items, tmp_path / "store", shorter=None, workers=workers, chunk=4)
    assert [f[0] for f in result.failed] == ["bad"] and "unreadable" in result.failed[0][2]
    store = ImageStore(tmp_path / "store")
    assert len(store) == 12 and not (tmp_path / "store" / "journal.tsv").exists()
    for image_id, path in items:
        if image_id == "bad":
            continue
        assert (store[result.rows[image_id]] == np.asarray(Image.open(path))).all()
        assert store.row_of(image_id) == result.rows[image_id]


def test_duplicate_ids_rejected(tmp_path: Path):
    items = _images(tmp_path, 2)
    with pytest.raises(IrralError, match="duplicate"):
        build_image_store([items[0], items[0]], tmp_path / "s")


def test_truncated_store_is_detected(tmp_path: Path):
    build_image_store(_images(tmp_path, 3), tmp_path / "store", shorter=None)
    data = tmp_path / "store" / "store.bin"
    data.write_bytes(data.read_bytes()[:-10])
    with pytest.raises(InputError, match="truncated"):
        ImageStore(tmp_path / "store")
