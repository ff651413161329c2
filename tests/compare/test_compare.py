"""`compare_runs`: means over seeds, paired intervals and p-values on the same studies, verdicts,
and the runs it refuses."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from irralctl.compare import CompareConfig, compare_runs
from irralctl.compare.stats import P_BOOTSTRAP
from irralctl.errors import ConfigError, InputError
from irralctl.metrics import ScoreConfig, score_files
from tests.fixtures.compare_runs import bad, good, make_run, references

N = 80
FIGURES = ("bleu_4", "rouge_l", "cider", "ce_macro_f1_14", "ce_micro_f1_14")


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    """baseline: mostly wrong templates; irral: the references with a few words dropped; cmn: the
    baseline's predictions exactly (same seed, same text); 3 seeds each."""
    root = tmp_path_factory.mktemp("runs")
    refs = references(N)
    runs = {}
    for s in range(3):
        runs[f"baseline-seed{s}"] = make_run(root, f"baseline-seed{s}", "baseline", s, bad(refs, s), refs)
        runs[f"cmn-seed{s}"] = make_run(root, f"cmn-seed{s}", "cmn", s, bad(refs, s), refs)
        runs[f"irral-seed{s}"] = make_run(root, f"irral-seed{s}", "irral", s, good(refs, s), refs)
    return root, refs, runs


def _compare(paths, **kw):
    return compare_runs(CompareConfig(runs=tuple(paths), meteor="off", resamples=kw.pop("resamples", 500), **kw))


def _saved(run, metric):
    return json.loads((run / "test_metrics.json").read_text())["metrics"][metric]


def test_a_clearly_better_group_is_better_and_an_identical_one_is_not_distinguishable(ablation):
    _, _, runs = ablation
    result = _compare(runs.values())
    assert result["reference"] == "baseline" and [g["name"] for g in result["groups"]] == ["baseline", "cmn", "irral"]
    by = {c["group"]: c for c in result["comparisons"]}

    better = by["irral"]
    assert better["pairing"] == "paired by seed" and better["p_method"] == P_BOOTSTRAP
    for m in FIGURES:
        row = better["metrics"][m]
        want = (statistics.mean(_saved(runs[f"irral-seed{s}"], m) for s in range(3))
                - statistics.mean(_saved(runs[f"baseline-seed{s}"], m) for s in range(3)))
        assert row["difference"] == pytest.approx(want, abs=1e-12)
        assert 0 < row["low"] <= row["high"], m
        assert row["verdict"] == "better" and row["p_value"] <= 0.01 and row["randomisation_p"] <= 0.01, m

    same = by["cmn"]
    for m, row in same["metrics"].items():
        assert row["difference"] == 0 and row["low"] == pytest.approx(0, abs=1e-12) == row["high"], m
        assert row["low"] <= 0 <= row["high"]
        assert row["p_value"] == 1.0 and row["verdict"] == "not distinguishable", m


def test_group_means_and_stds_are_those_of_the_saved_metrics(ablation):
    _, _, runs = ablation
    result = _compare([runs[f"irral-seed{s}"] for s in range(3)] + [runs[f"baseline-seed{s}"] for s in range(3)])
    irral = next(g for g in result["groups"] if g["name"] == "irral")
    assert irral["seeds"] == [0, 1, 2] and irral["n_seeds"] == 3
    for m in FIGURES:
        values = [_saved(runs[f"irral-seed{s}"], m) for s in range(3)]
        assert irral["metrics"][m]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert irral["metrics"][m]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert irral["metrics"][m]["values"] == values
        ci = irral["metrics"][m]["interval"]
        assert ci["low"] <= irral["metrics"][m]["mean"] <= ci["high"]
    per_obs = irral["per_observation_f1"]
    assert len(per_obs) == 14
    saved = [json.loads((runs[f"irral-seed{s}"] / "test_metrics.json").read_text())["clinical"]["per_observation"]
             for s in range(3)]
    k = [r["observation"] for r in saved[0]].index("Pleural Effusion")
    assert per_obs["Pleural Effusion"]["mean"] == pytest.approx(np.mean([t[k]["f1"] for t in saved]), abs=1e-12)
    # The reference group comes first when named; a worse group is called worse.
    result = _compare(runs.values(), reference="irral")
    assert result["groups"][0]["name"] == "irral"
    base = next(c for c in result["comparisons"] if c["group"] == "baseline")
    assert all(base["metrics"][m]["verdict"] == "worse" and base["metrics"][m]["high"] < 0 for m in FIGURES)


