"""Figures of generated reports: per-observation CE F1 bars and report-length histograms.

Both take several systems (runs, or one predictions file) and draw them side by side; `irralctl
plot` draws the test split of each run, `irralctl score --plot` one scored predictions file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irralctl.constants import OBSERVATIONS
from irralctl.plots import style

OBSERVATION_F1 = "observation_f1.png"
LENGTHS = "lengths.png"


def observation_f1(systems: Sequence[tuple[str, Sequence[dict]]], title: str = "CE F1 per observation"):
    """Grouped horizontal bars: one cluster per CheXpert observation, one bar per system.

    `systems`: (label, per_observation rows as `irralctl score` writes them: observation, f1, support).
    """
    fig = style.figure(7.5, min(16.0, 1.2 + len(OBSERVATIONS) * (0.2 + 0.12 * len(systems))))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(OBSERVATIONS))
    height = 0.8 / max(1, len(systems))
    for k, (label, rows) in enumerate(systems):
        by_name = {r["observation"]: r for r in rows}
        f1 = [float(by_name.get(o, {}).get("f1") or 0.0) for o in OBSERVATIONS]
        ax.barh(y + (k - (len(systems) - 1) / 2) * height, f1, height, label=label)
    support = {r["observation"]: r.get("support") for r in systems[0][1]} if systems else {}
    ax.set_yticks(y, [f"{o} ({support[o]})" if support.get(o) is not None else o for o in OBSERVATIONS])
    ax.invert_yaxis()                           # CheXpert's order, top to bottom
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (support: reference positives)")
    ax.set_title(title, fontsize=10)
    style.tidy(ax, legend=len(systems) > 1)
    return fig


def lengths(systems: Sequence[tuple[str, Sequence[str], Sequence[str]]]):
    """Per system, histograms of generated and reference report lengths (whitespace tokens, as scored)."""
    fig = style.figure(6.0, 0.6 + 2.6 * max(1, len(systems)))
    axes = [fig.add_subplot(len(systems), 1, k + 1) for k in range(len(systems))]
    for ax, (label, predictions, references) in zip(axes, systems):
        gen = np.array([len(t.split()) for t in predictions])
        ref = np.array([len(t.split()) for t in references])
        top = int(max(gen.max(initial=0), ref.max(initial=0)))
        bins = np.linspace(0, top + 1, min(40, top + 1) + 1)
        ax.hist(ref, bins=bins, alpha=0.5, label=f"reference (mean {ref.mean():.1f})")
        ax.hist(gen, bins=bins, alpha=0.5, label=f"generated (mean {gen.mean():.1f})")
        ax.set_title(f"{label}: {len(gen)} studies", fontsize=10)
        ax.set_xlabel("words")
        ax.set_ylabel("studies")
        style.tidy(ax, legend=True)
    return fig


def plot_scores(result: dict, predictions: Sequence[str], references: Sequence[str], out: Path,
                label: str = "predictions") -> list[Path]:
    """`irralctl score --plot DIR`: the per-observation F1 bars (with clinical efficacy) and the length
    histogram of one scored predictions file."""
    written = []
    per_observation = (result.get("clinical") or {}).get("per_observation")
    if per_observation:
        title = f"CE F1 per observation, {result['n_studies']} studies"
        written.append(style.save(observation_f1([(label, per_observation)], title), out / OBSERVATION_F1))
    written.append(style.save(lengths([(label, predictions, references)]), out / LENGTHS))
    return written
