#!/usr/bin/env python3
"""Agreement of irralctl's CheXpert labeler with the hand-labelled IU X-Ray gold sets.

Version 1 (383 sentences, 115 reports): one JSON line per (set, observation) with accuracy over
all items and over the items where the gold or the labeler gives a value ("mentioned"), then
one line per set with the exact-match rate.
Version 2 (331 reports stratified by observation, tests/data/labeling_gold_reports_v2.csv):
precision, recall and F1 of the positive class per observation, on the whole set and on its
dev and held-out parts; one JSON line per (part, observation) and one per part for the
micro averages. Uncertain (-1) counts as negative by default, as in `irralctl score`
(--uncertain positive counts it as positive on both sides).
No Finding is scored for both labeler policies, each against its own gold column ("No Finding
(incidental)" for `incidental`, "No Finding" for `chexpert`); --no-finding picks the policy of
the table, of the micro averages and of the disagreements (default incidental, the labeler's
default), and the table adds a No Finding row for the other policy. Version 1 has only the
CheXpert-convention column and is always scored with `--no-finding chexpert`.

--table adds Markdown tables; --disagreements lists every item where gold and labeler differ
(--part limits the version-2 ones, e.g. to dev while developing rules); --write-readme rewrites
the block of README.md between `<!-- label-gold:begin -->` and `<!-- label-gold:end -->` with the
version-2 table and the command that made it; --select prints the version-2 draw (report,
stratum, part). The texts come from ../shared/data/iu_xray/NLMCXR_reports.tgz (or --tgz); see
tests/data/labeling_gold.md for how the sets were made and labelled.

    python scripts/eval_label_gold.py [--table] [--disagreements] [--part dev] [--write-readme]
                                      [--no-finding incidental|chexpert]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from irralctl.constants import NO_FINDING_POLICIES  # noqa: E402
from irralctl.labeling import LABELER_NAME, LABELER_VERSION, OBSERVATIONS, Labeler  # noqa: E402
from irralctl.labeling.evaluation import (  # noqa: E402
    GOLD_V2_SEED,
    GOLD_V2_STRATA,
    NO_FINDING_COLUMNS,
    agreement,
    iter_iu_reports,
    load_gold,
    positive_scores,
    report_text,
    stratified_sample,
)

_DEFAULT_TGZ = ROOT.parent / "shared" / "data" / "iu_xray" / "NLMCXR_reports.tgz"
DATA = ROOT / "tests" / "data"
V2 = DATA / "labeling_gold_reports_v2.csv"
README = ROOT / "README.md"
BEGIN, END = "<!-- label-gold:begin -->", "<!-- label-gold:end -->"
PARTS = ("all", "dev", "held-out")


def v2_draw(reports: dict[str, dict[str, str]]) -> list[tuple[str, str, str]]:
    """(report, stratum, part) of the seeded draw that made the version-2 set (version-1 reports excluded)."""
    v1 = set()
    for kind in ("sentences", "reports"):
        with open(DATA / f"labeling_gold_{kind}.csv", newline="", encoding="utf-8") as f:
            v1 |= {row["report"] for row in csv.DictReader(f)}
    texts = {k: report_text(s) for k, s in reports.items()}
    return stratified_sample(texts, GOLD_V2_STRATA, GOLD_V2_SEED, frozenset(v1))


def _cell(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _row(label: str, o: dict, d: dict, h: dict) -> str:
    return (f"| {label} | {o['gold_positive']} | {_cell(o['precision'])} | {_cell(o['recall'])} | "
            f"{_cell(o['f1'])} | {_cell(d['f1'])} | {_cell(h['f1'])} |")


def v2_table(scores: dict[str, dict[str, dict]], no_finding: str, command: str) -> str:
    """The version-2 results as Markdown: per observation P / R / F1 on all, F1 on each part.

    `scores[policy][part]` as `positive_scores` gives them; the table is the `no_finding`
    policy's, plus a No Finding row for every other policy scored.
    """
    a, d, h = (scores[no_finding][p] for p in PARTS)
    lines = [
        f"Labeler `{LABELER_NAME} {LABELER_VERSION}`, No Finding policy `{no_finding}`, against "
        f"`tests/data/labeling_gold_reports_v2.csv` ({a['items']} IU X-Ray reports labelled by hand; dev "
        f"{d['items']} / held-out {h['items']}; No Finding from column `{NO_FINDING_COLUMNS[no_finding]}`); "
        f"positive class, uncertain counted as {a['uncertain']}, blank as negative:",
        "",
        "| observation | gold positives | precision | recall | F1 | F1 dev | F1 held-out |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in OBSERVATIONS:
        lines.append(_row(name, *(s["observations"][name] for s in (a, d, h))))
        if name == "No Finding":
            for other in (p for p in NO_FINDING_POLICIES if p != no_finding and p in scores):
                label = f"No Finding, `--no-finding {other}` (gold `{NO_FINDING_COLUMNS[other]}`)"
                lines.append(_row(label, *(scores[other][p]["observations"][name] for p in PARTS)))
    for key, label in (("all", "micro, 14 observations"), ("findings", "micro, 13 (without No Finding)")):
        m = a["micro"][key]
        lines.append(f"| **{label}** | {m['tp'] + m['fn']} | {_cell(m['precision'])} | {_cell(m['recall'])} | "
                     f"{_cell(m['f1'])} | {_cell(d['micro'][key]['f1'])} | {_cell(h['micro'][key]['f1'])} |")
    lines += ["", f"Made by `{command}`."]
    return "\n".join(lines)


def write_readme(block: str, path: Path = README) -> None:
    text = path.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{path}: expected one {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    path.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tgz", type=Path, default=_DEFAULT_TGZ, help="IU X-Ray reports archive")
    ap.add_argument("--table", action="store_true", help="also print Markdown tables")
    ap.add_argument("--disagreements", action="store_true", help="also list every disagreement")
    ap.add_argument("--part", choices=PARTS, default="all",
                    help="version-2 part whose disagreements are listed (default all)")
    ap.add_argument("--uncertain", choices=("negative", "positive"), default="negative",
                    help="how -1 counts in the version-2 scores (default negative)")
    ap.add_argument("--no-finding", choices=NO_FINDING_POLICIES, default=NO_FINDING_POLICIES[0],
                    help="labeler policy (and gold column) of No Finding for the version-2 table, micro averages "
                         "and disagreements (default incidental); both policies are printed")
    ap.add_argument("--write-readme", action="store_true",
                    help=f"rewrite the {BEGIN} block of README.md with the version-2 table")
    ap.add_argument("--select", action="store_true", help="print the version-2 draw (report, stratum, part) and stop")
    args = ap.parse_args()

    reports = dict(iter_iu_reports(args.tgz))
    draw = v2_draw(reports)
    if args.select:
        for k, stratum, part in draw:
            print(f"{k}\t{stratum}\t{part}")
        return

    labelers = {policy: Labeler(no_finding=policy) for policy in NO_FINDING_POLICIES}
    version = f"{LABELER_NAME} {LABELER_VERSION}"
    results = {}
    for kind in ("sentences", "reports"):
        # Version 1 has the CheXpert-convention No Finding only.
        items = load_gold(DATA / f"labeling_gold_{kind}.csv", reports, no_finding="chexpert")
        res = results[kind] = agreement(labelers["chexpert"], items)
        for name, r in res["observations"].items():
            print(json.dumps({"set": kind, "observation": name, "n": r["n"], "accuracy": round(r["accuracy"], 4),
                              "mentioned": r["mentioned"], "mentioned_accuracy": round(r["mentioned_accuracy"], 4),
                              "gold_counts": r["gold"], "missed": r["missed"], "extra": r["extra"],
                              "wrong_value": r["wrong_value"]}))
        print(json.dumps({"set": kind, "items": res["items"], "exact_match": round(res["exact_match"], 4),
                          "both_mentioned": res["both_mentioned"], "value_agreement": round(res["value_agreement"], 4),
                          "labeler": version, "no_finding": "chexpert"}))

    part_of = {k: part for k, _, part in draw}
    scores, by_part = {}, {}
    for policy in NO_FINDING_POLICIES:
        v2_items = load_gold(V2, reports, no_finding=policy)
        missing = [item.key for item in v2_items if item.key not in part_of]
        if missing:
            raise SystemExit(f"{V2}: reports not in the seeded draw: {', '.join(missing[:5])}")
        by_part[policy] = {"all": v2_items, **{p: [i for i in v2_items if part_of[i.key] == p] for p in PARTS[1:]}}
        scores[policy] = {p: positive_scores(labelers[policy], items, uncertain=args.uncertain)
                          for p, items in by_part[policy].items()}
        for part, sc in scores[policy].items():
            for name, o in sc["observations"].items():
                print(json.dumps({"set": "reports_v2", "no_finding": policy, "part": part, "observation": name,
                                  "uncertain": sc["uncertain"],
                                  **{k: (round(v, 4) if isinstance(v, float) and not math.isnan(v) else v)
                                     for k, v in o.items()}}).replace("NaN", "null"))
            print(json.dumps({"set": "reports_v2", "no_finding": policy, "part": part, "items": sc["items"],
                              "uncertain": sc["uncertain"],
                              "micro": {k: {m: round(v, 4) for m, v in d.items()} for k, d in sc["micro"].items()},
                              "labeler": version}))

    command = "python scripts/eval_label_gold.py --write-readme" + (
        f" --uncertain {args.uncertain}" if args.uncertain != "negative" else "") + (
        f" --no-finding {args.no_finding}" if args.no_finding != NO_FINDING_POLICIES[0] else "")
    block = v2_table(scores, args.no_finding, command)
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
        print("\n" + block)
    if args.write_readme:
        write_readme(block)
        print(f"rewrote the {BEGIN} block of {README}", file=sys.stderr)
    if args.disagreements:
        for kind, res in results.items():
            for d in res["disagreements"]:
                print(f"{kind}\t{d['key']}\t{d['observation']}\tgold={d['gold']}\tlabeler={d['labeler']}\t{d['text']}")
        items = by_part[args.no_finding][args.part]
        for d in agreement(labelers[args.no_finding], items)["disagreements"]:
            print(f"reports_v2:{part_of[d['key']]}\t{d['key']}\t{d['observation']}\tgold={d['gold']}\t"
                  f"labeler={d['labeler']}\t{d['text']}")


if __name__ == "__main__":
    main()
