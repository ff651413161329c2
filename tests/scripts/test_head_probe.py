"""scripts/head_probe.py: the clinical head trained alone, each normalisation from the same start."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.constants import OBSERVATIONS
from irralctl.model.config import ModelConfig
from irralctl.model.irral import build_model
from tests.fixtures.scripts import load_script


def test_the_normalisations_start_from_the_same_weights():
    """GroupNorm's parameters have the same shapes with any group count, so both models draw the
    same initial weights at a seed: the probe's comparison is paired."""
    cfg = ModelConfig(backbone="tiny", image_size=32, d_model=32, n_heads=4, d_ff=64, enc_layers=1, dec_layers=1,
                      memory_slots=16, memory_topk=4, vocab_size=20)
    channel = build_model(cfg.replace(tiny_norm="channel"), seed=3).state_dict()
    group = build_model(cfg.replace(tiny_norm="group"), seed=3).state_dict()
    assert channel.keys() == group.keys()
    assert all(torch.equal(channel[k], group[k]) for k in channel)


def test_the_probe_writes_a_page_per_observation_and_epoch(tmp_path):
    data = tmp_path / "data"
    prepared = CliRunner().invoke(app, ["prepare", "phantoms", "--n", "40", "--image-size", "64", "--out", str(data),
                                        "-j", "1"])
    assert prepared.exit_code == 0, prepared.output
    page, curves = tmp_path / "probe.md", tmp_path / "probe.json"
    probe = load_script("head_probe")
    assert probe.main([str(data), "--seeds", "0", "--epochs", "2", "--out", str(page), "--json", str(curves)]) == 0
    results = json.loads(curves.read_text())
    assert set(results) == {"channel", "group"}
    for per_seed in results.values():
        epochs = per_seed["0"]
        assert len(epochs) == 2 and all(len(f1) == len(OBSERVATIONS) for f1 in epochs)
        assert all(f is None or 0.0 <= f <= 1.0 for f1 in epochs for f in f1)
    text = page.read_text()
    assert "| observation | `--tiny-norm channel` | `--tiny-norm group` |" in text
    observed = [o for c, o in enumerate(OBSERVATIONS) if results["channel"]["0"][-1][c] is not None]
    assert observed and all(f"| {o} | " in text for o in observed)
    assert "| 2 | " in text and "scripts/head_probe.py" in text


def test_the_probe_refuses_to_write_inside_its_dataset(tmp_path):
    from irralctl.errors import ConfigError

    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match="--json .* lies inside an input"):
        load_script("head_probe").main([str(tmp_path / "data"), "--json", str(tmp_path / "data" / "curves.json")])
