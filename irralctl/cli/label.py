"""`irralctl label`: the 14 CheXpert observations of every report in a file or prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from irralctl.cli._common import Overwrite, console, err_console
from irralctl.labeling import LABELER_NAME, LABELER_VERSION, OBSERVATIONS
from irralctl.labeling.files import LabelConfig, label_reports

EPILOG = """
Examples:

  irralctl label reports.txt --out labels.csv            (one report per line)

  irralctl label preds.jsonl --field prediction --out labels.jsonl --explain

  irralctl label mimic.csv --column text --out labels.csv

  irralctl label data/iu_xray --out iu_labels.csv        (a prepared dataset: id, split, labels)
"""


def label(
    input: Annotated[Path, typer.Argument(help="Reports: a .txt file (one per line), a .csv, a .jsonl, or a prepared dataset directory.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file, .csv or .jsonl (by extension); its options go to <name>.config.json beside it.", show_default=False)],
    column: Annotated[str, typer.Option("--column", help="CSV input: the column holding the report text.")] = "report",
    field: Annotated[str, typer.Option("--field", help="JSONL input or dataset records: the field holding the report text.")] = "report",
    explain: Annotated[bool, typer.Option("--explain", help="Add, per observation, the phrase, sentence and rule that decided it. Default: off.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Label reports with the 14 CheXpert observations: 1 positive, 0 negative, -1 uncertain, blank not mentioned."""
    config = LabelConfig(input=input, out=out, column=column, field=field, explain=explain, overwrite=overwrite)
    columns = (SpinnerColumn(), TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("label", total=None)
        summary = label_reports(config, progress=lambda n: bar.update(task, completed=n) if n % 256 == 0 else None)

    table = Table(title=f"{summary.reports} reports ({summary.input_kind}) -> {summary.output}", title_justify="left")
    table.add_column("observation")
    for head in ("positive", "negative", "uncertain", "blank"):
        table.add_column(head, justify="right")
    for name in OBSERVATIONS:
        c = summary.counts[name]
        table.add_row(name, *(str(c[k]) for k in ("positive", "negative", "uncertain", "blank")))
    console.print(table)
    console.print(
        f"{LABELER_NAME} {LABELER_VERSION}: {summary.reports_per_second:,.0f} reports/s; options in {summary.config_path}",
        highlight=False,
    )
