"""`irralctl export RUN --to safetensors DIR`: a trained run's weights for sharing, with a model card.

    DIR/model.safetensors   the model's state_dict (no optimiser state, no pickled Python)
    DIR/tokenizer.json      the tokeniser the model speaks, byte for byte
    DIR/config.json         format, format_version; model (ModelConfig), train (TrainConfig), tokenizer
                            {kind, file, text_field}, inference {max_tokens}, cleaner, dataset {name,
                            fingerprint, counts}, checkpoint {file, epoch, step}, command (the
                            `irralctl train` command), sha256 of the two files, provenance
    DIR/README.md           the model card: data, training command, test metrics, intended use, limitations

`irralctl generate --checkpoint DIR` and `irralctl heatmap --checkpoint DIR` load it as they load
the run (`runs.loaded.load_run`), and give the same reports. The checkpoint read is the run's
best.pt (else last.pt), or the .pt file given; it is verified as every load is.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from irralctl.errors import InputError
from irralctl.export import ExportResult
from irralctl.export.config import ExportConfig
from irralctl.progress import SILENT, Progress
from irralctl.runs.checkpoint import load_checkpoint
from irralctl.runs.layout import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, ExportLayout, RunLayout, checkpoint_file
from irralctl.utils.config import from_dict, provenance, to_flags
from irralctl.utils.io import atomic_write, read_json, sha256_file, write_json
from irralctl.utils.outputs import output_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def train_command(train_config: dict) -> str:
    """The `irralctl train` command that gives `train_config` (flags differing from the defaults)."""
    from irralctl.training.config import TrainConfig

    return shlex.join(["irralctl", "train", *to_flags(from_dict(TrainConfig, train_config, strict=False, saved=True))])


def _test_metrics(run_dir: Path, checkpoint: Path) -> tuple[dict | None, str | None]:
    """The run's test_metrics.json when it scored this checkpoint, else (None, why not)."""
    path = RunLayout(run_dir).test_metrics
    if not path.is_file():
        return None, "the run has no test_metrics.json (training did not reach its final test)"
    scores = read_json(path)
    used = (scores.get("run") or {}).get("checkpoint")
    if used is not None and used != checkpoint.name:
        return None, f"test_metrics.json scores {used}, not the exported {checkpoint.name}"
    return scores, None


def export_safetensors(cfg: ExportConfig, progress: Progress = SILENT) -> ExportResult:
    """Write the run's checkpoint as DIR (see the module docstring)."""
    from safetensors.torch import save_file

    path = checkpoint_file(cfg.source)
    if path.suffix == ".safetensors":
        raise InputError("is already an export", path=cfg.source, hint="give the run directory or one of its .pt files")
    with progress.task("reading the checkpoint") as task:
        ckpt = load_checkpoint(path, mmap=True, verify="inference")
        task.advance(1)
    run_dir = path.parent
    run_config = read_json(RunLayout(run_dir).config) if RunLayout(run_dir).config.is_file() else {}
    train_config = ckpt.get("train_config") or run_config.get("config")
    if not isinstance(train_config, dict):
        raise InputError("the checkpoint holds no training config", path=path)
    dataset = {**(ckpt.get("dataset") or {}), "counts": (run_config.get("dataset") or {}).get("counts")}
    scores, no_scores = _test_metrics(run_dir, path)
    command = train_command(train_config)

    with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=[cfg.source, run_dir]) as stage:
        layout = ExportLayout(stage)
        # safetensors wants contiguous tensors that own their memory (not views of a memory map).
        weights = {k: v.detach().contiguous().clone() for k, v in ckpt["model"].items()}
        with progress.task("writing model.safetensors") as task:
            save_file(weights, str(layout.weights), metadata={"format": EXPORT_FORMAT,
                                                              "format_version": str(EXPORT_FORMAT_VERSION)})
            layout.weights.chmod(0o666 & ~_umask())  # safetensors creates it 0600; give the usual permissions
            task.advance(1)
        layout.tokenizer.write_text(ckpt["tokenizer"]["json"], encoding="utf-8")
        config = {
            "format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION,
            "model": ckpt["model_config"], "train": train_config,
            "tokenizer": {"kind": ckpt["tokenizer"]["kind"], "file": layout.tokenizer.name,
                          "text_field": ckpt["tokenizer"]["text_field"]},
            "inference": ckpt["inference"], "cleaner": ckpt.get("cleaner"), "dataset": dataset,
            "checkpoint": {"file": str(path.resolve()), "epoch": ckpt.get("epoch"), "step": ckpt.get("step")},
            "epoch": ckpt.get("epoch"), "step": ckpt.get("step"), "command": command,
            "sha256": {f.name: sha256_file(f) for f in (layout.weights, layout.tokenizer)},
            **provenance(),
        }
        write_json(layout.config, config)
        with atomic_write(layout.card) as f:
            f.write(model_card(config, scores, no_scores))
    counts = {"tensors": len(weights), "parameters": sum(int(v.numel()) for v in weights.values()),
              "epoch": ckpt.get("epoch")}
    return ExportResult(out=cfg.out, to="safetensors", counts=counts,
                        files=["model.safetensors", "tokenizer.json", "config.json", "README.md"])


# -- the model card ---------------------------------------------------------------------------------

_SHOWN = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider", "bertscore_f1",
          "ce_macro_precision_14", "ce_macro_recall_14", "ce_macro_f1_14", "ce_micro_f1_14", "ce_macro_f1_5")


