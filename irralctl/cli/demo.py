"""`irralctl demo`: prepare phantoms, train IRRAL-Net and the language prior, generate, score, draw heatmaps.

Every option comes from `irralctl.demo.config.DemoConfig`.
"""

from __future__ import annotations

from typing import Any

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console, err_console
from irralctl.demo.config import DemoConfig


def _demo(*, values: dict[str, Any], given: set[str]) -> None:
    """Run the whole pipeline on synthetic phantoms on this machine's CPU.

    Every step is the library call behind a command you can type yourself; the commands are printed at the end and saved in OUT/demo.json.
    """
    from rich.table import Table

    from irralctl.cli._progress import progress_bars
    from irralctl.cli.train import _epoch_line
    from irralctl.demo import comparison, run_demo

    cfg = build(DemoConfig, values, given)
    with progress_bars(transient=True, on_event=_epoch_line) as progress:
        result = run_demo(cfg, progress=progress, step=lambda title: err_console.print(f"[bold cyan]{title}[/]"))
    out = result.out
    table = Table(title=f"test split ({result.scores['irral']['n_studies']} phantom studies)")
    table.add_column("metric")
    for name in result.scores:
        table.add_column(name, justify="right")
    for metric, values_ in comparison(result).items():
        if any(v is not None for v in values_.values()):
            table.add_row(metric, *("-" if v is None else f"{v:.3f}" for v in values_.values()))
    console.print(table)
    ce = comparison(result)["ce_macro_f1_14"]
    verdict = "the image path learned" if ce["irral"] > ce["no_image"] + 0.05 else "no clear gain (too few studies or epochs?)"
    console.print(f"clinical efficacy (CE F1, macro over 14): irral {ce['irral']:.3f} vs the language prior "
                  f"{ce['no_image']:.3f}: {verdict}", soft_wrap=True)
    console.print("\n[bold]artefacts[/]")
    console.print(f"  prepared dataset     {out / 'data'}")
    for name, run in result.runs.items():
        console.print(f"  run {name:<16} {run}  (config.json, metrics.jsonl, best.pt, test_metrics.json)", soft_wrap=True)
    for path in result.comparison_files:
        console.print(f"  comparison           {path}", soft_wrap=True)
    for name, path in result.predictions.items():
        console.print(f"  predictions {name:<8} {path}", soft_wrap=True)
    for name, path in result.score_files.items():
        console.print(f"  scores {name:<13} {path}")
    for folder in result.heatmaps:
        console.print(f"  heatmaps             {folder}")
    console.print(f"  summary              {out / 'demo.json'}")
    console.print("\n[bold]the same steps by hand[/]")
    for command in result.commands:
        console.print(f"  {command}", soft_wrap=True, highlight=False)


demo = bind(DemoConfig, _demo)
