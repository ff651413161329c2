"""`train(cfg)`: a whole training run, from a prepared dataset to a self-describing run directory.

The run directory's files are listed in `irralctl.runs.layout`. Named stages, as torchvision's
reference scripts: `build_run` (model, optimiser, LR control, text features), `train_one_epoch`
and `evaluate` (in `loop` and `evaluate`), `save_checkpoint` / `load_checkpoint` (in
`irralctl.runs.checkpoint`), and `test` at the end.

Model selection uses the validation split only. The test split is decoded and scored once, at the
end, with the best checkpoint, by `irralctl generate`'s own pipeline with its default decoding
(beam 3) and `irralctl score`'s scorer: `irralctl generate --dataset D --split test --checkpoint
RUN` followed by `irralctl score` gives test_metrics.json's numbers exactly. `--resume` restores
weights, optimiser, LR state, Eq. 6 weights, epoch and every RNG, so an interrupted run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from irralctl.constants import N_OBSERVATIONS
from irralctl.data.prepared import PreparedDataset
from irralctl.errors import ConfigError, InputError, IrralError, TrainingError
from irralctl.generation.config import DecodeConfig
from irralctl.model import ModelConfig, build_model
from irralctl.model.compile import compile_repeated_blocks, eager
from irralctl.model.mfa import MFALoss
from irralctl.model.text_encoder import TextEncoder, TextFeatureCache
from irralctl.progress import SILENT, Progress
from irralctl.runs.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from irralctl.runs.device import amp_dtype, precision_name, resolve_device, setup_device
from irralctl.runs.layout import LAST, RunLayout, stage_of
from irralctl.training import scoring
from irralctl.training.alignment import mfa_diagnostics, text_features
from irralctl.training.config import MONITORS, RESUMABLE, TrainConfig
from irralctl.training.data import make_loader
from irralctl.training.distributed import DistState
from irralctl.training.evaluate import SplitResult, evaluate, head_confusion, head_f1
from irralctl.training.feedback import ObservationWeights
from irralctl.training.logs import StepLog, step_columns
from irralctl.training.loop import Run, TrainingModule, loss_terms, train_one_epoch
from irralctl.training.optim import LRController, build_optimizer
from irralctl.utils.config import flatten, from_dict, save_config, to_jsonable, unflatten
from irralctl.utils.io import describe_copy_error, describe_os_error, iter_jsonl, write_json, write_jsonl
from irralctl.utils.outputs import Interrupted, check_output, check_replaceable, clean_stale_stages, output_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_run: int
    stopped_early: bool
    monitor: str
    best_epoch: int | None
    best_value: float | None
    test_metrics: dict


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The config a run was trained with (from the last.pt of its interrupted stage, else of the run)."""
    run_dir = Path(run_dir)
    for layout in (RunLayout(stage_of(run_dir)), RunLayout(run_dir)):
        if layout.last.is_file():
            return from_dict(TrainConfig, load_checkpoint(layout.last, verify="none")["train_config"], saved=True)
    raise InputError("nothing to resume: no last.pt here (nor an interrupted run beside it)", path=run_dir,
                     hint="point --resume at the run directory of an interrupted or finished `irralctl train`")


def resume_config(run_dir: str | Path, changes: dict[str, Any] | None = None) -> TrainConfig:
    """The saved config of `run_dir` with `changes` (dotted option path -> value) applied.

    Only options that cannot change what the next step computes may change (`RESUMABLE`); any
    other change is refused, naming the option with its saved and new values.
    """
    saved = saved_config(run_dir)
    flat = flatten(to_jsonable(saved))
    refused, applied = [], {}
    for path, value in (changes or {}).items():
        new = to_jsonable(value)
        if flat.get(path) == new:
            continue
        if path not in RESUMABLE:
            refused.append(f"--{path.split('.')[-1].replace('_', '-')} (run: {flat.get(path)!r}, given: {new!r})")
        else:
            applied[path] = new
    if refused:
        raise ConfigError(f"cannot change {', '.join(refused)} when resuming: the run would not continue exactly",
                          hint=f"only {', '.join('--' + p.split('.')[-1].replace('_', '-') for p in RESUMABLE)} "
                               "may change; start a new run with --out to change the others")
    flat.update(applied)
    flat["out"], flat["overwrite"] = str(Path(run_dir)), False
    return from_dict(TrainConfig, unflatten(flat))


