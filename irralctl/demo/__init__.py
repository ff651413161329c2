"""`irralctl demo`: the whole pipeline on synthetic phantoms, on a CPU, in minutes.

Every step calls the same library function as the command a user would type by hand (printed in
`DemoResult.commands`), so the demo proves the pipeline, not a special path:

    irralctl prepare phantoms --n N --image-size 64 --out DIR/data
    irralctl train DIR/data --out DIR/runs/irral ...                     (IRRAL-Net, small)
    irralctl train DIR/data --out DIR/runs/no_image --no-image ...       (the language prior)
    irralctl generate --dataset DIR/data --split test --checkpoint DIR/runs/<run> --out DIR/preds/<run>.jsonl
    irralctl score DIR/preds/<run>.jsonl --json DIR/scores/<run>.json
    irralctl heatmap --checkpoint DIR/runs/irral --dataset DIR/data --id <study> --words ... --out DIR/heatmaps/<study>

On phantoms a model that reads the images must clearly beat the language prior on clinical
efficacy (CE F1): the comparison table at the end shows whether it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from irralctl.errors import ConfigError, InputError
from irralctl.utils.config import save_config

log = logging.getLogger(__name__)

# Words whose attention the demo draws: each is a finding the phantoms render.
HEATMAP_WORDS = ("heart", "effusion", "pneumothorax", "consolidation")


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    n: int = 1500                  # phantom studies (two views each)
    image_size: int = 64           # pixels (views are rendered at this size)
    epochs: int = 20
    batch_size: int = 32
    d_model: int = 64
    seed: int = 0
    heatmaps: int = 3              # test studies to draw attention maps for
    beam_size: int = 3
    workers: int = 2               # processes for phantom rendering and data loading
    overwrite: bool = False

    @classmethod
    def quick(cls, out: Path, **changes) -> DemoConfig:
        """The reduced mode CI runs: every step and artefact, minutes -> seconds, no quality claim."""
        return cls(out=out, **{"n": 120, "epochs": 2, "batch_size": 16, "d_model": 32, "heatmaps": 2, **changes})


@dataclass
class DemoResult:
    out: Path
    runs: dict[str, Path] = field(default_factory=dict)          # name -> run directory
    predictions: dict[str, Path] = field(default_factory=dict)   # name -> preds.jsonl
    scores: dict[str, dict] = field(default_factory=dict)        # name -> score_files result
    score_files: dict[str, Path] = field(default_factory=dict)
    heatmaps: list[Path] = field(default_factory=list)           # one folder per study
    commands: list[str] = field(default_factory=list)            # the equivalent hand-typed commands


# name -> (preset, extra train options): IRRAL-Net and the image-blind language prior.
RUNS = {"irral": ("irral", {}), "no_image": ("baseline", {"no_image": True})}


def _train_config(cfg: DemoConfig, data: Path, run: Path, preset: str, extra: dict):
    from irralctl.model import apply_preset
    from irralctl.training import TrainConfig

    d = cfg.d_model
    return TrainConfig(
        dataset=data, out=run, overwrite=cfg.overwrite, preset=preset, **apply_preset(preset), **extra,
        backbone="tiny", tiny_width=16, image_size=cfg.image_size, resize=cfg.image_size + 8,
        d_model=d, n_heads=4, d_ff=2 * d, enc_layers=2, dec_layers=2, memory_slots=256, memory_topk=16,
        batch_size=cfg.batch_size, eval_batch_size=64, lr=1e-3, lr_visual=1e-3, warmup_steps=20,
        epochs=cfg.epochs, patience=0, plateau_patience=max(3, cfg.epochs // 3), monitor="ce_f1",
        meteor="off", device="cpu", workers=cfg.workers, prefetch=2, seed=cfg.seed,
    )


def _train_command(data: Path, run: Path, tc) -> str:
    flags = (f"--preset {tc.preset}{' --no-image' if tc.no_image else ''} --backbone tiny --image-size {tc.image_size} "
             f"--resize {tc.resize} --d-model {tc.d_model} --n-heads {tc.n_heads} --d-ff {tc.d_ff} --enc-layers 2 "
             f"--dec-layers 2 --memory-slots 256 --memory-topk 16 --batch-size {tc.batch_size} --lr 1e-3 "
             f"--lr-visual 1e-3 --warmup-steps 20 --epochs {tc.epochs} --patience 0 --plateau-patience "
             f"{tc.plateau_patience} --monitor ce_f1 --meteor off --device cpu --seed {tc.seed}")
    return f"irralctl train {data} --out {run} {flags}"


def run_demo(cfg: DemoConfig, *, progress: Callable[[str, int, int], Callable[[int], None]] | None = None,
             train_callbacks=None, step: Callable[[str], None] | None = None) -> DemoResult:
    """Run every stage into `cfg.out`; `step(title)` announces each stage (for the CLI)."""
    from irralctl.data.phantom_prepare import PhantomPrepareConfig, prepare_phantoms
    from irralctl.data.prepared import PreparedDataset
    from irralctl.generation import DecodeConfig, GenerateConfig, generate_reports
    from irralctl.heatmaps import HeatmapConfig, make_heatmaps
    from irralctl.metrics import ScoreConfig, score_files
    from irralctl.training import train
    from irralctl.utils.io import write_json

    if cfg.n < 40:
        raise ConfigError(f"--n must be at least 40 studies for a demo (got {cfg.n})")
    out = cfg.out
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise InputError("already exists and is not empty", path=out, hint="choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    announce = step or (lambda _title: None)
    result = DemoResult(out=out)
    save_config(out / "demo.config.json", cfg)

    data = out / "data"
    announce(f"1/5 rendering {cfg.n} phantom studies")
    prepare_phantoms(PhantomPrepareConfig(out=data, n=cfg.n, seed=cfg.seed, image_size=cfg.image_size,
                                          workers=cfg.workers, overwrite=True), progress=progress)
    result.commands.append(f"irralctl prepare phantoms --n {cfg.n} --image-size {cfg.image_size} --seed {cfg.seed} --out {data}")

    for k, (name, (preset, extra)) in enumerate(RUNS.items(), start=1):
        run = out / "runs" / name
        tc = _train_config(cfg, data, run, preset, extra)
        announce(f"2/5 training {name} ({k}/{len(RUNS)}): {cfg.epochs} epochs on the CPU")
        train(tc, train_callbacks)
        result.runs[name] = run
        result.commands.append(_train_command(data, run, tc))

    decoding = DecodeConfig(beam_size=cfg.beam_size)
    for name, run in result.runs.items():
        announce(f"3/5 generating test reports with {name} (beam {cfg.beam_size})")
        preds = out / "preds" / f"{name}.jsonl"
        generate_reports(GenerateConfig(checkpoint=run, out=preds, dataset=data, split="test", decoding=decoding,
                                        device="cpu", overwrite=True), progress=progress)
        result.predictions[name] = preds
        result.commands.append(f"irralctl generate --dataset {data} --split test --checkpoint {run} "
                               f"--beam-size {cfg.beam_size} --device cpu --out {preds}")

    announce("4/5 scoring both runs (NLG + clinical efficacy)")
    for name, preds in result.predictions.items():
        scores = score_files(preds, ScoreConfig(meteor="auto"))
        path = out / "scores" / f"{name}.json"
        write_json(path, scores)
        result.scores[name], result.score_files[name] = scores, path
        result.commands.append(f"irralctl score {preds} --json {path}")

    announce(f"5/5 drawing attention heatmaps for {cfg.heatmaps} test studies")
    test_ids = [r["id"] for r in PreparedDataset(data).records("test")[: cfg.heatmaps]]
    for study in test_ids:
        folder = out / "heatmaps" / study
        make_heatmaps(HeatmapConfig(checkpoints=(result.runs["irral"],), out=folder, words=HEATMAP_WORDS,
                                    dataset=data, id=study, decoding=decoding, device="cpu", overwrite=True))
        result.heatmaps.append(folder)
        result.commands.append(f"irralctl heatmap --checkpoint {result.runs['irral']} --dataset {data} --id {study} "
                               f"--words \"{','.join(HEATMAP_WORDS)}\" --out {folder}")
    write_json(out / "demo.json", {
        "runs": {k: str(v) for k, v in result.runs.items()},
        "predictions": {k: str(v) for k, v in result.predictions.items()},
        "scores": {k: str(v) for k, v in result.score_files.items()},
        "heatmaps": [str(p) for p in result.heatmaps],
        "commands": result.commands,
        "comparison": comparison(result),
    })
    return result


COMPARED = ("bleu_4", "rouge_l", "cider", "meteor", "ce_macro_f1_14", "ce_micro_f1_14", "ce_macro_f1_5")


def comparison(result: DemoResult) -> dict[str, dict[str, float | None]]:
    """metric -> run -> value, for the table the CLI prints."""
    return {m: {name: s["metrics"].get(m) for name, s in result.scores.items()} for m in COMPARED}
