"""`irralctl prepare phantoms`: a prepared dataset whose labels are the ground truth."""

import numpy as np
import pytest
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.loader import LoaderConfig, ReportDataset
from irralctl.data.prepared import PreparedDataset
from irralctl.data.sources.phantoms.cases import PhantomCase
from irralctl.data.sources.phantoms.config import VARIANTS, PhantomPrepareConfig
from irralctl.data.sources.phantoms.prepare import make_phantom, prepare_phantoms
from irralctl.data.sources.phantoms.reports import (
    ADJACENT_EFFUSION,
    HEART_FAILURE,
    LINE_PNEUMOTHORAX,
)

runner = CliRunner()


def test_prepare_phantoms(tmp_path):
    out = tmp_path / "ph"
    r = runner.invoke(app, ["prepare", "phantoms", "--n", "40", "--image-size", "64", "--seed", "3",
                            "--workers", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = PreparedDataset(out)
    recs = {s: ds.records(s) for s in ("train", "val", "test")}
    assert [len(v) for v in recs.values()] == [32, 4, 4]
    assert ds.info["name"] == "phantoms" and ds.info["images"]["count"] == 80
    for rec in recs["test"] + recs["val"]:
        truth = make_phantom(3, int(rec["id"][2:]) - 1, 64)
        assert rec["report"] == truth["report"]
        assert rec["labels"]["truth"] == truth["labels"]
        # Our labeller reads exactly the findings the phantom's report states.
        assert rec["labels"]["chexpert"] == truth["labels"]
        frontal, lateral = (ds.images[im["row"]] for im in rec["images"])
        assert np.array_equal(frontal, truth["frontal"]) and np.array_equal(lateral, truth["lateral"])
        assert [im["view"] for im in rec["images"]] == ["PA", "LATERAL"]
    data = ReportDataset(ds, "train", ds.tokenizer(), LoaderConfig(image_size=56, resize=64, train=True))
    assert data[0]["images"].shape == (2, 56, 56) and data[0]["n_views"] == 2
    # Same seed -> the same dataset, byte for byte in its manifests.
    out2 = tmp_path / "ph2"
    assert runner.invoke(app, ["prepare", "phantoms", "--n", "40", "--image-size", "64", "--seed", "3",
                               "--out", str(out2)]).exit_code == 0
    assert (out / "test.jsonl").read_bytes() == (out2 / "test.jsonl").read_bytes()
    assert (out / "images" / "store.bin").read_bytes() == (out2 / "images" / "store.bin").read_bytes()
    assert ds.info["phantom_variant"] == "standard" and ds.info["options"]["variant"] == "standard"


@pytest.mark.slow  # 300 studies per variant (test_phantoms.py checks the labels of every variant's reports)
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "standard"])
def test_prepare_phantom_variants_label_exactly_the_truth(tmp_path, variant):
    # 300 studies of each variant: our labeller reads from every report, new sentences included,
    # exactly the observations the report states (labels.truth).
    out = tmp_path / variant
    prepare_phantoms(PhantomPrepareConfig(out=out, n=300, seed=11, image_size=32, variant=variant, workers=1))
    ds = PreparedDataset(out)
    assert ds.info["phantom_variant"] == variant and ds.info["options"]["variant"] == variant
    records = [r for split in ("train", "val", "test") for r in ds.records(split)]
    assert len(records) == 300
    for rec in records:
        assert rec["labels"]["chexpert"] == rec["labels"]["truth"], (rec["report"], rec["case"])
    truth = make_phantom(11, 7, 32, variant=variant)
    rec = next(r for r in records if r["id"] == truth["id"])
    assert rec["case"] == truth["case"] and rec["report"] == truth["report"]
    frontal, lateral = (ds.images[im["row"]] for im in rec["images"])
    assert np.array_equal(frontal, truth["frontal"]) and np.array_equal(lateral, truth["lateral"])
    # What the variant changes shows in the dataset (the defining properties are tested in
    # test_phantoms_variants.py).
    cases = [PhantomCase(**r["case"]) for r in records]
    if variant == "lateral":
        assert sum(c.effusion == "small" or c.opacity == "retrocardiac" for c in cases) >= 30  # ~60 expected
    elif variant == "rare":
        assert sum(c.pneumothorax != "none" or c.nodule != "none" for c in cases) <= 30  # ~15 (standard: ~70)
    elif variant == "small":
        assert sum(c.subtle for c in cases) >= 100  # ~140
    else:
        markers = (HEART_FAILURE, LINE_PNEUMOTHORAX, ADJACENT_EFFUSION)
        assert sum(any(m in r["report"] for m in markers) for r in records) >= 30  # ~60


def test_prepare_phantoms_variant_flag(tmp_path):
    out = tmp_path / "lat"
    r = runner.invoke(app, ["prepare", "phantoms", "--n", "10", "--image-size", "32", "--variant", "lateral",
                            "--workers", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert PreparedDataset(out).info["phantom_variant"] == "lateral"
    r = runner.invoke(app, ["prepare", "phantoms", "--n", "10", "--variant", "huge", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "huge" in r.output
