"""Render a `compare_runs` result: Markdown (the report), CSV (one row per group and figure), and a
LaTeX booktabs table laid out as the paper's ablation (Table 3: one row per preset; BL-1..BL-4,
MTR, RG-L, CE F1)."""

from __future__ import annotations

import csv
import io

# The paper's column labels (Tables 1-3); CE F1 is macro over the 14 observations, as R2Gen/CMN publish.
PAPER_COLUMNS = {"bleu_1": "BL-1", "bleu_2": "BL-2", "bleu_3": "BL-3", "bleu_4": "BL-4", "meteor": "MTR",
                 "rouge_l": "RG-L", "ce_macro_f1_14": "CE F1"}
CSV_FIELDS = ("group", "metric", "observation", "n_seeds", "seeds", "mean", "std", "reference", "difference",
              "low", "high", "p_value", "p_method", "verdict")


def _num(v, digits: int = 4, sign: bool = False) -> str:
    if v is None:
        return ""
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _mean_std(row: dict | None) -> str:
    if row is None:
        return "-"
    return _num(row["mean"]) + ("" if row.get("std") is None else f" ± {_num(row['std'])}")


def _p(p: float) -> str:
    return f"{p:.4f}"


def _md_table(header: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def markdown(result: dict) -> str:
    groups, ref = result["groups"], result["reference"]
    method = result["method"]
    conf = f"{method['confidence']:.0%}"
    fp = ", ".join(f[:12] for f in result["dataset"]["fingerprints"])
    dataset = result["dataset"]["name"] or "an unnamed dataset"
    out = [f"# Comparison of {len(result['runs'])} runs in {len(groups)} groups",
           "",
           (f"{result['n_studies']} test studies of {dataset} (fingerprint {fp}); reference group: **{ref}**; "
            f"groups by {result['group_by']}."),
           "",
           "## Mean ± std over seeds",
           ""]
    header = ["metric", *(f"{g['name']} (n={g['n_seeds']})" for g in groups)]
    rows = [[m, *(_mean_std(g["metrics"].get(m)) for g in groups)] for m in result["metrics"]]
    out += _md_table(header, rows, ["l"] + ["r"] * len(groups))
    for c in result["comparisons"]:
        how = (f"Seeds {_seeds(c['seeds'])} vs {_seeds(c['reference_seeds'])} ({c['pairing']}); {conf} paired "
               f"bootstrap interval over studies ({method['resamples']} resamples); p: {c['p_method']}.")
        out += ["", f"## {c['group']} − {ref}", "", how, ""]
        header = ["metric", c["group"], ref, "difference", f"{conf} interval", "p", "verdict"]
        rows = [[m, _num(r["mean"]), _num(r["reference_mean"]), _num(r["difference"], sign=True),
                 f"[{_num(r['low'], sign=True)}, {_num(r['high'], sign=True)}]", _p(r["p_value"]),
                 f"**{r['verdict']}**" if r["verdict"] != "not distinguishable" else r["verdict"]]
                for m, r in c["metrics"].items()]
        out += _md_table(header, rows, ["l", "r", "r", "r", "r", "r", "l"])
        untested = [m for m in result["metrics"] if m not in c["metrics"]]
        if untested:
            out += ["", f"Not tested (no per-study statistics here): {', '.join(untested)}."]
    if all(g["per_observation_f1"] for g in groups):
        out += ["", "## CE F1 per observation (mean over seeds)", ""]
        observations = list(groups[0]["per_observation_f1"])
        header = ["observation", "support", *(g["name"] for g in groups)]
        rows = [[o, str(groups[0]["per_observation_f1"][o].get("support", "")),
                 *(_num(g["per_observation_f1"][o]["mean"], 3) for g in groups)] for o in observations]
        out += _md_table(header, rows, ["l", "r"] + ["r"] * len(groups))
    out += ["", "## Method", "",
            f"- Means and stds: {method['summary']}.",
            f"- Intervals: {method['interval']}.",
            f"- p-values: {method['p_value']}.",
            f"- Verdicts: {method['verdict']}.",
            f"- Scope: {method['scope']}."]
    if result["warnings"]:
        out += ["", "## Warnings", "", *(f"- {w}" for w in result["warnings"])]
    out += ["", "## Runs", "", *(f"- {r['group']}, seed {r['seed']}: `{r['path']}`" for r in result["runs"])]
    return "\n".join(out) + "\n"


def _seeds(seeds: list) -> str:
    return "{" + ", ".join(map(str, seeds)) + "}"


def csv_text(result: dict) -> str:
    """One row per group and metric (the comparison columns filled for non-reference groups), then
    one per group and observation (metric `ce_f1`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    comparisons = {c["group"]: c for c in result["comparisons"]}
    for g in result["groups"]:
        c = comparisons.get(g["name"])
        seeds = ";".join(map(str, g["seeds"]))
        for m in result["metrics"]:
            row = g["metrics"][m]
            out = {"group": g["name"], "metric": m, "n_seeds": g["n_seeds"], "seeds": seeds,
                   "mean": repr(row["mean"]), "std": "" if row["std"] is None else repr(row["std"]),
                   "reference": result["reference"]}
            if c is not None and m in c["metrics"]:
                d = c["metrics"][m]
                out.update(difference=repr(d["difference"]), low=repr(d["low"]), high=repr(d["high"]),
                           p_value=repr(d["p_value"]), p_method=c["p_method"], verdict=d["verdict"])
            writer.writerow(out)
        for obs, row in g["per_observation_f1"].items():
            writer.writerow({"group": g["name"], "metric": "ce_f1", "observation": obs, "n_seeds": g["n_seeds"],
                             "seeds": seeds, "mean": repr(row["mean"]),
                             "std": "" if row["std"] is None else repr(row["std"])})
    return buf.getvalue()


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex(result: dict) -> str:
    """A booktabs table: one row per group, the paper's Table 3 columns, mean ± std over seeds;
    a dagger marks a difference from the reference group whose interval leaves 0 out."""
    conf = f"{result['method']['confidence']:.0%}"
    comparisons = {c["group"]: c for c in result["comparisons"]}
    seeds = sorted({g["n_seeds"] for g in result["groups"]})
    caption = (rf"\caption{{Ablation on {tex_escape(result['dataset']['name'] or 'the test split')} "
               rf"({result['n_studies']} test studies): mean $\pm$ standard deviation over "
               rf"{'/'.join(map(str, seeds))} seed(s). $^\dagger$: differs from {tex_escape(result['reference'])} at "
               rf"{tex_escape(conf)} (paired bootstrap over studies). CE F1: macro over the 14 CheXpert "
               r"observations.}")
    lines = [
        r"% irralctl compare: requires \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        caption,
        r"\label{tab:ablation}",
        r"\begin{tabular}{l" + "c" * len(PAPER_COLUMNS) + "}",
        r"\toprule",
        "Model & " + " & ".join(PAPER_COLUMNS.values()) + r" \\",
        r"\midrule",
    ]
    for g in result["groups"]:
        c = comparisons.get(g["name"])
        cells = []
        for m in PAPER_COLUMNS:
            row = g["metrics"].get(m)
            if row is None:
                cells.append("--")
                continue
            cell = f"{row['mean']:.3f}" + ("" if row["std"] is None else rf"$\pm${row['std']:.3f}")
            if c is not None and m in c["metrics"] and c["metrics"][m]["verdict"] != "not distinguishable":
                cell += r"$^\dagger$"
            cells.append(cell)
        lines.append(tex_escape(g["name"]) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
