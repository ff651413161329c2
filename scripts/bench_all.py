#!/usr/bin/env python3
"""Every CPU benchmark of PERFORMANCE.md as a user meets it, each beside its reference measured in the
same run; writes docs/performance.md and the README's Performance table. Numbers are never typed by hand.

    python scripts/bench_all.py                  # the full run (a few minutes on 2 cores); writes both files
    python scripts/bench_all.py --quick          # small inputs, one run each: checks the script (CI-size)
    python scripts/bench_all.py --runs 7 --no-write
    python scripts/bench_all.py --gpu-results gpu.jsonl   # with `python scripts/bench_gpu.py > gpu.jsonl` from a GPU machine

Run it on a quiet machine: every figure is the median of --runs whole processes started from this
script (subprocess + perf_counter, as `time` measures them), and a busy machine slows them
unevenly. The CPU time other processes used meanwhile is recorded (the machine's busy time in
/proc/stat less this script's and its children's), with a warning when they used a noticeable share.

Figures (one JSON line each on stdout, then the two files):
  startup            `irralctl --help`; reference: `python -c pass` (the interpreter alone)
  label_one          `irralctl label` of one report; reference: `python -c pass`
  label_4000         `irralctl label` of 4,000 reports from a file: reports/s including start-up
  score_nlg          `irralctl score --meteor off --no-clinical` on 3,858 IU report pairs; reference: a
                     script importing pycocoevalcap for BLEU + ROUGE-L + CIDEr on the same file
                     (paired runs: the two alternate)
  score_ce           the same with clinical efficacy (labelling both sides)
  score_meteor       `irralctl score --meteor jar --no-clinical`; reference: the pycocoevalcap script
                     with its METEOR too (each starts one JVM)
  jpeg_decode        full-size (2,544 x 3,056) JPEGs into the store's 256 px, images/s on one core:
                     irralctl's decoder (DCT-scaled) vs a full decode + the same resize
  generate_cpu       `irralctl generate` of one two-view study (a DICOM and a JPEG) on the CPU with the
                     full-size model (random weights in a checkpoint shaped like a trained one:
                     weights, AdamW state, tokeniser); reference: `python -c "import torch"`
  gpu_*              from --gpu-results (bench_gpu.py's lines from a GPU machine), else unmeasured,
                     with the command to run

Processes run as an installed package runs: bytecode compiled once beforehand (PYTHONPYCACHEPREFIX
in a temporary folder, with an untimed first run of every command), irralctl from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from irralctl.utils.io import atomic_write  # noqa: E402

README_START, README_END = "<!-- performance:start -->", "<!-- performance:end -->"
GPU_COMMAND = "python scripts/bench_gpu.py"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


# -- running processes --------------------------------------------------------------------------

@dataclass
class Runner:
    env: dict
    runs: int
    cwd: Path
    log: list = field(default_factory=list)

    def time(self, argv: list[str], before=None) -> float:
        """Wall seconds of one process (`before()` runs first, untimed: e.g. removing an output)."""
        if before is not None:
            before()
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return seconds

    def median(self, argv: list[str], before=None, warm: bool = True) -> tuple[float, list[float]]:
        if warm:
            self.time(argv, before)  # untimed: bytecode caches, page cache
        times = [self.time(argv, before) for _ in range(self.runs)]
        return statistics.median(times), times

    def paired(self, a: list[str], b: list[str], before=None) -> tuple[float, float, list[float], list[float]]:
        """Medians of `a` and `b` run alternately (a b, b a, a b, ...): drift hits both alike."""
        self.time(a, before)
        self.time(b, before)
        ta, tb = [], []
        for k in range(self.runs):
            for which in ((a, ta), (b, tb)) if k % 2 == 0 else ((b, tb), (a, ta)):
                which[1].append(self.time(which[0], before))
        return statistics.median(ta), statistics.median(tb), ta, tb


def child_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "IRRALCTL_DEBUG")}
    env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(cache), COLUMNS="100", PYTHONHASHSEED="0")
    return env


# -- inputs -------------------------------------------------------------------------------------

def iu_reports() -> tuple[list[str], str]:
    """The IU X-Ray reports (FINDINGS + IMPRESSION of the Open-i XML), or R2Gen's texts, or generated ones."""
    tgz = SHARED / "iu_xray" / "NLMCXR_reports.tgz"
    if tgz.is_file():
        import tarfile
        import xml.etree.ElementTree as ET

        texts = []
        with tarfile.open(tgz) as tf:
            for member in sorted(tf.getmembers(), key=lambda m: m.name):
                if not member.name.endswith(".xml"):
                    continue
                parts = {a.get("Label"): (a.text or "").strip() for a in ET.parse(tf.extractfile(member)).iter("AbstractText")}
                text = " ".join(t for t in (parts.get("FINDINGS"), parts.get("IMPRESSION")) if t)
                if text:
                    texts.append(" ".join(text.split()))
        return texts, f"the {len(texts):,} IU X-Ray reports with findings or impression ({tgz.name})"
    texts, source = r2gen_reports()
    return [" ".join(t.split()) for t in texts], source


