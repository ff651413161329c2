"""steps.csv and TensorBoard: one row per optimiser step, cut back on --resume, event files when
tensorboard can be imported and a quiet skip when it cannot."""

from __future__ import annotations

import csv
import math
import sys

import pytest

from irralctl.constants import OBSERVATIONS
from irralctl.training.logs import StepLog, epoch_scalars, step_columns

COLUMNS = step_columns(["nll", "clinical_bce"], ["visual", "decay"])


def _rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _row(step, loss=1.0):
    return {"step": step, "epoch": 1 + (step - 1) // 3, "loss": loss, "nll": loss, "clinical_bce": None,
            "lr_visual": 1e-4, "lr_decay": 2e-4, "grad_norm": 0.5, "images_per_s": 100.0}


def test_columns_name_the_terms_and_groups():
    assert COLUMNS == ["step", "epoch", "loss", "nll", "clinical_bce", "lr_visual", "lr_decay", "grad_norm",
                       "images_per_s"]


def test_rows_are_appended_and_a_resume_cuts_what_came_after_its_checkpoint(tmp_path):
    path = tmp_path / "steps.csv"
    with StepLog(path, COLUMNS) as steps:
        for s in range(1, 6):
            steps.write(_row(s, loss=s / 10))
        steps.epoch({"step": 5})
    rows = _rows(path)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0]["clinical_bce"] == "" and float(rows[1]["loss"]) == 0.2   # a term without studies: empty
    # The checkpoint was written after step 3: steps 4 and 5 are replayed by the resumed run.
    with StepLog(path, COLUMNS, resume_step=3) as steps:
        assert [r["step"] for r in _rows(path)] == ["1", "2", "3"]
        for s in range(4, 7):
            steps.write(_row(s))
    assert [r["step"] for r in _rows(path)] == ["1", "2", "3", "4", "5", "6"]
    # A file with other columns (another version) starts again rather than mixing layouts.
    with StepLog(path, COLUMNS[:-1], resume_step=6):
        pass
    assert _rows(path) == []


def test_epoch_scalars_are_tensorboard_tags():
    record = {"epoch": 2, "step": 6, "best": True, "train_nll": 2.5, "val_bleu_4": 0.1, "val_cider": float("nan"),
              "val_head_f1": [0.5] * 13 + [None], "lr": {"decay": 1e-4}, "monitor": "bleu_4"}
    tags = epoch_scalars(record)
    assert tags["epoch/train_nll"] == 2.5 and tags["val/bleu_4"] == 0.1
    assert "val/cider" not in tags and "epoch/best" not in tags and "epoch/step" not in tags
    assert tags[f"val_head_f1/{OBSERVATIONS[0]}"] == 0.5 and f"val_head_f1/{OBSERVATIONS[-1]}" not in tags


def test_without_tensorboard_the_run_says_so_and_writes_no_events(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # `import` raises ImportError
    with caplog.at_level("INFO", logger="irralctl.training.logs"):
        with StepLog(tmp_path / "steps.csv", COLUMNS, tensorboard=tmp_path / "tensorboard") as steps:
            steps.write(_row(1))
            steps.epoch({"step": 1, "val_loss": 1.0})
    assert "no TensorBoard event files" in caplog.text
    assert not (tmp_path / "tensorboard").exists() and len(_rows(tmp_path / "steps.csv")) == 1


def test_with_tensorboard_the_scalars_are_event_files(tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with StepLog(tmp_path / "steps.csv", COLUMNS, tensorboard=tmp_path / "tb") as steps:
        for s in (1, 2, 3):
            steps.write(_row(s, loss=s))
        steps.epoch({"step": 3, "val_bleu_4": 0.25})
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train_step/loss", "train_step/nll", "lr/visual", "train/grad_norm", "val/bleu_4"} <= set(scalars)
    assert "train_step/clinical_bce" not in scalars                  # empty cells are not logged
    assert [(e.step, e.value) for e in events.Scalars("train_step/loss")] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert math.isclose(events.Scalars("val/bleu_4")[0].value, 0.25)
