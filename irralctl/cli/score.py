"""`irralctl score PREDS`: NLG and clinical metrics, with protocol, intervals and paired tests.

Every option comes from `irralctl.metrics.config.ScoreConfig`, besides PREDICTIONS and --json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from irralctl.cli._bind import bind, build, extra_option
from irralctl.cli._common import console
from irralctl.constants import (
    CE_AVERAGES,
    CE_MEASURES,
    NLG_METRICS,
    OBSERVATION_SUBSETS,
    SEMANTIC_METRICS,
    STANDARD_METRICS,
    ce_metric_name,
)
from irralctl.metrics.config import ScoreConfig

EPILOG = """Examples:

  irralctl score preds.jsonl --bootstrap 1000 --json scores.json

  irralctl score preds.jsonl --references data/iu_xray:test

  irralctl score a.jsonl --against b.jsonl

  irralctl score preds.jsonl --bertscore --bertscore-model models/my-bert

  irralctl score results.json --references captions_test.json      (coco-caption files)

  irralctl score predictions.txt --references refs.txt              (one report per line)

  irralctl score preds.jsonl --plot figures/preds
"""

_EXTRA = [
    extra_option("predictions", Path, typer.Argument(metavar="PREDICTIONS", help="Predictions: JSONL (one {id, "
                                                          "prediction, reference} object per study), coco-caption "
                                                          "results JSON ([{image_id, caption}]), CSV/TSV (id, "
                                                          "prediction[, reference]) or text (one per line, with "
                                                          "--references refs.txt; or id<TAB>prediction).",
                                                     show_default=False), default=...),
    extra_option("json_out", Optional[Path], typer.Option("--json", metavar="FILE", rich_help_panel="Output",
                                                           help="Write every figure, the protocol, versions and input "
                                                                "sha256 to this JSON file.")),
    extra_option("plot_dir", Optional[Path], typer.Option("--plot", metavar="DIR", rich_help_panel="Output",
                                                           help="Write observation_f1.png (CE F1 per observation) and "
                                                                "lengths.png (generated and reference report lengths) "
                                                                "to this folder.")),
    extra_option("overwrite", bool, typer.Option("--overwrite", rich_help_panel="Output", metavar="",
                                                 help="Replace an existing --json file or --plot folder, once the new "
                                                      "one is complete."),
                 default=False),
]


def _score(*, values: dict[str, Any], given: set[str], predictions: Path, json_out: Path | None,
           plot_dir: Path | None, overwrite: bool) -> None:
    """Score generated reports as coco-caption does (BLEU, METEOR, ROUGE-L, CIDEr-D) plus clinical efficacy."""
    from irralctl.metrics import score_files
    from irralctl.utils.io import write_json
    from irralctl.utils.outputs import check_output, check_replaceable, output_dir

    config = build(ScoreConfig, values, given)
    inputs = [predictions, config.against, config.vocab, config.references.split(":")[0] if config.references else None]
    # Checked before the work: a wrong --json or --plot must not cost a scoring run.
    if json_out is not None:
        check_output(json_out, inputs, flag="--json")
        check_replaceable(json_out, overwrite=overwrite, flag="--json", directory=False)
    if plot_dir is not None:
        check_output(plot_dir, inputs, flag="--plot")
        check_replaceable(plot_dir, overwrite=overwrite, flag="--plot")
    result = score_files(predictions, config)
    if json_out is not None:
        write_json(json_out, result)
    if plot_dir is not None:
        from irralctl.metrics.scoring import scored_studies
        from irralctl.plots import plot_scores

        studies = scored_studies(predictions, config)
        with output_dir(plot_dir, overwrite=overwrite, inputs=inputs, flag="--plot") as stage:
            written = plot_scores(result, studies.predictions, studies.references, stage, label=predictions.name)
    _render(result)
    if json_out is not None:
        console.print(f"wrote {json_out}", highlight=False)
    if plot_dir is not None:
        console.print(f"wrote {', '.join(p.name for p in written)} to {plot_dir}", highlight=False)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _metric_table(title: str, names, result: dict) -> Table:
    metrics, ci = result["metrics"], result.get("intervals", {}).get("metrics", {})
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if ci:
        table.add_column(f"{result['intervals']['confidence']:.0%} CI", justify="right")
    for name in names:
        if name not in metrics:
            if name == "meteor":
                table.add_row(name, "n/a", *([""] if ci else []))
            continue
        row = [name, _fmt(metrics[name])]
        if ci:
            row.append(f"[{ci[name]['low']:.4f}, {ci[name]['high']:.4f}]")
        table.add_row(*row)
    return table


def _render(result: dict) -> None:
    proto = result["protocol"]
    console.print(f"[bold]{result['n_studies']}[/] studies; protocol [bold]{proto['name']}[/]; references: {proto['references']}", highlight=False)
    console.print(_metric_table("NLG (coco-caption)", NLG_METRICS, result))
    m = result["meteor"]
    console.print(f"METEOR: {m['implementation']}" if m["available"] else f"METEOR unavailable: {m['reason']}", highlight=False)
    if "standard" in result:
        console.print(_metric_table("Standard metrics", STANDARD_METRICS, result))
        for name, sig in result["standard"]["signatures"].items():
            console.print(f"  {name}: {sig}", highlight=False)
    if "bertscore" in result:
        console.print(_metric_table("BERTScore", SEMANTIC_METRICS, result))
        console.print(f"  {result['protocol']['bertscore']}", highlight=False)
    if "clinical" in result:
        _render_clinical(result)
    if "against" in result:
        _render_paired(result["against"])
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def _render_clinical(result: dict) -> None:
    ce, metrics = result["clinical"], result["metrics"]
    ci = result.get("intervals", {}).get("metrics", {})
    headline = result["protocol"].get("clinical_headline")
    # A protocol with a headline figure (r2gen: macro over 14) shows that row alone, as its papers
    # report it; the other averages stay in --json.
    title = (f"Clinical efficacy (protocol {result['protocol']['name']})" if headline else
             f"Clinical efficacy (uncertain as {ce['uncertain']}, blank as negative)")
    table = Table(title=title, title_justify="left")
    for col in ("observations", "average", "precision", "recall", "f1"):
        table.add_column(col, justify="right" if col in ("precision", "recall", "f1") else "left")
    if ci:
        table.add_column(f"f1 {result['intervals']['confidence']:.0%} CI", justify="right")
    for subset in OBSERVATION_SUBSETS:
        for avg in CE_AVERAGES:
            f1 = ce_metric_name(avg, "f1", subset)
            if headline and f1 != headline:
                continue
            cells = [_fmt(metrics[ce_metric_name(avg, m, subset)]) for m in CE_MEASURES]
            if ci:
                cells.append(f"[{ci[f1]['low']:.4f}, {ci[f1]['high']:.4f}]")
            table.add_row(subset, avg, *cells)
    console.print(table)
    if headline:
        console.print(f"  {result['protocol']['clinical']}; every average is in --json", highlight=False)
    obs = Table(title="Per observation", title_justify="left")
    for col in ("observation", "precision", "recall", "f1", "support", "predicted"):
        obs.add_column(col, justify="left" if col == "observation" else "right")
    for row in ce["per_observation"]:
        obs.add_row(row["observation"], _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]), str(row["support"]), str(row["predicted"]))
    console.print(obs)
    console.print(f"labels: predictions {ce['label_sources'].get('predictions')}; references {ce['label_sources'].get('references')}", highlight=False)


def _render_paired(against: dict) -> None:
    paired = against["paired"]
    console.print(f"A = this file, B = {against['file']}; paired bootstrap over {paired['n_studies']} studies, "
                  f"{paired['resamples']} resamples: the interval is the percentiles of A - B, p twice the smaller "
                  "share of it on either side of 0", highlight=False)
    table = Table(title="Paired comparison", title_justify="left")
    for col in ("metric", "A", "B", "A - B", f"{paired['confidence']:.0%} CI", "p"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, row in paired["metrics"].items():
        if name.startswith("ce_") and not name.startswith(("ce_micro_f1", "ce_macro_f1", "ce_example_f1")):
            continue  # P and R of every average are in the JSON; the table keeps the F1s
        table.add_row(name, _fmt(row["a"]), _fmt(row["b"]), f"{row['difference']:+.4f}",
                      f"[{row['low']:+.3f}, {row['high']:+.3f}]", f"{row['p_value']:.4f}")
    console.print(table)


score = bind(ScoreConfig, _score, extra=_EXTRA)
