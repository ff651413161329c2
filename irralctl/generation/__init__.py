"""Report generation: `irralctl generate` (and the decoding that `heatmap` shares).

Modules: `decoding` (beam search, greedy, sampling; the scoring rules are defined there),
`inputs` (studies from image files or a prepared split, their pixels), `runs` (a trained run
opened for inference), `output` (rows, the crash-safe journal, jsonl/txt/csv), `pipeline`
(`generate_reports`: the whole command).

    >>> from irralctl.generation import GenerateConfig, generate_reports
    >>> generate_reports(GenerateConfig(checkpoint=Path("runs/irral"), out=Path("preds.jsonl"), input=Path("xrays/")))
"""

from __future__ import annotations

from irralctl.generation.decoding import DecodeConfig, Hypotheses, beam_search, decode, length_penalty, sample
from irralctl.generation.inputs import Study, View, dataset_studies, discover_studies
from irralctl.generation.pipeline import GenerateConfig, GenerateResult, generate_reports
from irralctl.generation.runs import LoadedRun, load_run

__all__ = [
    "DecodeConfig", "GenerateConfig", "GenerateResult", "Hypotheses", "LoadedRun", "Study", "View", "beam_search",
    "dataset_studies", "decode", "discover_studies", "generate_reports", "length_penalty", "load_run", "sample",
]