def train(cfg: TrainConfig, progress: Progress = SILENT, *, resume: bool = False, again: str | None = None
          ) -> TrainResult:
    """Train per `cfg` (continuing `cfg.out` when `resume`). Works alone or under torchrun.
    `again`: how an interrupted run is continued, for the error (default: `irralctl train --resume`).

    A config built in code may leave `size` at auto: it is resolved here on the device the run
    uses (`TrainConfig.sized`), and config.json records the result. A resumed run keeps the sizes
    it was saved with.
    """
    if cfg.out is None:
        raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
    dist = DistState.from_env()
    device = resolve_device(cfg.runtime.device, dist.local_rank)
    if not resume:
        cfg = resolved_size(cfg, device)
    dist.init(device)
    try:
        return _train(cfg, progress, resume, dist, device, again)
    finally:
        dist.close()


def resolved_size(cfg: TrainConfig, device: torch.device | None = None) -> TrainConfig:
    """`cfg` with --size auto resolved: the paper's sizes on a GPU, the small model on a CPU."""
    if cfg.size != "auto":
        return cfg
    return cfg.sized((device or resolve_device(cfg.runtime.device)).type)


# -- setup --------------------------------------------------------------------------------------

def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_dataset(cfg: TrainConfig) -> PreparedDataset:
    """The prepared dataset of `cfg`, checked for what training needs (split manifests, images)."""
    ds = PreparedDataset(cfg.dataset)
    if not cfg.model.no_image and not ds.has_images:
        raise InputError("this dataset was prepared without images", path=cfg.dataset,
                         hint="prepare it again with --images, or train the language prior with --no-image")
    # Up front, in seconds: an inconsistent dataset must not fail half an hour into training.
    ds.check(text_fields=(cfg.text_field,), images=not cfg.model.no_image)
    return ds


def _check_stage(cfg: TrainConfig, resume: bool) -> str:
    """How rank 0's stage starts, decided before anything is written (every refusal comes here):
    "resume" (the interrupted stage as it is), "copy" (a finished run trained further) or "new"."""
    out = Path(cfg.out)
    stage = stage_of(out)
    check_output(out, [cfg.dataset, cfg.visual_weights, cfg.loss.text_encoder])
    if resume:
        return "resume" if stage.exists() else "copy"
    if out.exists() and not cfg.overwrite:
        raise InputError("run directory already exists", path=out,
                         hint="choose another --out, continue it with --resume, or pass --overwrite to replace it "
                              "once the new run has finished")
    check_replaceable(out, overwrite=True)
    if stage.exists() and not cfg.overwrite:
        raise InputError("an interrupted run of this --out is kept here", path=stage,
                         hint=f"continue it with --resume {out}, or pass --overwrite to start again")
    return "new"


def _make_stage(cfg: TrainConfig, start: str, stage: Path) -> None:
    """Fill the stage as `_check_stage` decided, inside the output transaction (which created it): a
    Ctrl-C or a full disk meanwhile leaves nothing that a later --resume would take for a run."""
    if start == "copy":
        _copy_finished_run(Path(cfg.out), stage)
    elif start == "new" and any(stage.iterdir()):  # an interrupted run the user chose to --overwrite
        shutil.rmtree(stage)
        stage.mkdir()


