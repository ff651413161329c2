"""`label_reports`: every input format, both output formats, and clear errors on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from irralctl.errors import ConfigError, InputError
from irralctl.labeling import OBSERVATIONS
from irralctl.labeling.files import LabelConfig, config_path_for, label_reports

REPORTS = [
    "Heart size normal. No pneumothorax or pleural effusion.",
    "Mild cardiomegaly. Possible left lower lobe pneumonia.",
    "Right IJ catheter tip in the SVC. Lungs are clear.",
]
# Expected values of REPORTS for Cardiomegaly, Pneumonia and Support Devices.
EXPECTED = [(0, None, None), (1, -1, None), (None, None, 1)]


def _pick(row: dict) -> tuple:
    def value(v):
        return None if v in ("", None) else int(v)
    return value(row["Cardiomegaly"]), value(row["Pneumonia"]), value(row["Support Devices"])


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _run(tmp_path: Path, source: Path, out_name: str = "out.csv", **kw):
    return label_reports(LabelConfig(input=source, out=tmp_path / out_name, **kw))


def test_text_file_to_csv(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("\n".join(REPORTS) + "\n", encoding="utf-8")
    summary = _run(tmp_path, source)
    rows = _read_csv(tmp_path / "out.csv")
    assert list(rows[0]) == ["line", *OBSERVATIONS]
    assert [r["line"] for r in rows] == ["1", "2", "3"]
    assert [_pick(r) for r in rows] == EXPECTED
    assert summary.reports == 3 and summary.input_kind == "text"
    assert summary.counts["Cardiomegaly"] == {"positive": 1, "negative": 1, "uncertain": 0, "blank": 1}
    saved = json.loads(config_path_for(tmp_path / "out.csv").read_text())
    assert saved["config"]["input"] == str(source)
    assert saved["labeler"]["name"] == "irralctl-chexpert" and saved["reports"] == 3
    assert saved["labeler"]["no_finding"] == saved["config"]["no_finding"] == "incidental"


def test_csv_with_column_and_id_to_jsonl(tmp_path):
    source = tmp_path / "reports.csv"
    with open(source, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        for i, r in enumerate(REPORTS):
            w.writerow([f"s{i}", r.replace(". ", ".\n")])   # quoted newlines inside a cell
    _run(tmp_path, source, "out.jsonl", column="text")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s0", "s1", "s2"]
    assert [r["row"] for r in rows] == [1, 2, 3]
    assert [_pick(r) for r in rows] == EXPECTED


def test_jsonl_with_field_and_explain(tmp_path):
    source = tmp_path / "preds.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prediction": r}) + "\n" for i, r in enumerate(REPORTS)))
    _run(tmp_path, source, "out.jsonl", field="prediction", explain=True)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [_pick(r) for r in rows] == EXPECTED
    pneumonia = rows[1]["explain"][7]
    assert pneumonia == {"name": "Pneumonia", "value": -1, "phrase": "pneumonia",
                         "sentence": "possible left lower lobe pneumonia.", "rule": "uncertainty: 'possible'"}


def test_explain_columns_in_csv(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text(REPORTS[1] + "\n", encoding="utf-8")
    _run(tmp_path, source, explain=True)
    row = _read_csv(tmp_path / "out.csv")[0]
    assert row["Pneumonia"] == "-1"
    assert row["Pneumonia phrase"] == "pneumonia"
    assert row["Pneumonia sentence"] == "possible left lower lobe pneumonia."
    assert row["Pneumonia rule"] == "uncertainty: 'possible'"
    assert row["Edema rule"] == "not mentioned"


def test_prepared_dataset_directory(tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for split, reports in (("train", REPORTS[:2]), ("test", REPORTS[2:])):
        with open(dataset / f"{split}.jsonl", "w") as f:
            for i, r in enumerate(reports):
                f.write(json.dumps({"id": f"{split}{i}", "report": r, "labels": {}}) + "\n")
    summary = _run(tmp_path, dataset)
    rows = _read_csv(tmp_path / "out.csv")
    assert [(r["id"], r["split"]) for r in rows] == [("train0", "train"), ("train1", "train"), ("test0", "test")]
    assert [_pick(r) for r in rows] == EXPECTED
    assert summary.input_kind == "dataset"


# --- bad input -----------------------------------------------------------------------------------
def _error(tmp_path, source, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        _run(tmp_path, source, **kw)
    assert not (tmp_path / "out.csv").exists(), "no output may be left behind"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.csv")], "no temporary file either"
    return info.value


def test_binary_file(tmp_path):
    source = tmp_path / "scan.txt"
    source.write_bytes(b"report one\n\x89PNG\x00\x00binary")
    err = _error(tmp_path, source)
    assert err.path == source and err.record == 2 and "binary" in err.message


def test_wrong_encoding_names_the_line(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_bytes("No pneumothorax.\nCardiomegaly.\nNo \u00e9panchement.\n".encode("latin-1"))
    err = _error(tmp_path, source)
    assert err.record == 3 and "UTF-8" in err.message and str(source) in str(err)


def test_empty_line_in_text_file(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("No pneumothorax.\n\nCardiomegaly.\n", encoding="utf-8")
    err = _error(tmp_path, source)
    assert err.record == 2 and "empty line" in err.message


def test_trailing_blank_lines_are_fine(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("No pneumothorax.\nCardiomegaly.\n\n\n", encoding="utf-8")
    assert _run(tmp_path, source).reports == 2


def test_empty_file(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("", encoding="utf-8")
    err = _error(tmp_path, source)
    assert "no reports" in err.message and err.path == source


def test_missing_csv_column(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_text("id,findings\n1,No pneumothorax.\n", encoding="utf-8")
    err = _error(tmp_path, source)
    assert err.record == 1 and "no column 'report'" in err.message and "findings" in err.hint


def test_empty_csv_cell(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_text("report\nNo pneumothorax.\n\"  \"\n", encoding="utf-8")
    err = _error(tmp_path, source)
    assert err.record == 3 and err.field == "report" and "empty report" in err.message


def test_missing_jsonl_field(tmp_path):
    source = tmp_path / "preds.jsonl"
    source.write_text(json.dumps({"report": "No pneumothorax."}) + "\n" + json.dumps({"text": "x"}) + "\n")
    err = _error(tmp_path, source)
    assert err.record == 2 and err.field == "report" and "text" in err.hint


def test_bad_json_line(tmp_path):
    source = tmp_path / "preds.jsonl"
    source.write_text(json.dumps({"report": "No pneumothorax."}) + "\n{not json\n")
    assert _error(tmp_path, source).record == 2


def test_non_string_field(tmp_path):
    source = tmp_path / "preds.jsonl"
    source.write_text(json.dumps({"report": ["a", "list"]}) + "\n")
    err = _error(tmp_path, source)
    assert "expected a string" in err.message and err.record == 1


def test_directory_that_is_not_a_dataset(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "not a prepared dataset" in _error(tmp_path, folder).message


def test_missing_input(tmp_path):
    assert "file not found" in _error(tmp_path, tmp_path / "nope.txt").message


def test_output_format_and_overwrite(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text(REPORTS[0] + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        _run(tmp_path, source, "out.xlsx")
    _run(tmp_path, source)
    with pytest.raises(InputError, match="already exists"):
        _run(tmp_path, source)
    _run(tmp_path, source, overwrite=True)


def test_failed_run_keeps_the_existing_output(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(REPORTS[0] + "\n", encoding="utf-8")
    _run(tmp_path, good)
    before = (tmp_path / "out.csv").read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"report": "No pneumothorax."}) + "\n" + json.dumps({"other": 1}) + "\n")
    with pytest.raises(InputError):
        _run(tmp_path, bad, overwrite=True)
    assert (tmp_path / "out.csv").read_bytes() == before


def test_no_finding_policy_is_applied_and_recorded(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("Clear lungs. Degenerative change of the spine.\nClear lungs. Emphysema.\n", encoding="utf-8")
    _run(tmp_path, source, "default.csv")
    _run(tmp_path, source, "chexpert.csv", no_finding="chexpert")
    assert [r["No Finding"] for r in _read_csv(tmp_path / "default.csv")] == ["1", ""]
    assert [r["No Finding"] for r in _read_csv(tmp_path / "chexpert.csv")] == ["", ""]
    saved = json.loads(config_path_for(tmp_path / "chexpert.csv").read_text())
    assert saved["config"]["no_finding"] == saved["labeler"]["no_finding"] == "chexpert"
    with pytest.raises(ConfigError, match="no_finding"):
        _run(tmp_path, source, "bad.csv", no_finding="strict")
    assert not (tmp_path / "bad.csv").exists()


# --- the Stanford CheXpert labeler's files (--format chexpert) --------------------------------------
# Its input: no header, one report per row, quoted where a report holds a comma or a line break.
STANFORD_INPUT = (
    b'The heart is normal in size. No pneumothorax or pleural effusion.\n'
    b'"Mild cardiomegaly, possible right lower lobe pneumonia."\n'
    b'"1. Stable position of the endotracheal tube.\n\n2. Cannot exclude a small left effusion."\n'
)
# Its output, byte for byte: Reports as read, then the 14 observations as pandas writes floats.
STANFORD_OUTPUT = (
    b'Reports,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Lesion,Lung Opacity,Edema,Consolidation,'
    b'Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices\n'
    b'The heart is normal in size. No pneumothorax or pleural effusion.,1.0,,0.0,,,,,,,0.0,0.0,,,\n'
    b'"Mild cardiomegaly, possible right lower lobe pneumonia.",,,1.0,,,,,-1.0,,,,,,\n'
    b'"1. Stable position of the endotracheal tube.\n\n2. Cannot exclude a small left effusion.",,,,,,,,,,,-1.0,,,1.0\n'
)


def test_chexpert_format_reads_and_writes_the_stanford_labelers_files(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_bytes(STANFORD_INPUT)
    summary = _run(tmp_path, source, "labeled_reports.csv", format="chexpert")
    assert (tmp_path / "labeled_reports.csv").read_bytes() == STANFORD_OUTPUT
    assert summary.reports == 3 and summary.input_kind == "chexpert csv"
    assert json.loads(config_path_for(tmp_path / "labeled_reports.csv").read_text())["config"]["format"] == "chexpert"


def test_chexpert_output_round_trips(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_bytes(STANFORD_INPUT)
    _run(tmp_path, source, "chexpert.csv", format="chexpert")
    rows = _read_csv(tmp_path / "chexpert.csv")
    # The Reports column gives back the input reports exactly (commas and line breaks included).
    with open(source, encoding="utf-8", newline="") as f:
        assert [r["Reports"] for r in rows] == [cells[0] for cells in csv.reader(f)]
    # Read back as an ordinary CSV with a header, the same reports get the same labels.
    _run(tmp_path, tmp_path / "chexpert.csv", "again.csv", column="Reports")
    again = _read_csv(tmp_path / "again.csv")
    as_int = {"1.0": "1", "0.0": "0", "-1.0": "-1", "": ""}
    assert [[as_int[r[o]] for o in OBSERVATIONS] for r in rows] == [[r[o] for o in OBSERVATIONS] for r in again]
    # And the same reports as a text file (one per line) agree where they fit on one line.
    (tmp_path / "r.txt").write_text("\n".join(r["Reports"] for r in rows[:2]) + "\n", encoding="utf-8")
    _run(tmp_path, tmp_path / "r.txt", "text.csv")
    assert [[r[o] for o in OBSERVATIONS] for r in _read_csv(tmp_path / "text.csv")] == \
        [[r[o] for o in OBSERVATIONS] for r in again[:2]]


def test_chexpert_format_from_a_text_file_and_blank_rows(tmp_path):
    # Blank rows are skipped as pandas does; any input kind can be written in the Stanford layout.
    (tmp_path / "in.csv").write_bytes(b"Mild cardiomegaly.\n\nNo pneumothorax.\n")
    _run(tmp_path, tmp_path / "in.csv", "a.csv", format="chexpert")
    (tmp_path / "in.txt").write_bytes(b"Mild cardiomegaly.\nNo pneumothorax.\n")
    _run(tmp_path, tmp_path / "in.txt", "b.csv", format="chexpert")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert [r["Reports"] for r in _read_csv(tmp_path / "a.csv")] == ["Mild cardiomegaly.", "No pneumothorax."]


@pytest.mark.parametrize("content, match", [
    (b"Heart normal, lungs clear.\n", "line 1: 2 cells; the CheXpert labeler's input has one report per row"),
    (b"No effusion.\n\"  \"\n", "line 2: empty report"),
    (b"No effusion.\n\"unclosed\n", "not valid CSV|line 2"),
])
def test_chexpert_input_errors_name_the_line(tmp_path, content, match):
    source = tmp_path / "reports.csv"
    source.write_bytes(content)
    with pytest.raises(InputError, match=match):
        _run(tmp_path, source, format="chexpert")
    assert not (tmp_path / "out.csv").exists()


def test_chexpert_format_option_conflicts(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_bytes(STANFORD_INPUT)
    with pytest.raises(ConfigError, match="must end in .csv"):
        _run(tmp_path, source, "out.jsonl", format="chexpert")
    with pytest.raises(ConfigError, match="no header|has none"):
        _run(tmp_path, source, column="text", format="chexpert")