def test_record_of_runs_seeds_and_dataset(ablation):
    _, _, runs = ablation
    result = _compare(runs.values())
    assert {r["path"] for r in result["runs"]} == {str(p) for p in runs.values()}
    assert {(r["group"], r["seed"]) for r in result["runs"]} == {(p, s) for p in ("baseline", "cmn", "irral")
                                                                  for s in range(3)}
    assert result["dataset"] == {"name": "toy", "fingerprints": ["f" * 64]}
    assert result["n_studies"] == N and result["method"]["resamples"] == 500
    assert any(f"only {N} test studies" in w for w in result["warnings"])
    assert not any("fewer than 3 seeds" in w for w in result["warnings"])
    json.dumps(result, allow_nan=False)  # strict JSON


def test_one_seed_each_agrees_with_score_against(ablation, tmp_path):
    """With one run per group, the comparison is `irralctl score A --against B` (same method,
    independent draws): the same difference, and intervals and p-values within resampling noise."""
    _, refs, _ = ablation
    a = make_run(tmp_path, "a", "irral", 0, good(refs, 0, keep=0.85), refs)
    mixed = {k: (good(refs, 1)[k] if i % 2 else bad(refs, 1)[k]) for i, k in enumerate(refs)}
    b = make_run(tmp_path, "b", "cmn", 0, mixed, refs)
    result = _compare([b, a], resamples=4000)
    ours = result["comparisons"][0]["metrics"]
    theirs = score_files(a / "test_predictions.jsonl",
                         ScoreConfig(meteor="off", against=str(b / "test_predictions.jsonl"), bootstrap=4000))
    for m in ("bleu_4", "rouge_l", "cider", "ce_micro_f1_14"):
        t = theirs["against"]["paired"]["metrics"][m]
        o = ours[m]
        assert o["difference"] == pytest.approx(t["difference"], abs=1e-12)
        width = t["high"] - t["low"]
        assert abs(o["low"] - t["low"]) < 0.15 * width and abs(o["high"] - t["high"]) < 0.15 * width, m
        assert abs(o["p_value"] - t["p_value"]) < 0.05, m


def test_seeds_that_do_not_pair_are_pooled(ablation, tmp_path):
    _, refs, runs = ablation
    other = [make_run(tmp_path, f"irral-seed{s}", "irral", s, good(refs, s), refs) for s in (5, 6)]
    result = _compare([*(runs[f"baseline-seed{s}"] for s in range(3)), *other])
    c = result["comparisons"][0]
    assert c["pairing"] == "pooled" and c["p_method"] == P_BOOTSTRAP and c["seeds"] == [5, 6]
    assert c["metrics"]["bleu_4"]["verdict"] == "better" and c["metrics"]["bleu_4"]["p_value"] < 0.01
    assert any("pooled" in w for w in result["warnings"])
    assert any("fewer than 3 seeds in irral (2)" in w for w in result["warnings"])


def test_labels_switch_changes_and_warns_about_other_differences(ablation, tmp_path):
    _, refs, runs = ablation
    changed = make_run(tmp_path, "cmn-mfa", "cmn", 0, good(refs, 0), refs, switches={"mfa": True}, epochs=5)
    result = _compare([runs["baseline-seed0"], changed])
    assert [g["name"] for g in result["groups"]] == ["baseline", "cmn+mfa"]
    assert any("optim.epochs" in w and "baseline: 30" in w and "cmn+mfa: 5" in w for w in result["warnings"])
    by_run = _compare([runs["baseline-seed0"], runs["baseline-seed1"]], group_by="run", reference="baseline-seed1")
    assert [g["name"] for g in by_run["groups"]] == ["baseline-seed1", "baseline-seed0"]


