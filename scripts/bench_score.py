#!/usr/bin/env python3
"""Scoring speed: irralctl's BLEU / ROUGE-L / CIDEr-D against pycocoevalcap 1.2 in one process.

Prints one JSON line per figure (median seconds over --repeats). Pairs are built from the IU X-Ray
reports in ../shared/data (R2Gen's annotation file, legacy-cleaned), 3,858 by default (the
MIMIC-CXR test split size), or from generated report-like text when that file is absent.

    python scripts/bench_score.py [--n 3858] [--repeats 3] [--meteor] [--bootstrap 1000]

Single-threaded on purpose (the target is "on one core"): BLAS threads are pinned to 1 before
numpy loads.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _reports(path: Path) -> tuple[list[str], str]:
    from irralctl.data.cleaning import legacy_iu_xray

    if path.is_file():
        ann = json.loads(path.read_text())
        return [legacy_iu_xray(r["report"]) for split in ann.values() for r in split], f"IU X-Ray reports ({path})"
    sys.path.insert(0, str(ROOT / "tests"))
    from _metric_texts import report

    rng = random.Random(0)
    return [report(rng) or "no acute disease ." for _ in range(3000)], "generated texts (IU reports not found)"


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _emit(**row) -> None:
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3858, help="report pairs (default 3858)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "iu_xray" / "r2gen_annotation.json")
    ap.add_argument("--meteor", action="store_true", help="also time METEOR 1.5 (jar, one JVM) against pycocoevalcap's wrapper")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples for the bootstrap timing (default 1000)")
    args = ap.parse_args()

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from irralctl.metrics import ScoreConfig, bleu, cider, rouge, score_reports

    reports, source = _reports(args.data)
    rng = random.Random(0)
    gts = {f"s{i}": [rng.choice(reports)] for i in range(args.n)}
    res = {f"s{i}": [rng.choice(reports)] for i in range(args.n)}
    _emit(what="input", studies=args.n, source=source, repeats=args.repeats)

    def coco_bleu():
        with contextlib.redirect_stdout(io.StringIO()):
            return Bleu(4).compute_score(gts, res)

    total_coco = total_ours = 0.0
    for name, coco, ours in (("bleu", coco_bleu, lambda: bleu.compute_score(gts, res)),
                             ("rouge_l", lambda: Rouge().compute_score(gts, res), lambda: rouge.compute_score(gts, res)),
                             ("cider", lambda: Cider().compute_score(gts, res), lambda: cider.compute_score(gts, res))):
        t_coco, want = _median_time(coco, args.repeats)
        t_ours, got = _median_time(ours, args.repeats)
        diff = max(abs(a - b) for a, b in zip(*(x[0] if isinstance(x[0], list) else [x[0]] for x in (want, got))))
        total_coco += t_coco
        total_ours += t_ours
        _emit(what=name, pycocoevalcap_s=round(t_coco, 4), irralctl_s=round(t_ours, 4), speedup=round(t_coco / t_ours, 2), max_abs_diff=diff)
    _emit(what="bleu+rouge_l+cider", pycocoevalcap_s=round(total_coco, 4), irralctl_s=round(total_ours, 4), speedup=round(total_coco / total_ours, 2))

    preds = {k: v[0] for k, v in res.items()}
    refs = {k: v[0] for k, v in gts.items()}
    try:
        import irralctl.labeling  # noqa: F401

        labels, note = (None, None), "labelling included (irralctl.labeling)"
    except ImportError:
        lab_rng = random.Random(1)
        labels = tuple({k: [lab_rng.choice([1, 0, -1, None]) for _ in range(14)] for k in preds} for _ in range(2))
        note = "labeller not importable: labels given, labelling NOT included"
    cfg = ScoreConfig(meteor="off")
    t_all, out = _median_time(lambda: score_reports(preds, refs, cfg, *labels), args.repeats)
    _emit(what="score_reports nlg+ce (no meteor)", seconds=round(t_all, 4), reports_labelled=0 if labels[0] else 2 * args.n,
          note=note, timings_s=out["timings_s"])
    t_std, _ = _median_time(lambda: score_reports(preds, refs, ScoreConfig(meteor="off", clinical=False, standard=True)), 1)
    _emit(what="score_reports with --standard (sacrebleu, chrf, rouge-score), no ce", seconds=round(t_std, 4))
    if args.bootstrap:
        t_b, _ = _median_time(lambda: score_reports(preds, refs, ScoreConfig(meteor="off", bootstrap=args.bootstrap), *labels), 1)
        _emit(what=f"score_reports nlg+ce + bootstrap {args.bootstrap}", seconds=round(t_b, 4), bootstrap_only_s=round(t_b - t_all, 4), note=note)

    if args.meteor:
        from pycocoevalcap.meteor.meteor import Meteor

        from irralctl.metrics.meteor import MeteorJar

        t = time.perf_counter()
        coco = Meteor()
        want = coco.compute_score(gts, res)
        t_coco = time.perf_counter() - t
        coco.meteor_p.kill()
        coco.meteor_p.wait()
        t = time.perf_counter()
        with MeteorJar() as jar:
            got = jar.compute_score(gts, res)
            t_first = time.perf_counter() - t
            t = time.perf_counter()
            jar.compute_score(gts, res)
            t_warm = time.perf_counter() - t
        _emit(what="meteor", pycocoevalcap_s_incl_jvm_start=round(t_coco, 3), irralctl_s_incl_jvm_start=round(t_first, 3),
              irralctl_s_warm_jvm=round(t_warm, 3), same_score=want[0] == got[0])


if __name__ == "__main__":
    main()
