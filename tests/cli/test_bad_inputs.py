"""Broken inputs through every command that reads them: radiographs (generate, heatmap, prepare iu-xray),
checkpoints (generate, heatmap, train --resume), JSONL (score, score --references, label), CSV and text
(label, prepare iu-xray's metadata), wrong encodings, empty and huge reports.

A bad input stops the command with exit code 1 and one line naming the file (and the line and field
when there are such), without a traceback and without writing anything. Where unreadable images may
be skipped (generate --skip-unreadable, prepare without --strict) they are skipped and listed, and
never reach the model as pixels.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil

import pytest

from irralctl.data.prepared import PreparedDataset
from irralctl.generation.output import read_rows
from tests.fixtures import iu as fx
from tests.fixtures.bad_inputs import (
    CHECKPOINTS,
    CSV,
    HUGE_REPORT,
    IMAGES,
    JSONL,
    TXT,
    damaged_run,
    real_dicom_window_width_0,
    write_image,
    write_text,
)
from tests.fixtures.cli import invoke, refused
from tests.fixtures.faults import snapshot
from tests.fixtures.generation import write_png
from tests.fixtures.marks import fast_few

pytestmark = pytest.mark.usefixtures("one_thread")


def refused_at(result, lineno: int | None, field: str | None, *fragments: str) -> None:
    """The command stopped with an error line holding every fragment, and naming the line and the field
    where there are such."""
    line = refused(result, *fragments)
    if lineno is not None:
        assert f", line {lineno}" in line, line
    if field is not None:
        assert f"field '{field}'" in line, line


@pytest.fixture()
def out(tmp_path):
    """An empty folder for the outputs: after a refusal it must still be empty."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# -- radiographs ----------------------------------------------------------------------------------
# The fast subset (`-m "not slow"`) sends every broken image through `prepare iu-xray`, and one through
# generate and heatmap (a model run each); the full suite sends all of them through all three. Likewise
# one damaged checkpoint through the commands that read one (tests/runs/test_checkpoint.py has each).
FAST_IMAGE = {"truncated.jpg"}
FAST_CHECKPOINT = {"bit_flipped"}


@pytest.mark.parametrize("kind", fast_few(IMAGES, FAST_IMAGE))
def test_generate_names_an_unreadable_view_or_skips_it(kind, run_dir, tmp_path, out):
    studies = tmp_path / "in"
    write_png(studies / "mixed" / "a.png", 72, 64, disc="left")
    bad = write_image(studies / "mixed", kind, "b")
    result = invoke("generate", studies, "--checkpoint", run_dir, "--out", out / "p.jsonl", "--device", "cpu")
    line = refused(result, str(bad), IMAGES[kind][1], "study mixed")
    assert "hint: pass --skip-unreadable" in result.output
    assert "install the DICOM codecs" not in line  # none of these is a compressed DICOM without its codec
    assert snapshot(out) == {}

    # With --skip-unreadable: the bad view is left out (never decoded as grey), a study without a
    # readable view is skipped, and both are said.
    only_bad = write_image(studies / "broken", kind, "c")
    result = invoke("generate", studies, "--checkpoint", run_dir, "--out", out / "p.jsonl", "--device", "cpu",
                    "--skip-unreadable")
    assert result.exit_code == 0, result.output
    rows = read_rows(out / "p.jsonl")
    assert [r["id"] for r in rows] == ["mixed"]
    assert [v["id"] for v in rows[0]["views"]] == ["a"] and {"one_view", "unreadable_view"} <= set(rows[0]["flags"])
    saved = json.loads((out / "p.jsonl.config.json").read_text())
    assert [s["id"] for s in saved["counts"]["skipped"]] == ["broken"]
    assert str(only_bad) in saved["counts"]["skipped"][0]["why"] and IMAGES[kind][1] in saved["counts"]["skipped"][0]["why"]
    assert "skipped" in result.output and "broken" in result.output


@pytest.mark.parametrize("kind", fast_few(IMAGES, FAST_IMAGE))
def test_heatmap_names_an_unreadable_view(kind, run_dir, tmp_path, out):
    study = tmp_path / "study"
    write_png(study / "a.png", 72, 64, disc="left")
    bad = write_image(study, kind, "b")
    refused(invoke("heatmap", "--checkpoint", run_dir, "--study", study, "--words", "heart", "--out", out / "maps",
                   "--device", "cpu"), str(bad), IMAGES[kind][1])
    assert snapshot(out) == {}


@pytest.fixture()
def iu_tree(tmp_path):
    """An Open-i tree whose only problem will be the image a test breaks (report 6, which lists no image,
    is left out: --strict would stop at it)."""
    reports = tmp_path / "raw" / "ecgen-radiology"
    reports.mkdir(parents=True)
    for n, findings, impression, images in fx.REPORTS:
        if images:
            (reports / f"{n}.xml").write_text(fx._xml(n, findings, impression, images), encoding="utf-8")
    images = fx.write_images(tmp_path / "png")
    args = ["prepare", "iu-xray", "--reports", reports, "--images", images, "--split", "random", "--val-ratio", "0.2",
            "--test-ratio", "0.2", "--seed", "1", "--image-size", "32", "--workers", "1"]
    return images, args


