"""`irralctl generate INPUT --checkpoint RUN_DIR --out preds.jsonl`: reports for radiographs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from irralctl.cli._common import Device, Overwrite, Seed, console
from irralctl.cli._progress import progress_bars

EPILOG = """Examples:

  irralctl generate xrays/ --checkpoint runs/irral --out preds.jsonl
  irralctl generate NLMCXR_png/ --checkpoint runs/irral --out preds.jsonl --no-repeat-ngram 3
  irralctl generate --dataset data/iu --split test --checkpoint runs/irral --out test.jsonl && irralctl score test.jsonl
  irralctl generate scan.dcm --checkpoint runs/irral --out one.txt --format txt --n-best 3
  irralctl generate big/ --checkpoint runs/irral --out preds.jsonl --resume
"""


def _opt(help: str, **kw):
    return typer.Option(help=help, **kw)


def generate(
    input: Annotated[Optional[Path], typer.Argument(help="An image (PNG, JPEG, DICOM), a folder of studies (one subfolder each), or a flat folder of Open-i / MIMIC-CXR images.")] = None,
    checkpoint: Annotated[Path, _opt("Run directory of `irralctl train` (its best.pt, else last.pt) or a .pt file.")] = ...,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (written when every study is done; OUT.config.json beside it).")] = ...,
    dataset: Annotated[Optional[Path], _opt("A prepared dataset to generate for instead of INPUT (references included for scoring).")] = None,
    split: Annotated[str, _opt("Split of --dataset: train, val or test. Default test.")] = "test",
    group_by: Annotated[Optional[str], _opt("Regex searched in each file's path under INPUT; its group 'study' (or first group) names the study. Default: Open-i and MIMIC-CXR names, else the subfolder.")] = None,
    format: Annotated[str, _opt("jsonl (every field), txt (id TAB report) or csv. Default jsonl.")] = "jsonl",
    beam_size: Annotated[int, _opt("Beam width; 1 is greedy decoding. Default 3.", min=1)] = 3,
    max_len: Annotated[Optional[int], _opt("Most report tokens (EOS excluded). Default: the run's (its training max_len).", min=1)] = None,
    min_len: Annotated[int, _opt("Fewest report tokens before EOS may end a report. Default 0.", min=0)] = 0,
    length_penalty: Annotated[float, _opt("GNMT alpha: hypotheses ranked by sum of log-probs / ((5 + length) / 6)^alpha. Default 0 (plain sum, as R2Gen).")] = 0.0,
    no_repeat_ngram: Annotated[int, _opt("Never repeat an n-gram of tokens within a report (3 = R2Gen's block_trigrams). Default 0 (off).", min=0)] = 0,
    n_best: Annotated[int, _opt("Hypotheses kept per study, with scores (at most --beam-size; with --sample, samples drawn). Default 1.", min=1)] = 1,
    sample: Annotated[bool, _opt("Sample reports instead of beam search. Default off.")] = False,
    temperature: Annotated[float, _opt("--sample: softmax temperature. Default 1.0.")] = 1.0,
    top_p: Annotated[float, _opt("--sample: nucleus probability mass (0-1]. Default 1.0 (all tokens).")] = 1.0,
    seed: Seed = 0,
    batch_size: Annotated[int, _opt("Studies per device batch; 0 = auto (GPU: 1024, halved on out-of-memory; CPU: 16). Default 0.", min=0)] = 0,
    workers: Annotated[Optional[int], _opt("Image-decoding processes. Default: up to 8 when there is more than one batch, else none.", min=0)] = None,
    device: Device = "auto",
    precision: Annotated[str, _opt("auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32. Default auto.")] = "auto",
    resume: Annotated[bool, _opt("Continue an interrupted run (or add studies missing from a finished jsonl OUT). Default off.")] = False,
    overwrite: Overwrite = False,
    skip_unreadable: Annotated[bool, _opt("Leave out unreadable images (and studies without a readable one) instead of stopping. Default off.")] = False,
) -> None:
    """Generate a report for every study: beam search on CPU or GPU, with the clinical head's observations."""
    from irralctl.generation import DecodeConfig, GenerateConfig, generate_reports
    config = GenerateConfig(
        checkpoint=checkpoint, out=out, input=input, dataset=dataset, split=split, group_by=group_by, format=format,
        decoding=DecodeConfig(beam_size=beam_size, max_len=max_len, min_len=min_len, length_penalty=length_penalty,
                              no_repeat_ngram=no_repeat_ngram, n_best=n_best, sample=sample, temperature=temperature,
                              top_p=top_p, seed=seed),
        batch_size=batch_size, workers=workers, device=device, precision=precision, resume=resume,
        overwrite=overwrite, skip_unreadable=skip_unreadable,
    )
    with progress_bars() as start:
        result = generate_reports(config, progress=start)
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
