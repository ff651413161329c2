"""`irralctl train --size cpu|paper|auto` and IRRALCTL_TINY: which values a run gets, that typed
options and config files win over the profile, and that config.json reloads and resumes the run
exactly as it was sized."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from irralctl.ablate.config import AblateConfig
from irralctl.cli._bind import build
from irralctl.cli.main import app
from irralctl.data.sources.phantoms.config import PhantomPrepareConfig
from irralctl.demo.config import DemoConfig
from irralctl.labeling.files import LabelConfig
from irralctl.metrics.config import ScoreConfig
from irralctl.training import TrainConfig, resume_config
from irralctl.training.config import size_values
from irralctl.utils.config import (
    TINY_ENV,
    field_default,
    flatten,
    from_dict,
    from_flat,
    load_config_file,
    tiny_values,
    to_jsonable,
)

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def captured(monkeypatch):
    """Run `irralctl train` up to the library call and keep the config it would train with."""
    seen = {}

    def fake_train(cfg, progress=None, *, resume=False):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr("irralctl.training.trainer.train", fake_train)
    monkeypatch.delenv(TINY_ENV, raising=False)
    return seen


def _train(tmp_path, *args):
    return runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "r"), *args])


def _sizes(cfg: TrainConfig) -> dict:
    flat = flatten(to_jsonable(cfg))
    return {path: flat[path] for path in size_values("cpu")}


def test_the_profiles(captured, tmp_path):
    cpu, paper = size_values("cpu"), size_values("paper")
    assert set(cpu) == set(paper) and all(cpu[p] != paper[p] for p in cpu)
    assert paper["model.d_model"] == 512 and paper["model.backbone"] == "resnet101" and cpu["model.backbone"] == "tiny"
    for size, want in (("cpu", cpu), ("paper", paper)):
        r = _train(tmp_path, "--size", size)
        assert r.exit_code == 0, r.output
        assert captured["cfg"].size == size and _sizes(captured["cfg"]) == want
        # A run of the small model says so, once; the paper's does not.
        assert r.output.count("--size cpu: a small model") == (size == "cpu"), r.output


@pytest.mark.parametrize("device, size", [("cpu", "cpu"), ("cuda", "paper")])
def test_auto_is_the_paper_on_a_gpu_and_the_small_model_on_a_cpu(captured, tmp_path, monkeypatch, device, size):
    monkeypatch.setattr("irralctl.runs.device.resolve_device", lambda name, rank=0: torch.device(device))
    assert _train(tmp_path).exit_code == 0
    assert captured["cfg"].size == size and _sizes(captured["cfg"]) == size_values(size)


def test_typed_options_override_the_profile(captured, tmp_path):
    # 512 is the paper's default: typed under --size cpu, it is a choice and must stay.
    r = _train(tmp_path, "--size", "cpu", "--d-model", "512", "--epochs", "3", "--backbone", "resnet18")
    assert r.exit_code == 0, r.output
    cfg = captured["cfg"]
    assert (cfg.model.d_model, cfg.optim.epochs, cfg.model.backbone) == (512, 3, "resnet18")
    assert cfg.model.d_ff == size_values("cpu")["model.d_ff"] and cfg.optim.lr == size_values("cpu")["optim.lr"]


def test_a_config_file_sets_sizes_unless_size_is_typed(captured, tmp_path):
    (tmp_path / "c.yaml").write_text("size: cpu\nmodel:\n  d_model: 48\n  n_heads: 4\noptim:\n  epochs: 5\n")
    assert _train(tmp_path, "--config", str(tmp_path / "c.yaml")).exit_code == 0
    cfg = captured["cfg"]
    assert (cfg.size, cfg.model.d_model, cfg.optim.epochs, cfg.model.backbone) == ("cpu", 48, 5, "tiny")
    # --size typed: the profile replaces the file's sizes; a typed size option still wins.
    r = _train(tmp_path, "--config", str(tmp_path / "c.yaml"), "--size", "paper", "--epochs", "2")
    assert r.exit_code == 0, r.output
    cfg = captured["cfg"]
    assert cfg.size == "paper" and cfg.model.d_model == 512 and cfg.optim.epochs == 2 and cfg.model.n_heads == 8


def test_visual_weights_on_the_small_model_name_the_way_out(captured, tmp_path):
    (tmp_path / "w.pth").write_bytes(b"")
    r = _train(tmp_path, "--visual-weights", str(tmp_path / "w.pth"))
    assert r.exit_code == 1 and "--size paper" in r.output, r.output


def test_a_config_built_in_code_is_sized_where_it_left_the_defaults():
    cfg = from_flat(TrainConfig, dataset=Path("d"), out=Path("o"), d_model=96, lr=5e-4)
    small = cfg.sized("cpu")
    assert small.size == "cpu" and small.model.d_model == 96 and small.optim.lr == 5e-4   # chosen: kept
    assert small.model.backbone == "tiny" and small.optim.epochs == size_values("cpu")["optim.epochs"]
    paper = cfg.sized("cuda")
    assert paper.size == "paper" and paper.model.d_model == 96 and paper.model.backbone == "resnet101"
    assert small.sized("cpu") == small                                                        # idempotent


@pytest.fixture(scope="module")
def sized_run(toy, tmp_path_factory):
    """A real run of --size cpu with a few sizes typed smaller, so that it trains in seconds."""
    data = toy
    run = tmp_path_factory.mktemp("sized") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(TINY_ENV, raising=False)
        r = runner.invoke(app, ["train", str(data), "--out", str(run), "--size", "cpu", "--preset", "baseline",
                                "--d-model", "32", "--enc-layers", "1", "--dec-layers", "1", "--epochs", "1",
                                "--image-size", "32", "--resize", "40", "--memory-slots", "32", "--memory-topk", "4",
                                "--workers", "0", "--meteor", "off"])
    assert r.exit_code == 0, r.output
    return data, run


def test_config_json_records_the_resolved_sizes_and_reloads_the_run(sized_run, captured):
    data, run = sized_run
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["size"] == "cpu" and saved["model"]["d_model"] == 32 and saved["model"]["backbone"] == "tiny"
    assert saved["model"]["d_ff"] == size_values("cpu")["model.d_ff"] and saved["optim"]["lr"] == 1e-3
    cfg = from_dict(TrainConfig, load_config_file(run / "config.json"))
    # --config config.json trains the same run elsewhere: the file's sizes hold, wherever it runs.
    r = runner.invoke(app, ["train", str(data), "--config", str(run / "config.json"), "--out", str(run.parent / "b")])
    assert r.exit_code == 0, r.output
    assert captured["cfg"] == replace(cfg, out=run.parent / "b")


def test_resume_keeps_the_sizes_and_refuses_another(sized_run, captured):
    data, run = sized_run
    cfg = from_dict(TrainConfig, load_config_file(run / "config.json"))
    assert resume_config(run) == replace(cfg, out=run)
    r = runner.invoke(app, ["train", str(data), "--resume", str(run), "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert captured["cfg"] == replace(cfg, out=run, optim=replace(cfg.optim, epochs=2))
    r = runner.invoke(app, ["train", str(data), "--resume", str(run), "--size", "paper"])
    assert r.exit_code == 1 and "--size" in r.output, r.output


# -- IRRALCTL_TINY -------------------------------------------------------------------------------

TINY_CONFIGS = [TrainConfig, AblateConfig, PhantomPrepareConfig, ScoreConfig, DemoConfig]


@pytest.mark.parametrize("cls", TINY_CONFIGS, ids=lambda c: c.__name__)
def test_tiny_values_replace_typed_ones_and_are_valid(cls, monkeypatch, tmp_path):
    tiny = tiny_values(cls)
    assert tiny, f"{cls.__name__} declares no tiny size"
    typed = {path: field_default(cls, path) for path in tiny}  # as if typed: --epochs 30, --n 2000, ...
    values = {**_required(cls, tmp_path), **typed}
    monkeypatch.setenv(TINY_ENV, "1")
    flat = flatten(to_jsonable(build(cls, values, set(typed))))  # the config's own checks pass
    assert {k: flat[k] for k in tiny} == to_jsonable(tiny)
    monkeypatch.setenv(TINY_ENV, "0")  # "0" is off
    flat = flatten(to_jsonable(build(cls, values, set(typed))))
    assert {k: flat[k] for k in tiny} == to_jsonable(typed)


def _required(cls, tmp_path) -> dict:
    return {TrainConfig: {"dataset": tmp_path, "out": tmp_path / "o"},
            AblateConfig: {"train.dataset": tmp_path, "out": tmp_path / "o"},
            PhantomPrepareConfig: {"out": tmp_path / "o"},
            ScoreConfig: {}, DemoConfig: {}}[cls]


def test_tiny_mode_is_announced_and_shrinks_typed_sizes(monkeypatch, tmp_path, captured):
    monkeypatch.setenv(TINY_ENV, "1")
    r = _train(tmp_path, "--epochs", "30", "--d-model", "512", "--size", "paper")
    assert r.exit_code == 0, r.output
    cfg = captured["cfg"]
    assert cfg.size == "cpu" and cfg.optim.epochs == 1 and cfg.model.d_model == tiny_values(TrainConfig)["model.d_model"]
    assert "IRRALCTL_TINY" in r.output
    # Commands without tiny sizes are not affected, and say nothing.
    assert tiny_values(LabelConfig) == {}
    (tmp_path / "one.txt").write_text("No pleural effusion.\n")
    r = runner.invoke(app, ["label", str(tmp_path / "one.txt"), "--out", str(tmp_path / "one.csv")])
    assert r.exit_code == 0 and "IRRALCTL_TINY" not in r.output, r.output
