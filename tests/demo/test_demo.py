"""`irralctl demo --quick`: every promised artefact exists, and the printed commands reproduce it."""

from __future__ import annotations

import json
import shlex

import pytest
import torch
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.prepared import PreparedDataset
from irralctl.utils.io import iter_jsonl

pytestmark = pytest.mark.slow  # end to end: `-m "not slow"` leaves it out

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demo") / "demo"
    result = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--workers", "0"])
    torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_artefact_is_there(demo):
    out, output = demo
    summary = json.loads((out / "demo.json").read_text())
    assert json.loads((out / "demo.config.json").read_text())["config"]["n"] == 120
    ds = PreparedDataset(out / "data")
    test_ids = [r["id"] for r in ds.records("test")]
    assert ds.name == "phantoms" and ds.info["images"]["count"] == 240 and test_ids
    assert set(summary["runs"]) == {"irral", "no_image"}
    for name in ("irral", "no_image"):
        run = out / summary["runs"][name].split(str(out) + "/")[-1]
        assert run.parent == out / "ablation" / "runs"
        for f in ("config.json", "tokenizer.json", "metrics.jsonl", "best.pt", "last.pt", "test_metrics.json"):
            assert (run / f).is_file(), (name, f)
        assert [r["id"] for _, r in iter_jsonl(out / "preds" / f"{name}.jsonl")] == test_ids
        scores = json.loads((out / "scores" / f"{name}.json").read_text())
        assert scores["n_studies"] == len(test_ids)
        for metric in ("bleu_4", "rouge_l", "cider", "ce_macro_f1_14"):
            assert 0.0 <= scores["metrics"][metric] <= 10.0
        assert summary["scores"][name] == str(out / "scores" / f"{name}.json")
    config = json.loads((out / "ablation" / "runs" / "no-image-seed0" / "config.json").read_text())["config"]
    assert config["model"]["no_image"] is True and config["preset"] == "no-image"
    # Both runs were trained and compared by `irralctl ablate`: same options but the preset's switches.
    compare = json.loads((out / "ablation" / "compare.json").read_text())
    assert compare["reference"] == "no-image" and [c["group"] for c in compare["comparisons"]] == ["irral"]
    assert (out / "ablation" / "compare.md").is_file() and (out / "ablation" / "compare.png").stat().st_size > 0
    assert len(summary["heatmaps"]) == 2
    for folder in summary["heatmaps"]:
        sidecar = json.loads((out / "heatmaps" / folder.split("/")[-1] / "heatmaps.json").read_text())
        assert sidecar  # which source each word's map came from
        assert any(p.suffix == ".png" for p in (out / "heatmaps" / folder.split("/")[-1]).rglob("*.png"))
    assert "ce_macro_f1_14" in output and "the same steps by hand" in output
    assert set(summary["comparison"]["bleu_4"]) == {"irral", "no_image"}


def test_printed_commands_reproduce_the_demo(demo, tmp_path):
    out, _ = demo
    commands = json.loads((out / "demo.json").read_text())["commands"]
    assert [c.split()[1] for c in commands][:2] == ["prepare", "ablate"]
    generate = next(c for c in commands if c.startswith("irralctl generate") and "runs/irral-seed0 " in c + " ")
    args = shlex.split(generate)[1:]
    args[args.index("--out") + 1] = str(tmp_path / "again.jsonl")
    assert runner.invoke(app, args).exit_code == 0
    again = [r["prediction"] for _, r in iter_jsonl(tmp_path / "again.jsonl")]
    assert again == [r["prediction"] for _, r in iter_jsonl(out / "preds" / "irral.jsonl")]
    score = next(c for c in commands if c.startswith("irralctl score") and "irral.jsonl" in c)
    args = shlex.split(score)[1:]
    args[args.index("--json") + 1] = str(tmp_path / "again.json")
    assert runner.invoke(app, args).exit_code == 0
    mine = json.loads((tmp_path / "again.json").read_text())["metrics"]
    assert mine == json.loads((out / "scores" / "irral.json").read_text())["metrics"]
