#!/usr/bin/env python3
"""Agreement of irralctl's CheXpert labeler with the hand-labelled IU X-Ray gold set.

Prints one JSON line per (set, observation): accuracy over all items, and over the items where
the gold or the labeler gives a value ("mentioned"); then one line per set with the exact-match
rate. --table adds a Markdown table; --disagreements lists every item where they differ.
The texts come from ../shared/data/iu_xray/NLMCXR_reports.tgz (or --tgz); see
tests/data/labeling_gold.md for how the set was made and labelled.

    python scripts/eval_label_gold.py [--table] [--disagreements]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from irralctl.labeling import LABELER_NAME, LABELER_VERSION, OBSERVATIONS, Labeler  # noqa: E402
from irralctl.labeling.evaluation import agreement, iter_iu_reports, load_gold  # noqa: E402

_DEFAULT_TGZ = ROOT.parent / "shared" / "data" / "iu_xray" / "NLMCXR_reports.tgz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tgz", type=Path, default=_DEFAULT_TGZ, help="IU X-Ray reports archive")
    ap.add_argument("--table", action="store_true", help="also print a Markdown table")
    ap.add_argument("--disagreements", action="store_true", help="also list every disagreement")
    args = ap.parse_args()

    reports = dict(iter_iu_reports(args.tgz))
    labeler = Labeler()
    results = {}
    for kind in ("sentences", "reports"):
        items = load_gold(ROOT / "tests" / "data" / f"labeling_gold_{kind}.csv", reports)
        res = results[kind] = agreement(labeler, items)
        for name, r in res["observations"].items():
            print(json.dumps({"set": kind, "observation": name, "n": r["n"], "accuracy": round(r["accuracy"], 4),
                              "mentioned": r["mentioned"], "mentioned_accuracy": round(r["mentioned_accuracy"], 4),
                              "gold_counts": r["gold"], "missed": r["missed"], "extra": r["extra"],
                              "wrong_value": r["wrong_value"]}))
        print(json.dumps({"set": kind, "items": res["items"], "exact_match": round(res["exact_match"], 4),
                          "both_mentioned": res["both_mentioned"], "value_agreement": round(res["value_agreement"], 4),
                          "labeler": f"{LABELER_NAME} {LABELER_VERSION}"}))
    if args.table:
        s, r = results["sentences"]["observations"], results["reports"]["observations"]
        print(f"\n| observation | sentences acc ({results['sentences']['items']}) | mentioned (n) | missed/extra/wrong "
              f"| reports acc ({results['reports']['items']}) | mentioned (n) | missed/extra/wrong |")
        print("|---|---|---|---|---|---|---|")
        for name in OBSERVATIONS:
            cells = []
            for o in (s[name], r[name]):
                cells += [f"{o['accuracy']:.3f}", f"{o['mentioned_accuracy']:.3f} ({o['mentioned']})",
                          f"{o['missed']}/{o['extra']}/{o['wrong_value']}"]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print(f"| all 14 exact | {results['sentences']['exact_match']:.3f} | | "
              f"| {results['reports']['exact_match']:.3f} | | |")
    if args.disagreements:
        for kind, res in results.items():
            for d in res["disagreements"]:
                print(f"{kind}\t{d['key']}\t{d['observation']}\tgold={d['gold']}\tlabeler={d['labeler']}\t{d['text']}")


if __name__ == "__main__":
    main()
