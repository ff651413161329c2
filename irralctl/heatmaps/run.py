"""`make_heatmaps(HeatmapConfig)`: attention overlays of words and phrases for one study, per checkpoint.

For each checkpoint: generate the study's report (beam search), then for each word or phrase find
its tokens in the generated tokens; a word the report does not contain is looked up in the
reference (a prepared dataset's study, `--dataset DIR --id ID`), then in `--text`, and its map is
read while teacher forcing that text. The source of every map is recorded (`generated`,
`reference`, `text`, or absent).

    OUT/
      heatmaps.json               study, reports, and per word: source, tokens, positions, files, view shares
      <word>.png                  the word's views side by side, colour bar    (one checkpoint)
      <word>.view<k>.png          view k alone, at the image's own pixel size
      <label>/<word>.png ...      the same per checkpoint                      (several checkpoints)
      compare.png                 the paper's Fig. 3: a row per word, a column per checkpoint and view
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from irralctl.constants import SPLITS
from irralctl.data.prepared import PreparedDataset
from irralctl.errors import InputError
from irralctl.generation.decoding import decode
from irralctl.generation.inputs import (
    DatasetStudies,
    FileStudies,
    Study,
    collate_studies,
    dataset_studies,
    display_image,
    single_study,
)
from irralctl.heatmaps.attention import find_phrase, normalize, phrase_map, split_views, token_attention
from irralctl.heatmaps.config import HeatmapConfig
from irralctl.heatmaps.render import Panel, compare_png, overlay_png, panel_png
from irralctl.runs.layout import checkpoint_file
from irralctl.runs.loaded import LoadedRun, load_run
from irralctl.utils.config import provenance, to_jsonable
from irralctl.utils.io import write_json
from irralctl.utils.outputs import check_output, check_replaceable, output_dir

log = logging.getLogger(__name__)

SOURCES = ("generated", "reference", "text")


@dataclass
class WordMap:
    word: str
    source: str | None                     # generated | reference | text | None (absent everywhere)
    tokens: list[str]                      # the phrase's tokens
    positions: list[int]                   # where they are in the source's token sequence
    views: list[np.ndarray] = field(default_factory=list)  # (h, w) in [0, 1] per view
    shares: list[float] = field(default_factory=list)      # attention mass on each view (sums to 1)
    files: dict = field(default_factory=dict)


@dataclass
class RunMaps:
    label: str
    run: LoadedRun
    study: Study
    views_used: list[int]                  # indices into study.views that reached the model
    generated: str
    reference: str | None
    words: list[WordMap]


@dataclass
class HeatmapResult:
    out: Path
    sidecar: Path
    runs: list[RunMaps]
    compare: Path | None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "word"


def _labels(cfg: HeatmapConfig) -> list[str]:
    if cfg.labels:
        return list(cfg.labels)
    names = [Path(c).name if Path(c).is_dir() else Path(c).parent.name for c in cfg.checkpoints]
    return names if len(set(names)) == len(names) else [f"{n}-{i + 1}" for i, n in enumerate(names)]


def _find_record(ds: PreparedDataset, sid: str, split: str | None) -> str:
    for s in ([split] if split else SPLITS):
        if (ds.dir / f"{s}.jsonl").is_file() and any(str(r["id"]) == sid for r in ds.records(s)):
            return s
    raise InputError(f"no study with id {sid!r} in {'split ' + split if split else 'any split'}", path=ds.dir)


def _one_study(cfg: HeatmapConfig, run: LoadedRun) -> tuple[Study, dict]:
    """(study, pixel item) as this run's model takes it."""
    mc = run.model.cfg
    if cfg.dataset is not None:
        ds = PreparedDataset(cfg.dataset)
        run.check_dataset(ds)
        split = _find_record(ds, cfg.id, cfg.split)
        studies = dataset_studies(ds, split, mc.views, run.text_field)
        index = next(i for i, s in enumerate(studies) if s.id == cfg.id)
        pixels = DatasetStudies(ds, split, run.tokenizer, text_field=run.text_field, views=mc.views,
                                image_size=mc.image_size, no_image=mc.no_image)
        return studies[index], pixels[index]
    study = single_study(cfg.study, mc.views)
    item = FileStudies([study], mc.views, mc.image_size, no_image=mc.no_image)[0]
    if item["errors"]:
        path, message = item["errors"][0]
        raise InputError(message.split(": ", 1)[-1] if message.startswith(str(path)) else message, path=path)
    return study, item


