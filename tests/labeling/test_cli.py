"""`irralctl label` through the CLI: output, summary table, one-line errors."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from irralctl.cli.main import app

runner = CliRunner()


def test_label_text_file(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("Mild cardiomegaly.\nNo pneumothorax.\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    result = runner.invoke(app, ["label", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["Cardiomegaly"] for r in rows] == ["1", ""]
    assert [r["Pneumothorax"] for r in rows] == ["", "0"]
    assert [r["No Finding"] for r in rows] == ["", "1"]
    # The summary table counts each observation.
    line = next(li for li in result.output.splitlines() if "Cardiomegaly" in li)
    assert [c for c in line.replace("│", " ").split() if c.isdigit()] == ["1", "0", "0", "1"]
    assert (tmp_path / "labels.csv.config.json").is_file()


def test_label_jsonl_explain(tmp_path):
    source = tmp_path / "preds.jsonl"
    source.write_text(json.dumps({"id": "a", "text": "Possible pneumonia."}) + "\n")
    out = tmp_path / "labels.jsonl"
    result = runner.invoke(app, ["label", str(source), "--field", "text", "--out", str(out), "--explain"])
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())
    assert row["id"] == "a" and row["Pneumonia"] == -1
    assert row["explain"][7]["rule"] == "uncertainty: 'possible'"


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    source = tmp_path / "reports.csv"
    source.write_text("id,findings\n1,No pneumothorax.\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    result = runner.invoke(app, ["label", str(source), "--out", str(out)])
    assert result.exit_code == 1
    assert "error:" in result.output and "no column 'report'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_label_is_listed():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "label" in result.output


def test_no_finding_option(tmp_path):
    source = tmp_path / "reports.txt"
    source.write_text("Lungs are clear. Small hiatal hernia.\n", encoding="utf-8")
    values = {}
    for policy in (None, "incidental", "chexpert"):
        out = tmp_path / f"{policy}.csv"
        args = ["label", str(source), "--out", str(out)] + (["--no-finding", policy] if policy else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        with open(out, newline="") as f:
            values[policy] = next(csv.DictReader(f))["No Finding"]
        saved = json.loads((tmp_path / f"{policy}.csv.config.json").read_text())
        assert saved["config"]["no_finding"] == saved["labeler"]["no_finding"] == (policy or "incidental")
        assert f"No Finding: {policy or 'incidental'}" in result.output
    assert values == {None: "1", "incidental": "1", "chexpert": ""}
    result = runner.invoke(app, ["label", str(source), "--out", str(tmp_path / "x.csv"), "--no-finding", "strict"])
    assert result.exit_code != 0 and not (tmp_path / "x.csv").exists()
    assert "--no-finding" in runner.invoke(app, ["label", "--help"]).output


def test_label_as_the_stanford_labeler(tmp_path):
    from tests.labeling.test_files import STANFORD_INPUT, STANFORD_OUTPUT

    source, out = tmp_path / "sample_reports.csv", tmp_path / "labeled_reports.csv"
    source.write_bytes(STANFORD_INPUT)
    result = runner.invoke(app, ["label", str(source), "--out", str(out), "--format", "chexpert"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == STANFORD_OUTPUT
    assert "3 reports (chexpert csv)" in result.output
