"""`train(cfg)`: a whole training run, from a prepared dataset to a self-describing run directory.

    RUN_DIR/
      config.json             every option, seed, package versions, dataset fingerprint, model config
      tokenizer.json          the tokeniser the model speaks (copied from the dataset)
      metrics.jsonl           one line per epoch: losses, validation NLG + CE, lr, Eq. 6 weights, images/s
      last.pt, best.pt        checkpoints (atomic), best by the validation monitor
      test_predictions.jsonl  {id, prediction, reference} of the test split, decoded once with best.pt
      test_metrics.json       its scores

Model selection uses the validation split only; the test split is decoded and scored once, at
the end. `--resume` restores weights, optimiser, LR state, Eq. 6 weights, epoch and every RNG, so an
interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from irralctl.data.prepared import PreparedDataset
from irralctl.errors import ConfigError, InputError, TrainingError
from irralctl.model import ModelConfig, build_model
from irralctl.model.config import N_OBSERVATIONS
from irralctl.model.text_encoder import TextEncoder, TextFeatureCache
from irralctl.training import scoring
from irralctl.training.checkpoint import (
    BEST,
    LAST,
    config_payload,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    train_config_of,
)
from irralctl.training.config import MONITORS, TrainConfig
from irralctl.training.data import make_loader
from irralctl.training.distributed import DistState, resolve_device
from irralctl.training.evaluate import SplitResult, evaluate, head_f1, split_metrics
from irralctl.training.feedback import ObservationWeights
from irralctl.training.loop import Callbacks, Run, TrainingModule, train_one_epoch
from irralctl.training.optim import LRController, build_optimizer
from irralctl.utils.config import save_config, to_jsonable
from irralctl.utils.io import iter_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

RESUMABLE_OVERRIDES = ("epochs", "patience", "device", "workers", "prefetch", "dataset")


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_run: int
    stopped_early: bool
    monitor: str
    best_epoch: int | None
    best_value: float | None
    test_metrics: dict


def resume_config(run_dir: str | Path, **overrides) -> TrainConfig:
    """The saved config of `run_dir` (from its last.pt), with only `RESUMABLE_OVERRIDES` changeable."""
    run_dir = Path(run_dir)
    if not (run_dir / LAST).is_file():
        raise InputError(f"nothing to resume: no {LAST} here", path=run_dir,
                         hint="point --resume at the run directory of an interrupted `irralctl train`")
    cfg = train_config_of(load_checkpoint(run_dir / LAST))
    bad = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE_OVERRIDES)
    if bad:
        raise ConfigError(f"cannot change {', '.join(bad)} when resuming", hint=f"only {', '.join(RESUMABLE_OVERRIDES)} may change")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(out=run_dir, overwrite=False, **changes)


def train(cfg: TrainConfig, callbacks: Callbacks | None = None, *, resume: bool = False) -> TrainResult:
    """Train per `cfg` (continuing `cfg.out` when `resume`). Works alone or under torchrun."""
    dist = DistState.from_env()
    device = resolve_device(cfg.device, dist.local_rank)
    dist.init(device)
    try:
        return _train(cfg, callbacks or Callbacks(), resume, dist, device)
    finally:
        dist.close()


# -- setup --------------------------------------------------------------------------------------

def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def open_dataset(cfg: TrainConfig) -> PreparedDataset:
    """The prepared dataset of `cfg`, checked for what training needs (split manifests, images)."""
    ds = PreparedDataset(cfg.dataset)
    if not cfg.no_image and not ds.has_images:
        raise InputError("this dataset was prepared without images", path=cfg.dataset,
                         hint="prepare it again with --images, or train the language prior with --no-image")
    for split in ("train", "val", "test"):
        if not (ds.dir / f"{split}.jsonl").is_file():
            raise InputError(f"split manifest {split}.jsonl missing", path=ds.dir,
                             hint="the dataset directory is incomplete; run `irralctl prepare` again")
    return ds


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> None:
    out = cfg.out
    if resume:
        return
    if out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise InputError("run directory already exists", path=out,
                             hint="choose another --out, continue it with --resume, or pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _setup_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def build_run(cfg: TrainConfig, ds: PreparedDataset, dist: DistState, device: torch.device) -> tuple[Run, ModelConfig]:
    """Model, optimiser, LR control, text features and wrappers for `cfg` (also used by scripts/bench_gpu.py)."""
    tokenizer = ds.tokenizer(cfg.tokenizer)
    train_records = ds.records("train")
    text_encoder = None
    text_dim = ModelConfig.__dataclass_fields__["text_dim"].default
    if cfg.mfa:
        text_encoder = TextEncoder(cfg.text_encoder, cfg.text_max_tokens, trainable=cfg.tune_text_encoder).to(device)
        text_dim = text_encoder.hidden_size
    model_cfg = cfg.model_config(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, text_dim)
    torch.manual_seed(cfg.seed)  # identical initial weights on every process
    model = build_model(model_cfg, cfg.visual_weights)
    if cfg.backbone != "tiny" and not cfg.no_image and cfg.visual_weights is None:
        log.warning("training %s from scratch: no ImageNet weights were given (--visual-weights FILE, a torchvision "
                    "state_dict); expect clearly weaker reports than with pretrained weights", cfg.backbone)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    tuned = text_encoder if cfg.tune_text_encoder else None
    optimizer = build_optimizer(model, tuned, lr=cfg.lr, lr_visual=cfg.lr_visual, weight_decay=cfg.weight_decay, device=device)
    module: torch.nn.Module = TrainingModule(model, tuned)
    if dist.distributed:
        if cfg.sync_bn and device.type == "cuda":
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        module = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        module = torch.compile(module)
    amp = _amp_dtype(cfg.precision, device)
    run = Run(
        cfg=cfg, dist=dist, device=device, model=model, module=module, optimizer=optimizer,
        lr=LRController(optimizer, warmup_steps=cfg.warmup_steps, total_steps=1, schedule=cfg.schedule,
                        plateau_factor=cfg.plateau_factor, plateau_patience=cfg.plateau_patience,
                        higher_is_better=MONITORS[cfg.monitor]),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        obs_weights=ObservationWeights(N_OBSERVATIONS, cfg.obs_weight_momentum),
        amp_dtype=amp, train_ids=[r["id"] for r in train_records], text_encoder=text_encoder,
    )
    if cfg.mfa:
        texts = [r.get("report") or r[cfg.text_field] for r in train_records]
        if cfg.tune_text_encoder:
            run.train_texts = texts
        else:
            run.text_cache = TextFeatureCache(text_encoder, texts, device)
    return run, model_cfg


def _write_run_files(cfg: TrainConfig, ds: PreparedDataset, model_cfg: ModelConfig, dist: DistState,
                     device: torch.device, amp: torch.dtype | None, text_encoder: TextEncoder | None) -> None:
    cleaner_key = "cleaner" if cfg.text_field == "target" else "legacy_cleaner"
    (cfg.out / "tokenizer.json").write_text(ds.tokenizer_json(cfg.tokenizer), encoding="utf-8")
    save_config(
        cfg.out / "config.json", cfg, model=model_cfg, seed=cfg.seed,
        dataset={"path": str(ds.dir.resolve()), "name": ds.name, "fingerprint": ds.info.get("fingerprint"),
                 "counts": ds.info.get("counts"), "labeler": ds.info.get("labeler")},
        tokenizer={"kind": cfg.tokenizer, "file": "tokenizer.json", "text_field": cfg.text_field},
        cleaner=ds.info.get(cleaner_key),
        runtime={"device": str(device), "precision": str(amp).removeprefix("torch.") if amp else "fp32",
                 "world_size": dist.world_size, "metrics": scoring.available()},
        text_encoder=None if text_encoder is None else {"path": str(text_encoder.path), "hidden_size": text_encoder.hidden_size,
                                                        "trainable": text_encoder.trainable},
    )


@contextlib.contextmanager
def _writing(path: Path):
    """Turn an OSError while writing an output (a full disk) into one clear TrainingError."""
    try:
        yield
    except OSError as e:
        reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise TrainingError(f"could not write {path}: {reason}; earlier outputs are intact",
                            hint="free space on that disk (or choose another --out) and continue with --resume") from None


# -- checkpoints --------------------------------------------------------------------------------

@dataclass
class Progress:
    """Model-selection state carried in checkpoints."""

    best_value: float | None = None
    best_epoch: int | None = None
    stale: int = 0                # epochs since the monitor last improved

    def improved(self, value: float | None, higher_is_better: bool) -> bool:
        if value is None or math.isnan(value):
            return False
        return self.best_value is None or (value > self.best_value if higher_is_better else value < self.best_value)


def _payload(run: Run, model_cfg: ModelConfig, progress: Progress, ds: PreparedDataset) -> dict:
    cfg = run.cfg
    cleaner_key = "cleaner" if cfg.text_field == "target" else "legacy_cleaner"
    return {
        **config_payload(cfg, model_cfg),
        "model": run.model.state_dict(),
        "text_encoder": run.text_encoder.state_dict() if run.text_encoder is not None and run.text_encoder.trainable else None,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.lr.state_dict(),
        "scaler": run.scaler.state_dict(),
        "obs_weights": run.obs_weights.state_dict(),
        "epoch": run.epoch,
        "step": run.step,
        "progress": {"best_value": progress.best_value, "best_epoch": progress.best_epoch, "stale": progress.stale},
        "rng": rng_state(),
        "tokenizer": {"kind": cfg.tokenizer, "json": ds.tokenizer_json(cfg.tokenizer)},
        "cleaner": ds.info.get(cleaner_key),
        "dataset": {"name": ds.name, "fingerprint": ds.info.get("fingerprint")},
    }


def _restore(run: Run, ckpt: dict) -> Progress:
    run.model.load_state_dict(ckpt["model"])
    if ckpt.get("text_encoder") is not None and run.text_encoder is not None:
        run.text_encoder.load_state_dict(ckpt["text_encoder"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.lr.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    run.obs_weights.load_state_dict(ckpt["obs_weights"])
    run.epoch, run.step = ckpt["epoch"], ckpt["step"]
    p = ckpt["progress"]
    return Progress(p["best_value"], p["best_epoch"], p["stale"])


def _check_resumable(ckpt: dict, ds: PreparedDataset, cfg: TrainConfig) -> None:
    if ckpt["tokenizer"]["json"] != ds.tokenizer_json(cfg.tokenizer):
        raise TrainingError(
            f"the {cfg.tokenizer} tokeniser of {ds.dir} differs from the one this run was trained with",
            hint="resume on the dataset the run started from (see dataset in its config.json)")
    fingerprint = (ckpt.get("dataset") or {}).get("fingerprint")
    if fingerprint and fingerprint != ds.info.get("fingerprint"):
        log.warning("the dataset's fingerprint differs from the one this run started with (%s)", ds.dir)


# -- the run ------------------------------------------------------------------------------------

def _train(cfg: TrainConfig, callbacks: Callbacks, resume: bool, dist: DistState, device: torch.device) -> TrainResult:
    ds = open_dataset(cfg)
    scoring.check_monitor(cfg.monitor)
    have = scoring.available()
    ckpt = load_checkpoint(cfg.out / LAST) if resume else None
    if ckpt is not None:
        _check_resumable(ckpt, ds, cfg)
    if dist.is_main:
        _prepare_run_dir(cfg, resume)
    dist.barrier()
    _setup_device(device)
    _seed_everything(cfg.seed)

    run, model_cfg = build_run(cfg, ds, dist, device)
    tokenizer = ds.tokenizer(cfg.tokenizer)
    train_data = make_loader(ds, "train", tokenizer, cfg, dist, device, train=True, batch_size=cfg.batch_size)
    val_data = make_loader(ds, "val", tokenizer, cfg, dist, device, train=False, batch_size=cfg.eval_batch_size)
    if len(train_data.dataset) == 0 or len(val_data.dataset) == 0:
        raise InputError("the train and val splits must both hold studies", path=ds.dir)
    run.lr.total_steps = cfg.epochs * len(train_data)

    history: list[dict] = []
    progress = Progress()
    if ckpt is not None:
        progress = _restore(run, ckpt)
        if (cfg.out / "metrics.jsonl").is_file():
            history = [r for _, r in iter_jsonl(cfg.out / "metrics.jsonl") if r.get("epoch", 0) <= run.epoch]
        set_rng_state(ckpt["rng"])
        log.info("resuming %s after epoch %d (step %d)", cfg.out, run.epoch, run.step)
    if dist.is_main:
        with _writing(cfg.out / "config.json"):
            _write_run_files(cfg, ds, model_cfg, dist, device, run.amp_dtype, run.text_encoder)

    val_records = val_data.dataset.records
    val_ids = [r["id"] for r in val_records]
    val_refs = [r[cfg.text_field] for r in val_records]
    val_ref_labels = None
    if have["clinical"] and dist.is_main:
        val_ref_labels = scoring.label_texts(val_refs)
    higher = MONITORS[cfg.monitor]
    stopped_early = False

    while run.epoch < cfg.epochs:
        epoch = run.epoch
        started = time.perf_counter()
        train_stats = train_one_epoch(run, train_data, epoch, callbacks)
        result = evaluate(run.model, val_data, tokenizer, dist=dist, device=device, autocast=run.autocast,
                          gen_len=cfg.gen_len, generate=have["nlg"], callbacks=callbacks,
                          name=f"validate {epoch + 1}/{cfg.epochs}")
        record = None
        if dist.is_main:
            record = _validation_record(run, result, val_refs, val_ids, val_ref_labels, have)
        record = dist.broadcast(record)
        value = record["monitor_value"]
        record["lr"] = run.lr.lrs()
        record["lr_reduced"] = run.lr.observe(value)
        run.obs_weights.weights = list(record["obs_weights"])
        improved = progress.improved(value, higher)
        if improved:
            progress.best_value, progress.best_epoch, progress.stale = value, epoch + 1, 0
        else:
            progress.stale += 1
        run.epoch = epoch + 1
        record.update({"epoch": run.epoch, "step": run.step, **train_stats, "best": improved,
                       "epoch_seconds": time.perf_counter() - started})
        if dist.is_main:
            payload = _payload(run, model_cfg, progress, ds)
            save_checkpoint(cfg.out / LAST, payload)
            if improved:
                save_checkpoint(cfg.out / BEST, payload)
            history.append(record)
            with _writing(cfg.out / "metrics.jsonl"):
                write_jsonl(cfg.out / "metrics.jsonl", history)
        dist.barrier()
        if callbacks.epoch_end:
            callbacks.epoch_end(record)
        if cfg.patience and progress.stale >= cfg.patience and run.epoch < cfg.epochs:
            stopped_early = True
            log.info("stopping early: %s has not improved for %d epochs", cfg.monitor, cfg.patience)
            break

    test_metrics = _test(run, ds, tokenizer, progress, have, callbacks)
    return TrainResult(cfg.out, run.epoch, stopped_early, cfg.monitor, progress.best_epoch, progress.best_value, test_metrics)


def _validation_record(run: Run, result: SplitResult, refs: list[str], ids: list[str], ref_labels, have: dict) -> dict:
    cfg = run.cfg
    scores, _ = split_metrics(result, refs, ids, ref_labels, nlg=have["nlg"], clinical=have["clinical"])
    record = {f"val_{k}": v for k, v in scores.items()}
    record["val_head_f1"] = head_f1(result, cfg.uncertain)
    # Eq. 6 clinical feedback: CE F1 per observation of generated reports when the labeller is
    # available, else (recorded as such) the clinical head's own per-observation F1.
    if "ce_f1_per_observation" in scores:
        f1, source = scores["ce_f1_per_observation"], "ce"
    else:
        f1, source = record["val_head_f1"], "head"
    record["obs_weights"] = list(run.obs_weights.update(f1))
    record["obs_weights_source"] = source
    record["monitor"] = cfg.monitor
    record["monitor_value"] = record.get(cfg.monitor if cfg.monitor == "val_loss" else f"val_{cfg.monitor}")
    return record


def _test(run: Run, ds: PreparedDataset, tokenizer, progress: Progress, have: dict, callbacks: Callbacks) -> dict:
    """Decode and score the test split once, with the best checkpoint (else the last weights)."""
    cfg, dist = run.cfg, run.dist
    used = "last"
    if (cfg.out / BEST).is_file():
        run.model.load_state_dict(load_checkpoint(cfg.out / BEST, map_location=run.device)["model"])
        used = "best"
    test_data = make_loader(ds, "test", tokenizer, cfg, dist, run.device, train=False, batch_size=cfg.eval_batch_size)
    if len(test_data.dataset) == 0:
        log.warning("the test split is empty: nothing to decode")
        return {}
    result = evaluate(run.model, test_data, tokenizer, dist=dist, device=run.device, autocast=run.autocast,
                      gen_len=cfg.gen_len, generate=True, callbacks=callbacks, name="test")
    metrics: dict = {}
    if dist.is_main:
        records = test_data.dataset.records
        refs = [r[cfg.text_field] for r in records]
        ids = [r["id"] for r in records]
        ref_labels = scoring.label_texts(refs) if have["clinical"] else None
        metrics, protocol = split_metrics(result, refs, ids, ref_labels, nlg=have["nlg"], clinical=have["clinical"],
                                          meteor=cfg.meteor)
        with _writing(cfg.out / "test_predictions.jsonl"):
            write_jsonl(cfg.out / "test_predictions.jsonl",
                        ({"id": ids[i], "prediction": p, "reference": refs[i]} for i, p in zip(result.indices, result.predictions)))
        summary = {
            "checkpoint": used, "epoch": progress.best_epoch if used == "best" else run.epoch,
            "monitor": cfg.monitor, "monitor_value": progress.best_value, "studies": len(result.indices),
            "references": cfg.text_field, "decoding": f"greedy, at most {cfg.gen_len} tokens",
            "protocol": protocol, "metrics": metrics,
        }
        with _writing(cfg.out / "test_metrics.json"):
            write_json(cfg.out / "test_metrics.json", to_jsonable(summary))
    dist.barrier()
    return metrics
