"""R2Gen's preprocessed layout (`prepare iu-xray|mimic --from-r2gen`): the annotation read as given,
its image paths followed, its mistakes named, options that would contradict it refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.prepared import PreparedDataset
from irralctl.data.sources.r2gen.reader import image_id, read_annotation
from irralctl.data.splits import r2gen_split
from irralctl.errors import InputError

runner = CliRunner()


def cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _image(path: Path, value: int, suffix: str = ".png") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(path.with_suffix(suffix))


def test_the_real_annotation_is_read_as_given(shared_data):
    rows = read_annotation(shared_data / "iu_xray" / "r2gen_annotation.json")
    counts = {s: sum(r.split == s for r in rows) for s in ("train", "val", "test")}
    assert counts == {"train": 2069, "val": 296, "test": 590}
    assert {r.id: r.split for r in rows} == r2gen_split()   # the committed manifest is this annotation's split
    first = rows[0]
    assert first.image_paths == ("CXR2384_IM-0942/0.png", "CXR2384_IM-0942/1.png")
    assert first.image_ids() == ["CXR2384_IM-0942/0", "CXR2384_IM-0942/1"]
    assert all(len(r.image_paths) == 2 for r in rows) and first.views is None


def _mimic_tree(root: Path) -> Path:
    """R2Gen's MIMIC-CXR layout: one row per image, id = dicom_id, numeric study and subject ids."""
    rows = {"train": [], "val": [], "test": []}
    spec = [("train", 10000032, 50414267, ["d1", "d2"]), ("train", 10000033, 50414268, ["d3"]),
            ("val", 10000034, 50414269, ["d4"]), ("test", 10000035, 50414270, ["d5"])]
    for k, (split, subject, study, dicoms) in enumerate(spec):
        for d in dicoms:
            rel = f"p{str(subject)[:2]}/p{subject}/s{study}/{d}.jpg"
            _image(root / "images" / rel, k, ".jpg")
            rows[split].append({"id": d, "study_id": study, "subject_id": subject, "report": f"Findings of study {k}.",
                                "image_path": [rel], "split": split})
    (root / "annotation.json").write_text(json.dumps(rows))
    return root


def test_mimic_one_example_per_image(tmp_path):
    tree = _mimic_tree(tmp_path / "mimic_cxr")
    (tree / "images" / "p10/p10000035/s50414270/d5.jpg").unlink()      # a missing image is skipped and listed
    r = cli("prepare", "mimic", "--from-r2gen", tree / "annotation.json", tree / "images", "--out", tmp_path / "ds",
            "-j", 1)
    assert r.exit_code == 0, r.output
    ds = PreparedDataset(tmp_path / "ds")
    assert ds.name == "mimic_cxr" and ds.info["example_layout"] == "image"
    train = ds.records("train")
    assert [x["id"] for x in train] == ["d1", "d2", "d3"]
    assert [(x["study_id"], x["group"]) for x in train] == [("50414267", "10000032")] * 2 + [("50414268", "10000033")]
    assert train[0]["images"] == [{"id": "d1", "view": "UNKNOWN", "file": "p10/p10000032/s50414267/d1.jpg", "row": 0}]
    assert train[0]["report"] == "Findings of study 0." and ds.records("test") == []
    problems = (tmp_path / "ds" / "problems.csv").read_text()
    assert "missing_image" in problems and "d5.jpg" in problems
    assert ds.info["counts"]["dropped"] == {"no_readable_image": 1}


def test_iu_fixture_with_r2gen_images(tmp_path):
    rows = {"train": [], "val": [], "test": []}
    for k, (sid, split) in enumerate([("CXR1_IM-0001", "train"), ("CXR2_IM-0002", "train"), ("CXR3_IM-0003", "val"),
                                      ("CXR4_IM-0004", "test")]):
        for j in range(2):
            _image(tmp_path / "images" / sid / f"{j}.png", 10 * k + j)
        rows[split].append({"id": sid, "report": f"The heart is normal. Report {k}.",
                            "image_path": [f"{sid}/0.png", f"{sid}/1.png"], "split": split})
    (tmp_path / "annotation.json").write_text(json.dumps(rows))
    r = cli("prepare", "iu-xray", "--from-r2gen", tmp_path / "annotation.json", tmp_path / "images", "--out",
            tmp_path / "ds", "--cleaner", "legacy", "-j", 1)
    assert r.exit_code == 0, r.output
    ds = PreparedDataset(tmp_path / "ds")
    rec = ds.records("val")[0]
    assert rec["id"] == "CXR3_IM-0003" and rec["group"] == "3" and rec["target"] == "the heart is normal . report 2 ."
    assert [im["id"] for im in rec["images"]] == ["CXR3_IM-0003/0", "CXR3_IM-0003/1"]
    expected = np.array(Image.open(tmp_path / "images" / "CXR3_IM-0003" / "1.png"))
    assert np.array_equal(ds.images[rec["images"][1]["row"]], expected)
    assert ds.info["options"]["from_r2gen"] == [str(tmp_path / "annotation.json"), str(tmp_path / "images")]


@pytest.mark.parametrize("change, message", [
    (lambda d: d["train"][0].update(split="test"), "train[0], field 'split': says 'test' but is in the 'train' list"),
    (lambda d: d["val"].append(dict(d["train"][0], split="val")), "val[1], field 'id': id 'A' is listed twice"),
    (lambda d: d["train"][0].update(image_path=["../../etc/x.png"]), "leaves the image folder"),
    (lambda d: d["test"][0].pop("report"), "test[0], field 'report': missing or not a string"),
    (lambda d: d.update(extra=[]), "unexpected list(s) 'extra'"),
])
def test_malformed_annotations_are_named(tmp_path, change, message):
    data = {"train": [{"id": "A", "report": "r", "image_path": ["A/0.png"]}],
            "val": [{"id": "B", "report": "r", "image_path": ["B/0.png"]}],
            "test": [{"id": "C", "report": "r", "image_path": ["C/0.png"]}]}
    change(data)
    (tmp_path / "annotation.json").write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        read_annotation(tmp_path / "annotation.json")
    assert message in info.value.message and str(tmp_path / "annotation.json") in info.value.message


def test_options_that_contradict_the_annotation_are_refused(tmp_path):
    tree = _mimic_tree(tmp_path / "m")
    r = cli("prepare", "iu-xray", "--from-r2gen", tree / "annotation.json", tree / "images", "--split", "random",
            "--images", tree / "images", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "drop --images, --split random" in r.output
    r = cli("prepare", "mimic", "--from-r2gen", tree / "annotation.json", tree / "images", "--root", tree,
            "--per-image",
            "--out", tmp_path / "o")
    assert r.exit_code == 1 and "drop --root, --per-image" in r.output
    r = cli("prepare", "mimic", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "give --root" in r.output and "--from-r2gen" in r.output
    r = cli("prepare", "iu-xray", "--from-r2gen", tree / "annotation.json", tmp_path / "nowhere",
            "--out", tmp_path / "o")
    assert r.exit_code == 1 and "R2Gen image folder not found" in r.output
    assert not (tmp_path / "o").exists()


def test_image_ids_follow_prepare():
    assert image_id("CXR1_IM-0001", "CXR1_IM-0001/0.png") == "CXR1_IM-0001/0"     # IU X-Ray: by index
    assert image_id("d1", "p10/p10000032/s50414267/d1.jpg") == "d1"              # MIMIC-CXR: the dicom_id