def _copy_finished_run(out: Path, stage: Path) -> None:
    """A finished run trained further is continued in a copy (the original stays until the new run
    ends). Its last.pt is verified first, so that a damaged checkpoint is named where the user
    keeps it and never copied into a stage; the copy is built aside and renamed into place, so a
    copy cut short (a full disk, Ctrl-C) leaves no stage that a later --resume would take for an
    interrupted run."""
    load_checkpoint(out / LAST, verify="all")
    clean_stale_stages(out.parent / f"{out.name}.partial")  # copies whose process was killed
    partial = stage.with_name(f"{stage.name}.stage-{os.getpid()}")
    try:
        shutil.copytree(out, partial)
        os.replace(partial, stage)
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, OSError):
            source, _, reason = describe_copy_error(e)
            raise IrralError(f"could not copy {source or out} to train the run further: {reason}; "
                             "nothing was written") from None
        raise


def _resumable(stage: Path, error: BaseException) -> str | None:
    """What a failed run keeps for --resume: its checkpoints, if it wrote any."""
    last = stage / LAST
    if not last.is_file():
        return None
    try:
        epoch = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("epoch")
    except Exception:  # a damaged last.pt is named when --resume loads it
        epoch = None
    return f"the checkpoint of epoch {epoch}" if epoch else "its checkpoints"


def build_run(cfg: TrainConfig, ds: PreparedDataset, dist: DistState, device: torch.device) -> tuple[Run, ModelConfig]:
    """Model, optimiser, LR control, text features and wrappers for `cfg` (also used by scripts/bench_gpu.py)."""
    tokenizer = ds.tokenizer(cfg.data.tokenizer)
    train_records = ds.records("train")
    text_encoder = None
    text_dim = cfg.model.text_dim
    loss = cfg.loss
    if cfg.model.mfa:
        # The literal Eq. 2 reads T[CLS]; the other modes read T as MiniLM was trained to be read.
        pooling = "cls" if loss.mfa_mode == "literal" else "mean"
        text_encoder = TextEncoder(loss.text_encoder, loss.text_max_tokens, trainable=loss.tune_text_encoder,
                                   pooling=pooling).to(device)
        text_dim = text_encoder.hidden_size
    model_cfg = cfg.model.replace(vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                                  eos_id=tokenizer.eos_id, text_dim=text_dim,
                                  unspeakable=tuple(tokenizer.unspeakable_ids()))
    if cfg.max_tokens + 2 > model_cfg.max_positions:
        raise ConfigError(f"--max-tokens {cfg.max_tokens} needs more decoder positions than the model's "
                          f"{model_cfg.max_positions}")
    # Initial weights come from (seed, module name) alone: identical on every process, and identical
    # across presets wherever they share a module (irralctl.model.init).
    model = build_model(model_cfg, cfg.visual_weights, seed=cfg.seed)
    mfa = None
    if model_cfg.mfa:
        mfa = MFALoss(model_cfg.d_model, loss.mfa_mode, margin=loss.mfa_margin,
                      temperature=loss.mfa_temperature).to(device)
        if loss.mfa_mode == "centered":
            # The report side is a fixed target (a fixed random projection of T): nothing to train.
            model.text_head.requires_grad_(False)
    if model_cfg.backbone != "tiny" and not model_cfg.no_image and cfg.visual_weights is None:
        log.warning("training %s from scratch: no ImageNet weights were given (--visual-weights FILE, a torchvision "
                    "state_dict); expect clearly weaker reports than with pretrained weights", model_cfg.backbone)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    tuned = text_encoder if loss.tune_text_encoder else None
    optim = cfg.optim
    optimizer = build_optimizer(model, tuned, lr=optim.lr, lr_visual=optim.lr_visual, weight_decay=optim.weight_decay,
                                device=device)
    module: torch.nn.Module = TrainingModule(model, tuned, mfa)
    if dist.distributed:
        if cfg.runtime.sync_bn and device.type == "cuda":
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.runtime.compile:
        # Regional: each repeated block of the model compiled in place (irralctl.model.compile), not
        # one graph of the whole step; validation runs them eagerly.
        compile_repeated_blocks(model)
    amp = amp_dtype(cfg.runtime.precision, device)
    run = Run(
        cfg=cfg, layout=RunLayout(stage_of(cfg.out)), dist=dist, device=device, model=model, module=module,
        optimizer=optimizer,
        lr=LRController(optimizer, warmup=optim.warmup, total_steps=1, schedule=optim.schedule,
                        plateau_factor=optim.plateau_factor, plateau_patience=optim.plateau_patience,
                        higher_is_better=MONITORS[cfg.eval.monitor]),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        obs_weights=ObservationWeights(N_OBSERVATIONS, loss.obs_weight_momentum),
        amp_dtype=amp, train_ids=[r["id"] for r in train_records], text_encoder=text_encoder, mfa=mfa,
    )
    if cfg.model.mfa:
        texts = [r.get("report") or r[cfg.text_field] for r in train_records]
        if loss.tune_text_encoder:
            run.train_texts = texts
        else:
            run.text_cache = TextFeatureCache(text_encoder, texts, device)
    return run, model_cfg