@pytest.mark.parametrize("kind", list(IMAGES))
def test_prepare_iu_xray_skips_and_lists_an_unreadable_image(kind, iu_tree, out):
    images, args = iu_tree
    (images / "CXR7_IM-1000-1001.png").unlink()
    bad = write_image(images, kind, "CXR7_IM-1000-1001")  # an Open-i name, the extension of its kind

    refused(invoke(*args, "--out", out / "strict", "--strict"), "--strict", "unreadable_image", str(bad))
    assert snapshot(out) == {}

    result = invoke(*args, "--out", out / "ds")
    assert result.exit_code == 0, result.output
    with open(out / "ds" / "problems.csv", newline="", encoding="utf-8") as f:
        problems = list(csv.DictReader(f))
    assert [(p["kind"], p["path"], p["record"]) for p in problems] == [("unreadable_image", str(bad), "CXR7_IM-1000-1001")]
    assert IMAGES[kind][1] in problems[0]["detail"] and not problems[0]["detail"].startswith(str(bad))  # said once
    ds = PreparedDataset(out / "ds")
    record = next(r for s in ("train", "val", "test") for r in ds.records(s) if r["id"] == "CXR7_IM-1000")
    assert [im["id"] for im in record["images"]] == ["CXR7_IM-1000-2001"]
    assert "CXR7_IM-1000-1001" not in set(ds.images.ids)
    assert "1 input problem(s) skipped (unreadable_image 1)" in result.output


def test_the_real_dicom_with_a_zero_window_is_named(shared_data, run_dir, iu_tree, tmp_path, out):
    bad = real_dicom_window_width_0(shared_data, tmp_path / "study" / "b.dcm")
    write_png(tmp_path / "study" / "a.png", 72, 64)
    refused(invoke("generate", tmp_path / "study", "--checkpoint", run_dir, "--out", out / "p.jsonl", "--device",
                   "cpu"), str(bad), "WindowWidth 0.0 is not positive")
    images, args = iu_tree
    (images / "CXR7_IM-1000-1001.png").unlink()
    shutil.copy(bad, images / "CXR7_IM-1000-1001.dcm")
    refused(invoke(*args, "--out", out / "ds", "--strict"), "CXR7_IM-1000-1001.dcm", "WindowWidth 0.0 is not positive")
    assert snapshot(out) == {}


def _metadata(case: str, path):
    if case == "truncated_gz":
        fx.write_metadata(path)
        path.write_bytes(path.read_bytes()[:-40])  # the end of the deflate stream and the gzip trailer cut off
    elif case == "wrong_columns":
        with gzip.open(path, "wt", newline="") as f:
            f.write("image,view\nCXR1_IM-0001-3001,PA\n")
    else:  # latin-1 text
        with gzip.open(path, "wb") as f:
            f.write("imageid,Rows,View Position\nCXR1_IM-0001-3001,60,PA\nCXR2_IM-0652-1001,60,Frontal ÉÉ\n"
                    .encode("latin-1"))
    return path


@pytest.mark.parametrize("case", ["truncated_gz", "wrong_columns", "latin1"])
def test_prepare_iu_xray_names_broken_metadata(case, iu_tree, tmp_path, out):
    _, args = iu_tree
    metadata = _metadata(case, tmp_path / "meta.csv.gz")
    refused(invoke(*args, "--metadata", metadata, "--out", out / "ds"), str(metadata))
    assert snapshot(out) == {}


# -- checkpoints ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", fast_few(CHECKPOINTS, FAST_CHECKPOINT))
def test_generate_and_heatmap_name_a_damaged_checkpoint(kind, toy, run_dir, tmp_path, out):
    run = damaged_run(run_dir, tmp_path / "run", kind)
    reason = CHECKPOINTS[kind][1]
    refused(invoke("generate", "--dataset", toy, "--checkpoint", run, "--out", out / "p.jsonl", "--device", "cpu"),
            str(run / "best.pt"), reason)
    study_id = PreparedDataset(toy).records("test")[0]["id"]
    refused(invoke("heatmap", "--checkpoint", run / "last.pt", "--dataset", toy, "--id", study_id, "--words", "heart",
                   "--out", out / "maps", "--device", "cpu"), str(run / "last.pt"), reason)
    assert snapshot(out) == {}


@pytest.mark.parametrize("kind", fast_few(CHECKPOINTS, FAST_CHECKPOINT))
def test_train_resume_names_a_damaged_checkpoint(kind, toy, run_dir, tmp_path):
    runs = tmp_path / "runs"
    run = damaged_run(run_dir, runs / "run", kind)
    before = snapshot(runs)
    refused(invoke("train", toy, "--resume", run, "--epochs", "20"), str(run / "last.pt"), CHECKPOINTS[kind][1])
    assert snapshot(runs) == before


# -- JSONL ----------------------------------------------------------------------------------------

def _field(name: str, command_field: str) -> str | None:
    """The field a JSONL entry is wrong in: its own, or the text field of the command reading it."""
    field = JSONL[name][2]
    return command_field if field is None and JSONL[name][3].startswith("expected a string,") else field


