"""`compare_runs`: the table of an ablation over training runs, with paired tests against a reference.

For runs decoded on the same test studies (several seeds per preset, typically):

1. every metric of the runs' `test_metrics.json`, as mean and sample std over each group's seeds,
   and the per-observation CE F1 averaged over seeds;
2. each run's per-study statistics recomputed from its `test_predictions.jsonl` with the scorer
   of `irralctl score` (checked against `test_metrics.json`), so that each group can be compared
   with the reference group on the same resampled studies (`irralctl.compare.stats`): the
   difference of the seed means, its paired bootstrap interval, a p-value and a verdict.

The result is one JSON-ready dict; `tables` and `plot` render it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from irralctl.compare import stats
from irralctl.compare.config import CompareConfig
from irralctl.compare.runs import Run, check_same_studies, group_runs, option_differences, read_run
from irralctl.constants import (
    CE_AVERAGES,
    CE_MEASURES,
    METRIC_BY_NAME,
    NLG_METRICS,
    OBSERVATION_SUBSETS,
    OBSERVATIONS,
    STANDARD_METRICS,
    ce_metric_name,
)
from irralctl.errors import ConfigError, InputError
from irralctl.progress import SILENT, Progress
from irralctl.utils.config import package_versions, to_jsonable

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MIN_SEEDS = 3          # fewer seeds per group: the std over seeds says little
FEW_STUDIES = 200      # fewer test studies: wide intervals, a rough bootstrap
_TOLERANCE = 1e-9      # recomputed vs saved metric


def metric_order(names: set[str]) -> list[str]:
    """NLG metrics, the standard ones, then clinical efficacy (subset, measure, average), then the rest."""
    ce = [ce_metric_name(a, m, s) for s in OBSERVATION_SUBSETS for m in reversed(CE_MEASURES) for a in CE_AVERAGES]
    known = [*NLG_METRICS, *STANDARD_METRICS, *ce]
    return [m for m in known if m in names] + sorted(names - set(known))


def compare_runs(cfg: CompareConfig, progress: Progress = SILENT) -> dict:
    """Everything `irralctl compare` reports, as one JSON-ready dict (docs/formats.md, "compare.json")."""
    seen: set[Path] = set()
    for path in cfg.runs:
        if Path(path).resolve() in seen:
            raise ConfigError(f"run {path} is given twice", hint="give each run directory once")
        seen.add(Path(path).resolve())
    with progress.task("reading runs", total=len(cfg.runs)) as task:
        runs = []
        for path in cfg.runs:
            runs.append(read_run(path))
            task.advance()
    check_same_studies(runs)
    groups = _ordered_groups(group_runs(runs, cfg.group_by), cfg.reference, cfg.group_by)
    reference = next(iter(groups))
    names = _common_metrics(runs)
    warnings = _warnings(runs, groups, names)

    run_stats = _recompute(runs, names, cfg, warnings, progress)
    recomputed = {s.name for s in run_stats[runs[0].path]}
    tested = [m for m in names if m in recomputed]
    by_group = {g: [run_stats[r.path] for r in members] for g, members in groups.items()}
    samples = stats.resample_groups(by_group, cfg.resamples, cfg.seed)

    comparisons = []
    for g, members in groups.items():
        if g == reference:
            continue
        comparisons.append(_compare(g, members, reference, groups[reference], by_group, samples, tested, cfg))
    pooled = [c["group"] for c in comparisons if c["pairing"] == "pooled"]
    if pooled:
        warnings.append(f"seeds were pooled for {', '.join(pooled)} (not the same seeds as {reference}): no "
                        "randomisation test beside the bootstrap")
    for w in warnings:
        log.warning(w)
    first = runs[0]
    return to_jsonable({
        "format_version": FORMAT_VERSION,
        "n_studies": len(first.studies.ids),
        "reference": reference,
        "group_by": cfg.group_by,
        "metrics": names,
        "tested_metrics": tested,
        "dataset": {"name": first.dataset.get("name"),
                    "fingerprints": sorted({str(r.dataset.get("fingerprint")) for r in runs})},
        "runs": [{"path": str(r.path), "name": r.name, "group": g, "preset": r.preset, "seed": r.seed,
                  "switches": r.switches, "dataset": r.dataset,
                  "test_predictions_sha256": r.studies.sources["predictions"]["sha256"]}
                 for g, members in groups.items() for r in members],
        "groups": [_summary(g, members, samples[g], names, cfg.confidence) for g, members in groups.items()],
        "comparisons": comparisons,
        "protocol": first.test_metrics.get("protocol"),
        "method": {
            "summary": "mean and sample std (n - 1) over each group's seeds of the runs' test_metrics.json",
            "interval": f"paired percentile bootstrap over the {len(first.studies.ids)} test studies: one set of study "
                        "multiplicities per resample, shared by every seed of every group; each run's corpus metric "
                        "recomputed from per-study statistics, averaged over the group's seeds, minus the "
                        "reference group's average",
            "p_value": stats.P_BOOTSTRAP + "; with seeds paired, also randomisation_p: " + stats.P_RANDOMISATION,
            "verdict": f"better / worse when the {cfg.confidence:.0%} interval lies above / below 0, else not "
                       "distinguishable; no correction for testing several metrics and groups",
            "scope": "intervals and p-values condition on the trained seeds (test-set sampling only); seed-to-seed "
                     "variation is the std column",
            "confidence": cfg.confidence, "resamples": cfg.resamples, "seed": cfg.seed,
        },
        "warnings": warnings,
        "config": cfg,
        "versions": package_versions(),
    })


def _ordered_groups(groups: dict[str, list[Run]], reference: str | None, group_by: str) -> dict[str, list[Run]]:
    """The reference group first, then the others as given; each group's runs by seed. A preset
    names its group even when the runs changed a switch or design option (`irral` finds the one group
    `irral[ctx-words=off]`), as long as only one group holds that preset."""
    if reference is not None and reference not in groups and group_by == "preset":
        holding = [g for g, runs in groups.items() if runs[0].preset == reference]
        reference = holding[0] if len(holding) == 1 else reference
    if reference is not None and reference not in groups:
        raise ConfigError(f"--reference {reference}: no such group (groups: {', '.join(groups)})",
                          hint="name a preset of the runs" if group_by == "preset" else "name a run directory")
    first = reference if reference is not None else next(iter(groups))
    order = [first, *(g for g in groups if g != first)]
    return {g: sorted(groups[g], key=lambda r: (r.seed is None, r.seed or 0, r.name)) for g in order}


def _common_metrics(runs: Sequence[Run]) -> list[str]:
    sets = [{k for k, v in r.test_metrics["metrics"].items() if isinstance(v, (int, float))} for r in runs]
    common = set.intersection(*sets)
    if not common:
        raise InputError("the runs' test_metrics.json files have no metric in common", path=runs[0].path)
    return metric_order(common)


def _warnings(runs: Sequence[Run], groups: Mapping[str, list[Run]], names: list[str]) -> list[str]:
    out = []
    every = set().union(*(r.test_metrics["metrics"] for r in runs))
    missing = metric_order(every - set(names))
    if missing:
        out.append(f"left out, not in every run's test_metrics.json: {', '.join(missing)}")
    few = [f"{g} ({len(m)})" for g, m in groups.items() if len(m) < MIN_SEEDS]
    if few:
        out.append(f"fewer than {MIN_SEEDS} seeds in {', '.join(few)}: the std over seeds is unreliable, and the "
                   "intervals say nothing about seed-to-seed variation")
    n = len(runs[0].studies.ids)
    if n < FEW_STUDIES:
        out.append(f"only {n} test studies: the intervals are wide and the bootstrap is rough")
    fingerprints = {r.dataset.get("fingerprint") for r in runs}
    if len(fingerprints) > 1:
        out.append(f"the runs were trained on {len(fingerprints)} different dataset fingerprints (same test studies "
                   "and references)")
    seeds = [g for g, m in groups.items() if len({r.seed for r in m}) < len(m)]
    if seeds:
        out.append(f"the same seed twice in {', '.join(seeds)}")
    return out + option_differences(groups)


def _score_config(runs: Sequence[Run], names: list[str], cfg: CompareConfig):
    from irralctl.metrics.config import ScoreConfig

    uncertain = {(r.test_metrics.get("config") or {}).get("uncertain", "negative") for r in runs}
    if len(uncertain) > 1:
        raise InputError(f"the runs were scored with uncertain CheXpert labels counted differently "
                         f"({', '.join(sorted(uncertain))})", path=runs[0].path,
                         hint="score them with the same --uncertain")
    return ScoreConfig(meteor=cfg.meteor if "meteor" in names else "off", uncertain=uncertain.pop(),
                       clinical=any(n.startswith("ce_") for n in names),
                       standard=any(n in STANDARD_METRICS for n in names))


def _recompute(runs: Sequence[Run], names: list[str], cfg: CompareConfig, warnings: list[str],
               progress: Progress) -> dict[Path, list]:
    """Each run's per-study statistics of `names` (in the first run's study order), checked against
    its test_metrics.json."""
    # The scorer's own per-study statistics, labelling and METEOR runner: the numbers of `irralctl score`.
    from irralctl.metrics.scoring import MeteorRunner, compute_statistics, label_texts

    config = _score_config(runs, names, cfg)
    first = runs[0].studies
    ids, refs = first.ids, first.references
    ref_labels = label_texts(refs) if config.clinical else None
    runner = MeteorRunner(config.meteor)
    if "meteor" in names and not runner.available:
        warnings.append(f"METEOR has no paired test: {runner.reason}")
    out: dict[Path, list] = {}
    try:
        with progress.task("per-study statistics", total=len(runs)) as task:
            for run in runs:
                order = {k: i for i, k in enumerate(run.studies.ids)}
                preds = [run.studies.predictions[order[k]] for k in ids]
                computed = compute_statistics(ids, preds, refs, config, runner, None, ref_labels)
                kept = [s for s in computed.statistics if s.name in names]
                _check_recomputed(run, kept, warnings)
                out[run.path] = kept
                task.advance()
    finally:
        runner.close()
    return out


def _check_recomputed(run: Run, statistics: list, warnings: list[str]) -> None:
    saved = run.test_metrics["metrics"]
    off = [f"{s.name} {s.value():.6g} (saved {saved[s.name]:.6g})" for s in statistics
           if abs(s.value() - saved[s.name]) > _TOLERANCE * max(1.0, abs(saved[s.name]))]
    if off:
        warnings.append(f"{run.path}: recomputed from its predictions, {'; '.join(off)}: a different labeller or "
                        "METEOR than when it was scored? Differences and intervals use the recomputed values")


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _summary(group: str, members: list[Run], samples: stats.GroupSamples, names: list[str], confidence: float) -> dict:
    tail = (1 - confidence) / 2 * 100
    metrics = {}
    for name in names:
        values = [float(r.test_metrics["metrics"][name]) for r in members]
        mean, std = _mean_std(values)
        row = {"mean": mean, "std": std, "values": values}
        if name in samples.samples:
            low, high = np.percentile(samples.samples[name], [tail, 100 - tail])
            row["interval"] = {"low": float(low), "high": float(high)}  # of the seed mean, over studies
        metrics[name] = row
    per_obs = {}
    tables = [(r.test_metrics.get("clinical") or {}).get("per_observation") for r in members]
    if all(tables):
        for i, obs in enumerate(OBSERVATIONS):
            mean, std = _mean_std([float(t[i]["f1"]) for t in tables])
            per_obs[obs] = {"mean": mean, "std": std, "support": tables[0][i].get("support")}
    return {"name": group, "runs": [str(r.path) for r in members], "seeds": [r.seed for r in members],
            "n_seeds": len(members), "preset": members[0].preset, "switches": members[0].switches,
            "metrics": metrics, "per_observation_f1": per_obs}


def _compare(group: str, members: list[Run], reference: str, ref_members: list[Run], by_group: Mapping,
             samples: Mapping[str, stats.GroupSamples], tested: list[str], cfg: CompareConfig) -> dict:
    seeds, ref_seeds = [r.seed for r in members], [r.seed for r in ref_members]
    paired = (None not in seeds and len(set(seeds)) == len(seeds) and sorted(seeds) == sorted(ref_seeds)
              and len(set(ref_seeds)) == len(ref_seeds))
    p_random = (stats.randomisation_p(by_group[group], by_group[reference], cfg.resamples, cfg.seed)
                if paired else None)
    rows = {}
    for name in tested:
        row = stats.difference(samples[group], samples[reference], name, cfg.confidence)
        # The p-value and the interval come from the same resamples, so they never disagree (p < 1 -
        # confidence exactly when the interval leaves 0 out); the randomisation test is given beside it.
        row["p_value"] = row["bootstrap_p"]
        if paired:
            row["randomisation_p"] = p_random[name]
        higher = METRIC_BY_NAME[name].higher_is_better if name in METRIC_BY_NAME else True
        row["verdict"] = stats.verdict(row["low"], row["high"], higher)
        rows[name] = row
    return {"group": group, "reference": reference, "pairing": "paired by seed" if paired else "pooled",
            "seeds": seeds, "reference_seeds": ref_seeds,
            "p_method": stats.P_BOOTSTRAP, "metrics": rows}


# -- outputs ------------------------------------------------------------------------------------

OUTPUT_FILES = {"md": "compare.md", "csv": "compare.csv", "tex": "compare.tex", "json": "compare.json",
                "png": "compare.png"}


def write_outputs(result: dict, paths: Mapping[str, Path]) -> None:
    """Write the files of `OUTPUT_FILES` (kind -> path) from a `compare_runs` result."""
    from irralctl.compare import tables
    from irralctl.plots.compare import bar_chart
    from irralctl.utils.io import atomic_write, write_json

    for kind, render in (("md", tables.markdown), ("csv", tables.csv_text), ("tex", tables.latex)):
        with atomic_write(paths[kind], newline="" if kind == "csv" else None) as f:
            f.write(render(result))
    write_json(paths["json"], result)
    bar_chart(result, paths["png"], tables.PAPER_COLUMNS)
