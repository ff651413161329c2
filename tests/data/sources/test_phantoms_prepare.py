"""`irralctl prepare phantoms`: a prepared dataset whose labels are the ground truth."""

import numpy as np
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.loader import LoaderConfig, ReportDataset
from irralctl.data.sources.phantoms.prepare import make_phantom
from irralctl.data.prepared import PreparedDataset

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
