"""Which observations can the visual encoder find? The clinical head trained alone (docs/model.md).

The reports can only name what ACL's clinical head finds, so this trains the head alone: the CNN,
the multi-scale fusion and the head of IRRAL-Net at the demo's model size, on the labels of a
prepared dataset's training split (the head's BCE, no decoder, no Eq. 6 weights), with AdamW at
the study's learning rate. After every epoch it writes each observation's validation F1 of the
head's decisions (probability above 0.5). Each `--tiny-norm` is trained from the same initial weights
and data order at each seed, so the normalisations are compared paired.

    python scripts/head_probe.py DATA --out docs/head-probe.md            # channel vs group, 3 seeds

`DATA` is an `irralctl prepare` output with images (the study's: `prepare phantoms --n 800
--image-size 64`). CPU, one thread per process: a run of 10 epochs takes about a minute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from irralctl.constants import OBSERVATIONS
from irralctl.data.prepared import PreparedDataset
from irralctl.model import losses
from irralctl.model.irral import build_model
from irralctl.training.config import TrainConfig
from irralctl.training.data import make_loader
from irralctl.training.distributed import DistState
from irralctl.training.evaluate import SplitResult, head_f1
from irralctl.utils.io import atomic_write, write_json
from irralctl.utils.outputs import check_output


def validation_f1(model, loader, uncertain: str) -> list[float | None]:
    """Validation F1 of the head's decisions per observation, as training logs it (`head_f1`)."""
    model.eval()
    probs, labels = [], []
    with torch.no_grad():
        for batch in loader:
            tokens, mask = model._visual_tokens(batch["images"], batch["view_mask"])   # (B, N, d), (B, N)
            probs.append(torch.sigmoid(model.clinical(tokens, mask)))                  # (B, 14)
            labels.append(batch["labels"])
    result = SplitResult(indices=[], predictions=[], nll=np.zeros((0, 2)),
                         head_probs=torch.cat(probs).numpy(), labels=torch.cat(labels).numpy())
    return head_f1(result, uncertain)


def train_head(data: Path, norm: str, seed: int, epochs: int, batch_size: int, lr: float) -> list[list[float | None]]:
    """Per epoch, the validation F1 of every observation."""
    torch.manual_seed(seed)
    cfg = TrainConfig(dataset=data, size="cpu", seed=seed).sized("cpu")
    ds = PreparedDataset(data)
    tokenizer = ds.tokenizer(cfg.data.tokenizer)
    model = build_model(cfg.model.replace(tiny_norm=norm, vocab_size=tokenizer.vocab_size), seed=seed)
    params = [*model.visual.parameters(), *model.clinical.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.optim.weight_decay)
    one = DistState()
    cpu = torch.device("cpu")
    train = make_loader(ds, "train", tokenizer, cfg, one, cpu, train=True, batch_size=batch_size, workers=0)
    val = make_loader(ds, "val", tokenizer, cfg, one, cpu, train=False, batch_size=64, workers=0)
    curve = []
    for epoch in range(epochs):
        train.set_epoch(epoch)
        model.train()
        for batch in train.loader:
            tokens, mask = model._visual_tokens(batch["images"], batch["view_mask"])
            total, count = losses.clinical_bce(model.clinical(tokens, mask), batch["labels"], None, cfg.loss.uncertain)
            opt.zero_grad(set_to_none=True)
            (total / count.clamp_min(1)).backward()
            opt.step()
        curve.append(validation_f1(model, val.loader, cfg.loss.uncertain))
        print(f"{norm} seed {seed} epoch {epoch + 1}: " + ", ".join(
            f"{o} {f:.2f}" for o, f in zip(OBSERVATIONS, curve[-1]) if f is not None), flush=True)
    return curve


def describe(data: Path) -> str:
    """What a prepared dataset is, from its dataset.json (a phantom draw: variant, size and seed)."""
    meta = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    options = meta.get("options") or {}
    if meta.get("name") == "phantoms":
        return (f"{options.get('n')} {options.get('variant')} phantoms at {options.get('image_size')} px, "
                f"draw seed {options.get('seed')}")
    return str(meta.get("name"))


def page(results: dict, args: argparse.Namespace, command: str) -> str:
    norms, seeds = list(results), sorted({s for r in results.values() for s in r})
    last = {n: {s: results[n][s][-1] for s in seeds} for n in norms}
    observed = [c for c, o in enumerate(OBSERVATIONS) if last[norms[0]][seeds[0]][c] is not None]
    lines = [
        "# Which observations can the visual encoder find? The clinical head alone",
        "",
        f"Written by `scripts/head_probe.py` (`{command}`) on {datetime.date.today()}, {platform.machine()}, CPU. "
        "Every figure below comes from that run; none is typed by hand.",
        "",
        f"Dataset: `{args.data}` ({describe(args.data)}). The demo's CNN, multi-scale fusion and clinical head, trained alone on the "
        f"labels for {args.epochs} epochs (batch {args.batch_size}, AdamW, learning rate {args.lr:g}); each "
        "normalisation from the same initial weights and data order at each seed. Validation F1 of the "
        "head's decisions (probability above 0.5) after the last epoch, per seed:",
        "",
        "| observation | " + " | ".join(f"`--tiny-norm {n}`" for n in norms) + " |",
        "|---|" + "---:|" * len(norms),
    ]
    for c in observed:
        cells = []
        for n in norms:
            values = [last[n][s][c] for s in seeds]
            cells.append(", ".join(f"{v:.2f}" for v in values) + f" (mean {sum(values) / len(values):.2f})")
        lines.append(f"| {OBSERVATIONS[c]} | " + " | ".join(cells) + " |")
    lines += ["", "Macro F1 over the observations with a positive validation study, per epoch (mean over seeds):", "",
              "| epoch | " + " | ".join(f"`{n}`" for n in norms) + " |", "|---:|" + "---:|" * len(norms)]
    for e in range(args.epochs):
        row = []
        for n in norms:
            per_seed = [sum(results[n][s][e][c] for c in observed) / len(observed) for s in seeds]
            row.append(f"{sum(per_seed) / len(per_seed):.3f}")
        lines.append(f"| {e + 1} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="a prepared dataset with images")
    ap.add_argument("--norms", default="channel,group", help="--tiny-norm values to compare")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", default="-", help="markdown page to write ('-': print it)")
    ap.add_argument("--json", type=Path, help="also write every curve here")
    args = ap.parse_args(argv)
    for out, flag in ((args.out, "--out"), (args.json, "--json")):
        if out not in (None, "-"):
            check_output(out, [args.data], flag=flag)
    torch.set_num_threads(1)
    results = {n: {int(s): train_head(args.data, n, int(s), args.epochs, args.batch_size, args.lr)
                   for s in args.seeds.split(",")} for n in args.norms.split(",")}
    text = page(results, args, shlex.join(["python", "scripts/head_probe.py", *(argv if argv is not None else sys.argv[1:])]))
    if args.json:
        write_json(args.json, results)
    if args.out == "-":
        print(text)
    else:
        with atomic_write(args.out) as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