def r2gen_reports() -> tuple[list[str], str]:
    ann = SHARED / "iu_xray" / "r2gen_annotation.json"
    if ann.is_file():
        from irralctl.data.cleaning import legacy_iu_xray

        data = json.loads(ann.read_text())
        return [legacy_iu_xray(r["report"]) for split in data.values() for r in split], \
            f"IU X-Ray reports of R2Gen's annotation, legacy-cleaned ({ann.name})"
    from tests.fixtures.metric_texts import report

    rng = random.Random(0)
    return [report(rng) or "no acute disease ." for _ in range(3000)], "generated report-like texts (IU data not found)"


def write_pairs(path: Path, n: int) -> str:
    """n (prediction, reference) pairs drawn from the IU reports, as PERFORMANCE.md's 3,858."""
    reports, source = r2gen_reports()
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"s{i}", "prediction": rng.choice(reports), "reference": rng.choice(reports)}) + "\n")
    return source


COCO_SCRIPT = '''import json, sys
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
gts, res = {}, {}
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        r = json.loads(line)
        gts[r["id"]], res[r["id"]] = [r["reference"]], [r["prediction"]]
out = {}
bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
out.update({f"bleu_{k + 1}": v for k, v in enumerate(bleu)})
out["rouge_l"], _ = Rouge().compute_score(gts, res)
out["cider"], _ = Cider().compute_score(gts, res)
if len(sys.argv) > 2:
    from pycocoevalcap.meteor.meteor import Meteor
    meteor = Meteor()
    out["meteor"], _ = meteor.compute_score(gts, res)
    meteor.close() if hasattr(meteor, "close") else None
print(json.dumps(out))
'''


def full_size_jpegs(folder: Path, n: int, noise: float) -> list[Path]:
    """2,544 x 3,056 quality-95 JPEGs from the real radiographs (bench_prepare's recipe: upscaled, with
    detector-like noise), or from synthetic images."""
    import numpy as np
    from PIL import Image

    from bench_prepare import full_size_jpeg, synthetic_radiograph

    rng = np.random.default_rng(0)
    sources = sorted((SHARED / "images" / "kermany").glob("*.jpeg"))
    paths = []
    for k in range(n):
        src = Image.open(sources[k % len(sources)]) if sources else synthetic_radiograph(rng)
        p = folder / f"full{k}.jpg"
        p.write_bytes(full_size_jpeg(src, rng, noise))
        paths.append(p)
    return paths


DECODE_SCRIPT = '''import json, sys, time
from pathlib import Path
import numpy as np
from PIL import Image
from irralctl.data.images import load_grey, target_size
paths, repeats = [Path(p) for p in sys.argv[2:]], 3
def full(p):
    with Image.open(p) as im:
        im = im.convert("L")
        h, w = target_size(im.height, im.width, 256)
        return np.asarray(im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None))
fn = load_grey if sys.argv[1] == "irralctl" else full
fn(paths[0], 256) if fn is load_grey else fn(paths[0])
rates = []
for _ in range(repeats):
    t = time.perf_counter()
    for p in paths:
        fn(p, 256) if fn is load_grey else fn(p)
    rates.append(len(paths) / (time.perf_counter() - t))
print(json.dumps({"images_per_s": sorted(rates)[len(rates) // 2]}))
'''


