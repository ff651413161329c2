"""`irralctl label`: the 14 CheXpert observations of every report in a file or prepared dataset.

Every option comes from `irralctl.labeling.config.LabelConfig`.
"""

from __future__ import annotations

from typing import Any

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console
from irralctl.labeling.config import LabelConfig

EPILOG = """Examples:

  irralctl label reports.txt --out labels.csv            (one report per line)

  irralctl label preds.jsonl --field prediction --out labels.jsonl --explain

  irralctl label mimic.csv --column text --out labels.csv

  irralctl label data/iu_xray --out iu_labels.csv        (a prepared dataset: id, split, labels)

  irralctl label reports.txt --out labels.csv --no-finding chexpert   (No Finding as the original labeler)
"""


def _label(*, values: dict[str, Any], given: set[str]) -> None:
    """Label reports with the 14 CheXpert observations: 1 positive, 0 negative, -1 uncertain, blank not mentioned."""
    from rich.table import Table

    from irralctl.cli._progress import progress_bars
    from irralctl.constants import OBSERVATIONS
    from irralctl.labeling import LABELER_NAME, LABELER_VERSION
    from irralctl.labeling.files import label_reports

    config = build(LabelConfig, values, given)
    with progress_bars(transient=True) as progress:
        summary = label_reports(config, progress=progress)
    table = Table(title=f"{summary.reports} reports ({summary.input_kind}) -> {summary.output}", title_justify="left")
    table.add_column("observation")
    for head in ("positive", "negative", "uncertain", "blank"):
        table.add_column(head, justify="right")
    for name in OBSERVATIONS:
        c = summary.counts[name]
        table.add_row(name, *(str(c[k]) for k in ("positive", "negative", "uncertain", "blank")))
    console.print(table)
    console.print(
        f"{LABELER_NAME} {LABELER_VERSION} (No Finding: {config.no_finding}): "
        f"{summary.reports_per_second:,.0f} reports/s; options in {summary.config_path}",
        highlight=False,
    )


label = bind(LabelConfig, _label)
