"""METEOR: the long-lived jar gives pycocoevalcap's numbers; statistics reproduce the jar; nltk mode."""

from __future__ import annotations

import json
import logging
import random
import shutil
import sys

import numpy as np
import pytest

from irralctl.metrics import meteor
from irralctl.metrics.scoring import ScoreConfig, score_reports
from tests.fixtures.metric_texts import pairs

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 needs Java (install default-jre-headless)")


@pytest.fixture(scope="module")
def coco():
    """pycocoevalcap's own METEOR wrapper (one JVM for this module)."""
    module = pytest.importorskip("pycocoevalcap.meteor.meteor")
    scorer = module.Meteor()
    yield scorer
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()


@pytest.fixture(scope="module")
def jar():
    with meteor.MeteorJar() as j:
        yield j


def _check(coco, jar, gts, res):
    want_corpus, want_items = coco.compute_score(gts, res)
    corpus, items, stats = jar.compute_with_stats(gts, res)
    assert jar.compute_score(gts, res)[0] == corpus  # the same JVM answers again
    assert corpus == want_corpus
    np.testing.assert_array_equal(items, np.array(want_items))
    # our statistics formula reproduces the jar, per item and for the corpus
    np.testing.assert_allclose(meteor.meteor_from_stats(stats), items, rtol=0, atol=1e-9)
    agg = meteor.meteor_from_stats(meteor.aggregation_stats(stats).sum(axis=0))
    assert abs(float(agg) - corpus) < 1e-9


@pytest.mark.slow  # a JVM starts and loads METEOR's tables: seconds
@needs_java
def test_jar_equals_pycocoevalcap_on_generated_and_edge_cases(coco, jar):
    gts, res = pairs(21, 250)
    gts.update({"empty": ["the heart is normal ."], "same": ["no acute disease ."], "pipes": ["a ||| b"], "uni": ["größe 肺 normal"]})
    res.update({"empty": [""], "same": ["no acute disease ."], "pipes": ["a ||| b  c"], "uni": ["größe normal"]})
    _check(coco, jar, gts, res)


@pytest.mark.slow  # a JVM starts and loads METEOR's tables: seconds
@needs_java
def test_jar_equals_pycocoevalcap_on_real_iu_reports(shared_data, coco, jar):
    from irralctl.data.cleaning import legacy_iu_xray

    ann = json.loads((shared_data / "iu_xray" / "r2gen_annotation.json").read_text())
    reports = [legacy_iu_xray(r["report"]) for r in ann["test"]]
    rng = random.Random(2)
    gts = {i: [rng.choice(reports)] for i in range(400)}
    res = {i: [rng.choice(reports) if i % 3 else gts[i][0]] for i in range(400)}
    _check(coco, jar, gts, res)


@pytest.mark.slow  # a JVM starts and loads METEOR's tables: seconds
@needs_java
def test_jar_process_stops_when_the_context_ends():
    with meteor.MeteorJar() as jar:
        proc = jar._proc
        assert proc.poll() is None
    assert proc.poll() is not None


def test_aggregation_drops_the_chunk_of_perfect_matches():
    perfect = np.zeros(meteor.N_STATS)
    perfect[[0, 1]] = 3
    perfect[4:6] = 3  # exact-stage content matches, test and reference
    perfect[20:23] = [1, 3, 3]
    partial = perfect.copy()
    partial[20] = 2
    agg = meteor.aggregation_stats(np.stack([perfect, partial]))
    assert agg[0, 20] == 0 and agg[1, 20] == 2
    assert meteor.meteor_from_stats(perfect) == 1.0
    assert 0 < meteor.meteor_from_stats(partial) < 1


def test_lexnames_has_the_45_lexicographer_files(tmp_path):
    text = meteor.lexnames_text(tmp_path / "absent.gz")  # the table kept in the code
    lines = [line.split("\t") for line in text.splitlines()]
    assert len(lines) == 45
    assert lines[0] == ["00", "adj.all", "3"] and lines[3] == ["03", "noun.Tops", "1"]
    assert lines[29] == ["29", "verb.body", "2"] and lines[44] == ["44", "adj.ppl", "3"]
    if meteor._MAN_PAGE.is_file():  # Debian's lexnames(5WN) says the same
        assert meteor.lexnames_text() == text


@pytest.mark.slow  # builds WordNet from the Debian files (about 12 s)
@pytest.mark.skipif(not (meteor.DEBIAN_WORDNET / "data.noun").is_file(), reason="Debian's WordNet 3.0 (wordnet-base) not installed")
def test_nltk_meteor_with_wordnet_built_from_debian(tmp_path, monkeypatch):
    nltk = pytest.importorskip("nltk")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])  # no other WordNet to find
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wn = meteor.load_wordnet()
    corpus = tmp_path / "cache" / "irralctl" / "nltk_data" / "corpora" / "wordnet"
    assert (corpus / "lexnames").read_text() == meteor.lexnames_text()
    assert wn.get_version() == "3.0"
    assert wn.synsets("heart")  # the database is readable
    gts = {"same": ["the heart is normal"], "none": ["lungs are clear"], "stem": ["the lungs are clear"]}
    res = {"same": ["the heart is normal"], "none": ["osseous"], "stem": ["the lung is clear"]}
    corpus_score, items = meteor.nltk_meteor_items(gts, res, wn)
    assert items[0] > 0.9 and items[1] == 0.0 and 0.3 < items[2] < items[0]
    assert corpus_score == pytest.approx(items.mean())
    # a second call finds the cached corpus instead of copying again
    stamp = (corpus / "data.noun").stat().st_mtime_ns
    meteor.load_wordnet()
    assert (corpus / "data.noun").stat().st_mtime_ns == stamp