def test_design_options_of_a_component_form_their_own_groups(ablation, tmp_path):
    """A run that changes a component's design option (ACL's context on the words) is its own group;
    a run saved before the option existed reads as what it did then (off); the option means nothing
    without its component, so it never splits runs that lack it."""
    _, refs, runs = ablation
    off = make_run(tmp_path, "irral-off", "irral", 0, good(refs, 0), refs, switches={"context_words": False})
    old = make_run(tmp_path, "irral-old", "irral", 1, good(refs, 1), refs)
    config = json.loads((old / "config.json").read_text())
    del config["config"]["model"]["context_words"]
    (old / "config.json").write_text(json.dumps(config))
    blind = make_run(tmp_path, "cmn-off", "cmn", 0, good(refs, 0), refs, switches={"context_words": False})
    result = _compare([runs["irral-seed0"], off, old, blind])
    assert [g["name"] for g in result["groups"]] == ["irral", "irral[ctx-words=off]", "cmn"]
    assert [g["n_seeds"] for g in result["groups"]] == [1, 2, 1]
    assert not any("context_words" in w for w in result["warnings"])


def test_a_run_saved_before_the_channel_norm_is_named_beside_new_ones(ablation, tmp_path):
    """A run saved before --tiny-norm existed was trained with groups: compared with runs of today's
    default, the difference is named (not a component, so no verdict can account for it)."""
    _, refs, runs = ablation
    old = make_run(tmp_path, "baseline-old", "baseline", 1, bad(refs, 1), refs)
    config = json.loads((old / "config.json").read_text())
    del config["config"]["model"]["tiny_norm"]
    (old / "config.json").write_text(json.dumps(config))
    result = _compare([runs["irral-seed0"], old])
    assert any("model.tiny_norm" in w and "baseline: group" in w and "irral: channel" in w
               for w in result["warnings"])


def test_a_recomputed_figure_that_differs_from_the_saved_one_is_named(ablation, tmp_path):
    _, refs, runs = ablation
    run = make_run(tmp_path, "tampered", "irral", 0, good(refs, 0), refs)
    saved = json.loads((run / "test_metrics.json").read_text())
    saved["metrics"]["bleu_4"] += 0.01
    (run / "test_metrics.json").write_text(json.dumps(saved))
    result = _compare([runs["baseline-seed0"], run])
    assert any("tampered: recomputed from its predictions, bleu_4" in w for w in result["warnings"])


def test_refuses_runs_on_other_studies_or_references(ablation, tmp_path):
    _, refs, runs = ablation
    fewer = {k: v for k, v in refs.items() if k != "s079"}
    short = make_run(tmp_path, "short", "irral", 0, good(fewer, 0), fewer)
    with pytest.raises(InputError, match=r"short: covers other test studies than .*only here: none; only there: s079"):
        _compare([runs["baseline-seed0"], short])
    changed = dict(refs, s003="a different reference .")
    other = make_run(tmp_path, "other", "irral", 0, good(changed, 0), changed)
    with pytest.raises(InputError, match=r"other: 1 test stud\(y/ies\) have other references than in .*: s003"):
        _compare([runs["baseline-seed0"], other])


def test_refuses_unfinished_runs_unknown_references_and_repeats(ablation, tmp_path):
    _, refs, runs = ablation
    run = make_run(tmp_path, "unfinished", "irral", 0, good(refs, 0), refs)
    (run / "test_metrics.json").unlink()
    with pytest.raises(InputError, match="no test_metrics.json: the run did not finish its test"):
        _compare([runs["baseline-seed0"], run])
    with pytest.raises(InputError, match="no config.json"):
        _compare([runs["baseline-seed0"], tmp_path])
    with pytest.raises(ConfigError, match=r"--reference acl: no such group \(groups: baseline, irral\)"):
        _compare([runs["baseline-seed0"], runs["irral-seed0"]], reference="acl")
    with pytest.raises(ConfigError, match="given twice"):
        _compare([runs["baseline-seed0"], runs["baseline-seed0"]])
