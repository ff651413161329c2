"""What a run logs besides metrics.jsonl: `steps.csv`, one row per optimiser step, and TensorBoard
event files (`tensorboard/`) when tensorboard is installed.

The loop reads each step's statistics one step late (while the device computes the next step), so
a row costs no extra device-to-host synchronisation. Rows are appended as they come and flushed to
disk at the end of every epoch, before that epoch's checkpoint; `--resume` cuts the file back to
the checkpoint's step, so it never holds a step twice. Only the main process writes; the loss terms
are its own batch's (as the progress bar's), the gradient norm and the learning rates are global.

    step, epoch, loss, nll[, clinical_bce][, mfa], lr_<group>..., grad_norm, images_per_s

`loss` is the weighted sum that was backpropagated, `nll` the report's token NLL, `clinical_bce`
the clinical head's Eq. 6-weighted BCE (ACL), `mfa` Eq. 4's alignment term (MFA); `lr_<group>` the
learning rate each optimiser group used for the step (`visual`, `decay`, `no_decay`);
`grad_norm` the global L2 norm of the gradients before clipping (what clip_grad_norm_ returns,
computed when clipping is off too); `images_per_s` the views processed by all processes over the
wall time since the previous step finished.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from irralctl.constants import N_OBSERVATIONS, OBSERVATIONS
from irralctl.utils.io import atomic_write

log = logging.getLogger(__name__)


def step_columns(loss_terms: Sequence[str], lr_groups: Sequence[str]) -> list[str]:
    """The columns of steps.csv for a run with these loss terms and optimiser groups."""
    return ["step", "epoch", "loss", *loss_terms, *(f"lr_{g}" for g in lr_groups), "grad_norm", "images_per_s"]


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


class StepLog:
    """steps.csv (and TensorBoard's per-step scalars) of one run, open for appending."""

    def __init__(self, path: Path, columns: list[str], *, resume_step: int | None = None,
                 tensorboard: Path | None = None):
        self.path, self.columns = Path(path), list(columns)
        if resume_step is not None and self.path.is_file():
            self._cut(resume_step)
        fresh = not self.path.is_file() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if fresh:
            self._csv.writeheader()
        self._tb = _summary_writer(tensorboard, resume_step) if tensorboard is not None else None

    def _cut(self, step: int) -> None:
        """Keep the rows up to `step` (the resumed checkpoint's): later ones belong to a lost epoch."""
        with open(self.path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [r for r in reader if r and r[0].isdigit() and int(r[0]) <= step]
        if header != self.columns:
            log.warning("%s has other columns than this run writes; starting it again", self.path)
            rows = []
        with atomic_write(self.path, newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.columns)
            writer.writerows(rows)

    def write(self, row: Mapping[str, Any]) -> None:
        """One step's row (keys as the columns)."""
        self._csv.writerow({k: _cell(row.get(k)) for k in self.columns})
        if self._tb is not None:
            step = int(row["step"])
            for key in self.columns[2:]:
                value = row.get(key)
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(_step_tag(key), value, step)

    def epoch(self, record: Mapping[str, Any]) -> None:
        """The end of an epoch: its metrics.jsonl record to TensorBoard, and every row to disk."""
        if self._tb is not None:
            for tag, value in epoch_scalars(record).items():
                self._tb.add_scalar(tag, value, int(record["step"]))
            self._tb.flush()
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _step_tag(column: str) -> str:
    if column.startswith("lr_"):
        return f"lr/{column[3:]}"
    if column in ("grad_norm", "images_per_s"):
        return f"train/{column}"
    return f"train_step/{column}"


def epoch_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """TensorBoard tags of an epoch record: `val/<metric>`, `epoch/<figure>`, and per observation
    `val_head_f1/<observation>` and `obs_weights/<observation>`."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in ("epoch", "step") or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[f"val/{key[4:]}" if key.startswith("val_") else f"epoch/{key}"] = float(value)
        elif isinstance(value, list) and len(value) == N_OBSERVATIONS:
            for name, v in zip(OBSERVATIONS, value):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[f"{key}/{name}"] = float(v)
    return out


def _summary_writer(directory: Path, resume_step: int | None):
    """A TensorBoard SummaryWriter, or None (with an info line) where tensorboard cannot be used."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # not installed (ImportError), or an install that fails to import
        log.info("no TensorBoard event files: %s (pip install tensorboard to get them)", e)
        return None
    # purge_step hides what an interrupted epoch logged past the resumed checkpoint.
    return SummaryWriter(str(directory), purge_step=None if resume_step is None else resume_step + 1)