def _phrase_ids(run: LoadedRun, phrase: str) -> list[int]:
    return run.tokenizer.encode(run.normalizer()(phrase))


def _continues_word(run: LoadedRun):
    """For byte-level BPE: a piece continues the word before it unless it starts with a space (Ġ)
    or is not a letter or digit. Legacy tokens are whole words."""
    if run.tokenizer.kind != "bpe":
        return None
    tok = run.tokenizer

    def continues(i: int) -> bool:
        piece = tok.id_to_token(i) or ""
        return not piece.startswith("Ġ") and piece[:1].isalnum()  # "Ġ" itself counts as a letter for isalnum
    return continues


def _token_strings(run: LoadedRun, ids: list[int]) -> list[str]:
    return [run.tokenizer.id_to_token(i) for i in ids]  # BPE: byte-level pieces; legacy: words


def _maps_for_run(cfg: HeatmapConfig, run: LoadedRun, label: str) -> RunMaps:
    model = run.model
    study, item = _one_study(cfg, run)
    batch = collate_studies([item])
    device = run.device
    images, view_mask = batch["images"].to(device), batch["view_mask"].to(device)
    decoding = cfg.decode_config.resolved(run.max_tokens)
    with torch.inference_mode():
        encoded = model.encode(images, view_mask)
        hyps = decode(model, encoded, decoding)
    generated_ids = hyps.ids(0)
    limit = model.embed.max_positions - 1
    sequences = {"generated": generated_ids}
    if study.reference:
        sequences["reference"] = run.tokenizer.encode(study.reference)[:limit]
    if cfg.text:
        sequences["text"] = run.tokenizer.encode(run.normalizer()(cfg.text))[:limit]
    attention: dict[str, torch.Tensor] = {}
    n_views = int(batch["view_mask"][0].sum())
    used = batch["used"][0]
    views_used = [i for i, v in enumerate(study.views) if used is None or v.id in used][:n_views]
    words = []
    for word in cfg.words:
        ids = _phrase_ids(run, word)
        wm = WordMap(word=word, source=None, tokens=_token_strings(run, ids), positions=[])
        for source in SOURCES:
            positions = find_phrase(sequences.get(source, []), ids, _continues_word(run))
            if positions is None:
                continue
            if source not in attention:
                attention[source] = token_attention(model, encoded, sequences[source])
            weights = phrase_map(attention[source], positions, cfg.layer, cfg.head)        # (N,)
            grids = split_views(weights, encoded.grid, n_views)
            total = float(sum(g.sum() for g in grids)) or 1.0
            wm.source, wm.positions = source, positions
            wm.shares = [float(g.sum()) / total for g in grids]
            wm.views = normalize(grids, cfg.normalize)
            break
        if wm.source is None:
            searched = ["generated report"] + [s for s in ("reference", "text") if s in sequences]
            log.warning("%s: %r is not in the %s: no map", label, word, " nor the ".join(searched))
        words.append(wm)
    return RunMaps(label=label, run=run, study=study, views_used=views_used,
                   generated=run.tokenizer.decode(generated_ids), reference=study.reference, words=words)


def _view_name(study: Study, index: int) -> str:
    v = study.views[index]
    return v.position if v.position != "UNKNOWN" else f"view {index + 1}"


