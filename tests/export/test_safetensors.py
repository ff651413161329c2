"""`irralctl export RUN --to safetensors DIR`: the files and model card, generation and heatmaps from
DIR equal to those from the run, and every damaged export refused in one line naming its file."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.errors import InputError
from irralctl.runs.checkpoint import load_checkpoint
from irralctl.runs.loaded import load_run
from irralctl.utils.io import sha256_file

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "irral"
    r = cli("export", run_dir, "--to", "safetensors", out)
    assert r.exit_code == 0, r.output
    return out


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # generate and heatmap, each from the run and from the export
def test_generate_and_heatmap_from_the_export_equal_the_run(exported, run_dir, toy, tmp_path):
    for name, checkpoint in (("run", run_dir), ("export", exported)):
        r = cli("generate", "--dataset", toy, "--split", "test", "--checkpoint", checkpoint, "--out",
                tmp_path / f"{name}.jsonl", "--device", "cpu")
        assert r.exit_code == 0, r.output
    run, export = _rows(tmp_path / "run.jsonl"), _rows(tmp_path / "export.jsonl")
    keys = ("id", "prediction", "score", "length", "observations", "flags")
    assert [{k: row.get(k) for k in keys} for row in export] == [{k: row.get(k) for k in keys} for row in run]
    assert len({row["prediction"] for row in run}) > 1     # real reports, not one constant string
    sidecar = json.loads((tmp_path / "export.jsonl.config.json").read_text())
    assert sidecar["checkpoint"]["path"].endswith("model.safetensors")

    study = run[0]["id"]
    r = cli("heatmap", "--checkpoint", exported, "--dataset", toy, "--id", study, "--words", "lesion", "--out",
            tmp_path / "maps", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "maps" / "heatmaps.json").read_text())["study"]


def test_the_export_holds_weights_tokenizer_config_and_card(exported, run_dir):
    ckpt = load_checkpoint(run_dir / "best.pt")
    weights = load_file(exported / "model.safetensors")
    assert weights.keys() == ckpt["model"].keys()
    assert all(torch.equal(weights[k], ckpt["model"][k]) for k in weights)
    assert (exported / "tokenizer.json").read_text() == ckpt["tokenizer"]["json"]
    config = json.loads((exported / "config.json").read_text())
    assert config["model"] == ckpt["model_config"] and config["train"] == ckpt["train_config"]
    assert config["tokenizer"] == {"kind": "bpe", "file": "tokenizer.json", "text_field": "target"}
    assert config["sha256"] == {f: sha256_file(exported / f) for f in ("model.safetensors", "tokenizer.json")}
    assert config["dataset"]["fingerprint"] == ckpt["dataset"]["fingerprint"]
    assert config["command"].startswith(f"irralctl train {config['train']['dataset']} --out ")
    # Flags against --size cpu's defaults: its tiny CNN goes without saying, the narrower width does not.
    assert "--size cpu" in config["command"] and "--d-model 32" in config["command"] and "--no-mfa" in config["command"]
    assert "--backbone" not in config["command"]

    card = (exported / "README.md").read_text()
    assert "Research only. Not for clinical use." in card and "## Limitations" in card
    assert config["dataset"]["fingerprint"] in card and config["command"] in card
    scores = json.loads((run_dir / "test_metrics.json").read_text())
    assert f"| bleu_4 | {scores['metrics']['bleu_4']:.4f} |" in card
    assert f"| ce_macro_f1_14 | {scores['metrics']['ce_macro_f1_14']:.4f} |" in card


def test_intervals_reach_the_card(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    scores = json.loads((run / "test_metrics.json").read_text())
    scores["intervals"] = {"confidence": 0.95, "method": "percentile bootstrap over studies",
                           "metrics": {"bleu_4": {"low": 0.01, "high": 0.5}}}
    (run / "test_metrics.json").write_text(json.dumps(scores))
    assert cli("export", run, "--to", "safetensors", tmp_path / "x").exit_code == 0
    card = (tmp_path / "x" / "README.md").read_text()
    assert "| metric | value | 95% interval |" in card
    assert f"| bleu_4 | {scores['metrics']['bleu_4']:.4f} | [0.0100, 0.5000] |" in card
    # last.pt was not scored by the final test: its card says so instead of showing best.pt's figures.
    assert cli("export", run / "last.pt", "--to", "safetensors", tmp_path / "y").exit_code == 0
    assert "test_metrics.json scores best.pt, not the exported last.pt" in (tmp_path / "y" / "README.md").read_text()


def _copy(exported, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(exported, target)
    return target


def _reseal(directory):
    """Record the files' new sha256 in config.json, as if the damage happened before the export."""
    config = json.loads((directory / "config.json").read_text())
    config["sha256"] = {f: sha256_file(directory / f) for f in ("model.safetensors", "tokenizer.json")}
    (directory / "config.json").write_text(json.dumps(config))


def test_damaged_exports_are_named(exported, toy, tmp_path):
    # A torn copy: one line naming the file, exit 1, no output.
    torn = _copy(exported, tmp_path, "torn")
    data = (torn / "model.safetensors").read_bytes()
    (torn / "model.safetensors").write_bytes(data[: len(data) // 2])
    r = cli("generate", "--dataset", toy, "--checkpoint", torn, "--out", tmp_path / "p.jsonl", "--device", "cpu")
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 1 and lines[0].startswith("error: ")
    assert f"{torn / 'model.safetensors'}: damaged: its sha256 differs" in " ".join(r.output.split())
    assert not (tmp_path / "p.jsonl").exists()

    garbled = _copy(exported, tmp_path, "garbled")         # a broken header, sealed: safetensors itself refuses it
    (garbled / "model.safetensors").write_bytes(b"\xff" * 8 + data[8:])
    _reseal(garbled)
    with pytest.raises(InputError, match="model.safetensors: unreadable safetensors file"):
        load_run(garbled, "cpu")

    nan = _copy(exported, tmp_path, "nan")
    weights = load_file(nan / "model.safetensors")
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name].view(-1)[0] = float("nan")
    save_file(weights, str(nan / "model.safetensors"))
    _reseal(nan)
    with pytest.raises(InputError, match=f"model.safetensors: weights {name} hold NaN"):
        load_run(nan, "cpu")

    other = _copy(exported, tmp_path, "other")                # weights of another shape than config.json says
    config = json.loads((other / "config.json").read_text())
    config["model"]["memory_slots"] = 16
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"model.safetensors: weights do not fit the saved model config: "
                                         r"1 of another shape \(memory.*is \(32, 32\), the model's \(16, 32\)"):
        load_run(other, "cpu")

    (other / "tokenizer.json").unlink()
    with pytest.raises(InputError, match="tokenizer.json: missing from the exported directory"):
        load_run(other, "cpu")


def test_an_export_is_not_exported_again(exported, tmp_path):
    r = cli("export", exported, "--to", "safetensors", tmp_path / "again")
    assert r.exit_code == 1 and "is already an export" in r.output