def _metrics_section(scores: dict | None, no_scores: str | None) -> list[str]:
    if scores is None:
        return [f"Not reported here: {no_scores}. Score the model with `irralctl generate --dataset DATASET "
                "--split test --checkpoint DIR --out preds.jsonl` and `irralctl score preds.jsonl`."]
    metrics = scores.get("metrics") or {}
    ci = (scores.get("intervals") or {}).get("metrics") or {}
    level = (scores.get("intervals") or {}).get("confidence")
    head = "| metric | value |" + (f" {level:.0%} interval |" if ci else "")
    lines = [head, "|---|---|" + ("---|" if ci else "")]
    for name in _SHOWN:
        if metrics.get(name) is None:
            continue
        row = f"| {name} | {metrics[name]:.4f} |"
        if ci:
            iv = ci.get(name)
            row += f" [{iv['low']:.4f}, {iv['high']:.4f}] |" if iv else " |"
        lines.append(row)
    protocol = scores.get("protocol") or {}
    run = scores.get("run") or {}
    lines += [
        "",
        f"{scores.get('n_studies', '?')} test studies, decoded with {run.get('decoding') or 'the run’s defaults'}, "
        f"scored by `irralctl score` (protocol `{protocol.get('name', '?')}`; METEOR: "
        f"{protocol.get('meteor') or 'not computed'}; references: {protocol.get('references', '?')}). "
        + ("Intervals: " + (scores.get("intervals") or {}).get("method", "bootstrap") + "." if ci else
           "No confidence intervals were computed (`irralctl score --bootstrap N` gives them)."),
        "Every figure is in test_metrics.json of the run; `irralctl score` gives all of them (CE per observation).",
    ]
    return lines


def model_card(config: dict, scores: dict | None, no_scores: str | None) -> str:
    """README.md of an export: what the model is, how it was made and scored, and what it is not for."""
    train, model, dataset = config["train"], config["model"], config["dataset"]
    switches = ", ".join(k for k in ("memory", "mfa", "acl", "multiscale", "no_image") if model.get(k)) or "none"
    counts = dataset.get("counts") or {}
    split_counts = ", ".join(f"{s} {counts[s]}" for s in ("train", "val", "test") if s in counts) or "unknown"
    synthetic = dataset.get("name") == "phantoms"
    lines = [
        "---",
        "library_name: irralctl",
        "tags: [radiology-report-generation, chest-x-ray, research-only]",
        "---",
        "",
        f"# {train.get('preset', 'irralctl')} report generator ({model.get('backbone', '?')}, d_model "
        f"{model.get('d_model', '?')})",
        "",
        "A chest X-ray report generator trained with irralctl (IRRAL-Net and its baselines): it reads one or two "
        "radiographs of a study and writes the findings section.",
        "",
        "## Intended use",
        "",
        "**Research only. Not for clinical use.** This model is not a medical device and has not been validated "
        "for diagnosis, triage or any decision about a patient; its reports must not be shown to patients or "
        "clinicians as a reading of their images. Use it to study and compare report-generation methods.",
        "",
        "## Training data",
        "",
        f"- dataset: `{dataset.get('name')}`, fingerprint `{dataset.get('fingerprint')}` (sha256 over the "
        "prepared split manifests and tokenisers; `irralctl prepare` writes it in dataset.json)",
        f"- studies: {split_counts}",
        f"- tokeniser: {config['tokenizer']['kind']} (reads `{config['tokenizer']['text_field']}`), cleaner "
        f"{(config.get('cleaner') or {}).get('name')} {(config.get('cleaner') or {}).get('version')}",
        "",
        "## Training",
        "",
        "```bash",
        config["command"],
        "```",
        "",
        f"Components: {switches}. Checkpoint: epoch {config.get('epoch')} (step {config.get('step')}), "
        f"selected on validation `{(train.get('eval') or {}).get('monitor', '?')}`. config.json holds the "
        "model config (`model`) and the training config (`train`) the command above rebuilds.",
        "",
        "## Test metrics",
        "",
        *_metrics_section(scores, no_scores),
        "",
        "## Use",
        "",
        "```bash",
        "irralctl generate images/ --checkpoint THIS_DIR --out preds.jsonl",
        "irralctl heatmap --checkpoint THIS_DIR --study study_folder/ --words \"pleural effusion\" --out maps/",
        "```",
        "",
        "## Limitations",
        "",
        *(["- Trained on synthetic phantoms: its reports mean nothing on real radiographs."] if synthetic else []),
        f"- Trained on one dataset (`{dataset.get('name')}`): hospitals, scanners, populations (children, "
        "portable AP films) and report styles it has not seen will degrade it, silently.",
        "- Generated reports can state findings that are absent and omit findings that are present, in fluent "
        "language; a model of this kind leans on the most common phrasings of its training reports.",
        "- NLG metrics (BLEU, METEOR, ROUGE-L, CIDEr) measure word overlap with one reference report, not "
        "clinical correctness; clinical efficacy uses irralctl's rule-based CheXpert labeller, which has errors "
        "of its own (README: agreement with a hand-labelled set).",
        f"- Images are 8-bit greyscale, resized to {model.get('image_size', '?')} pixels; the model sees at most "
        f"{model.get('views', 2)} views per study.",
        "",
        "## Files",
        "",
        "model.safetensors (weights), tokenizer.json (tokeniser), config.json (model and training configs, "
        "sha256 of both files), this README.md. Written by `irralctl export RUN --to safetensors`.",
        "",
    ]
    return "\n".join(lines)