def make_heatmaps(cfg: HeatmapConfig) -> HeatmapResult:
    """Draw every word's maps for every checkpoint; see the module docstring."""
    labels = _labels(cfg)
    for checkpoint in cfg.checkpoints:
        checkpoint_file(checkpoint)  # a missing run is named before anything else
    inputs = [*cfg.checkpoints, cfg.study, cfg.dataset]
    check_output(cfg.out, inputs)  # before any decoding
    check_replaceable(cfg.out, overwrite=cfg.overwrite)
    results = []
    for checkpoint, label in zip(cfg.checkpoints, labels):
        run = load_run(checkpoint, cfg.device)
        results.append(_maps_for_run(cfg, run, label))
    images: dict[tuple, np.ndarray] = {}

    def image_of(rm: RunMaps, index: int) -> np.ndarray:
        view = rm.study.views[index]
        key = (view.path, view.row)
        if key not in images:
            store = None
            if view.row is not None:
                store = PreparedDataset(cfg.dataset).images
            images[key] = display_image(view, store)
        return images[key]

    several = len(results) > 1
    with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=inputs) as tmp:
        for rm in results:
            folder = tmp / _slug(rm.label) if several else tmp
            folder.mkdir(exist_ok=True)
            for wm in rm.words:
                if wm.source is None:
                    continue
                panels = []
                for k, (index, heat) in enumerate(zip(rm.views_used, wm.views)):
                    label = f"{_view_name(rm.study, index)} ({wm.shares[k]:.0%} of attention)"
                    panels.append(Panel(image_of(rm, index), heat, label))
                    name = f"{_slug(wm.word)}.view{k + 1}.png"
                    overlay_png(folder / name, Panel(image_of(rm, index), heat))
                    wm.files.setdefault("views", []).append(str((folder / name).relative_to(tmp)))
                name = f"{_slug(wm.word)}.png"
                title = f"\"{wm.word}\" ({wm.source}) - {rm.label}" if several else f"\"{wm.word}\" ({wm.source})"
                panel_png(folder / name, title, panels)
                wm.files["panel"] = str((folder / name).relative_to(tmp))
        compare = None
        if several:
            compare = tmp / "compare.png"
            _compare(compare, cfg, results, image_of)
        write_json(tmp / "heatmaps.json", _sidecar(cfg, results, compare is not None))
    return HeatmapResult(out=cfg.out, sidecar=cfg.out / "heatmaps.json", runs=results,
                         compare=cfg.out / "compare.png" if compare is not None else None)


def _compare(path: Path, cfg: HeatmapConfig, results: list[RunMaps], image_of) -> None:
    columns, cells, notes = [], [[] for _ in cfg.words], [[] for _ in cfg.words]
    for rm in results:
        for k, index in enumerate(rm.views_used):
            columns.append(f"{rm.label}: {_view_name(rm.study, index)}" if len(rm.views_used) > 1 else rm.label)
            for r, wm in enumerate(rm.words):
                heat = wm.views[k] if wm.source is not None else None
                cells[r].append(Panel(image_of(rm, index), heat))
                notes[r].append(wm.source or "absent")
    compare_png(path, list(cfg.words), columns, cells, notes)


def _sidecar(cfg: HeatmapConfig, results: list[RunMaps], compare: bool) -> dict:
    first = results[0].study
    return to_jsonable({
        "study": {"id": first.id, "views": [v.describe() for v in first.views]},
        "words": list(cfg.words),
        "attention": {"layer": "mean" if cfg.layer is None else cfg.layer, "head": "mean" if cfg.head is None else cfg.head,
                      "phrase": "mean over the phrase's tokens (first occurrence)",
                      "step": "cross-attention of the decoding step that predicts the token",
                      "normalize": cfg.normalize, "colormap": "jet, 0 to 1"},
        "runs": [{
            "label": rm.label, "checkpoint": rm.run.describe(), "generated": rm.generated, "reference": rm.reference,
            "text": cfg.text, "views": [rm.study.views[i].describe() for i in rm.views_used],
            "words": [{"word": wm.word, "source": wm.source, "tokens": wm.tokens, "positions": wm.positions,
                       "view_shares": [round(s, 4) for s in wm.shares], "files": wm.files} for wm in rm.words],
        } for rm in results],
        "compare": "compare.png" if compare else None,
        "config": cfg,
        **provenance(),
    })
