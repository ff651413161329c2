"""`irralctl score`: inputs, errors with file and line, JSON output, datasets, legacy eval, --against."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.metrics import bleu
from tests.fixtures.cli import said
from tests.fixtures.metric_texts import report

runner = CliRunner()
NONE14 = [None] * 14


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(n=30, seed=0, labels=True):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ref = report(rng, 40) or "no acute disease ."
        row = {"id": f"s{i}", "prediction": ref if i % 3 == 0 else report(rng, 40), "reference": ref}
        if labels:
            row["prediction_labels"] = [rng.choice([1, 0, -1, None]) for _ in range(14)]
            row["reference_labels"] = [rng.choice([1, 0, -1, None]) for _ in range(14)]
        rows.append(row)
    return rows


def _score(*args):
    return runner.invoke(app, ["score", *map(str, args), "--meteor", "off"])


def test_scores_a_file_and_writes_json(tmp_path):
    rows = _rows()
    preds = _write_jsonl(tmp_path / "preds.jsonl", rows)
    out = tmp_path / "scores.json"
    result = _score(preds, "--json", out)
    assert result.exit_code == 0, result.output
    assert "bleu_4" in result.output and "Per observation" in result.output and "Cardiomegaly" in result.output
    data = json.loads(out.read_text())
    want, _ = bleu.compute_score({r["id"]: [r["reference"]] for r in rows}, {r["id"]: [r["prediction"]] for r in rows})
    assert data["metrics"]["bleu_4"] == pytest.approx(want[3], abs=1e-12)
    assert data["inputs"]["predictions"]["sha256"] == hashlib.sha256(preds.read_bytes()).hexdigest()
    assert data["versions"]["pycocoevalcap"] == "1.2" and "numpy" in data["versions"]
    assert "coco-caption" in data["protocol"]["nlg"] and data["protocol"]["references"].startswith("full")
    assert data["meteor"]["available"] is False and data["config"]["meteor"] == "off"
    assert data["clinical"]["label_sources"]["predictions"].startswith("input file")
    assert len(data["clinical"]["per_observation"]) == 14


@pytest.mark.parametrize("content, where", [
    ('{"id": "a", "prediction": "x", "reference": "y"}\nnot json\n', "line 2"),
    ('{"id": "a", "reference": "y"}\n', "field 'prediction'"),
    ('{"id": "a", "prediction": 3, "reference": "y"}\n', "field 'prediction'"),
    ('{"prediction": "x", "reference": "y"}\n', "field 'id'"),
    ('{"id": "a", "prediction": "x"}\n', "field 'reference'"),
    ('', "empty"),
    ('{"id": "a", "prediction": "x", "reference": "y"}\n{"id": "a", "prediction": "x", "reference": "y"}\n', "duplicate"),
    ('{"id": "a", "prediction": "x", "reference": "y", "prediction_labels": [1, 2]}\n', "prediction_labels"),
    ('[1, 2]\n', "line 1"),
])
def test_bad_input_stops_with_file_and_line_and_writes_nothing(tmp_path, content, where):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(content, encoding="utf-8")
    out = tmp_path / "scores.json"
    out.write_text("previous", encoding="utf-8")
    result = _score(preds, "--json", out, "--overwrite")
    assert result.exit_code == 1
    assert "preds.jsonl" in said(result) and where in said(result), said(result)
    assert out.read_text() == "previous"  # an existing output survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.jsonl", "scores.json"]  # no temporary left


def test_duplicate_ids_are_all_listed(tmp_path):
    rows = [{"id": i, "prediction": "x", "reference": "y"} for i in ("a", "b", "a", "c", "b")]
    result = _score(_write_jsonl(tmp_path / "p.jsonl", rows))
    assert result.exit_code == 1
    text = said(result)
    assert "2 duplicate id(s)" in text and "a (lines 1, 3)" in text and "b (lines 2, 5)" in text


def _dataset(tmp_path, n=12, seed=1):
    root = tmp_path / "ds"
    (root / "tokenizers").mkdir(parents=True)
    rng = random.Random(seed)
    records = []
    for i in range(n):
        words = [rng.choice(["the", "heart", "is", "normal", "size", "lungs", "clear", "rare"]) for _ in range(rng.randint(3, 80))]
        target = " ".join(words) + " ."
        records.append({"id": f"CXR{i}", "target": target, "legacy_target": target.replace("rare", "rarely"),
                        "labels": {"chexpert": [rng.choice([1, 0, -1, None]) for _ in range(14)]}})
    _write_jsonl(root / "test.jsonl", records)
    _write_jsonl(root / "val.jsonl", records[:3])
    (root / "dataset.json").write_text(json.dumps({"format_version": 1, "name": "iu_xray", "fingerprint": "abc"}))
    vocab = {"<unk>": 1, ".": 2, "heart": 3, "is": 4, "lungs": 5, "normal": 6, "the": 7}
    (root / "tokenizers" / "legacy.json").write_text(json.dumps({"kind": "legacy", "threshold": 3, "token2idx": vocab}))
    return root, records


def test_references_from_a_prepared_dataset(tmp_path):
    root, records = _dataset(tmp_path)
    rows = [{"id": r["id"], "prediction": "the heart is normal .", "prediction_labels": NONE14} for r in reversed(records)]
    preds = _write_jsonl(tmp_path / "p.jsonl", rows)
    out = tmp_path / "s.json"
    result = _score(preds, "--references", root, "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    want, _ = bleu.compute_score({r["id"]: [r["target"]] for r in records}, {r["id"]: ["the heart is normal ."] for r in records})
    assert data["metrics"]["bleu_1"] == pytest.approx(want[0], abs=1e-12)
    assert data["inputs"]["references"]["split"] == "test" and data["inputs"]["references"]["field"] == "target"
    assert data["clinical"]["label_sources"]["references"].startswith("dataset labels.chexpert")
    support = sum(r["support"] for r in data["clinical"]["per_observation"])
    assert support == sum(v == 1 for r in records for v in r["labels"]["chexpert"])


def test_dataset_ids_must_match(tmp_path):
    root, records = _dataset(tmp_path)
    rows = [{"id": r["id"], "prediction": "x", "prediction_labels": NONE14} for r in records[:5]] + [{"id": "ghost", "prediction": "x", "prediction_labels": NONE14}]
    result = _score(_write_jsonl(tmp_path / "p.jsonl", rows), "--references", root)
    assert result.exit_code == 1 and "1 prediction id(s) not in split 'test': ghost" in said(result)
    rows = rows[:-1]
    result = _score(_write_jsonl(tmp_path / "p.jsonl", rows), "--references", f"{root}:test")
    assert result.exit_code == 1 and "7 stud(y/ies) of split 'test' have no prediction" in said(result)
    assert "--allow-subset" in said(result)
    result = _score(tmp_path / "p.jsonl", "--references", f"{root}:val", "--allow-subset")
    assert result.exit_code == 1 and "not in split 'val'" in said(result)
    result = _score(tmp_path / "p.jsonl", "--references", root, "--allow-subset")
    assert result.exit_code == 0, result.output
    assert "5 studies" in result.output


def test_legacy_eval_truncates_and_maps_to_unk(tmp_path):
    root, records = _dataset(tmp_path)
    rows = [{"id": r["id"], "prediction": "the heart is normal .", "prediction_labels": NONE14} for r in records]
    out = tmp_path / "s.json"
    result = _score(_write_jsonl(tmp_path / "p.jsonl", rows), "--references", root, "--legacy-eval", "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    legacy = data["protocol"]["legacy"]
    assert legacy["max_seq_length"] == 60 and legacy["kept_tokens"] == 59 and legacy["vocabulary_size"] == 7
    vocab = {"<unk>", ".", "heart", "is", "lungs", "normal", "the"}
    refs = {r["id"]: [" ".join(t if t in vocab else "<unk>" for t in r["legacy_target"].split()[:59])] for r in records}
    want, _ = bleu.compute_score(refs, {r["id"]: ["the heart is normal ."] for r in records})
    assert data["metrics"]["bleu_1"] == pytest.approx(want[0], abs=1e-12)
    assert data["inputs"]["references"]["field"] == "legacy_target"
    # --max-seq-length 10 keeps 9 tokens
    result = _score(tmp_path / "p.jsonl", "--references", root, "--legacy-eval", "--max-seq-length", "10", "--json", out,
                    "--overwrite")
    assert result.exit_code == 0 and json.loads(out.read_text())["protocol"]["legacy"]["kept_tokens"] == 9


def test_legacy_eval_from_a_file_needs_a_vocabulary(tmp_path):
    preds = _write_jsonl(tmp_path / "p.jsonl", _rows(5))
    result = _score(preds, "--legacy-eval")
    assert result.exit_code == 1 and "--vocab" in said(result)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"token2idx": {"the": 1, "heart": 2}}))
    out = tmp_path / "s.json"
    result = _score(preds, "--legacy-eval", "--vocab", vocab, "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["protocol"]["legacy"]["cleaner"] == "legacy-iu"


def test_against_runs_a_paired_comparison(tmp_path):
    rows = _rows(40)
    a = _write_jsonl(tmp_path / "a.jsonl", rows)
    better = [dict(r, prediction=r["reference"], prediction_labels=r["reference_labels"]) for r in rows]
    b = _write_jsonl(tmp_path / "b.jsonl", list(reversed(better)))  # order does not matter, ids do
    out = tmp_path / "s.json"
    result = _score(a, "--against", b, "--bootstrap", "200", "--json", out)
    assert result.exit_code == 0, result.output
    assert "Paired comparison" in result.output
    paired = json.loads(out.read_text())["against"]["paired"]
    assert paired["resamples"] == 200 and paired["n_studies"] == 40 and paired["method"].startswith("paired bootstrap")
    assert "paired bootstrap over 40 studies, 200 resamples" in " ".join(result.output.split())
    row = paired["metrics"]["bleu_4"]
    assert row["difference"] < 0 and row["high"] < 0 and row["p_value"] < 0.05
    assert paired["metrics"]["ce_micro_f1_14"]["b"] == 1.0
    # different study sets are refused
    result = _score(a, "--against", _write_jsonl(tmp_path / "c.jsonl", rows[:-1]))
    assert result.exit_code == 1 and "different studies" in said(result)


def test_against_with_few_studies_warns_and_interval_and_p_agree(tmp_path):
    """10 studies, B perfect on every one: the interval leaves 0 out and p says the same (both from
    one bootstrap), and the output warns that 10 studies are too few to trust either."""
    rows = _rows(10, seed=3)
    a = _write_jsonl(tmp_path / "a.jsonl", rows)
    b = _write_jsonl(tmp_path / "b.jsonl", [dict(r, prediction=r["reference"]) for r in rows])
    out = tmp_path / "s.json"
    result = _score(a, "--against", b, "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["against"]["paired"]["resamples"] == 1000          # --paired-resamples' default
    for name, row in data["against"]["paired"]["metrics"].items():
        if row["high"] < 0 or row["low"] > 0:
            assert row["p_value"] <= 0.05 + 2 / 1001, name
        if row["p_value"] < 0.05:
            assert row["high"] < 0 or row["low"] > 0, name
    assert data["against"]["paired"]["metrics"]["rouge_l"]["high"] < 0
    assert any("only 10 studies" in w and "cannot be trusted" in w for w in data["warnings"])
    assert "only 10 studies" in " ".join(result.output.split())


@pytest.mark.slow  # draws the figures
def test_plot_writes_observation_f1_and_lengths(tmp_path):
    from irralctl.plots.reports import LENGTHS, OBSERVATION_F1

    preds = _write_jsonl(tmp_path / "p.jsonl", _rows(20))
    plots = tmp_path / "figures"
    result = _score(preds, "--plot", plots)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in plots.iterdir()) == sorted([OBSERVATION_F1, LENGTHS])
    assert all((plots / n).read_bytes().startswith(b"\x89PNG") for n in (OBSERVATION_F1, LENGTHS))
    assert _score(preds, "--plot", plots).exit_code == 1               # exists: --overwrite replaces it
    assert _score(preds, "--plot", plots, "--overwrite").exit_code == 0
    result = _score(preds, "--plot", tmp_path / "n", "--no-clinical")  # without CE: the lengths only
    assert result.exit_code == 0 and [p.name for p in (tmp_path / "n").iterdir()] == [LENGTHS]


def test_bootstrap_intervals_in_table_and_json(tmp_path):
    out = tmp_path / "s.json"
    result = _score(_write_jsonl(tmp_path / "p.jsonl", _rows(50)), "--bootstrap", "100", "--seed", "1", "--json", out, "--per-study")
    assert result.exit_code == 0, result.output
    assert "95% CI" in result.output
    data = json.loads(out.read_text())
    ci = data["intervals"]["metrics"]["rouge_l"]
    assert ci["low"] <= data["metrics"]["rouge_l"] <= ci["high"]
    assert data["intervals"]["seed"] == 1 and len(data["per_study"]["rouge_l"]) == 50


@pytest.mark.slow  # imports rouge-score, and with it nltk (two seconds)
def test_standard_metrics_have_signatures(tmp_path):
    out = tmp_path / "s.json"
    result = _score(_write_jsonl(tmp_path / "p.jsonl", _rows(10)), "--standard", "--no-clinical", "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"sacrebleu", "chrf", "rs_rouge1", "rs_rouge2", "rs_rougeL"} <= set(data["metrics"])
    assert data["standard"]["signatures"]["sacrebleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "clinical" not in data


def test_uncleaned_text_is_warned_about(tmp_path):
    rows = [{"id": str(i), "prediction": "The heart is normal.", "reference": "Lungs are clear, no effusion."} for i in range(5)]
    result = _score(_write_jsonl(tmp_path / "p.jsonl", rows), "--no-clinical")
    assert result.exit_code == 0 and "punctuation attached" in result.output


def test_bad_options_are_refused(tmp_path):
    preds = _write_jsonl(tmp_path / "p.jsonl", _rows(3))
    for args in (["--meteor", "java"], ["--uncertain", "maybe"], ["--protocol", "r2gen", "--uncertain", "positive"], ["--max-seq-length", "20"]):
        result = runner.invoke(app, ["score", str(preds), *args])
        assert result.exit_code != 0, args


def test_r2gen_protocol_shows_its_own_clinical_figure(tmp_path):
    preds = _write_jsonl(tmp_path / "preds.jsonl", _rows())
    default, r2gen = _score(preds), _score(preds, "--protocol", "r2gen")
    assert default.exit_code == 0 and r2gen.exit_code == 0, r2gen.output

    def ce_rows(output: str) -> list[str]:
        return [line for line in output.splitlines() if line.startswith("│ 14 ") or line.startswith("│ 5 ")]

    assert len(ce_rows(default.output)) == 6  # micro, macro, example over 14 and over 5
    [row] = ce_rows(r2gen.output)  # R2Gen/CMN publish one figure: macro over the 14 observations
    assert "macro" in row and "R2Gen/CMN protocol" in r2gen.output
    macro14 = next(line for line in ce_rows(default.output) if line.startswith("│ 14 ") and "macro" in line)
    assert row == macro14
