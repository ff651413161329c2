"""`irralctl prepare iu-xray` end to end: our fixture tree, corrupt inputs, and the real R2Gen split."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.loader import LoaderConfig, ReportDataset, collate
from irralctl.data.prepared import PreparedDataset
from tests.fixtures import iu as fx

runner = CliRunner()
SPLIT = {"CXR1_1_IM-0001": "train", "CXR4_IM-0800": "train", "CXR2_IM-0652": "train", "CXR3_IM-0700": "train", "CXR3_IM-0700-2001": "val",
         "CXR5_IM-0900": "train", "CXR7_IM-1000": "test", "CXR8_IM-1100": "train"}


def prepare(*args: str) -> "object":
    return runner.invoke(app, ["prepare", "iu-xray", *args, "--workers", "1"])


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    return {
        "reports": fx.write_reports(tmp_path / "raw", as_tgz=True),
        "images": fx.write_images(tmp_path / "png"),
        "metadata": fx.write_metadata(tmp_path / "meta.csv.gz"),
        "annotation": fx.write_annotation(tmp_path / "annotation.json", SPLIT),
        "tmp": tmp_path,
    }


def test_fixture_tree_end_to_end(tree):
    out = tree["tmp"] / "ds"
    r = prepare("--reports", str(tree["reports"]), "--images", str(tree["images"]), "--metadata", str(tree["metadata"]),
                "--annotation", str(tree["annotation"]), "--out", str(out), "--image-size", "32")
    assert r.exit_code == 0, r.output
    ds = PreparedDataset(out)
    train = {rec["id"]: rec for rec in ds.records("train")}
    assert set(train) == {"CXR1_1_IM-0001", "CXR2_IM-0652", "CXR3_IM-0700", "CXR5_IM-0900", "CXR8_IM-1100"}
    assert [r["id"] for r in ds.records("val")] == ["CXR3_IM-0700-2001"]
    assert [r["id"] for r in ds.records("test")] == ["CXR7_IM-1000"]
    # Prefix rule: the -1001 study also takes the -2001-000k images, in XML order.
    assert [im["id"] for im in train["CXR3_IM-0700"]["images"]] == [
        "CXR3_IM-0700-1001", "CXR3_IM-0700-2001-0001", "CXR3_IM-0700-2001-0002"]
    # Views from the metadata, including the CXR1_1_ -> CXR1_ spelling.
    assert [im["view"] for im in train["CXR1_1_IM-0001"]["images"]] == ["PA", "LL"]
    assert [im["view"] for im in train["CXR2_IM-0652"]["images"]] == ["PA", "LATERAL"]
    # One-view study kept; empty-findings study dropped and counted; the image-less report listed.
    assert len(train["CXR5_IM-0900"]["images"]) == 1
    assert ds.info["counts"]["dropped"]["empty_target"] == 1
    problems = (out / "problems.csv").read_text()
    assert "no_images,6.xml" in problems
    # Texts: raw target, default-cleaned target, R2Gen-cleaned target.
    rec = train["CXR3_IM-0700"]
    assert rec["report"] == "No pneumothorax. Stable 4.5 cm nodule."
    assert rec["target"] == "no pneumothorax . stable 4.5 cm nodule ."
    assert rec["legacy_target"] == "no pneumothorax . stable 45 cm nodule ."
    assert rec["sections"]["indication"] == "Cough, report 3"
    # Every stored view holds its own pixels (flat grey per image id) at row `row`.
    store = ds.images
    for r_ in train.values():
        for im in r_["images"]:
            assert int(store[im["row"]].mean()) == fx.pixel_value(im["id"])
    assert min(store[0].shape) == 32
    info = ds.info
    assert info["cleaner"]["name"] == "default" and info["legacy_cleaner"]["name"] == "legacy-iu"
    assert info["images"]["count"] == len(store)
    assert len(info["fingerprint"]) == 64
    assert not (tree["tmp"] / ".ds.partial").exists()


def test_loader_round_trip(tree):
    out = tree["tmp"] / "ds"
    assert prepare("--reports", str(tree["reports"]), "--images", str(tree["images"]), "--annotation",
                   str(tree["annotation"]), "--out", str(out), "--image-size", "40").exit_code == 0
    ds = PreparedDataset(out)
    for kind in ("bpe", "legacy"):
        tok = ds.tokenizer(kind)
        field = "target" if kind == "bpe" else "legacy_target"
        data = ReportDataset(ds, "train", tok, LoaderConfig(text_field=field, image_size=24, resize=32, train=True))
        batch = collate([data[i] for i in range(len(data))], pad_id=tok.pad_id)
        assert batch["images"].shape == (len(data), 2, 24, 24) and batch["images"].dtype.is_floating_point is False
        for k, rec in enumerate(data.records):
            ids = batch["tokens"][k, : batch["lengths"][k]].tolist()
            assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
            if kind == "bpe":
                assert tok.decode(ids[1:]) == rec["target"]
            n = len(rec["images"][:2])
            assert batch["view_mask"][k].tolist() == [True] * n + [False] * (2 - n)
            for v, im in enumerate(rec["images"][:2]):
                # Flat images stay flat through resize and crop.
                assert int(batch["images"][k, v].float().mean().round()) == fx.pixel_value(im["id"])
    # Same seed, epoch, index -> same crop; the loader is deterministic for resumes.
    a = ReportDataset(ds, "train", ds.tokenizer(), LoaderConfig(image_size=24, resize=32, train=True, seed=3))
    assert (a[0]["images"] == a[0]["images"]).all()


def test_text_only_and_random_split_are_group_disjoint(tree):
    out = tree["tmp"] / "text"
    r = prepare("--reports", str(tree["reports"]), "--split", "random", "--val-ratio", "0.2", "--test-ratio", "0.2",
                "--seed", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    ds = PreparedDataset(out)
    assert ds.info["images"] is None and not ds.has_images
    groups = {s: {rec["group"] for rec in ds.records(s)} for s in ("train", "val", "test")}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"]) and not (groups["val"] & groups["test"])
    # Report 3 holds two studies: they always share a split.
    where = {rec["id"]: s for s in ("train", "val", "test") for rec in ds.records(s)}
    assert where["CXR3_IM-0700"] == where["CXR3_IM-0700-2001"]
    assert ds.records("train")[0]["images"][0].keys() == {"id", "view"}


def test_r2gen_layout(tree):
    root = tree["tmp"] / "r2gen_images"
    for sid in SPLIT:
        fx.write_images(root / sid, ids=["0", "1"])
    out = tree["tmp"] / "ds"
    r = prepare("--reports", str(tree["annotation"]), "--images", str(root), "--out", str(out), "--image-size", "32")
    assert r.exit_code == 0, r.output
    ds = PreparedDataset(out)
    recs = ds.records("train")
    assert {rec["id"] for rec in recs} == {s for s, v in SPLIT.items() if v == "train"}
    assert [im["id"] for im in recs[0]["images"]] == [f"{recs[0]['id']}/0", f"{recs[0]['id']}/1"]


def test_corrupt_image_is_skipped_or_fatal_with_strict(tree):
    bad = tree["images"] / "CXR7_IM-1000-1001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    out = tree["tmp"] / "ds"
    args = ["--reports", str(tree["reports"]), "--images", str(tree["images"]), "--annotation", str(tree["annotation"]),
            "--image-size", "32"]
    r = prepare(*args, "--out", str(out), "--strict")
    assert r.exit_code == 1
    assert "unreadable_image" in r.output and "--strict" in r.output
    assert not out.exists()
    r = prepare(*args, "--out", str(out))
    assert r.exit_code == 0, r.output
    rec = PreparedDataset(out).records("test")[0]
    assert [im["id"] for im in rec["images"]] == ["CXR7_IM-1000-2001"]
    assert "unreadable_image" in (out / "problems.csv").read_text()


def test_image_without_report_and_missing_image_are_listed(tree):
    fx.write_images(tree["images"], ids=["CXR99_IM-9999-1001"])
    (tree["images"] / "CXR8_IM-1100-2001.png").unlink()
    out = tree["tmp"] / "ds"
    r = prepare("--reports", str(tree["reports"]), "--images", str(tree["images"]), "--annotation",
                str(tree["annotation"]), "--out", str(out), "--image-size", "32")
    assert r.exit_code == 0, r.output
    problems = (out / "problems.csv").read_text()
    assert "image_without_report" in problems and "CXR99_IM-9999-1001" in problems
    assert "missing_image" in problems and "CXR8_IM-1100-2001" in problems


@pytest.mark.parametrize("case", ["missing", "empty_tgz", "not_tar", "exists"])
def test_bad_inputs_give_one_line_and_no_output(tree, case):
    out = tree["tmp"] / "ds"
    reports = tree["reports"]
    if case == "missing":
        reports = tree["tmp"] / "nope.tgz"
    elif case == "empty_tgz":
        reports = tree["tmp"] / "empty.tgz"
        with tarfile.open(reports, "w:gz"):
            pass
    elif case == "not_tar":
        reports = tree["tmp"] / "junk.tgz"
        reports.write_bytes(b"junk" * 10)
    elif case == "exists":
        out.mkdir()
    r = prepare("--reports", str(reports), "--out", str(out))
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and (str(reports) in lines[0] or str(out) in lines[0])
    assert "Traceback" not in r.output
    if case != "exists":
        assert not out.exists()


def test_interrupted_preparation_resumes(tree, monkeypatch):
    from irralctl.data import store as store_mod

    out = tree["tmp"] / "ds"
    args = ["--reports", str(tree["reports"]), "--images", str(tree["images"]), "--annotation", str(tree["annotation"]),
            "--out", str(out), "--image-size", "32"]
    calls = []
    real = store_mod._decode_one

    def flaky(item):
        calls.append(item[0])
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(item)

    monkeypatch.setattr(store_mod, "_decode_one", flaky)
    monkeypatch.setattr(store_mod.build_image_store, "__kwdefaults__", {**store_mod.build_image_store.__kwdefaults__, "chunk": 2})
    r = prepare(*args)
    assert r.exit_code != 0 and not out.exists()
    staging = tree["tmp"] / ".ds.partial"
    assert (staging / "images" / "journal.tsv").exists()
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(store_mod, "_decode_one", lambda item: (calls.append(item[0]), real(item))[1])
    r = prepare(*args)
    assert r.exit_code == 0, r.output
    # The 4 images decoded before the interruption (two chunks of 2) were not decoded again.
    assert not set(first[:4]) & set(calls)
    ds = PreparedDataset(out)
    for s in ("train", "val", "test"):
        for rec in ds.records(s):
            for im in rec["images"]:
                assert int(ds.images[im["row"]].mean()) == fx.pixel_value(im["id"])


# ---- the real IU X-Ray reports (../shared/data) ----
# Slow: `real_r2gen` prepares a view for every image the 3,955 real reports list.

@pytest.fixture(scope="module")
def real_r2gen(shared_data, tmp_path_factory):
    from irralctl.data.sources.iu_xray.reader import read_reports

    tmp = tmp_path_factory.mktemp("iu")
    reports = shared_data / "iu_xray" / "NLMCXR_reports.tgz"
    ids = [i for r in read_reports(reports) for i in r.image_ids]
    png = tmp / "png"
    png.mkdir()
    for k, i in enumerate(ids):  # tiny synthetic PNGs named as Open-i names them; value encodes the id
        Image.fromarray(np.full((10, 8), k % 251, np.uint8)).save(png / f"{i}.png", compress_level=0)
    out = tmp / "ds"
    r = prepare("--reports", str(reports), "--images", str(png), "--metadata",
                str(shared_data / "iu_xray" / "nlmcxr_dicom_metadata.csv.gz"), "--out", str(out), "--image-size", "8",
                "--cleaner", "legacy")
    assert r.exit_code == 0, r.output
    return out, {i: k % 251 for k, i in enumerate(ids)}


from PIL import Image  # noqa: E402


@pytest.mark.slow
def test_real_r2gen_split_is_reproduced_exactly(real_r2gen, shared_data):
    out, value_of = real_r2gen
    ann = json.loads((shared_data / "iu_xray" / "r2gen_annotation.json").read_text())
    ds = PreparedDataset(out)
    from irralctl.data.sources.iu_xray.reader import read_reports

    xml_images = {}
    for rep in read_reports(shared_data / "iu_xray" / "NLMCXR_reports.tgz"):
        for i in rep.image_ids:
            xml_images.setdefault(i.rsplit("-", 1)[0], []).append(i)
    for split in ("train", "val", "test"):
        recs = ds.records(split)
        assert sorted(r["id"] for r in recs) == sorted(e["id"] for e in ann[split])
        assert len(recs) == {"train": 2069, "val": 296, "test": 590}[split]
        by_id = {e["id"]: e for e in ann[split]}
        for r in recs:
            assert r["report"] == by_id[r["id"]]["report"]  # byte-exact findings text
            assert len(r["images"]) >= 2                    # R2Gen's 0.png and 1.png exist for all
            for im in r["images"][:2]:
                assert int(ds.images[im["row"]].mean()) == value_of[im["id"]]
    views = [im["view"] for s in ("train", "val", "test") for r in ds.records(s) for im in r["images"]]
    assert views.count("PA") > 2000


@pytest.mark.slow
def test_real_legacy_vocabulary_has_760_entries(real_r2gen):
    out, _ = real_r2gen
    tok = PreparedDataset(out).tokenizer("legacy")
    assert len(tok.token2idx) == 760 and tok.vocab_size == 761
    assert tok.token2idx["<unk>"] == sorted(tok.token2idx).index("<unk>") + 1
    assert min(tok.token2idx.values()) == 1 and max(tok.token2idx.values()) == 760
