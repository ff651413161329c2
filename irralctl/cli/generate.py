"""`irralctl generate INPUT --checkpoint RUN_DIR --out preds.jsonl`: reports for radiographs.

Every option comes from `irralctl.generation.config.GenerateConfig`.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console
from irralctl.generation.config import GenerateConfig

EPILOG = """Examples:

  irralctl generate xrays/ --checkpoint runs/irral --out preds.jsonl

  irralctl generate NLMCXR_png/ --checkpoint runs/irral --out preds.jsonl --no-repeat-ngram 3

  irralctl generate --dataset data/iu --split test --checkpoint runs/irral --out test.jsonl

  irralctl generate scan.dcm --checkpoint runs/irral --out one.txt --n-best 3

  irralctl generate big/ --checkpoint runs/irral --out preds.jsonl --resume
"""


def _generate(*, values: dict[str, Any], given: set[str]) -> None:
    """Generate a report for every study: beam search on CPU or GPU, with the clinical head's observations."""
    from irralctl.cli._progress import progress_bars
    from irralctl.generation import generate_reports

    config = build(GenerateConfig, values, given)
    with progress_bars() as progress:
        result = generate_reports(config, progress=progress)
    resumed = f" ({result.resumed} already written)" if result.resumed else ""
    console.print(f"generated [bold]{result.generated}[/] report(s) of {result.studies} stud(y/ies){resumed} in "
                  f"{result.seconds:.1f} s ({result.studies_per_s:.1f} studies/s after loading) on {result.device}, "
                  f"{result.precision}, batch {result.batch_size}", highlight=False)
    console.print(f"decoding: {result.decoding}", highlight=False)
    if result.flagged:
        console.print("flags: " + ", ".join(f"{k} {v}" for k, v in sorted(result.flagged.items())), highlight=False)
    if result.first is not None:
        console.print(f"[bold]{escape(result.first['id'])}[/]: {escape(result.first['prediction'])}", highlight=False)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    console.print(f"wrote {escape(str(result.out))} and {escape(str(result.config_path))}", highlight=False)


generate = bind(GenerateConfig, _generate)
