"""Report generation: `irralctl generate` (and the decoding that `heatmap` and training share).

Modules: `config` (DecodeConfig, GenerateConfig), `decoding` (beam search, greedy, sampling: the
only decoder; its rules are defined there), `inputs` (studies from image files or a prepared
split, their pixels), `output` (rows, the crash-safe journal, jsonl/txt/csv), `pipeline`
(`generate_reports`: the whole command). Runs are opened with `irralctl.runs.loaded.load_run`.

    >>> from irralctl.generation import GenerateConfig, generate_reports
    >>> generate_reports(GenerateConfig(checkpoint=Path("runs/irral"), out=Path("preds.jsonl"), input=Path("xrays/")))
"""

from __future__ import annotations

from irralctl.utils.lazy import lazy_exports

# Imported on first use: a torch-free submodule (a config) must not import torch through this package.
__getattr__, __all__ = lazy_exports(__name__, {
    "irralctl.generation.config": ("DecodeConfig", "GenerateConfig"),
    "irralctl.generation.decoding": ("Hypotheses", "beam_search", "decode", "length_penalty", "sample"),
    "irralctl.generation.inputs": ("Study", "View", "dataset_studies", "discover_studies"),
    "irralctl.generation.pipeline": ("GenerateResult", "generate_reports"),
})
