"""Options generated from configs: one flag per field, defaults and help from the field, and the
precedence of --config FILE, --preset and typed flags."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irralctl.cli._bind import leaves
from irralctl.cli.main import app
from irralctl.data.sources.hf.config import HFPrepareConfig
from irralctl.data.sources.iu_xray.config import IUPrepareConfig
from irralctl.data.sources.mimic.config import MimicPrepareConfig
from irralctl.data.sources.phantoms.config import PhantomPrepareConfig
from irralctl.demo.config import DemoConfig
from irralctl.errors import ConfigError
from irralctl.export.config import ExportConfig
from irralctl.generation.config import GenerateConfig
from irralctl.heatmaps.config import HeatmapConfig
from irralctl.labeling.config import LabelConfig
from irralctl.metrics.config import ScoreConfig
from irralctl.training.config import TrainConfig
from irralctl.utils.config import from_dict, from_flat, to_flags

runner = CliRunner()
CONFIGS = [TrainConfig, GenerateConfig, HeatmapConfig, ScoreConfig, LabelConfig, IUPrepareConfig, MimicPrepareConfig,
           PhantomPrepareConfig, HFPrepareConfig, ExportConfig, DemoConfig]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_option_has_a_unique_flag_and_help(cls):
    found = list(leaves(cls))
    flags = [leaf.flag for leaf in found]
    assert len(flags) == len(set(flags)), flags
    for leaf in found:
        assert leaf.meta.get("help"), f"{cls.__name__}.{leaf.dotted} has no help text"
        # The CLI shows each default once, after the help: a help text saying "Default 3." repeats it.
        assert "Default " not in leaf.meta["help"], f"{cls.__name__}.{leaf.dotted} repeats its default"


@pytest.fixture
def captured(monkeypatch):
    """Run `irralctl train` up to the library call and keep the config it would train with."""
    seen = {}

    def fake_train(cfg, progress=None, *, resume=False):
        seen["cfg"], seen["resume"] = cfg, resume
        raise SystemExit(0)

    monkeypatch.setattr("irralctl.training.trainer.train", fake_train)
    return seen


def test_preset_sets_the_switches_the_user_did_not_type(captured, tmp_path):
    runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "r"), "--preset", "cmn", "--acl"])
    cfg = captured["cfg"]
    assert cfg.preset == "cmn" and cfg.model.memory and cfg.model.acl and not cfg.model.mfa and not cfg.model.multiscale
    runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "r")])
    cfg = captured["cfg"]
    assert cfg.preset == "irral" and cfg.model.memory and cfg.model.mfa and cfg.model.acl and cfg.model.multiscale


def test_config_file_then_typed_flags(captured, tmp_path):
    (tmp_path / "c.yaml").write_text("preset: baseline\nmodel:\n  memory: false\n  mfa: false\n  acl: false\n"
                                     "  multiscale: false\n  d_model: 64\noptim:\n  lr: 0.5\n  epochs: 7\n")
    r = runner.invoke(app, ["train", str(tmp_path), "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"),
                            "--lr", "0.25"])
    assert r.exit_code == 0, r.output
    cfg = captured["cfg"]
    assert cfg.optim.lr == 0.25 and cfg.optim.epochs == 7 and cfg.model.d_model == 64   # typed > file > default
    assert cfg.preset == "baseline" and not cfg.model.memory                           # the file's preset holds
    runner.invoke(app, ["train", str(tmp_path), "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"),
                        "--preset", "irral"])
    assert captured["cfg"].model.memory and captured["cfg"].model.acl                  # a typed preset applies
    (tmp_path / "typo.json").write_text('{"optim": {"learnin_rate": 1}}')
    r = runner.invoke(app, ["train", str(tmp_path), "--config", str(tmp_path / "typo.json"), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "optim.learnin_rate" in r.output


@pytest.mark.parametrize("size", ["cpu", "paper"])
def test_printed_flags_parse_back_to_the_same_config(captured, tmp_path, size):
    # Under --size cpu, d_model 512 is a choice (the small model's is 64): it must be printed.
    cfg = from_flat(TrainConfig, dataset=tmp_path, out=tmp_path / "r", preset="cmn", memory=True, mfa=False, acl=False,
                    multiscale=False, lr=0.003, augment=False, backbone="tiny", image_size=64, resize=72, epochs=2,
                    size=size, d_model=512)
    flags = to_flags(cfg)
    assert ("--d-model" in flags) == (size == "cpu") and ["--size", size] == flags[flags.index("--size"):][:2]
    r = runner.invoke(app, ["train", *flags])
    assert r.exit_code == 0, r.output
    assert captured["cfg"] == cfg


@pytest.mark.parametrize("command", [["train"], ["generate"], ["score"], ["heatmap"], ["label"], ["demo"],
                                     ["prepare", "iu-xray"], ["prepare", "mimic"], ["prepare", "phantoms"],
                                     ["prepare", "hf"], ["export"]])
def test_help_renders_for_every_command(command):
    r = runner.invoke(app, [*command, "--help"])
    assert r.exit_code == 0 and "Usage" in r.output


def test_an_option_of_two_values(monkeypatch, tmp_path):
    """`--from-r2gen ANNOTATION IMAGES_DIR`: a fixed-length tuple field takes n values after one flag,
    and to_flags prints it back that way."""
    seen = {}

    def fake(cfg, progress=None):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr("irralctl.data.sources.iu_xray.prepare.prepare_iu_xray", fake)
    r = runner.invoke(app, ["prepare", "iu-xray", "--from-r2gen", "a/annotation.json", "a/images", "--out",
                            str(tmp_path / "o"), "-j", "1"])
    assert r.exit_code == 0, r.output
    cfg = seen["cfg"]
    assert cfg.from_r2gen == (Path("a/annotation.json"), Path("a/images"))
    assert to_flags(cfg) == ["--out", str(tmp_path / "o"), "--from-r2gen", "a/annotation.json", "a/images",
                             "--workers", "1"]
    runner.invoke(app, ["prepare", "iu-xray", *to_flags(cfg)])
    assert seen["cfg"] == cfg
    r = runner.invoke(app, ["prepare", "iu-xray", "--out", str(tmp_path / "o"), "--from-r2gen", "only-one"])
    assert r.exit_code == 1 and "--from-r2gen" in r.output and "2 arguments" in r.output
    with pytest.raises(ConfigError, match="must hold 2 values"):
        from_dict(IUPrepareConfig, {"out": "o", "from_r2gen": ["a"]})


def test_a_flag_names_its_field(tmp_path):
    """Flag names equal config field names (nested configs flattened)."""
    names = {leaf.name for leaf in leaves(TrainConfig)}
    assert {"lr", "d_model", "max_report_tokens", "val_beam_size", "max_tokens", "no_image"} <= names
    assert not any(f.name.startswith("max_len") for cls in CONFIGS for f in dataclasses.fields(cls))


@pytest.mark.parametrize("typed, name", [("bleu_4", "bleu_4"), ("Bleu_4", "bleu_4"), ("BLEU-4", "bleu_4"),
                                         ("bleu4", "bleu_4"), ("ROUGE_L", "rouge_l"), ("CIDEr", "cider"),
                                         ("CE-F1", "ce_macro_f1_14"), ("VAL_LOSS", "val_loss")])
def test_monitor_accepts_the_usual_spellings_of_a_metric(captured, tmp_path, typed, name):
    r = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "r"), "--monitor", typed])
    assert r.exit_code == 0, r.output
    assert captured["cfg"].eval.monitor == name


def test_monitor_aliases_in_a_config_file_and_unknown_names(captured, tmp_path):
    (tmp_path / "c.toml").write_text('[eval]\nmonitor = "Bleu_4"\n')
    r = runner.invoke(app, ["train", str(tmp_path), "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert captured["cfg"].eval.monitor == "bleu_4"
    assert from_flat(TrainConfig, dataset=tmp_path, monitor="CIDEr-D").eval.monitor == "cider"
    for wrong in ("bleu_5", "meteor"):  # unknown, and a metric validation does not compute
        r = runner.invoke(app, ["train", str(tmp_path), "--out", str(tmp_path / "r"), "--monitor", wrong])
        assert r.exit_code == 1 and "--monitor" in r.output and "bleu_4" in r.output, r.output
    assert "Oneof:bleu_1,bleu_2," in runner.invoke(app, ["train", "--help"]).output.replace("\n", "").replace("│", "").replace(" ", "")
