"""`irralctl plot`: the figures of training runs, checked through matplotlib's objects (lines, bars,
images), not pixels."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.constants import OBSERVATIONS
from irralctl.plots import reports
from irralctl.plots.runs import (
    CONFUSION,
    head_figure,
    read_run_logs,
    smoothed,
    training_figure,
    validation_figure,
)
from irralctl.utils.io import write_jsonl
from tests.fixtures.compare_runs import good, make_run, references

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
LR_GROUPS = ("visual", "decay", "no_decay")


def _logs(run, *, epochs=3, steps_per_epoch=4, acl=True, steps=True, monitor="bleu_4"):
    """What `irralctl train` logs: metrics.jsonl, and steps.csv (columns of an ACL run without MFA)."""
    records = []
    for e in range(1, epochs + 1):
        r = {"epoch": e, "step": e * steps_per_epoch, "train_nll": 3.0 / e, "val_loss": 2.5 / e,
             "val_bleu_4": 0.1 * e, "val_rouge_l": 0.2 * e, "val_cider": 0.3 * e, "val_ce_macro_f1_14": 0.05 * e,
             "monitor": monitor, "monitor_value": 0.1 * e, "best": e == 2, "lr": {"decay": 1e-4}}
        if acl:
            r.update(train_clinical_bce=0.7 / e, val_head_f1=[0.5] * 13 + [None], val_head_f1_macro=0.5,
                     val_head_confusion=[[1, 2, 3, 4]] * 14)
        records.append(r)
    write_jsonl(run / "metrics.jsonl", records)
    if steps:
        terms = ["nll", *(["clinical_bce"] if acl else [])]
        with open(run / "steps.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "epoch", "loss", *terms, *(f"lr_{g}" for g in LR_GROUPS), "grad_norm", "images_per_s"])
            for s in range(1, epochs * steps_per_epoch + 1):
                w.writerow([s, 1 + (s - 1) // steps_per_epoch, 4.0 / s, *([3.0 / s] * len(terms)), 5e-5, 1e-4, 1e-4,
                            1.0, 100.0])
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    refs = references(24)
    a = _logs(make_run(root, "irral", "irral", 0, good(refs, 0), refs))
    b = _logs(make_run(root, "baseline", "baseline", 0, good(refs, 1, keep=0.6), refs), acl=False, steps=False,
              monitor="cider")
    return a, b


def test_training_curves_overlay_the_runs(runs):
    logs = [read_run_logs(p) for p in runs]
    fig = training_figure(logs)
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert set(panels) == {"training loss (backpropagated)", "report NLL per token", "gradient norm",
                           "clinical head BCE (Eq. 6 weights)", "learning rate"}
    # Both runs have an NLL line: irral's per step, the baseline's (no steps.csv) per epoch.
    nll = panels["report NLL per token"]
    assert [line.get_label() for line in nll.lines] == ["irral", "baseline (epoch mean)"]
    assert len(nll.lines[0].get_xdata()) == 12 and list(nll.lines[1].get_xdata()) == [4, 8, 12]
    assert len(panels["learning rate"].lines) == len(LR_GROUPS)   # one per optimiser group of the run with steps
    assert len(panels["training loss (backpropagated)"].lines) == 1


def test_validation_curves_have_a_line_per_run_and_each_monitor(runs):
    fig = validation_figure([read_run_logs(p) for p in runs])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss (validation)", "bleu_4 (validation)", "rouge_l (validation)", "cider (validation)",
                      "ce_macro_f1_14 (validation)", "head_f1_macro (validation)"]
    for ax in fig.axes:
        expected = 1 if ax.get_title().startswith("head") else 2    # the baseline has no clinical head
        assert len(ax.lines) == expected, ax.get_title()
        assert list(ax.lines[0].get_xdata()) == [1, 2, 3]


def test_clinical_head_figure(runs):
    fig = head_figure([read_run_logs(p) for p in runs])
    counts, f1 = fig.axes[0], fig.axes[1]                            # one row: the baseline has no head
    assert [c.get_label() for c in counts.containers] == list(CONFUSION)
    assert all(len(c) == len(OBSERVATIONS) for c in counts.containers)
    assert counts.containers[2][0].get_width() == 3                   # FN of the first observation
    assert "epoch 2" in counts.get_title()                            # the best epoch
    assert f1.images[0].get_array().shape == (len(OBSERVATIONS), 3)   # observations x epochs


def test_observation_f1_and_length_figures():
    rows = [{"observation": o, "f1": i / 20, "support": i} for i, o in enumerate(OBSERVATIONS)]
    fig = reports.observation_f1([("a", rows), ("b", rows)])
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and sum(len(c) for c in ax.containers) == 2 * len(OBSERVATIONS)
    assert ax.containers[0][3].get_width() == pytest.approx(0.15)
    fig = reports.lengths([("a", ["one two", "one"], ["one two three", "a b c d"])])
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["reference (mean 3.5)", "generated (mean 1.5)"] and len(ax.containers) == 2
    heights = [sum(p.get_height() for p in c) for c in ax.containers]
    assert heights == [2, 2]                                         # both studies in each histogram


def test_smoothing_is_a_trailing_mean_that_skips_gaps():
    assert list(smoothed([1, 2, 3, 4], 2)) == [1, 1.5, 2.5, 3.5]
    assert list(smoothed([1, float("nan"), 3], 2)) == [1, 1, 3]
    assert list(smoothed([5, 6], 1)) == [5, 6]


@pytest.mark.slow  # renders the five figures through the CLI
def test_cli_writes_five_pngs(runs, tmp_path):
    out = tmp_path / "figures"
    r = runner.invoke(app, ["plot", *map(str, runs), "--out", str(out)])
    assert r.exit_code == 0, r.output
    names = ["training.png", "validation.png", "observation_f1.png", "head.png", "lengths.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    r = runner.invoke(app, ["plot", str(runs[0]), "--out", str(out)])
    assert r.exit_code == 1 and "already exists" in r.output


def test_a_run_still_training_is_read_from_its_stage_and_missing_figures_are_named(tmp_path):
    stage = tmp_path / ".live.partial"
    stage.mkdir()
    _logs(stage, epochs=1, acl=False)
    r = runner.invoke(app, ["plot", str(tmp_path / "live"), "--out", str(tmp_path / "f")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["training.png", "validation.png"]
    assert "head.png: not drawn, no clinical head" in r.output and "lengths.png: not drawn" in r.output


def test_not_a_run_is_one_line(tmp_path):
    r = runner.invoke(app, ["plot", str(tmp_path / "nowhere"), "--out", str(tmp_path / "f")])
    assert r.exit_code == 1 and "run directory not found" in r.output and not (tmp_path / "f").exists()
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "f")])
    assert r.exit_code == 1 and "no metrics.jsonl" in r.output
