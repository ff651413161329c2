"""`irralctl score PREDS`: NLG and clinical metrics, with protocol, intervals and paired tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from irralctl.cli._common import Seed, console
from irralctl.metrics import ScoreConfig, score_files
from irralctl.metrics.clinical import SUBSETS
from irralctl.utils.io import write_json

_NLG = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
_STANDARD = ("sacrebleu", "chrf", "rs_rouge1", "rs_rouge2", "rs_rougeL")


def score(
    predictions: Annotated[Path, typer.Argument(help="Predictions JSONL: one {id, prediction, reference} object per study.")],
    references: Annotated[Optional[str], typer.Option("--references", help="Prepared dataset DIR[:split] (split default: test); references matched by id.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every figure, the protocol, versions and input sha256 to this JSON file.")] = None,
    against: Annotated[Optional[Path], typer.Option("--against", help="Second predictions file: paired bootstrap interval and randomisation p-value of the difference.")] = None,
    meteor: Annotated[str, typer.Option(help="METEOR implementation: auto (jar, else nltk), jar (METEOR 1.5, Java), nltk, off. Default auto.")] = "auto",
    standard: Annotated[bool, typer.Option("--standard/--no-standard", help="Also sacreBLEU BLEU/chrF and rouge-score ROUGE-1/2/L (about 4 s per 4,000 studies). Default off.")] = False,
    clinical: Annotated[bool, typer.Option("--clinical/--no-clinical", help="Clinical efficacy from CheXpert labels. Default on.")] = True,
    uncertain: Annotated[str, typer.Option(help="CheXpert uncertain (-1) counts as: negative or positive. Default negative.")] = "negative",
    protocol: Annotated[str, typer.Option(help="default, or r2gen (CE as R2Gen/CMN published: macro over 14, uncertain/blank negative).")] = "default",
    legacy_eval: Annotated[bool, typer.Option("--legacy-eval", help="Score against R2Gen's truncated, vocabulary-mapped references. Default off (full references).")] = False,
    max_len: Annotated[Optional[int], typer.Option(help="--legacy-eval: R2Gen max_seq_length in tokens incl. its BOS (default 60 IU, 100 MIMIC).")] = None,
    vocab: Annotated[Optional[Path], typer.Option(help="--legacy-eval: legacy vocabulary (JSON with token2idx); default DATASET/tokenizers/legacy.json.")] = None,
    legacy_kind: Annotated[Optional[str], typer.Option(help="--legacy-eval without a dataset: iu_xray or mimic_cxr (cleaner and max length). Default iu_xray.")] = None,
    allow_subset: Annotated[bool, typer.Option("--allow-subset", help="With --references: score only the predicted studies instead of failing on missing ones.")] = False,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for confidence intervals (0 = none). Default 0.")] = 0,
    permutations: Annotated[int, typer.Option(min=1, help="Resamples of the paired test when --bootstrap is 0. Default 1000.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals (fraction). Default 0.95.")] = 0.95,
    per_study: Annotated[bool, typer.Option("--per-study", help="Include per-study scores in the JSON. Default off.")] = False,
    seed: Seed = 0,
) -> None:
    """Score generated reports as coco-caption does (BLEU, METEOR, ROUGE-L, CIDEr-D) plus clinical efficacy."""
    config = ScoreConfig(
        references=references, against=None if against is None else str(against), meteor=meteor, standard=standard,
        clinical=clinical, uncertain=uncertain, protocol=protocol, legacy_eval=legacy_eval, max_len=max_len,
        vocab=None if vocab is None else str(vocab), legacy_kind=legacy_kind, allow_subset=allow_subset,
        bootstrap=bootstrap, permutations=permutations, confidence=confidence, seed=seed, per_study=per_study,
    )
    result = score_files(predictions, config)
    if json_out is not None:
        write_json(json_out, result)
    _render(result)
    if json_out is not None:
        console.print(f"wrote {json_out}", highlight=False)


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
    console.print(_metric_table("NLG (coco-caption)", _NLG, result))
    m = result["meteor"]
    console.print(f"METEOR: {m['implementation']}" if m["available"] else f"METEOR unavailable: {m['reason']}", highlight=False)
    if "standard" in result:
        console.print(_metric_table("Standard metrics", _STANDARD, result))
        for name, sig in result["standard"]["signatures"].items():
            console.print(f"  {name}: {sig}", highlight=False)
    if "clinical" in result:
        _render_clinical(result)
    if "against" in result:
        _render_paired(result["against"])
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def _render_clinical(result: dict) -> None:
    ce, metrics = result["clinical"], result["metrics"]
    ci = result.get("intervals", {}).get("metrics", {})
    table = Table(title=f"Clinical efficacy (uncertain as {ce['uncertain']}, blank as negative)", title_justify="left")
    for col in ("observations", "average", "precision", "recall", "f1"):
        table.add_column(col, justify="right" if col in ("precision", "recall", "f1") else "left")
    if ci:
        table.add_column(f"f1 {result['intervals']['confidence']:.0%} CI", justify="right")
    for subset in SUBSETS:
        for avg in ("micro", "macro", "example"):
            cells = [_fmt(metrics[f"ce_{avg}_{m}_{subset}"]) for m in ("precision", "recall", "f1")]
            f1 = f"ce_{avg}_f1_{subset}"
            if ci:
                cells.append(f"[{ci[f1]['low']:.4f}, {ci[f1]['high']:.4f}]")
            style = "bold" if result["protocol"].get("clinical_headline") == f"ce_{avg}_f1_{subset}" else None
            table.add_row(subset, avg, *cells, style=style)
    console.print(table)
    obs = Table(title="Per observation", title_justify="left")
    for col in ("observation", "precision", "recall", "f1", "support", "predicted"):
        obs.add_column(col, justify="left" if col == "observation" else "right")
    for row in ce["per_observation"]:
        obs.add_row(row["observation"], _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]), str(row["support"]), str(row["predicted"]))
    console.print(obs)
    console.print(f"labels: predictions {ce['label_sources'].get('predictions')}; references {ce['label_sources'].get('references')}", highlight=False)


def _render_paired(against: dict) -> None:
    paired = against["paired"]
    console.print(f"A = this file, B = {against['file']}; {paired['resamples']} resamples", highlight=False)
    table = Table(title="Paired comparison", title_justify="left")
    for col in ("metric", "A", "B", "A - B", f"{paired['confidence']:.0%} CI", "p"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, row in paired["metrics"].items():
        if name.startswith("ce_") and not name.startswith(("ce_micro_f1", "ce_macro_f1", "ce_example_f1")):
            continue  # P and R of every average are in the JSON; the table keeps the F1s
        table.add_row(name, _fmt(row["a"]), _fmt(row["b"]), f"{row['difference']:+.4f}",
                      f"[{row['low']:+.3f}, {row['high']:+.3f}]", f"{row['p_value']:.4f}")
    console.print(table)