@pytest.mark.parametrize("name", list(JSONL))
def test_score_names_the_line_and_field_of_bad_predictions(name, tmp_path, out):
    preds = write_text(tmp_path / "in", name, JSONL)
    _, lineno, _, reason = JSONL[name]
    refused_at(invoke("score", preds, "--meteor", "off", "--json", out / "s.json"), lineno, _field(name, "prediction"),
               str(preds), reason)
    assert snapshot(out) == {}


@pytest.mark.parametrize("name", list(JSONL))
def test_label_names_the_line_and_field_of_bad_jsonl(name, tmp_path, out):
    reports = write_text(tmp_path / "in", name, JSONL)
    _, lineno, _, reason = JSONL[name]
    refused_at(invoke("label", reports, "--out", out / "labels.jsonl"), lineno, _field(name, "report"), str(reports),
               reason)
    assert snapshot(out) == {}


def _break_split(case: str, path) -> tuple[int, str | None, str]:
    """Damage line 2 of a prepared split file; returns (line, field, reason)."""
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[1])
    if case == "torn_line":
        lines[1] = lines[1][:40]
        lines = lines[:2]
        return _write(path, lines, 2, None, "not valid JSON")
    if case == "target_not_a_string":
        lines[1] = (json.dumps({**record, "target": ["a", "list"]}) + "\n").encode()
        return _write(path, lines, 2, "target", "missing or not a string")
    if case == "nan_target":
        lines[1] = json.dumps(record).replace(json.dumps(record["target"]), "NaN").encode() + b"\n"
        return _write(path, lines, 2, "target", "missing or not a string")
    lines[1] = json.dumps({**record, "target": record["target"] + " é"}, ensure_ascii=False).encode("latin-1") + b"\n"
    return _write(path, lines, 2, None, "not UTF-8")


def _write(path, lines, *expected):
    path.write_bytes(b"".join(lines))
    return expected


@pytest.mark.parametrize("case", ["torn_line", "target_not_a_string", "nan_target", "latin1"])
def test_score_names_a_broken_reference_split(case, toy, tmp_path, out):
    dataset = tmp_path / "ds"
    shutil.copytree(toy, dataset)
    ids = [r["id"] for r in PreparedDataset(toy).records("test")]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": i, "prediction": "the heart is normal ."}) + "\n" for i in ids))
    lineno, field, reason = _break_split(case, dataset / "test.jsonl")
    refused_at(invoke("score", preds, "--meteor", "off", "--references", f"{dataset}:test", "--json", out / "s.json"),
               lineno, field, str(dataset / "test.jsonl"), reason)
    assert snapshot(out) == {}


# -- CSV and plain text ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*CSV, *TXT])
def test_label_names_the_line_of_bad_csv_or_text(name, tmp_path, out):
    table = CSV if name in CSV else TXT
    reports = write_text(tmp_path / "in", name, table)
    _, lineno, field, reason = table[name]
    refused_at(invoke("label", reports, "--out", out / "labels.csv"), lineno, field, str(reports), reason)
    assert snapshot(out) == {}


# -- empty and huge reports -----------------------------------------------------------------------

@pytest.mark.slow  # 5 MB through the labeller and the scorer
def test_a_5_mb_report_is_labelled_and_scored(tmp_path, out):
    """A 5 MB report is no error: the labeller reads its first 100 kB, the scorer all of it."""
    reports = tmp_path / "huge.txt"
    reports.write_text(HUGE_REPORT + "\nNo pneumothorax.\n", encoding="utf-8")
    result = invoke("label", reports, "--out", out / "labels.csv")
    assert result.exit_code == 0, result.output
    with open(out / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["Cardiomegaly"], r["Pleural Effusion"]) for r in rows] == [("1", "1", "1"), ("2", "", "")]

    preds = tmp_path / "huge.jsonl"
    preds.write_text(json.dumps({"id": "a", "prediction": HUGE_REPORT.lower(), "reference": "the heart is enlarged ."})
                     + "\n" + json.dumps({"id": "b", "prediction": "no effusion .", "reference": "no effusion ."})
                     + "\n", encoding="utf-8")
    result = invoke("score", preds, "--meteor", "off", "--json", out / "s.json")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "s.json").read_text())["n_studies"] == 2


@pytest.mark.parametrize("empty", ["prediction", "reference"])
def test_an_empty_text_is_scored_or_named(empty, tmp_path, out):
    """An empty prediction is a model's (bad) report and is scored; an empty reference is scored too
    (coco-caption scores it as it is), or refused with the line: never a traceback."""
    preds = tmp_path / "preds.jsonl"
    rows = [{"id": "a", "prediction": "the heart is normal .", "reference": "the heart is normal ."},
            {"id": "b", "prediction": "no effusion .", "reference": "no effusion ."}]
    rows[1][empty] = ""
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = invoke("score", preds, "--meteor", "off", "--json", out / "s.json")
    if result.exit_code == 0:
        assert json.loads((out / "s.json").read_text())["n_studies"] == 2
    else:
        refused_at(result, 2, empty, str(preds))
        assert snapshot(out) == {}
