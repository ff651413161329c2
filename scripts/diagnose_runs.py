"""How much does each trained run read the image, and how does it use its memory? (docs/model.md)

For every run directory given (typically the runs of an `irralctl ablate` grid), on its dataset's
test split, with the run's best checkpoint:

* reports decoded with beam 1 and beam 3: CE F1 (micro, macro over 14), CE recall, BLEU-4, mean
  report length in words;
* reports decoded from images shuffled across studies (a fixed derangement: study i gets the
  views of another study) and scored against the original references: the CE F1 lost is how
  much of the clinical content came from the image; a model that does not read the image loses
  nothing;
* with the cross-modal memory: which slots the top-k reads choose, for the visual tokens and for
  the decoder's words (teacher-forced on the references): slots ever used, the perplexity of the
  usage distribution (the number of equally used slots it is worth) and the share of the 10 most
  used slots. A memory that collapsed onto a few slots remembers little.

    python scripts/diagnose_runs.py GRID/runs/* --out docs/diagnostics   # diagnostics.{json,md}

Runs on the CPU (`--device` to change); the figures are deterministic for a given run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from irralctl.data.prepared import PreparedDataset
from irralctl.generation.config import DecodeConfig
from irralctl.generation.decoding import decode
from irralctl.metrics import ScoreConfig, score_reports
from irralctl.runs.loaded import load_run
from irralctl.training.config import TrainConfig
from irralctl.training.data import make_loader
from irralctl.training.distributed import DistState
from irralctl.utils.config import from_dict, load_config_file


def _test_batches(run_dir: Path, loaded, device: torch.device):
    cfg = from_dict(TrainConfig, load_config_file(run_dir / "config.json"))
    ds = PreparedDataset(cfg.dataset)
    data = make_loader(ds, "test", loaded.tokenizer, cfg, DistState(0, 0, 1), device, train=False,
                       batch_size=64, workers=0)
    images, masks, tokens, lengths, index = [], [], [], [], []
    for batch in data.loader:
        images.append(batch["images"])
        masks.append(batch["view_mask"])
        tokens.append(batch["tokens"])
        lengths.append(batch["lengths"])
        index.append(batch["index"])
    records = data.dataset.records
    order = torch.cat(index).tolist()
    ids = [str(records[i]["id"]) for i in order]
    refs = [records[i][cfg.text_field] for i in order]
    width = max(t.shape[1] for t in tokens)
    pad = loaded.tokenizer.pad_id
    tokens = torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad) for t in tokens])
    return cfg, ids, refs, torch.cat(images), torch.cat(masks), tokens


@torch.no_grad()
def _decode_all(loaded, images, masks, beam: int, device: torch.device) -> list[str]:
    model, out = loaded.model, []
    decoding = DecodeConfig(beam_size=beam, max_tokens=loaded.max_tokens)
    for start in range(0, images.shape[0], 32):
        encoded = model.encode(images[start:start + 32].to(device), masks[start:start + 32].to(device))
        hyps = decode(model, encoded, decoding)
        out += [loaded.tokenizer.decode(hyps.ids(k)) for k in range(encoded.memory.shape[0])]
    return out


def _scores(ids, preds, refs) -> dict:
    m = score_reports(dict(zip(ids, preds)), dict(zip(ids, refs)), ScoreConfig(meteor="off"))["metrics"]
    return {"ce_micro_f1_14": m["ce_micro_f1_14"], "ce_macro_f1_14": m["ce_macro_f1_14"],
            "ce_micro_recall_14": m["ce_micro_recall_14"], "bleu_4": m["bleu_4"],
            "words": sum(len(p.split()) for p in preds) / max(len(preds), 1)}


def _derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A seeded permutation with no fixed point: study i gets the images of another study."""
    cycle = torch.randperm(n, generator=torch.Generator().manual_seed(seed))   # one random cycle through all studies
    source = torch.empty(n, dtype=torch.long)
    source[cycle] = cycle.roll(-1)                                             # study cycle[i] <- cycle[i + 1]
    return source


def _usage(counts: torch.Tensor) -> dict:
    total = float(counts.sum())
    if total == 0:
        return {}
    p = counts.double() / total
    nz = p[p > 0]
    return {"slots": int(counts.numel()), "used": int((counts > 0).sum()),
            "perplexity": float(torch.exp(-(nz * nz.log()).sum())),
            "top10_share": float(p.sort(descending=True).values[:10].sum()),
            "sorted_counts": counts.sort(descending=True).values.long().tolist()}


