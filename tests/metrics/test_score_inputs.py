"""`score` reads the files other tools write: coco-caption results and annotations, CSV/TSV, text
files aligned by line, generate's txt and csv outputs; each gives the scores of the same JSONL."""

from __future__ import annotations

import csv
import json
import random

import pytest
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.errors import InputError
from irralctl.generation.output import txt_field
from irralctl.metrics.config import ScoreConfig
from irralctl.metrics.scoring import score_files
from tests.fixtures.metric_texts import report


@pytest.fixture(scope="module")
def rows():
    rng = random.Random(3)
    out = []
    for i in range(25):
        ref = report(rng, 30) or "no acute disease ."
        out.append({"id": i if i % 5 == 0 else f"CXR{i}", "prediction": ref if i % 4 == 0 else report(rng, 30), "reference": ref})
    out[3]["prediction"] = "heart normal , lungs clear .\tmild \"quoted\" cardiomegaly .\nsecond line \\ backslash"
    return out


@pytest.fixture(scope="module")
def expected(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("jsonl") / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return _metrics(path)


def _metrics(path, **kw):
    return score_files(path, ScoreConfig(meteor="off", **kw))["metrics"]


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == pytest.approx(b[name], rel=0, abs=1e-12), name


def _write_csv(path, table, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter=delimiter, lineterminator="\n").writerows(table)
    return path


def test_coco_caption_results_with_annotations(tmp_path, rows, expected):
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": r["id"], "caption": r["prediction"]} for r in rows]))
    annotations = tmp_path / "captions_test.json"
    annotations.write_text(json.dumps({"images": [{"id": r["id"]} for r in rows],
                                       "annotations": [{"id": k, "image_id": r["id"], "caption": r["reference"]}
                                                       for k, r in enumerate(reversed(rows))]}))
    result = score_files(results, ScoreConfig(meteor="off", references=str(annotations)))
    _same(result["metrics"], expected)
    assert result["inputs"]["predictions"]["format"] == "coco-caption results"
    assert result["inputs"]["references"]["format"] == "coco-caption annotations"


def test_jsonl_named_json_is_still_jsonl(tmp_path, rows, expected):
    path = tmp_path / "preds.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _same(_metrics(path), expected)


def test_csv_with_and_without_header(tmp_path, rows, expected):
    plain = _write_csv(tmp_path / "p.csv", [[r["id"], r["prediction"], r["reference"]] for r in rows])
    _same(_metrics(plain), expected)
    # generate's --format csv: a header, columns by name, extra columns ignored.
    generated = _write_csv(tmp_path / "g.csv", [["id", "prediction", "reference", "flags", "views", "score"]]
                           + [[r["id"], r["prediction"], r["reference"], "", "", "-1.5"] for r in rows])
    _same(_metrics(generated), expected)


def test_tsv_predictions_with_tsv_or_jsonl_references(tmp_path, rows, expected):
    preds = _write_csv(tmp_path / "p.tsv", [[r["id"], r["prediction"]] for r in rows], "\t")
    refs = _write_csv(tmp_path / "r.tsv", [["ID", "Reference"]] + [[r["id"], r["reference"]] for r in rows[::-1]], "\t")
    _same(_metrics(preds, references=str(refs)), expected)
    jsonl_refs = tmp_path / "r.jsonl"
    jsonl_refs.write_text("".join(json.dumps({"id": r["id"], "reference": r["reference"]}) + "\n" for r in rows))
    _same(_metrics(preds, references=str(jsonl_refs)), expected)


def test_line_aligned_text_files(tmp_path, rows, expected):
    one_line = [r for r in rows if "\n" not in r["prediction"]]
    preds, refs = tmp_path / "predictions.txt", tmp_path / "refs.txt"
    preds.write_text("".join(r["prediction"] + "\n" for r in one_line), encoding="utf-8")
    refs.write_text("".join(r["reference"] + "\n" for r in one_line), encoding="utf-8")
    jsonl = tmp_path / "same.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in one_line))
    result = score_files(preds, ScoreConfig(meteor="off", references=str(refs)))
    _same(result["metrics"], _metrics(jsonl))
    assert result["inputs"]["predictions"]["format"] == "text, one per line"
    refs.write_text("".join(r["reference"] + "\n" for r in one_line[:-1]), encoding="utf-8")
    with pytest.raises(InputError, match="reference line.*prediction line"):
        _metrics(preds, references=str(refs))


def test_generate_txt_output_with_references_by_id(tmp_path, rows, expected):
    # id TAB report, escaped as generate writes it; with --n-best, rank 1 is the prediction.
    lines = []
    for r in rows:
        lines.append(f"{txt_field(r['id'])}\t1\t{txt_field(r['prediction'])}\n")
        lines.append(f"{txt_field(r['id'])}\t2\tan other hypothesis\n")
    preds = tmp_path / "preds.txt"
    preds.write_text("".join(lines), encoding="utf-8")
    refs = _write_csv(tmp_path / "refs.csv", [["id", "reference"]] + [[r["id"], r["reference"]] for r in rows])
    _same(_metrics(preds, references=str(refs)), expected)
    preds.write_text("".join(f"{txt_field(r['id'])}\t{txt_field(r['prediction'])}\n" for r in rows), encoding="utf-8")
    _same(_metrics(preds, references=str(refs)), expected)


def test_against_reads_any_format(tmp_path, rows):
    a = _write_csv(tmp_path / "a.csv", [[r["id"], r["prediction"], r["reference"]] for r in rows])
    b = tmp_path / "b.jsonl"
    b.write_text("".join(json.dumps({**r, "prediction": r["reference"]}) + "\n" for r in rows))
    result = score_files(a, ScoreConfig(meteor="off", clinical=False, against=str(b), paired_resamples=50))
    assert result["against"]["metrics"]["bleu_4"] == pytest.approx(1.0)
    assert result["against"]["paired"]["metrics"]["bleu_4"]["difference"] < 0


@pytest.mark.parametrize("name, content, refs, match", [
    ("r.json", [{"image_id": 1, "caption": "x"}], None, "item 1, field 'reference': no reference"),
    ("r.json", {"annotations": [{"image_id": 1, "caption": "x"}]}, None, "annotations file"),
    ("r.json", [{"image_id": 1}], None, "item 1, field 'caption'"),
    ("r.json", [{"image_id": [1], "caption": "x"}], None, "field 'image_id'"),
    ("r.json", [{"image_id": 1, "caption": "x"}], ("a.json", {"annotations": [{"image_id": 1, "caption": "y"},
                                                                             {"image_id": 1, "caption": "z"}]}),
     "several references"),
    ("r.json", [{"image_id": 1, "caption": "x"}], ("a.json", {"annotations": [{"image_id": 2, "caption": "y"}]}),
     "have no reference: 1"),
    ("p.csv", "a,x,y\nb,x,y,z\n", None, "line 2: 4 cells"),
    ("p.csv", "a,x\n", None, "line 1, field 'reference': no reference"),
    ("p.txt", "just a report\n", None, "expected id<TAB>prediction"),
    ("p.jsonl", '{"id": "a", "prediction": "x"}\n', ("r.txt", "y\n"), "matched line by line"),
    ("p.txt", "x\n", ("absent/r.txt", None), "r.txt: file of references not found"),
])
def test_format_errors_name_the_file_and_record(tmp_path, name, content, refs, match):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    kw = {}
    if refs is not None:
        if refs[1] is not None:
            (tmp_path / refs[0]).write_text(refs[1] if isinstance(refs[1], str) else json.dumps(refs[1]), encoding="utf-8")
        kw["references"] = str(tmp_path / refs[0])
    with pytest.raises(InputError, match=match) as e:
        _metrics(path, **kw)
    assert name in str(e.value) or (refs and refs[0] in str(e.value))


def test_extra_references_need_allow_subset(tmp_path, rows, expected):
    preds = _write_csv(tmp_path / "p.tsv", [[r["id"], r["prediction"]] for r in rows], "\t")
    refs = _write_csv(tmp_path / "r.csv", [[r["id"], r["reference"]] for r in rows] + [["extra", "no effusion ."]])
    with pytest.raises(InputError, match="1 reference.*no prediction: extra") as e:
        _metrics(preds, references=str(refs))
    assert "--allow-subset" in e.value.hint
    _same(_metrics(preds, references=str(refs), allow_subset=True), expected)


def test_score_cli_with_coco_files(tmp_path, rows):
    results = tmp_path / "res.json"
    results.write_text(json.dumps([{"image_id": r["id"], "caption": r["prediction"]} for r in rows]))
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"annotations": [{"image_id": r["id"], "caption": r["reference"]} for r in rows]}))
    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["score", str(results), "--references", str(ann), "--meteor", "off", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "25 studies" in r.output
    assert json.loads(out.read_text())["inputs"]["references"]["sha256"]