def test_unavailable_meteor_is_reported_and_the_rest_still_runs():
    result = score_reports({"a": "x y", "b": "z"}, {"a": "x y", "b": "z w"}, ScoreConfig(meteor="off", clinical=False))
    assert "meteor" not in result["metrics"] and result["meteor"]["available"] is False
    assert "disabled" in result["meteor"]["reason"]
    assert result["metrics"]["bleu_1"] > 0


def _no_java(monkeypatch):
    monkeypatch.setattr(meteor.shutil, "which", lambda name: None)


def _no_pycocoevalcap(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocoevalcap.meteor.meteor", None)  # the import fails


def _no_wordnet(monkeypatch, tmp_path):
    nltk = pytest.importorskip("nltk")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(meteor, "DEBIAN_WORDNET", tmp_path / "no-wordnet")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_requested_jar_without_java_stops_naming_the_install_line(monkeypatch):
    _no_java(monkeypatch)
    with pytest.raises(meteor.MeteorUnavailable, match="not on PATH.*apt-get install default-jre-headless"):
        meteor.MeteorJar()
    with pytest.raises(meteor.MeteorUnavailable, match="^--meteor jar: .*default-jre-headless") as e:
        score_reports({"a": "x"}, {"a": "x"}, ScoreConfig(meteor="jar", clinical=False))
    assert "--meteor auto" in e.value.hint


def test_requested_jar_without_pycocoevalcap_names_the_coco_extra(monkeypatch):
    _no_pycocoevalcap(monkeypatch)
    with pytest.raises(meteor.MeteorUnavailable, match=r"pycocoevalcap.*pip install 'irralctl\[coco\]'"):
        score_reports({"a": "x"}, {"a": "x"}, ScoreConfig(meteor="jar", clinical=False))
    _no_java(monkeypatch)  # both missing: both named, in one line
    with pytest.raises(meteor.MeteorUnavailable) as e:
        meteor.check_jar()
    assert "irralctl[coco]" in str(e.value) and "default-jre-headless" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow  # imports nltk (seconds)
def test_requested_nltk_without_wordnet_names_the_packages(monkeypatch, tmp_path):
    _no_wordnet(monkeypatch, tmp_path)
    with pytest.raises(meteor.MeteorUnavailable, match="^--meteor nltk: WordNet 3.0 not found.*wordnet-base wordnet-sense-index"):
        score_reports({"a": "x"}, {"a": "x"}, ScoreConfig(meteor="nltk", clinical=False))


@pytest.mark.slow  # imports nltk (seconds)
def test_auto_falls_back_and_logs_why(monkeypatch, tmp_path, caplog):
    _no_pycocoevalcap(monkeypatch)
    with caplog.at_level(logging.INFO, logger="irralctl.metrics.scoring"):
        result = score_reports({"a": "x"}, {"a": "x"}, ScoreConfig(meteor="auto", clinical=False))
    if result["meteor"]["available"]:  # WordNet here: nltk's METEOR stood in for the jar
        assert result["meteor"]["implementation"].startswith("nltk") and "meteor" in result["metrics"]
    assert "jar unavailable" in caplog.text and "irralctl[coco]" in caplog.text
    _no_wordnet(monkeypatch, tmp_path)  # nothing left: scored without METEOR, the reason recorded and logged
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="irralctl.metrics.scoring"):
        result = score_reports({"a": "x"}, {"a": "x"}, ScoreConfig(meteor="auto", clinical=False))
    assert result["meteor"]["available"] is False and "meteor" not in result["metrics"]
    assert "jar:" in result["meteor"]["reason"] and "nltk:" in result["meteor"]["reason"]
    assert "METEOR not computed" in caplog.text and result["metrics"]["bleu_1"] == pytest.approx(1.0)


def test_score_cli_stops_on_a_missing_requested_meteor(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from irralctl.cli.main import app

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "a", "prediction": "x y", "reference": "x y"}) + "\n")
    _no_java(monkeypatch)
    result = CliRunner().invoke(app, ["score", str(preds), "--meteor", "jar", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 1 and not (tmp_path / "s.json").exists()
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "apt-get install default-jre-headless" in error[0]


def test_training_checks_the_requested_meteor_before_the_first_epoch(monkeypatch):
    from irralctl.metrics.scoring import check_meteor

    check_meteor("auto")
    check_meteor("off")
    _no_java(monkeypatch)
    with pytest.raises(meteor.MeteorUnavailable, match="^--meteor jar: .*default-jre-headless"):
        check_meteor("jar")


@pytest.mark.slow  # a JVM starts and loads METEOR's tables: seconds
@needs_java
def test_score_reports_reuses_a_callers_jar(jar):
    preds, refs = {"a": "the heart is normal .", "b": "no effusion ."}, {"a": "heart size is normal .", "b": "no pleural effusion ."}
    config = ScoreConfig(meteor="off", clinical=False)  # the open jar overrides the mode
    first = score_reports(preds, refs, config, meteor_jar=jar)
    second = score_reports(preds, refs, config, meteor_jar=jar)
    assert jar._proc.poll() is None  # still running for the next call
    assert first["metrics"]["meteor"] == second["metrics"]["meteor"] == jar.compute_score(
        {k: [v] for k, v in refs.items()}, {k: [v] for k, v in preds.items()})[0]
    assert first["meteor"]["implementation"].startswith("METEOR 1.5 jar")