def write_full_size_checkpoint(path: Path, quick: bool) -> dict:
    """A checkpoint shaped like a trained one (weights, AdamW state, configs, tokeniser), random
    weights; the full-size model (ResNet-101, d_model 512, 3 + 3 layers, memory 2048), tiny with --quick."""
    import torch

    from irralctl.data.tokenizers import BPETokenizer
    from irralctl.model import ModelConfig, build_model
    from irralctl.runs.checkpoint import save_checkpoint
    from irralctl.training.config import TrainConfig
    from irralctl.training.optim import build_optimizer
    from irralctl.utils.config import to_jsonable

    words = ("the heart size is normal . the lungs are clear . no pleural effusion or pneumothorax . "
             "mild cardiomegaly . bibasilar atelectasis . degenerative changes of the spine . ").split()
    texts = [" ".join(words[(i * 7) % len(words):] + words[: (i * 7) % len(words)]) for i in range(200)]
    tok = BPETokenizer.fit(texts, 1000)
    small = dict(backbone="tiny", d_model=32, n_heads=4, d_ff=32, enc_layers=1, dec_layers=1, memory_slots=32,
                 memory_topk=4) if quick else {}
    model_cfg = ModelConfig(vocab_size=tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id, **small)
    torch.manual_seed(0)
    model = build_model(model_cfg)
    opt = build_optimizer(model, None, lr=1e-4, lr_visual=5e-5, weight_decay=0.01, device=torch.device("cpu"))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # the AdamW moments a trained checkpoint carries
    cfg = TrainConfig(dataset=path.parent, out=path.parent)
    save_checkpoint(path, {"model_config": to_jsonable(model_cfg), "model": model.state_dict(),
                           "train_config": to_jsonable(cfg), "optimizer": opt.state_dict(), "epoch": 1, "step": 1,
                           "tokenizer": {"kind": "bpe", "json": tok.to_json(), "text_field": "target"},
                           "inference": {"max_tokens": cfg.max_tokens},
                           "cleaner": {"name": "default", "version": "default-1"}, "dataset": None})
    return {"parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "checkpoint_mb": round(path.stat().st_size / 1e6, 1), "backbone": model_cfg.backbone}


def two_view_study(folder: Path) -> tuple[Path, list[str]]:
    """INPUT for generate: a folder holding one study folder with a real DICOM and a real JPEG."""
    study = folder / "study1"
    study.mkdir(parents=True)
    picks = [SHARED / "images" / "dicom" / "RG1_UNCR.dcm", SHARED / "images" / "kermany" / "NORMAL2-IM-1427-0001.jpeg"]
    if all(p.is_file() for p in picks):
        for p in picks:
            shutil.copyfile(p, study / p.name)
    else:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        for k in range(2):
            Image.fromarray(rng.integers(0, 255, (2500, 2048), dtype=np.uint8)).save(study / f"view{k}.jpg", quality=95)
    return folder, sorted(p.name for p in study.iterdir())


# -- the machine --------------------------------------------------------------------------------

def machine() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), flags=re.M)
        model = names[0].strip() if names else model
    except OSError:
        pass
    from irralctl.utils.config import package_versions

    versions = package_versions()
    return {"cpu": model, "cores": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "torch": versions.get("torch"), "numpy": versions.get("numpy"),
            "pycocoevalcap": versions.get("pycocoevalcap"), "java": shutil.which("java") is not None,
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": _load()}


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# -- the benchmarks -----------------------------------------------------------------------------

def run_all(args) -> tuple[dict, list[dict]]:
    from irralctl.runs.device import CpuShare

    other = CpuShare()  # what other processes use while the benchmark runs (its children count as its own)
    info = machine()
    emit(figure="machine", **info)
    rows: list[dict] = []
    py = sys.executable
    irralctl = [py, "-m", "irralctl"]

    def row(**fields) -> None:
        rows.append(fields)
        emit(**fields)

    with tempfile.TemporaryDirectory(prefix="irral_bench_all_") as tmp:
        tmp = Path(tmp)
        runner = Runner(env=child_env(tmp / "pycache"), runs=args.runs, cwd=tmp)
        n_pairs, n_reports = (300, 400) if args.quick else (3858, 4000)

        # Start-up.
        t_pass, _ = runner.median([py, "-c", "pass"])
        t_help, times = runner.median([*irralctl, "--help"])
        row(figure="startup", what="irralctl --help", seconds=round(t_help, 3), runs_s=_r(times),
            reference="python -c pass", reference_seconds=round(t_pass, 3), target="< 0.3 s",
            meets_target=t_help < 0.3, command="time irralctl --help")

        # Labelling.
        reports, source = iu_reports()
        (tmp / "one.txt").write_text(reports[0] + "\n", encoding="utf-8")
        many = [reports[k % len(reports)] for k in range(n_reports)]
        (tmp / "reports.txt").write_text("".join(r + "\n" for r in many), encoding="utf-8")

        def clean_out(*names):
            return lambda: [p.unlink() for n in names for p in tmp.glob(n + "*")]

        t_one, times = runner.median([*irralctl, "label", "one.txt", "--out", "one.csv"], clean_out("one.csv"))
        row(figure="label_one", what="irralctl label, one report", seconds=round(t_one, 3), runs_s=_r(times),
            reference="python -c pass", reference_seconds=round(t_pass, 3), target="< 0.5 s", meets_target=t_one < 0.5,
            command="time irralctl label one.txt --out one.csv")
        t_many, times = runner.median([*irralctl, "label", "reports.txt", "--out", "many.csv"], clean_out("many.csv"))
        rate = n_reports / t_many
        row(figure="label_4000", what=f"irralctl label, {n_reports:,} reports from a file", seconds=round(t_many, 3),
            runs_s=_r(times), reports_per_s=round(rate), reports_per_s_after_startup=round(n_reports / max(t_many - t_one, 1e-9)),
            distinct_reports=len(set(many)), source=source, target=">= 1,000 reports/s including start-up",
            meets_target=rate >= 1000, command="time irralctl label reports.txt --out labels.csv")

        # Scoring.
        source = write_pairs(tmp / "pairs.jsonl", n_pairs)
        (tmp / "coco.py").write_text(COCO_SCRIPT, encoding="utf-8")
        nlg = [*irralctl, "score", "pairs.jsonl", "--meteor", "off", "--no-clinical"]
        coco = [py, "coco.py", "pairs.jsonl"]
        t_ours, t_coco, ta, tb = runner.paired(nlg, coco)
        row(figure="score_nlg", what=f"irralctl score --meteor off --no-clinical, {n_pairs:,} pairs",
            seconds=round(t_ours, 3), runs_s=_r(ta), reference="pycocoevalcap BLEU + ROUGE-L + CIDEr script",
            reference_seconds=round(t_coco, 3), reference_runs_s=_r(tb), ratio=round(t_ours / t_coco, 3),
            source=source, target="ratio <= 0.1", meets_target=t_ours / t_coco <= 0.1,
            command="time irralctl score pairs.jsonl --meteor off --no-clinical")
        t_ce, times = runner.median([*irralctl, "score", "pairs.jsonl", "--meteor", "off"])
        row(figure="score_ce", what=f"irralctl score --meteor off (clinical efficacy: {2 * n_pairs:,} reports labelled)",
            seconds=round(t_ce, 3), runs_s=_r(times), reference="pycocoevalcap BLEU + ROUGE-L + CIDEr script",
            reference_seconds=round(t_coco, 3), ratio=round(t_ce / t_coco, 3), target="< 1.5 s", meets_target=t_ce < 1.5,
            command="time irralctl score pairs.jsonl --meteor off")
        if shutil.which("java") and not args.quick:
            meteor_runner = Runner(env=runner.env, runs=max(1, min(3, args.runs)), cwd=tmp)
            t_ours, t_coco, ta, tb = meteor_runner.paired([*irralctl, "score", "pairs.jsonl", "--meteor", "jar", "--no-clinical"],
                                                          [py, "coco.py", "pairs.jsonl", "meteor"])
            row(figure="score_meteor", what=f"irralctl score --meteor jar --no-clinical, {n_pairs:,} pairs",
                seconds=round(t_ours, 3), runs_s=_r(ta), reference="pycocoevalcap BLEU + ROUGE-L + CIDEr + METEOR script",
                reference_seconds=round(t_coco, 3), reference_runs_s=_r(tb), ratio=round(t_ours / t_coco, 3),
                target="reported", meets_target=None, command="time irralctl score pairs.jsonl --meteor jar --no-clinical")
        else:
            row(figure="score_meteor", what="irralctl score --meteor jar", seconds=None,
                note="skipped: " + ("--quick" if args.quick else "no java on PATH"), target="reported", meets_target=None,
                command="time irralctl score pairs.jsonl --meteor jar --no-clinical")

        # Full-size JPEG decoding, one core.
        jpegs = full_size_jpegs(tmp, 2 if args.quick else 8, noise=2.0)
        (tmp / "decode.py").write_text(DECODE_SCRIPT, encoding="utf-8")
        rates = {}
        for who in ("irralctl", "full"):
            out = subprocess.run([py, "decode.py", who, *map(str, jpegs)], cwd=tmp, env={**runner.env, "OMP_NUM_THREADS": "1"},
                                 capture_output=True, text=True, check=True).stdout
            rates[who] = json.loads(out.strip().splitlines()[-1])["images_per_s"]
        mb = statistics.mean(p.stat().st_size for p in jpegs) / 1e6
        row(figure="jpeg_decode", what="full-size JPEG (2,544 x 3,056) into the store's 256 px, one core",
            images_per_s=round(rates["irralctl"], 1), reference="full decode + the same antialiased resize",
            reference_images_per_s=round(rates["full"], 1), speedup=round(rates["irralctl"] / rates["full"], 2),
            mean_file_mb=round(mb, 2), files=len(jpegs), target=">= 150 images/s per core",
            meets_target=rates["irralctl"] >= 150, command="python scripts/bench_prepare.py")

        # Generation on the CPU, one two-view study, a fresh process.
        run_dir = tmp / "run"
        run_dir.mkdir()
        model = write_full_size_checkpoint(run_dir / "best.pt", args.quick)
        inputs, files = two_view_study(tmp / "input")
        gen = [*irralctl, "generate", "input", "--checkpoint", "run", "--out", "preds.jsonl", "--device", "cpu"]
        t_torch, _ = runner.median([py, "-c", "import torch"])
        t_gen, times = runner.median(gen, clean_out("preds.jsonl"))
        row(figure="generate_cpu", what="irralctl generate, one two-view study, CPU, beam 3", seconds=round(t_gen, 3),
            runs_s=_r(times), reference='python -c "import torch"', reference_seconds=round(t_torch, 3),
            view_files=files, threads=os.cpu_count(), **model, target="< 3 s", meets_target=t_gen < 3,
            command="time irralctl generate input --checkpoint run --out preds.jsonl --device cpu")

    for r in gpu_rows(args.gpu_results):
        row(**r)
    info["load_after"] = _load()
    other_cpus = other.other_cpus()
    info["other_cpus"] = None if other_cpus is None else round(other_cpus, 2)
    info["runs"] = args.runs
    info["quick"] = args.quick
    return info, rows


GPU_ROWS = (
    ("gpu_train_16", "train end to end, 16 studies/step (irral, IU shapes), GPU", ">= 600 images/s; <= 12 GiB"),
    ("gpu_train_64", "train end to end, 64 studies/step (irral, IU shapes), GPU", ">= 0.7 x ceiling"),
    ("gpu_generation", "beam-3 generation, 1,024 studies, GPU", ">= 1,000 studies/s"),
)


def gpu_rows(results: Path | None) -> list[dict]:
    """The GPU lines: from `bench_gpu.py`'s JSON lines (--gpu-results FILE) when given, else unmeasured."""
    lines = []
    if results is not None:
        lines = [json.loads(x) for x in results.read_text(encoding="utf-8").splitlines() if x.startswith("{")]
    env = next((x for x in lines if x.get("figure") == "environment"), {})
    if env.get("cpu_smoke"):
        raise SystemExit(f"{results}: these are --cpu-smoke lines, not a GPU run")
    found = {
        "gpu_train_16": next((x for x in lines if x.get("figure") == "train_end_to_end" and x.get("batch_studies") == 16), None),
        "gpu_train_64": next((x for x in lines if x.get("figure") == "train_end_to_end" and x.get("batch_studies") == 64), None),
        "gpu_generation": next((x for x in lines if x.get("figure") == "generation"), None),
    }
    ceilings = {x["batch_studies"]: x for x in lines if x.get("figure") == "ceiling"}
    out = []
    for name, what, target in GPU_ROWS:
        x = found[name]
        if x is None:
            out.append(dict(figure=name, what=what, seconds=None, note="unmeasured: no GPU run given", target=target,
                            meets_target=None, command=GPU_COMMAND))
            continue
        where = f"{env.get('device', 'GPU')}, {env.get('date', '?')}" + (", --compile" if env.get("compile") else "")
        if name == "gpu_generation":
            figure = f"{x['studies_per_s']:,.0f} studies/s, {x['peak_memory_gib']} GiB ({where})"
            reference = "-"
        else:
            figure = f"{x['images_per_s']:,.0f} images/s, {x['peak_memory_gib']} GiB ({where})"
            ceiling = ceilings.get(x["batch_studies"], {})
            reference = (f"ResNet-101 bf16 ceiling: {ceiling.get('images_per_s', 0):,.0f} images/s "
                         f"(ratio {x['ratio_to_ceiling']:.2f})")
        out.append(dict(figure=name, what=what, shown=figure, shown_reference=reference, target=target,
                        meets_target=x.get("meets_target"), command=GPU_COMMAND, gpu=x))
    return out


def _r(times: list[float]) -> list[float]:
    return [round(t, 3) for t in times]


# -- the page and the table ---------------------------------------------------------------------

def _fmt_figure(r: dict) -> str:
    if "shown" in r:
        return r["shown"]
    if r["figure"] == "label_4000":
        return f"{r['reports_per_s']:,} reports/s ({r['seconds']:.2f} s)"
    if r["figure"] == "jpeg_decode":
        return f"{r['images_per_s']:,.0f} images/s ({r['mean_file_mb']:.1f} MB files)"
    if r.get("seconds") is None:
        return r.get("note", "unmeasured")
    return f"{r['seconds']:.2f} s"


def _fmt_reference(r: dict) -> str:
    if "shown_reference" in r:
        return r["shown_reference"]
    if r["figure"] == "jpeg_decode":
        return f"{r['reference']}: {r['reference_images_per_s']:,.0f} images/s ({r['speedup']:.2f}x)"
    if r.get("reference_seconds") is not None:
        ratio = f" (ratio {r['ratio']:.3f})" if r.get("ratio") is not None else ""
        return f"{r['reference']}: {r['reference_seconds']:.2f} s{ratio}"
    return "-"


def _verdict(r: dict) -> str:
    return {True: "met", False: "**not met**", None: "-"}[r.get("meets_target")]


def table(rows: list[dict]) -> str:
    lines = ["| what | irralctl | reference, same run | target | | command |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        command = f"`{r['command']}`" if r.get("command") else ""
        lines.append(f"| {r['what']} | {_fmt_figure(r)} | {_fmt_reference(r)} | {r['target']} | {_verdict(r)} | {command} |")
    return "\n".join(lines)


def describe(info: dict) -> str:
    text = (f"{info['date']}; {info['cpu']}, {info['cores']} cores; {info['os']}; Python {info['python']}, "
            f"torch {info['torch']}, numpy {info['numpy']}, pycocoevalcap {info['pycocoevalcap']}; "
            f"median of {info['runs']} whole processes per figure; other processes used "
            f"{info['other_cpus'] if info.get('other_cpus') is not None else 'an unknown number of'} CPUs on "
            f"average meanwhile")
    busy = (info.get("other_cpus") or 0) > 0.15
    if info["quick"]:
        text += ". **Quick mode (--quick): small inputs, figures not comparable with the targets**"
    if busy:
        text += ". **The machine was busy: these figures are slower than a quiet machine's**"
    return text


def page(info: dict, rows: list[dict]) -> str:
    return "\n".join([
        "# Performance",
        "",
        "Generated by `python scripts/bench_all.py` (do not edit by hand); the GPU figures by "
        f"`{GPU_COMMAND}` on a GPU machine. Targets: docs of the project (PERFORMANCE.md).",
        "",
        f"Machine: {describe(info)}.",
        "",
        table(rows),
        "",
        "Every figure is a whole process started from the shell, timed from outside (what a user waits "
        "for), bytecode compiled beforehand as an installed package has it; the reference runs in the same "
        "session, alternating with irralctl for the scoring pairs. Details of each line, as JSON:",
        "",
        "```",
        *(json.dumps(r) for r in rows),
        "```",
        "",
        "The pycocoevalcap reference (`coco.py pairs.jsonl [meteor]`):",
        "",
        "```python",
        COCO_SCRIPT.rstrip(),
        "```",
        "",
    ])


def update_readme(readme: Path, info: dict, rows: list[dict]) -> None:
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{readme}: the markers {README_START} / {README_END} are missing")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = (f"{README_START}\n_Generated by `python scripts/bench_all.py` ({describe(info)}); "
             f"details in [docs/performance.md](docs/performance.md)._\n\n{table(rows)}\n{README_END}")
    with atomic_write(readme) as f:  # the README is replaced whole or not at all
        f.write(head + block + tail)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="timed processes per figure, median reported (default 5; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="small inputs and a tiny model: checks the script, proves nothing")
    ap.add_argument("--no-write", action="store_true", help="print the JSON lines only")
    ap.add_argument("--gpu-results", type=Path, help="JSON lines of `scripts/bench_gpu.py` run on a GPU machine, "
                                                    "for the GPU rows (unmeasured without)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md", help="the page to write")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README whose table to replace")
    args = ap.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 5)
    info, rows = run_all(args)
    if not args.no_write:
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.docs) as f:
            f.write(page(info, rows))
        update_readme(args.readme, info, rows)
        emit(figure="written", docs=str(args.docs), readme=str(args.readme))


if __name__ == "__main__":
    main()
