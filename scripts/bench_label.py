#!/usr/bin/env python3
"""Labelling speed: irralctl's CheXpert labeler on all 3,955 IU X-Ray reports, one core.

Prints one JSON line per figure (median over --repeats): reports per second of `label_many`,
of the cleaning and sentence-splitting step alone (the floor any labeler pays), and of
`explain`; plus the time to build a `Labeler`. Texts are FINDINGS then IMPRESSION of every
report in ../shared/data/iu_xray/NLMCXR_reports.tgz (or --tgz); without that archive the script
labels generated report-like sentences and says so.

    python scripts/bench_label.py [--repeats 5] [--tgz PATH] [--no-finding incidental|chexpert]

The process is pinned to one CPU where the OS allows it (the target is "per core").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from irralctl.constants import NO_FINDING_POLICIES  # noqa: E402
from irralctl.labeling import LABELER_NAME, LABELER_VERSION, Labeler  # noqa: E402
from irralctl.labeling._text import clean, split_sentences  # noqa: E402
from irralctl.labeling.evaluation import iter_iu_reports, report_text  # noqa: E402

_DEFAULT_TGZ = ROOT.parent / "shared" / "data" / "iu_xray" / "NLMCXR_reports.tgz"


def _texts(tgz: Path) -> tuple[list[str], str]:
    if tgz.is_file():
        return [report_text(s) for _, s in iter_iu_reports(tgz)], f"IU X-Ray FINDINGS+IMPRESSION ({tgz})"
    rng = random.Random(0)
    parts = ["Heart size is normal.", "No pneumothorax or pleural effusion.", "Mild cardiomegaly.",
             "Possible left lower lobe pneumonia.", "Lungs are clear.", "Stable cardiomediastinal silhouette.",
             "Right IJ catheter tip in the SVC.", "Minimal bibasilar atelectasis versus scarring."]
    return [" ".join(rng.sample(parts, 4)) for _ in range(3955)], "generated sentences (IU archive not found)"


def _median_rate(fn, n: int, repeats: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates), [round(r) for r in rates]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per figure (default 5)")
    ap.add_argument("--tgz", type=Path, default=_DEFAULT_TGZ, help="IU X-Ray reports archive")
    ap.add_argument("--no-finding", choices=NO_FINDING_POLICIES, default=NO_FINDING_POLICIES[0],
                    help="the labeler's No Finding policy (default incidental)")
    args = ap.parse_args()

    pinned = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = cpu
    texts, source = _texts(args.tgz)
    n = len(texts)
    common = {"labeler": f"{LABELER_NAME} {LABELER_VERSION}", "no_finding": args.no_finding, "reports": n, "source": source,
              "pinned_cpu": pinned, "python": platform.python_version(), "machine": platform.machine(),
              "repeats": args.repeats}

    t = time.perf_counter()
    labeler = Labeler(no_finding=args.no_finding)
    build = time.perf_counter() - t
    labeler.label_many(texts)  # warm-up

    rate, runs = _median_rate(lambda: labeler.label_many(texts), n, args.repeats)
    print(json.dumps({"figure": "label_reports_per_s", "median": round(rate), "runs": runs,
                      "target": 1000, **common}), flush=True)
    rate, runs = _median_rate(lambda: [split_sentences(clean(x)) for x in texts], n, args.repeats)
    print(json.dumps({"figure": "clean_split_reports_per_s", "median": round(rate), "runs": runs,
                      "note": "cleaning and sentence splitting only: the floor under any labeler", **common}), flush=True)
    rate, runs = _median_rate(lambda: [labeler.explain(x) for x in texts], n, args.repeats)
    print(json.dumps({"figure": "explain_reports_per_s", "median": round(rate), "runs": runs, **common}), flush=True)
    print(json.dumps({"figure": "labeler_build_s", "value": round(build, 4), **common}), flush=True)


if __name__ == "__main__":
    main()