def _write_run_files(run: Run, ds: PreparedDataset, model_cfg: ModelConfig) -> None:
    cfg, layout = run.cfg, run.layout
    layout.tokenizer.write_text(ds.tokenizer_json(cfg.data.tokenizer), encoding="utf-8")
    save_config(
        layout.config, cfg, model=model_cfg, seed=cfg.seed,
        dataset={"path": str(ds.dir.resolve()), "name": ds.name, "fingerprint": ds.info.get("fingerprint"),
                 "counts": ds.info.get("counts"), "labeler": ds.info.get("labeler")},
        tokenizer={"kind": cfg.data.tokenizer, "file": layout.tokenizer.name, "text_field": cfg.text_field},
        cleaner=_cleaner(cfg, ds),
        runtime={"device": str(run.device), "precision": precision_name(run.amp_dtype),
                 "world_size": run.dist.world_size},
        text_encoder=None if run.text_encoder is None else {
            "path": str(run.text_encoder.path), "hidden_size": run.text_encoder.hidden_size,
            "trainable": run.text_encoder.trainable},
    )


def _cleaner(cfg: TrainConfig, ds: PreparedDataset) -> dict | None:
    return ds.info.get("cleaner" if cfg.text_field == "target" else "legacy_cleaner")


@contextlib.contextmanager
def _writing(path: Path):
    """Turn an OSError while writing an output (a full disk) into one clear TrainingError."""
    try:
        yield
    except OSError as e:
        raise TrainingError(f"could not write {path}: {describe_os_error(e)}; earlier outputs are intact",
                            hint="free space on that disk (or choose another --out) and continue with --resume") from None


# -- checkpoints --------------------------------------------------------------------------------

@dataclass
class Selection:
    """Model-selection state carried in checkpoints."""

    best_value: float | None = None
    best_epoch: int | None = None
    stale: int = 0                # epochs since the monitor last improved

    def improved(self, value: float | None, higher_is_better: bool) -> bool:
        if value is None or math.isnan(value):
            return False
        return self.best_value is None or (value > self.best_value if higher_is_better else value < self.best_value)


def checkpoint_payload(run: Run, model_cfg: ModelConfig, selection: Selection, ds: PreparedDataset) -> dict:
    """Everything a checkpoint holds (see irralctl.runs.checkpoint for the layout)."""
    cfg = run.cfg
    return {
        "model_config": to_jsonable(model_cfg),
        "model": run.model.state_dict(),
        "tokenizer": {"kind": cfg.data.tokenizer, "json": ds.tokenizer_json(cfg.data.tokenizer),
                      "text_field": cfg.text_field},
        "inference": {"max_tokens": cfg.max_tokens},
        "cleaner": _cleaner(cfg, ds),
        "dataset": {"name": ds.name, "fingerprint": ds.info.get("fingerprint")},
        "train_config": to_jsonable(cfg),
        "text_encoder": run.text_encoder.state_dict() if run.text_encoder is not None and run.text_encoder.trainable else None,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.lr.state_dict(),
        "scaler": run.scaler.state_dict(),
        "obs_weights": run.obs_weights.state_dict(),
        "mfa": run.mfa.state_dict() if run.mfa is not None else None,
        "epoch": run.epoch,
        "step": run.step,
        "progress": {"best_value": selection.best_value, "best_epoch": selection.best_epoch, "stale": selection.stale},
        "rng": rng_state(),
    }


