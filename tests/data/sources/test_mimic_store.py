"""The image store at MIMIC-CXR's scale: resume after interruption (torn journal, trailing
bytes, a finished store reopened), order kept by the worker pool, and journals of many entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irralctl.data import store as store_mod
from irralctl.data.store import ImageStore, build_image_store


def _jpegs(tmp: Path, n: int) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(3)
    items = []
    for k in range(n):
        arr = np.full((40 + k % 5, 36), k * 7 % 256, np.uint8) + rng.integers(0, 3, (40 + k % 5, 36), dtype=np.uint8)
        p = tmp / f"{k}.jpg"
        Image.fromarray(arr).save(p, quality=95)
        items.append((f"d{k}", p))
    return items


def _count_decodes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = store_mod._decode_one
    monkeypatch.setattr(store_mod, "_decode_one", lambda item: (calls.append(item[0]), real(item))[1])
    return calls


def test_pool_keeps_input_order_and_pixels(tmp_path):
    items = _jpegs(tmp_path, 45)
    one = build_image_store(items, tmp_path / "one", shorter=None, workers=1, chunk=7)
    two = build_image_store(items, tmp_path / "two", shorter=None, workers=2, chunk=7)
    assert one.rows == two.rows == {i: k for k, (i, _) in enumerate(items)}
    a, b = ImageStore(tmp_path / "one"), ImageStore(tmp_path / "two")
    assert (tmp_path / "one" / "store.bin").read_bytes() == (tmp_path / "two" / "store.bin").read_bytes()
    assert all(np.array_equal(a[k], b[k]) for k in range(len(items)))


def test_interrupted_build_resumes_without_redoing_work(tmp_path, monkeypatch):
    items = _jpegs(tmp_path, 20)
    calls = _count_decodes(monkeypatch)
    seen = []

    def stop_after_ten(n):
        seen.append(n)
        if sum(seen) >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_image_store(items, tmp_path / "s", shorter=None, chunk=5, progress=stop_after_ten)
    journal = (tmp_path / "s" / "journal.tsv").read_text().splitlines()
    assert len(journal) == 10
    # An interruption can also leave a torn journal line and pixels that no line describes.
    with open(tmp_path / "s" / "journal.tsv", "a") as f:
        f.write("d10\tok\t4")
    with open(tmp_path / "s" / "store.bin", "ab") as f:
        f.write(b"\x00" * 333)
    calls.clear()
    result = build_image_store(items, tmp_path / "s", shorter=None, chunk=5)
    assert calls == [i for i, _ in items[10:]]
    store = ImageStore(tmp_path / "s")
    for image_id, path in items:
        assert np.array_equal(store[result.rows[image_id]], np.asarray(Image.open(path).convert("L")))


def test_finished_store_is_reused_by_a_rerun(tmp_path, monkeypatch):
    items = _jpegs(tmp_path, 6)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    items.append(("bad", tmp_path / "bad.jpg"))
    build_image_store(items, tmp_path / "s", shorter=None)
    before = (tmp_path / "s" / "store.bin").read_bytes()
    calls = _count_decodes(monkeypatch)
    result = build_image_store(items, tmp_path / "s", shorter=None)
    assert calls == ["bad"]  # only the failure is tried again
    assert [f[0] for f in result.failed] == ["bad"]
    assert (tmp_path / "s" / "store.bin").read_bytes() == before
    assert len(ImageStore(tmp_path / "s")) == 6


def test_a_journal_of_many_entries_is_read_in_one_pass(tmp_path, monkeypatch):
    # 20,000 journalled 1x2 images (MIMIC-CXR has 377,110): the rerun decodes nothing and
    # finishes the index from the journal alone.
    n = 20_000
    d = tmp_path / "s"
    d.mkdir()
    (d / "store.bin").write_bytes(bytes(k % 251 for k in range(2 * n)))
    with open(d / "journal.tsv", "w") as f:
        f.writelines(f"{k:08d}-abc\tok\t1\t2\t{2 * k}\n" for k in range(n))
    calls = _count_decodes(monkeypatch)
    result = build_image_store([(f"{k:08d}-abc", f"/nowhere/{k}.jpg") for k in range(n)], d)
    assert calls == [] and len(result.rows) == n
    store = ImageStore(d)
    assert store[n - 1].tolist() == [[(2 * n - 2) % 251, (2 * n - 1) % 251]]
    assert store.row_of("00012345-abc") == 12345
