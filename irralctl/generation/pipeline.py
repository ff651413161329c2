"""`generate_reports(GenerateConfig)`: from radiographs (or a prepared split) to a predictions file.

    load the run (model, tokeniser) -> find studies -> skip those already written (--resume)
    -> decode pixels in worker processes -> encode + decode on the device, a batch at a time
       (bf16 autocast on CUDA; the batch halves on out-of-memory) -> append rows to the journal
    -> rename the journal onto OUT, write OUT.config.json

See `inputs` for how studies are found, `decoding` for the search, `output` for the files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from irralctl.constants import OBSERVATIONS
from irralctl.data.prepared import PreparedDataset
from irralctl.errors import InputError, IrralError
from irralctl.generation.config import DecodeConfig, GenerateConfig
from irralctl.generation.decoding import Hypotheses, decode
from irralctl.generation.inputs import (
    DatasetStudies,
    FileStudies,
    Study,
    collate_studies,
    dataset_studies,
    discover_studies,
)
from irralctl.generation.output import (
    config_path,
    discard_journal,
    finish_output,
    journal_paths,
    open_output,
    staged_config_path,
)
from irralctl.progress import SILENT, Progress
from irralctl.runs.device import CpuShare, amp_dtype, autocast, precision_name, small_step_threads
from irralctl.runs.loaded import LoadedRun, load_run
from irralctl.utils.config import save_config, to_jsonable
from irralctl.utils.io import describe_os_error
from irralctl.utils.outputs import Interrupted, check_output
from irralctl.utils.parallel import cpu_count, spawn_quietly, worker_count

log = logging.getLogger(__name__)

AUTO_BATCH = {"cuda": 1024, "cpu": 16}   # studies per batch when --batch-size is 0


@dataclass
class GenerateResult:
    out: Path
    config_path: Path
    studies: int                        # found in the input
    generated: int                      # decoded by this call
    resumed: int                        # already in the output before this call
    flagged: dict[str, int]             # flag -> studies carrying it (this call)
    skipped: list[tuple[str, str]]      # (study id, why) not generated (no readable view)
    seconds: float                      # the whole call, model load included
    decode_seconds: float               # pixels to rows, model load excluded
    device: str
    precision: str
    batch_size: int
    decoding: str
    first: dict | None = None           # the first row written (shown by the CLI)
    warnings: list[str] = field(default_factory=list)

    @property
    def studies_per_s(self) -> float:
        return self.generated / self.decode_seconds if self.decode_seconds > 0 else 0.0


def _settings(cfg: GenerateConfig, run: LoadedRun, decoding: DecodeConfig) -> dict:
    """What must not change when a run is resumed."""
    return {"checkpoint": str(run.checkpoint.resolve()), "epoch": run.epoch, "step": run.step,
            "decoding": to_jsonable(decoding), "input": str(cfg.input) if cfg.input else None,
            "dataset": str(cfg.dataset) if cfg.dataset else None, "split": cfg.split if cfg.dataset else None,
            "group_by": cfg.group_by}


def _find_studies(cfg: GenerateConfig, run: LoadedRun) -> tuple[list[Study], object]:
    """(studies, pixel dataset) for the configured input."""
    mc = run.model.cfg
    if cfg.dataset is not None:
        ds = PreparedDataset(cfg.dataset)
        run.check_dataset(ds)
        ds.check(text_fields=(), splits=(cfg.split,), images=not mc.no_image)
        if not mc.no_image and not ds.has_images:
            raise InputError("this dataset was prepared without images; the model needs them", path=cfg.dataset,
                             hint="prepare it again with images, or give the image files as INPUT")
        studies = dataset_studies(ds, cfg.split, mc.views, run.text_field)
        pixels = DatasetStudies(ds, cfg.split, run.tokenizer, text_field=run.text_field, views=mc.views,
                                image_size=mc.image_size, no_image=mc.no_image)
        return studies, pixels
    studies = discover_studies(cfg.input, mc.views, cfg.group_by)
    return studies, FileStudies(studies, mc.views, mc.image_size, no_image=mc.no_image)


def _row(study: Study, used: list[str] | None, hyps: Hypotheses, b: int, run: LoadedRun, probs: list[float] | None,
         n_best: int, flags: list[str]) -> dict:
    views = [v for v in study.views if used is None or v.id in used]
    row = {"id": study.id, "prediction": run.tokenizer.decode(hyps.ids(b, 0))}
    if study.reference is not None:
        row["reference"] = study.reference
    row["views"] = [v.describe() for v in views]
    if probs is not None:  # the clinical head's probabilities (models with ACL)
        row["observations"] = {name: round(p, 4) for name, p in zip(OBSERVATIONS, probs)}
    row["flags"] = flags
    row["score"] = round(float(hyps.scores[b, 0]), 4)
    row["length"] = int(hyps.lengths[b, 0]) - 1
    if n_best > 1:
        row["hypotheses"] = [
            {"prediction": run.tokenizer.decode(hyps.ids(b, k)), "score": round(float(hyps.scores[b, k]), 4),
             "rank_score": round(float(hyps.ranks[b, k]), 4), "length": int(hyps.lengths[b, k]) - 1}
            for k in range(hyps.tokens.shape[1]) if hyps.ranks[b, k] > float("-inf")
        ]
    return row


def _flags_after_loading(study: Study, n_views: int, errors: list, model_views: int) -> list[str]:
    flags = [f for f in study.flags if f not in ("one_view", "missing_views")]
    if n_views < model_views:
        flags.insert(0, "one_view" if n_views == 1 else "missing_views")
    if errors:
        flags.append("unreadable_view")
    return flags


class _Decoder:
    """Encodes and decodes device batches, halving the batch on out-of-memory."""

    def __init__(self, run: LoadedRun, decoding: DecodeConfig, batch: int, amp: torch.dtype | None,
                 share: CpuShare | None = None):
        self.run, self.decoding, self.batch, self.amp, self.share = run, decoding, batch, amp, share
        device = run.device
        self.generator = torch.Generator(device=device).manual_seed(decoding.seed) if decoding.sample else None

    @property
    def _rows_per_study(self) -> int:
        return self.decoding.n_best if self.decoding.sample else self.decoding.beam_size

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, view_mask: torch.Tensor) -> list[tuple[Hypotheses, torch.Tensor]]:
        self.run.ready()  # the checkpoint verified before anything it computes is kept
        model, device, out, start = self.run.model, self.run.device, [], 0
        images = images.to(device, non_blocking=True)
        view_mask = view_mask.to(device, non_blocking=True)
        while start < images.shape[0]:
            size = self.batch
            try:
                with autocast(device, self.amp):
                    encoded = model.encode(images[start:start + size], view_mask[start:start + size])
                    with small_step_threads(device, encoded.memory.shape[0] * self._rows_per_study, self.share):
                        hyps = decode(model, encoded, self.decoding, self.generator)
                probs = (None if encoded.clinical_logits is None
                         else torch.sigmoid(encoded.clinical_logits.float()).cpu())
            except torch.OutOfMemoryError:
                if size == 1:
                    raise IrralError("out of memory while decoding a single study",
                                     hint="use --device cpu, or a smaller --beam-size / --max-tokens") from None
                del_cache = getattr(torch.cuda, "empty_cache", None)
                if device.type == "cuda" and del_cache is not None:
                    del_cache()
                self.batch = max(1, size // 2)
                log.warning("out of memory at %d studies per batch; continuing with %d", size, self.batch)
                continue
            out.append((hyps, probs))
            start += size
        return out


def generate_reports(cfg: GenerateConfig, progress: Progress = SILENT) -> GenerateResult:
    """Generate a report for every study of the input; see the module docstring."""
    started = time.perf_counter()
    check_output(cfg.out, [cfg.input, cfg.dataset, cfg.checkpoint])
    # The checkpoint's hash and finiteness are checked in a thread while the studies are found and
    # their images decoded; the decoder waits for it before encoding the first batch.
    share = CpuShare()  # what other processes leave free while the model loads: threads for small steps
    run = load_run(cfg.checkpoint, cfg.device, verify_in_background=True)
    try:
        return _generate(cfg, run, progress, started, share)
    finally:
        run.settle()  # a failure or a Ctrl-C while the checkpoint is still being verified


def _generate(cfg: GenerateConfig, run: LoadedRun, progress: Progress, started: float, share: CpuShare
              ) -> GenerateResult:
    mc = run.model.cfg
    decoding = cfg.decoding.resolved(run.max_tokens)
    fmt = cfg.output_format
    studies, pixels = _find_studies(cfg, run)
    if not studies:
        raise InputError("no studies to generate for (the split is empty)", path=cfg.dataset or cfg.input)
    settings = _settings(cfg, run, decoding)
    try:
        journal, done = open_output(cfg.out, fmt, settings, resume=cfg.resume, overwrite=cfg.overwrite)
    except BaseException:
        discard_journal(cfg.out)  # a journal (or its settings) this call began, without rows
        raise
    device = run.device
    amp = amp_dtype(cfg.precision, device)
    batch = cfg.batch_size or AUTO_BATCH["cuda" if device.type == "cuda" else "cpu"]
    todo = [i for i, s in enumerate(studies) if s.id not in done]
    decoder = _Decoder(run, decoding, batch, amp, share)
    flagged: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    first: dict | None = None
    t_decode = time.perf_counter()
    generated = 0
    try:
        if todo:
            loader_batch = min(batch, len(todo))
            n_batches = -(-len(todo) // loader_batch)
            workers = (worker_count(cfg.workers) if cfg.workers is not None
                       else (min(8, cpu_count()) if n_batches > 1 else 0))
            loader = DataLoader(pixels, batch_size=loader_batch, sampler=todo, num_workers=workers,
                                collate_fn=collate_studies, pin_memory=device.type == "cuda",
                                persistent_workers=False, prefetch_factor=2 if workers else None)
            with progress.task("generate", len(studies), len(studies) - len(todo)) as task:
                for batch_items in spawn_quietly(loader):
                    rows = _decode_batch(batch_items, studies, run, decoder, decoding, cfg.skip_unreadable, skipped)
                    journal.append(rows)
                    for r in rows:
                        for f in r["flags"]:
                            flagged[f] = flagged.get(f, 0) + 1
                    first = first or (rows[0] if rows else None)
                    generated += len(rows)
                    task.advance(len(batch_items["index"]))
        decode_seconds = time.perf_counter() - t_decode
        run.ready()  # also when nothing was left to decode (--resume): a damaged checkpoint is never a success
        journal.close()
        warnings = []
        if skipped:
            warnings.append(f"{len(skipped)} stud(y/ies) skipped, no readable view: "
                            + ", ".join(sid for sid, _ in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
        result = GenerateResult(
            out=cfg.out, config_path=config_path(cfg.out), studies=len(studies), generated=generated,
            resumed=len(studies) - len(todo), flagged=flagged, skipped=skipped, seconds=time.perf_counter() - started,
            decode_seconds=decode_seconds, device=str(device), precision=precision_name(amp),
            batch_size=decoder.batch, decoding=decoding.describe(), first=first, warnings=warnings,
        )
        # The options are written beside the journal first and move into place with the output: an
        # output never sits next to the options of another run.
        save_config(staged_config_path(cfg.out), cfg, settings=settings, checkpoint=run.describe(), decoding=decoding,
                    runtime={"device": result.device, "precision": result.precision, "batch_size": result.batch_size},
                    counts={"studies": result.studies, "generated": generated, "resumed": result.resumed,
                            "flagged": flagged, "skipped": [{"id": s, "why": w} for s, w in skipped]},
                    model={"views": mc.views, "image_size": mc.image_size, "backbone": mc.backbone})
        finish_output(cfg.out, fmt, OBSERVATIONS)
    except BaseException as error:
        journal.close()
        kept = discard_journal(cfg.out)  # an empty journal is no interrupted run worth resuming
        where = f"{kept} report(s) kept in {journal_paths(cfg.out)[0]}: continue with --resume"
        if isinstance(error, KeyboardInterrupt):
            raise Interrupted("interrupted; " + (where if kept else "nothing was written")) from None
        if kept and isinstance(error, IrralError):
            error.message = f"{error.message}; {where}"
        elif kept and isinstance(error, OSError):  # a full disk: the journal must be named all the same
            prefix = f"{error.filename}: " if error.filename else ""
            raise IrralError(f"{prefix}{describe_os_error(error)}; {where}") from None
        raise
    return result


def _decode_batch(items: dict, studies: list[Study], run: LoadedRun, decoder: _Decoder, decoding: DecodeConfig,
                  skip_unreadable: bool, skipped: list[tuple[str, str]]) -> list[dict]:
    mc = run.model.cfg
    keep = []
    for k, (index, errors) in enumerate(zip(items["index"], items["errors"])):
        study = studies[index]
        if errors and not skip_unreadable:
            path, message = errors[0]
            raise InputError(message.split(": ", 1)[-1] if message.startswith(str(path)) else message, path=path,
                             record=f"study {study.id}",
                             hint="pass --skip-unreadable to generate without such views; --resume keeps what was written")
        n_views = int(items["view_mask"][k].sum())
        if n_views == 0 and study.views and not mc.no_image:
            skipped.append((study.id, "; ".join(f"{p}: {m}" for p, m in errors) or "no readable view"))
            log.warning("skipping study %s: no readable view", study.id)
            continue
        keep.append(k)
    if not keep:
        return []
    index = torch.tensor(keep)
    images, view_mask = items["images"].index_select(0, index), items["view_mask"].index_select(0, index)
    rows = []
    offset = 0
    for hyps, probs in decoder(images, view_mask):
        for b in range(hyps.tokens.shape[0]):
            k = keep[offset + b]
            study = studies[items["index"][k]]
            n_views = int(items["view_mask"][k].sum())
            flags = _flags_after_loading(study, n_views, items["errors"][k], mc.views)
            rows.append(_row(study, items["used"][k], hyps, b, run, None if probs is None else probs[b].tolist(), decoding.n_best, flags))
        offset += hyps.tokens.shape[0]
    return rows
