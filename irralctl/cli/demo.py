"""`irralctl demo`: prepare phantoms, train IRRAL-Net and the language prior, generate, score, draw heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from irralctl.cli._common import Overwrite, console, err_console


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for every artefact (data, runs, predictions, scores, heatmaps).")] = Path("demo"),
    quick: Annotated[bool, typer.Option("--quick", help="A reduced run (120 studies, 2 epochs, about a minute): checks every step, proves nothing about quality.")] = False,
    n: Annotated[Optional[int], typer.Option("--n", min=40, help="Phantom studies (two views each). Default 1500 (120 with --quick).", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Training epochs per run. Default 20 (2 with --quick).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the phantoms and of training.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Processes for rendering and data loading. Default 2.")] = 2,
    overwrite: Overwrite = False,
) -> None:
    """Run the whole pipeline on synthetic phantoms on this machine's CPU (about 10 minutes on 2 cores).

    Every step is the library call behind a command you can type yourself; the commands are
    printed at the end and saved in OUT/demo.json.
    """
    from rich.table import Table

    from irralctl.cli._progress import progress_bars
    from irralctl.cli.train import _progress as train_progress
    from irralctl.demo import DemoConfig, comparison, run_demo

    changes = {k: v for k, v in (("n", n), ("epochs", epochs)) if v is not None}
    make = DemoConfig.quick if quick else DemoConfig
    cfg = make(out=out, seed=seed, workers=workers, overwrite=overwrite, **changes)
    with progress_bars() as start, train_progress(True) as callbacks:
        result = run_demo(cfg, progress=start, train_callbacks=callbacks,
                          step=lambda title: err_console.print(f"[bold cyan]{title}[/]"))

    table = Table(title=f"test split ({result.scores['irral']['n_studies']} phantom studies)")
    table.add_column("metric")
    for name in result.scores:
        table.add_column(name, justify="right")
    for metric, values in comparison(result).items():
        if any(v is not None for v in values.values()):
            table.add_row(metric, *("-" if v is None else f"{v:.3f}" for v in values.values()))
    console.print(table)
    ce = comparison(result)["ce_macro_f1_14"]
    verdict = "the image path learned" if ce["irral"] > ce["no_image"] + 0.05 else "no clear gain (too few studies or epochs?)"
    console.print(f"clinical efficacy (CE F1, macro over 14): irral {ce['irral']:.3f} vs the language prior "
                  f"{ce['no_image']:.3f}: {verdict}", soft_wrap=True)
    console.print("\n[bold]artefacts[/]")
    console.print(f"  prepared dataset     {out / 'data'}")
    for name, run in result.runs.items():
        console.print(f"  run {name:<16} {run}  (config.json, metrics.jsonl, best.pt, test_metrics.json)", soft_wrap=True)
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