def _restore(run: Run, ckpt: dict) -> Selection:
    run.model.load_state_dict(ckpt["model"])
    if ckpt.get("text_encoder") is not None and run.text_encoder is not None:
        run.text_encoder.load_state_dict(ckpt["text_encoder"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.lr.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.obs_weights.load_state_dict(ckpt["obs_weights"])
    if run.mfa is not None and ckpt.get("mfa") is not None:
        run.mfa.load_state_dict(ckpt["mfa"])
    run.epoch, run.step = ckpt["epoch"], ckpt["step"]
    p = ckpt["progress"]
    return Selection(p["best_value"], p["best_epoch"], p["stale"])


def _check_resumable(ckpt: dict, ds: PreparedDataset, cfg: TrainConfig) -> None:
    if ckpt["tokenizer"]["json"] != ds.tokenizer_json(cfg.data.tokenizer):
        raise TrainingError(
            f"the {cfg.data.tokenizer} tokeniser of {ds.dir} differs from the one this run was trained with",
            hint="resume on the dataset the run started from (see dataset in its config.json)")
    fingerprint = (ckpt.get("dataset") or {}).get("fingerprint")
    if fingerprint and fingerprint != ds.info.get("fingerprint"):
        log.warning("the dataset's fingerprint differs from the one this run started with (%s)", ds.dir)


# -- the run ------------------------------------------------------------------------------------

def _train(cfg: TrainConfig, progress: Progress, resume: bool, dist: DistState, device: torch.device,
           again: str | None = None) -> TrainResult:
    ds = open_dataset(cfg)
    if dist.is_main:  # the final test scores with --meteor: a missing METEOR must stop the run now, not after it
        from irralctl.metrics.scoring import check_meteor

        check_meteor(cfg.eval.meteor)
    if not dist.is_main:
        dist.barrier()  # until rank 0 has its stage ready
        return _run(cfg, progress, resume, dist, device, ds, contextlib.ExitStack())
    start = _check_stage(cfg, resume)
    # Rank 0 owns the output: the stage becomes --out only once everything succeeded (an existing
    # run is replaced only then); a failure keeps the stage when it holds a checkpoint to resume.
    # The run's open log files close (the ExitStack) before the stage is moved.
    with output_dir(cfg.out, overwrite=True, stage=stage_of(cfg.out), keep=_resumable, exists_ok=True,
                    again=again or f"continue with: irralctl train --resume {cfg.out}"), \
            contextlib.ExitStack() as files:
        _make_stage(cfg, start, stage_of(cfg.out))
        dist.barrier()
        return _run(cfg, progress, resume, dist, device, ds, files)


def _run(cfg: TrainConfig, progress: Progress, resume: bool, dist: DistState, device: torch.device,
         ds: PreparedDataset, files: contextlib.ExitStack) -> TrainResult:
    layout = RunLayout(stage_of(cfg.out))
    ckpt = load_checkpoint(layout.last, verify="all") if resume else None
    if ckpt is not None:
        _check_resumable(ckpt, ds, cfg)
    setup_device(device)
    _seed_everything(cfg.seed)

    run, model_cfg = build_run(cfg, ds, dist, device)
    tokenizer = ds.tokenizer(cfg.data.tokenizer)
    train_data = make_loader(ds, "train", tokenizer, cfg, dist, device, train=True, batch_size=cfg.optim.batch_size)
    val_data = make_loader(ds, "val", tokenizer, cfg, dist, device, train=False, batch_size=cfg.eval.eval_batch_size)
    if len(train_data.dataset) == 0 or len(val_data.dataset) == 0:
        raise InputError("the train and val splits must both hold studies", path=ds.dir)
    run.lr.set_total_steps(cfg.optim.epochs * len(train_data))

    history: list[dict] = []
    selection = Selection()
    if ckpt is not None:
        selection = _restore(run, ckpt)
        if layout.metrics.is_file():
            history = [r for _, r in iter_jsonl(layout.metrics) if r.get("epoch", 0) <= run.epoch]
        set_rng_state(ckpt["rng"])
        log.info("resuming %s after epoch %d (step %d)", cfg.out, run.epoch, run.step)
    if dist.is_main:
        with _writing(layout.config):
            _write_run_files(run, ds, model_cfg)
        with _writing(layout.steps):
            run.step_log = files.enter_context(StepLog(
                layout.steps, step_columns(loss_terms(cfg), list(run.lr.lrs())),
                resume_step=run.step if ckpt is not None else None, tensorboard=layout.tensorboard))

    val_records = val_data.dataset.records
    val_ids = [str(r["id"]) for r in val_records]
    val_refs = [r[cfg.text_field] for r in val_records]
    val_ref_labels = scoring.label_texts(val_refs) if dist.is_main else None
    val_decoding = DecodeConfig(beam_size=cfg.eval.val_beam_size, max_tokens=cfg.max_tokens)
    val_text = None
    if run.mfa is not None and dist.is_main:  # MFA diagnostics compare validation images with their reports
        val_text = text_features(run.text_encoder, [r.get("report") or r[cfg.text_field] for r in val_records], device)
    higher = MONITORS[cfg.eval.monitor]
    stopped_early = False

    while run.epoch < cfg.optim.epochs:
        epoch = run.epoch
        started = time.perf_counter()
        train_stats = train_one_epoch(run, train_data, epoch, progress)
        with eager() if cfg.runtime.compile else contextlib.nullcontext():
            result = evaluate(run.model, val_data, tokenizer, val_decoding, dist=dist, device=device,
                              autocast=run.autocast, progress=progress,
                              name=f"validate {epoch + 1}/{cfg.optim.epochs}")
        record = None
        if dist.is_main:
            record = _validation_record(run, result, val_refs, val_ids, val_ref_labels)
            if val_text is not None and result.z_img is not None:
                record.update(mfa_diagnostics(run.model, run.mfa, result.z_img, val_text[result.indices]))
        record = dist.broadcast(record)
        value = record["monitor_value"]
        record["lr"] = run.lr.lrs()
        record["lr_reduced"] = run.lr.observe(value)
        if "obs_weights" in record:
            run.obs_weights.weights = list(record["obs_weights"])
        improved = selection.improved(value, higher)
        if improved:
            selection.best_value, selection.best_epoch, selection.stale = value, epoch + 1, 0
        else:
            selection.stale += 1
        run.epoch = epoch + 1
        record.update({"epoch": run.epoch, "step": run.step, **train_stats, "best": improved,
                       "epoch_seconds": time.perf_counter() - started})
        if dist.is_main:
            with _writing(layout.steps):  # on disk before the checkpoint that follows these steps
                run.step_log.epoch(record)
            payload = checkpoint_payload(run, model_cfg, selection, ds)
            save_checkpoint(layout.last, payload)
            if improved:
                save_checkpoint(layout.best, payload)
            history.append(record)
            with _writing(layout.metrics):
                write_jsonl(layout.metrics, history)
        dist.barrier()
        progress.event("epoch", record)
        patience = cfg.optim.patience
        if patience and selection.stale >= patience and run.epoch < cfg.optim.epochs:
            stopped_early = True
            log.info("stopping early: %s has not improved for %d epochs", cfg.eval.monitor, patience)
            break

    if run.lr.in_warmup and dist.is_main:
        log.warning("the run ended in its learning-rate warm-up (step %d of %d): the learning rate never reached "
                    "its base; lower --warmup or train longer", run.lr.steps, run.lr.warmup_steps)
    test_metrics = test(run, selection, progress) if dist.is_main else {}
    dist.barrier()
    return TrainResult(cfg.out, run.epoch, stopped_early, cfg.eval.monitor, selection.best_epoch,
                       selection.best_value, test_metrics)


def _validation_record(run: Run, result: SplitResult, refs: list[str], ids: list[str], ref_labels) -> dict:
    cfg = run.cfg
    preds = {ids[i]: p for i, p in zip(result.indices, result.predictions)}
    references = {ids[i]: refs[i] for i in result.indices}
    labels = {ids[i]: ref_labels[i] for i in result.indices}
    scores, ce_f1 = scoring.validation_scores(preds, references, labels)
    record: dict[str, Any] = {"val_loss": result.loss, **{f"val_{k}": v for k, v in scores.items()}}
    if cfg.model.acl:  # the clinical head, and Eq. 6's weights of its loss, belong to ACL
        f1 = head_f1(result, cfg.loss.uncertain)
        record["val_head_f1"] = f1
        record["val_head_confusion"] = head_confusion(result, cfg.loss.uncertain)  # [TP, FP, FN, TN] per observation
        known = [v for v in f1 if v is not None]
        record["val_head_f1_macro"] = sum(known) / len(known) if known else None
        # Eq. 6 clinical feedback: the validation CE F1 of each observation (generated vs reference labels).
        record["obs_weights"] = list(run.obs_weights.update(ce_f1))
    record["monitor"] = cfg.eval.monitor
    record["monitor_value"] = record["val_loss"] if cfg.eval.monitor == "val_loss" else record[f"val_{cfg.eval.monitor}"]
    return record


def test(run: Run, selection: Selection, progress: Progress = SILENT) -> dict:
    """Decode and score the test split once, as `irralctl generate` + `irralctl score` would, with
    the best checkpoint (else the last); writes test_predictions.jsonl and test_metrics.json."""
    from irralctl.generation import GenerateConfig, generate_reports
    from irralctl.metrics import ScoreConfig, score_files

    cfg, layout = run.cfg, run.layout
    used = layout.best if layout.best.is_file() else layout.last
    if not PreparedDataset(cfg.dataset).records("test"):
        log.warning("the test split is empty: nothing to decode")
        return {}
    try:
        generated = generate_reports(GenerateConfig(checkpoint=used, out=layout.test_predictions, dataset=cfg.dataset,
                                                    split="test", device=str(run.device), overwrite=True),
                                     progress=progress)
        scores = score_files(layout.test_predictions, ScoreConfig(meteor=cfg.eval.meteor))
    except Interrupted:  # Ctrl-C is not a scoring failure: the run's own transaction names what it keeps
        raise KeyboardInterrupt from None
    except IrralError as e:
        raise TrainingError(f"training finished, but scoring the test split failed: {e.message}", hint=e.hint) from None
    scores["run"] = {
        "checkpoint": used.name, "epoch": selection.best_epoch if used == layout.best else run.epoch,
        "monitor": cfg.eval.monitor, "monitor_value": selection.best_value, "decoding": generated.decoding,
        "reproduce": f"irralctl generate --dataset {cfg.dataset} --split test --checkpoint {cfg.out / used.name} "
                     f"--out PREDS.jsonl "
                     f"&& irralctl score PREDS.jsonl --meteor {cfg.eval.meteor}",
    }
    with _writing(layout.test_metrics):
        write_json(layout.test_metrics, to_jsonable(scores))
    return scores["metrics"]
