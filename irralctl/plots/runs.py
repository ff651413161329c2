"""`irralctl plot RUN... --out DIR`: how training runs went, several runs overlaid, labelled by name.

From each run directory (docs/formats.md, "Run directory"), or from the `.NAME.partial` stage of a
run still training:

    training.png        per step (steps.csv): the loss, each loss term, the gradient norm and the
                        learning rate of every optimiser group; runs without steps.csv give their
                        per-epoch training losses (metrics.jsonl) instead
    validation.png      per epoch (metrics.jsonl): validation loss, BLEU-4, ROUGE-L, CIDEr-D, CE F1,
                        the clinical head's macro F1, and each run's monitor
    observation_f1.png  the test split's CE F1 per observation (test_metrics.json)
    head.png            the clinical head (ACL): its TP / FP / FN / TN per observation at the best
                        epoch, and its F1 per observation over the epochs (metrics.jsonl)
    lengths.png         generated and reference report lengths on the test split (test_predictions.jsonl)

A figure whose inputs no run has is left out, and said so.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irralctl.constants import OBSERVATIONS
from irralctl.errors import InputError
from irralctl.plots import reports, style
from irralctl.plots.config import PlotConfig
from irralctl.runs.layout import RunLayout, stage_of
from irralctl.utils.io import iter_jsonl, read_json
from irralctl.utils.outputs import output_dir

TRAINING, VALIDATION, HEAD = "training.png", "validation.png", "head.png"
LOSS_TERMS = ("loss", "nll", "clinical_bce", "mfa")
# Validation figures drawn when a run has them, in this order (each run's monitor is added).
VALIDATION_PANELS = ("val_loss", "val_bleu_4", "val_rouge_l", "val_cider", "val_ce_macro_f1_14", "val_head_f1_macro")
CONFUSION = ("TP", "FP", "FN", "TN")


def read_steps(path: str | Path) -> dict[str, list[float]]:
    """steps.csv as columns of numbers (empty cells as NaN)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns: dict[str, list[float]] = {name: [] for name in reader.fieldnames or ()}
        for row in reader:
            for name in columns:
                text = row.get(name) or ""
                columns[name].append(float(text) if text else math.nan)
    return columns


@dataclass
class RunLogs:
    """What a run directory holds for plotting; every part may be missing but the epochs."""

    name: str
    path: Path                                   # where it was read (the run, or its stage)
    epochs: list[dict]                           # metrics.jsonl
    steps: dict[str, list[float]] | None = None  # steps.csv
    test_metrics: dict | None = None             # test_metrics.json
    predictions: list[dict] = field(default_factory=list)  # test_predictions.jsonl


def read_run_logs(path: str | Path, name: str | None = None) -> RunLogs:
    """A run's logs, from the run directory or, while it trains, from its stage."""
    path = Path(path)
    where = path
    if not RunLayout(path).metrics.is_file() and RunLayout(stage_of(path)).metrics.is_file():
        where = stage_of(path)
    layout = RunLayout(where)
    if not layout.metrics.is_file():
        if not path.exists():
            raise InputError("run directory not found", path=path, hint="give directories written by `irralctl train`")
        raise InputError("no metrics.jsonl: not a run written by `irralctl train`, or no epoch has finished yet",
                         path=path)
    run = RunLogs(name or path.name, where, [r for _, r in iter_jsonl(layout.metrics)])
    if layout.steps.is_file():
        run.steps = read_steps(layout.steps)
    if layout.test_metrics.is_file():
        run.test_metrics = read_json(layout.test_metrics)
    if layout.test_predictions.is_file():
        run.predictions = [r for _, r in iter_jsonl(layout.test_predictions)]
    return run