def histogram(rows: list[dict], path: Path) -> None:
    """Slot usage, most used first, one line per run and query kind (log scale): a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, kind in zip(axes, ("visual", "words")):
        for r in rows:
            if r["memory"] and r["memory"][kind]:
                counts = r["memory"][kind]["sorted_counts"]
                ax.plot(range(1, len(counts) + 1), [max(c, 0.5) for c in counts], label=Path(r["run"]).name)
        ax.set_yscale("log")
        ax.set_xlabel("memory slot, by rank of use")
        ax.set_title(f"top-k reads by {'visual tokens' if kind == 'visual' else 'words'}")
    axes[0].set_ylabel("times read")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@torch.no_grad()
def _memory_usage(loaded, images, masks, tokens, device: torch.device) -> dict | None:
    model = loaded.model
    memory = model.memory
    if memory is None or not model.cfg.memory:
        return None
    counts = {"visual": torch.zeros(memory.memory.shape[0]), "words": torch.zeros(memory.memory.shape[0])}
    where = {"now": "visual"}

    def record(module, args, output):
        x = args[0]
        b, length, d = x.shape
        k, _ = module.keys_values()
        q = module.q_proj(x).view(b * length, module.n_heads, module.d_head).transpose(0, 1)
        top = (q @ k.transpose(-2, -1)).topk(module.topk, dim=-1).indices          # (H, B*L, k)
        counts[where["now"]] += torch.bincount(top.flatten().cpu(), minlength=counts["visual"].numel()).float()

    handle = memory.register_forward_hook(record)
    try:
        for start in range(0, images.shape[0], 32):
            where["now"] = "visual"
            encoded = model._encode(images[start:start + 32].to(device), masks[start:start + 32].to(device), None)
            where["now"] = "words"
            model.teacher_force(encoded, tokens[start:start + 32].to(device))
    finally:
        handle.remove()
    # The visual tokens' reads include ACL's read-outs (T) after each encoder layer when ACL is on.
    return {name: _usage(c) for name, c in counts.items()}


def diagnose(run_dir: Path, device: torch.device) -> dict:
    loaded = load_run(run_dir, str(device))
    cfg, ids, refs, images, masks, tokens = _test_batches(run_dir, loaded, device)
    out = {"run": str(run_dir), "preset": cfg.preset, "seed": cfg.seed, "studies": len(ids)}
    for beam in (1, 3):
        out[f"beam{beam}"] = _scores(ids, _decode_all(loaded, images, masks, beam, device), refs)
    perm = _derangement(len(ids))
    shuffled = _scores(ids, _decode_all(loaded, images[perm], masks[perm], 3, device), refs)
    out["shuffled_images"] = shuffled
    out["image_reliance"] = {k: out["beam3"][k] - shuffled[k] for k in ("ce_micro_f1_14", "ce_macro_f1_14")}
    out["memory"] = _memory_usage(loaded, images, masks, tokens, device)
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| run | preset | seed | CE F1 micro b1 / b3 | CE F1 macro b1 / b3 | CE recall b3 | words b3 "
             "| CE F1 micro, shuffled images | lost to shuffling | memory slots used (perplexity), visual / words |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = r["memory"]
        mem_text = "-" if not mem else " / ".join(
            f"{m.get('used', 0)} ({m.get('perplexity', math.nan):.0f})" for m in (mem["visual"], mem["words"]))
        b1, b3, sh = r["beam1"], r["beam3"], r["shuffled_images"]
        lines.append(f"| {Path(r['run']).name} | {r['preset']} | {r['seed']} "
                     f"| {b1['ce_micro_f1_14']:.3f} / {b3['ce_micro_f1_14']:.3f} "
                     f"| {b1['ce_macro_f1_14']:.3f} / {b3['ce_macro_f1_14']:.3f} | {b3['ce_micro_recall_14']:.3f} "
                     f"| {b3['words']:.1f} | {sh['ce_micro_f1_14']:.3f} | {r['image_reliance']['ce_micro_f1_14']:+.3f} "
                     f"| {mem_text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `irralctl train`")
    parser.add_argument("--out", type=Path, required=True, help="folder for diagnostics.json and diagnostics.md")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = [diagnose(r, torch.device(args.device)) for r in args.runs if (r / "config.json").is_file()]
    if not rows:
        print("no run directories among the arguments", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "diagnostics.json").write_text(json.dumps(rows, indent=1, allow_nan=False) + "\n")
    (args.out / "diagnostics.md").write_text(markdown(rows))
    if any(r["memory"] for r in rows):
        histogram(rows, args.out / "memory_slots.png")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
