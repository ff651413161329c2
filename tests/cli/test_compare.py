"""`irralctl compare`: Markdown on stdout, the five files of --out, one-line errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from irralctl.cli._bind import leaves
from irralctl.cli.main import app
from irralctl.compare import OUTPUT_FILES
from irralctl.compare.config import CompareConfig
from tests.fixtures.compare_runs import bad, good, make_run, references

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    refs = references(60)
    paths = []
    for s in range(2):
        paths.append(make_run(root, f"baseline-seed{s}", "baseline", s, bad(refs, s), refs))
        paths.append(make_run(root, f"irral-seed{s}", "irral", s, good(refs, s), refs))
    return root, refs, paths


def _invoke(*args):
    return runner.invoke(app, ["compare", *map(str, args), "--meteor", "off", "--resamples", "300"])


def _said(result) -> str:
    if result.exception is None:
        return result.output
    return f"{result.output}{result.exception}"


def test_every_option_has_help():
    for leaf in leaves(CompareConfig):
        assert leaf.meta.get("help"), leaf.dotted


def test_prints_markdown_and_writes_five_files(runs, tmp_path):
    _, _, paths = runs
    out = tmp_path / "table"
    result = _invoke(*paths, "--out", out)
    assert result.exit_code == 0, _said(result)
    assert "## Mean ± std over seeds" in result.output and "## irral − baseline" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())
    assert set(OUTPUT_FILES.values()) == {"compare.md", "compare.csv", "compare.tex", "compare.json", "compare.png"}

    data = json.loads((out / "compare.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["reference"] == "baseline" and data["runs"][0]["path"] == str(paths[0])
    irral = next(g for g in data["groups"] if g["name"] == "irral")
    diff = data["comparisons"][0]["metrics"]["bleu_4"]
    assert diff["verdict"] == "better" and diff["low"] > 0

    md = (out / "compare.md").read_text()
    assert md.rstrip("\n") in result.output  # what --out writes is what stdout shows
    assert f"| bleu_4 | {data['groups'][0]['metrics']['bleu_4']['mean']:.4f} ± " in md
    assert f"[{diff['low']:+.4f}, {diff['high']:+.4f}]" in md and "**better**" in md
    assert "fewer than 3 seeds in baseline (2), irral (2)" in md and "only 60 test studies" in md

    rows = list(csv.DictReader(io.StringIO((out / "compare.csv").read_text())))
    row = next(r for r in rows if r["group"] == "irral" and r["metric"] == "bleu_4")
    assert float(row["mean"]) == irral["metrics"]["bleu_4"]["mean"] and float(row["difference"]) == diff["difference"]
    assert row["verdict"] == "better" and row["seeds"] == "0;1" and float(row["p_value"]) == diff["p_value"]
    obs = [r for r in rows if r["group"] == "irral" and r["metric"] == "ce_f1"]
    assert len(obs) == 14 and float(obs[2]["mean"]) == irral["per_observation_f1"][obs[2]["observation"]]["mean"]

    tex = (out / "compare.tex").read_text()
    assert "\\toprule" in tex and "Model & BL-1 & BL-2 & BL-3 & BL-4 & MTR & RG-L & CE F1 \\\\" in tex
    m = irral["metrics"]
    assert f"irral & {m['bleu_1']['mean']:.3f}$\\pm${m['bleu_1']['std']:.3f}$^\\dagger$ &" in tex
    assert f"{m['ce_macro_f1_14']['mean']:.3f}" in tex and " -- " in tex  # no METEOR in these runs
    assert tex.count("\\\\") == 3 and "95\\%" in tex

    png = (out / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_without_out_writes_nothing(runs, tmp_path, monkeypatch):
    _, _, paths = runs
    monkeypatch.chdir(tmp_path)
    result = _invoke(*paths[:2], "--group-by", "run")
    assert result.exit_code == 0, _said(result)
    assert "## irral-seed0 − baseline-seed0" in result.output and list(tmp_path.iterdir()) == []


def test_mismatched_studies_are_one_line_errors(runs, tmp_path):
    _, refs, paths = runs
    fewer = {k: v for k, v in refs.items() if k != "s007"}
    short = make_run(tmp_path, "short", "irral", 0, good(fewer, 0), fewer)
    result = _invoke(paths[0], short)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "short: covers other test studies than" in result.output
    assert "only there: s007" in result.output.replace("\n", "")


def test_refuses_an_out_inside_a_run_and_an_existing_out(runs, tmp_path):
    _, _, paths = runs
    result = _invoke(*paths[:2], "--out", paths[0] / "table")
    assert result.exit_code == 1 and "lies inside an input" in result.output
    (tmp_path / "taken").mkdir()
    result = _invoke(*paths[:2], "--out", tmp_path / "taken")
    assert result.exit_code == 1 and "already exists" in result.output
    result = _invoke(*paths[:2], "--out", tmp_path / "taken", "--overwrite")
    assert result.exit_code == 0, _said(result)
    assert (tmp_path / "taken" / "compare.md").is_file()