def _names(paths: Sequence[Path]) -> list[str]:
    """Each run's directory name; the parent is added where two names would be the same."""
    names = [Path(p).name for p in paths]
    return [f"{Path(p).parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def smoothed(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over `window` values (fewer at the start); NaNs are skipped."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(v) == 0:
        return v
    ok = ~np.isnan(v)
    sums = np.cumsum(np.where(ok, v, 0.0))
    counts = np.cumsum(ok)
    lag = lambda a: np.concatenate([np.zeros(window), a[:-window]]) if len(a) > window else np.zeros(len(a))  # noqa: E731
    n = counts - lag(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums - lag(sums)) / np.maximum(n, 1), np.nan)


# -- figures ------------------------------------------------------------------------------------

def training_figure(runs: Sequence[RunLogs], smooth: int = 0):
    """Per-step losses, gradient norm and learning rates; one line per run (per group for rates)."""
    panels: list[str] = []
    for run in runs:
        names = list(run.steps) if run.steps else [k.removeprefix("train_") for r in run.epochs for k in r
                                                   if k in ("train_nll", "train_clinical_bce", "train_mfa")]
        panels += [p for p in (*LOSS_TERMS, "grad_norm") if p in names and p not in panels]
    if any(run.steps and any(c.startswith("lr_") for c in run.steps) for run in runs):
        panels.append("lr")
    if not panels:
        return None
    fig = style.figure(12.0, 3.2 * -(-len(panels) // 3))
    axes = dict(zip(panels, style.grid(fig, len(panels))))
    for run in runs:
        if run.steps:
            step = np.asarray(run.steps["step"])
            window = smooth or max(1, len(step) // 100)
            for name in panels:
                if name == "lr":
                    for column in (c for c in run.steps if c.startswith("lr_")):
                        axes["lr"].plot(step, run.steps[column], label=f"{run.name}: {column[3:]}")
                elif name in run.steps:
                    axes[name].plot(step, smoothed(run.steps[name], window), label=run.name)
        else:  # a run from before steps.csv: its epoch means
            for name in panels:
                key = f"train_{name}"
                points = [(r["step"], r[key]) for r in run.epochs if r.get(key) is not None and "step" in r]
                if points:
                    axes[name].plot(*zip(*points), marker="o", label=f"{run.name} (epoch mean)")
    titles = {"loss": "training loss (backpropagated)", "nll": "report NLL per token", "grad_norm": "gradient norm",
              "clinical_bce": "clinical head BCE (Eq. 6 weights)", "mfa": "MFA alignment term (Eq. 4)",
              "lr": "learning rate"}
    for name, ax in axes.items():
        ax.set_title(titles[name], fontsize=10)
        ax.set_xlabel("optimiser step")
        if name == "lr":
            ax.set_yscale("log")  # warm-up and plateau cuts span decades
        style.tidy(ax, legend=True)
    return fig


def validation_figure(runs: Sequence[RunLogs]):
    """Validation figures per epoch; one line per run."""
    present = {k for run in runs for r in run.epochs for k, v in r.items() if isinstance(v, (int, float))}
    monitors = [f"val_{r.get('monitor')}" for run in runs for r in run.epochs[-1:] if r.get("monitor")]
    panels = [p for p in dict.fromkeys([*VALIDATION_PANELS, *monitors]) if p in present]
    if not panels:
        return None
    fig = style.figure(12.0, 3.2 * -(-len(panels) // 3))
    for name, ax in zip(panels, style.grid(fig, len(panels))):
        for run in runs:
            points = [(r["epoch"], r[name]) for r in run.epochs if r.get(name) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=run.name)
        ax.set_title(name.removeprefix("val_") + " (validation)", fontsize=10)
        ax.set_xlabel("epoch")
        style.tidy(ax, legend=True)
    return fig


def _best(run: RunLogs) -> dict:
    best = [r for r in run.epochs if r.get("best")]
    return (best or run.epochs)[-1]


def head_figure(runs: Sequence[RunLogs]):
    """Per run with a clinical head: its confusion counts at the best epoch (when logged) and its F1
    per observation over the epochs."""
    heads = [run for run in runs if any(r.get("val_head_f1") for r in run.epochs)]
    if not heads:
        return None
    fig = style.figure(13.0, 4.2 * len(heads))
    y = np.arange(len(OBSERVATIONS))
    for k, run in enumerate(heads):
        best = _best(run)
        counts = best.get("val_head_confusion")
        ax = fig.add_subplot(len(heads), 2, 2 * k + 1)
        if counts:
            table = np.asarray(counts, dtype=np.float64)             # (14, 4): TP, FP, FN, TN
            left = np.zeros(len(OBSERVATIONS))
            for j, name in enumerate(CONFUSION):
                ax.barh(y, table[:, j], left=left, label=name)
                left += table[:, j]
            ax.set_title(f"{run.name}: head at epoch {best.get('epoch')} (validation studies)", fontsize=10)
        else:
            ax.text(0.5, 0.5, "no confusion counts in metrics.jsonl\n(a run from before they were logged)",
                    ha="center", va="center", transform=ax.transAxes, fontsize=style.SMALL)
            ax.set_title(f"{run.name}: head", fontsize=10)
        ax.set_yticks(y, OBSERVATIONS)
        ax.invert_yaxis()
        style.tidy(ax, legend=bool(counts))
        ax = fig.add_subplot(len(heads), 2, 2 * k + 2)
        epochs = [r for r in run.epochs if r.get("val_head_f1")]
        f1 = np.array([[math.nan if v is None else v for v in r["val_head_f1"]] for r in epochs]).T  # (14, epochs)
        image = ax.imshow(f1, aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest",
                          extent=(epochs[0]["epoch"] - 0.5, epochs[-1]["epoch"] + 0.5, len(OBSERVATIONS) - 0.5, -0.5))
        fig.colorbar(image, ax=ax, label="F1")
        ax.set_yticks(y, OBSERVATIONS)
        ax.set_xlabel("epoch")
        ax.set_title(f"{run.name}: head F1 per observation (blank: no positives)", fontsize=10)
        ax.tick_params(labelsize=style.SMALL)
    return fig



# -- the command --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlotResult:
    out: Path
    written: list[str]           # file names in `out`
    skipped: dict[str, str]      # file name -> why it was not drawn


def draw(runs: Sequence[RunLogs], out: Path, smooth: int = 0) -> tuple[list[str], dict[str, str]]:
    """Write every figure the runs have inputs for into `out`; returns (written, skipped with reasons)."""
    written, skipped = [], {}

    def put(name: str, fig, why: str) -> None:
        if fig is None:
            skipped[name] = why
        else:
            style.save(fig, out / name)
            written.append(name)

    put(TRAINING, training_figure(runs, smooth), "no steps.csv or training losses")
    put(VALIDATION, validation_figure(runs), "no validation figures in metrics.jsonl")
    tested = [(run.name, run.test_metrics["clinical"]["per_observation"]) for run in runs
              if ((run.test_metrics or {}).get("clinical") or {}).get("per_observation")]
    n = {run.test_metrics.get("n_studies") for run in runs if run.test_metrics}
    title = "test CE F1 per observation" + (f", {n.pop()} studies" if len(n) == 1 else "")
    put(reports.OBSERVATION_F1, reports.observation_f1(tested, title) if tested else None,
        "no test_metrics.json with clinical efficacy (has the run finished?)")
    put(HEAD, head_figure(runs), "no clinical head (ACL) in these runs")
    decoded = [(run.name, [p["prediction"] for p in run.predictions],
                [p.get("reference") or "" for p in run.predictions]) for run in runs if run.predictions]
    put(reports.LENGTHS, reports.lengths(decoded) if decoded else None, "no test_predictions.jsonl")
    return written, skipped


def plot_runs(cfg: PlotConfig) -> PlotResult:
    """Read the runs of `cfg` and write their figures into `cfg.out` (replaced only once all are drawn)."""
    runs = [read_run_logs(path, name) for path, name in zip(cfg.runs, _names(cfg.runs))]
    with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=[*cfg.runs, *(stage_of(p) for p in cfg.runs)]) as stage:
        written, skipped = draw(runs, stage, cfg.smooth)
    return PlotResult(Path(cfg.out), written, skipped)
