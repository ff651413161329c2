"""`irralctl export DATASET --to hf|r2gen` and the way back (`prepare hf`, `prepare iu-xray|mimic
--from-r2gen`): the same split, ids, reports, labels, views and pixels."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.constants import SPLITS
from irralctl.data.prepared import PreparedDataset

runner = CliRunner()


def cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph") / "ph"
    r = cli("prepare", "phantoms", "--n", 40, "--image-size", 64, "--out", out, "-j", 1)
    assert r.exit_code == 0, r.output
    return out


def _studies(path) -> dict[str, dict]:
    """split -> {id: (report, target, chexpert labels, views, pixels of each view)}."""
    ds = PreparedDataset(path)
    return {s: {r["id"]: (r["report"], r["target"], r["labels"]["chexpert"], [im["view"] for im in r["images"]],
                          [np.array(ds.images[im["row"]]) for im in r["images"]]) for r in ds.records(s)}
            for s in SPLITS}


def _same(a: dict, b: dict, *, views: bool = True) -> None:
    assert {s: sorted(v) for s, v in a.items()} == {s: sorted(v) for s, v in b.items()}
    for split in SPLITS:
        for sid, (report, target, labels, vs, pixels) in a[split].items():
            report2, target2, labels2, vs2, pixels2 = b[split][sid]
            assert (report2, target2, labels2) == (report, target, labels), sid
            assert not views or vs2 == vs, sid
            assert len(pixels2) == len(pixels) and all(np.array_equal(x, y) for x, y in zip(pixels, pixels2)), sid


@pytest.mark.slow  # Hugging Face datasets (its import alone is a second)
def test_hf_round_trip(phantoms, tmp_path):
    r = cli("export", phantoms, "--to", "hf", tmp_path / "hf")
    assert r.exit_code == 0, r.output
    assert "train 32" in r.output and "validation 4" in r.output

    import datasets

    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    assert list(dd) == ["train", "validation", "test"]
    assert dd["train"].column_names == ["id", "images", "views", "report", "target", "labels", "split", "group"]
    assert isinstance(dd["train"].features["images"].feature, datasets.Image)
    row = dd["validation"][0]
    ds = PreparedDataset(phantoms)
    rec = next(x for x in ds.records("val") if x["id"] == row["id"])
    assert row["split"] == "validation" and row["views"] == ["PA", "LATERAL"] and len(row["labels"]) == 14
    assert row["labels"] == rec["labels"]["chexpert"] and row["report"] == rec["report"]
    assert np.array_equal(np.array(row["images"][0]), ds.images[rec["images"][0]["row"]])   # decoded PNG == store
    export_info = json.loads((tmp_path / "hf" / "export.json").read_text())
    assert export_info["source"]["fingerprint"] == ds.info["fingerprint"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch Arrow files left beside it

    r = cli("prepare", "hf", tmp_path / "hf", "--id-column", "id", "--view-column", "views", "--out", tmp_path / "back",
            "-j", 1)
    assert r.exit_code == 0, r.output
    back = PreparedDataset(tmp_path / "back")
    assert back.name == "hf" and back.info["hf_columns"]["id"] == "id"
    _same(_studies(phantoms), _studies(tmp_path / "back"))


@pytest.mark.slow  # Hugging Face datasets
def test_hf_parquet_files_splits_and_errors(phantoms, tmp_path):
    assert cli("export", phantoms, "--to", "hf", tmp_path / "hf").exit_code == 0
    import datasets

    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    (tmp_path / "pq" / "data").mkdir(parents=True)
    for name, part in dd.items():  # a Hub-style snapshot: data/<split>-00000-of-00001.parquet
        part.to_parquet(str(tmp_path / "pq" / "data" / f"{name}-00000-of-00001.parquet"))
    r = cli("prepare", "hf", tmp_path / "pq", "--id-column", "id", "--view-column", "views", "--out", tmp_path / "a",
            "-j", 1)
    assert r.exit_code == 0, r.output
    _same(_studies(phantoms), _studies(tmp_path / "a"))

    # One file without a split in its name: the split column, or a seeded random split.
    one = tmp_path / "all.parquet"
    datasets.concatenate_datasets(list(dd.values())).to_parquet(str(one))
    r = cli("prepare", "hf", one, "--out", tmp_path / "b")
    assert r.exit_code == 1 and "no split for this row" in r.output and "--split-column" in r.output
    assert not (tmp_path / "b").exists()
    r = cli("prepare", "hf", one, "--id-column", "id", "--split-column", "split", "--out", tmp_path / "b", "-j", 1)
    assert r.exit_code == 0, r.output
    assert {s: sorted(v) for s, v in _studies(tmp_path / "b").items()} == \
        {s: sorted(v) for s, v in _studies(phantoms).items()}
    r = cli("prepare", "hf", one, "--id-column", "id", "--split", "random", "--val-ratio", 0.25, "--test-ratio", 0.25,
            "--out", tmp_path / "c", "-j", 1)
    assert r.exit_code == 0, r.output
    assert PreparedDataset(tmp_path / "c").info["counts"]["test"] == 10

    def ids(path) -> list[str]:
        return sorted(i for v in _studies(path).values() for i in v)

    assert ids(tmp_path / "c") == ids(phantoms)
    # Without --id-column a study is named by its row number in reading order.
    r = cli("prepare", "hf", one, "--split-column", "split", "--out", tmp_path / "e", "-j", 1)
    assert r.exit_code == 0, r.output
    assert ids(tmp_path / "e") == [f"{k:06d}" for k in range(40)]

    r = cli("prepare", "hf", one, "--image-column", "image", "--out", tmp_path / "d")
    assert r.exit_code == 1
    assert "no column 'image' (--image-column); its columns: id, images, views, report" in r.output.replace("\n", " ")
    assert not (tmp_path / "d").exists()


def test_r2gen_round_trip(phantoms, tmp_path):
    r = cli("export", phantoms, "--to", "r2gen", tmp_path / "r2")
    assert r.exit_code == 0, r.output
    annotation = json.loads((tmp_path / "r2" / "annotation.json").read_text())
    ds = PreparedDataset(phantoms)
    assert {s: [row["id"] for row in rows] for s, rows in annotation.items()} == \
        {s: [rec["id"] for rec in ds.records(s)] for s in SPLITS}
    row, rec = annotation["test"][0], ds.records("test")[0]
    assert row == {"id": rec["id"], "report": rec["report"], "split": "test", "views": ["PA", "LATERAL"],
                   "image_path": [f"{rec['id']}/0.png", f"{rec['id']}/1.png"]}
    png = np.array(Image.open(tmp_path / "r2" / "images" / row["image_path"][1]))
    assert np.array_equal(png, ds.images[rec["images"][1]["row"]])

    for command, name in (("iu-xray", "iu_xray"), ("mimic", "mimic_cxr")):
        out = tmp_path / name
        r = cli("prepare", command, "--from-r2gen", tmp_path / "r2" / "annotation.json", tmp_path / "r2" / "images",
                "--out", out, "-j", 1)
        assert r.exit_code == 0, r.output
        back = PreparedDataset(out)
        assert back.name == name and back.info["example_layout"] == "study"
        _same(_studies(phantoms), _studies(out))
        assert back.records("train")[0]["images"][0]["id"] == f"{back.records('train')[0]['id']}/0"


def test_export_refuses_the_wrong_source_and_an_existing_output(phantoms, tmp_path):
    r = cli("export", phantoms, "--to", "safetensors", tmp_path / "x")
    assert r.exit_code == 1 and "is a prepared dataset, not a run" in r.output and "--to hf" in r.output
    (tmp_path / "taken").mkdir()
    r = cli("export", phantoms, "--to", "r2gen", tmp_path / "taken")
    assert r.exit_code == 1 and "already exists" in r.output and "--overwrite" in r.output
    assert os.listdir(tmp_path / "taken") == []
    r = cli("export", phantoms, "--to", "hf", phantoms / "inside")
    assert r.exit_code == 1 and "lies inside an input" in r.output
    r = cli("export", phantoms, "--to", "zip", tmp_path / "y")
    assert r.exit_code == 1 and "--to" in r.output
