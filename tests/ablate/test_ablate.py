"""`irralctl ablate`: a grid of tiny runs, its comparison, and finishing it after an interruption."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from irralctl.ablate.config import DEFAULT_PRESETS, PER_RUN
from irralctl.ablate.grid import grid_runs, run_config
from irralctl.cli.main import app
from irralctl.model.config import PRESETS
from irralctl.training import trainer
from irralctl.utils.config import flatten, to_jsonable
from tests.fixtures.cli import said
from tests.training.test_train import TINY_FLAGS

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def _ablate(toy, out, *extra):
    return runner.invoke(app, ["ablate", str(toy), "--out", str(out), "--presets", "baseline,cmn", "--seed-list", "7",
                               "--epochs", "1", "--monitor", "val_loss", *TINY_FLAGS, *map(str, extra)])


def _mtime(path) -> int:
    return path.stat().st_mtime_ns


@pytest.mark.slow  # trains a grid of runs, twice
def test_grid_trains_compares_and_finishes_after_an_interruption(toy, tmp_path, monkeypatch):
    out = tmp_path / "grid"
    runs = out / "runs"
    real_test = trainer.test

    def interrupted_test(run, selection, progress=None):
        if run.cfg.out.name == "cmn-seed7":
            raise KeyboardInterrupt  # Ctrl-C during cmn's final test: its epoch-1 checkpoint is kept
        return real_test(run, selection, progress)

    monkeypatch.setattr(trainer, "test", interrupted_test)
    result = _ablate(toy, out)
    assert result.exit_code == 1
    text = said(result)
    assert "cmn-seed7 (2/2): interrupted" in text and ".cmn-seed7.partial" in text
    assert "run the same `irralctl ablate` command again" in text and "train --resume" not in text
    assert (runs / "baseline-seed7" / "test_metrics.json").is_file()
    assert (runs / ".cmn-seed7.partial" / "last.pt").is_file() and not (runs / "cmn-seed7").exists()
    assert not (out / "compare.md").exists()
    monkeypatch.setattr(trainer, "test", real_test)

    # The same command: the finished run is skipped, the interrupted one resumed, the table written.
    finished = _mtime(runs / "baseline-seed7" / "last.pt")
    checkpoint = _mtime(runs / ".cmn-seed7.partial" / "last.pt")
    result = _ablate(toy, out)
    assert result.exit_code == 0, said(result)
    assert "baseline-seed7: finished, skipped" in result.output
    assert "cmn-seed7: interrupted, resuming from its last checkpoint" in result.output
    assert _mtime(runs / "baseline-seed7" / "last.pt") == finished
    assert _mtime(runs / "cmn-seed7" / "last.pt") == checkpoint  # continued, not trained again
    for name in ("compare.md", "compare.csv", "compare.tex", "compare.json", "compare.png", "ablate.json"):
        assert (out / name).is_file(), name
    comparison = json.loads((out / "compare.json").read_text())
    assert comparison["reference"] == "baseline" and [g["name"] for g in comparison["groups"]] == ["baseline", "cmn"]
    assert comparison["comparisons"][0]["pairing"] == "paired by seed"
    assert "## cmn − baseline" in result.output

    # Runs differ only in their preset's switches (and preset); the grid records what they share.
    saved = {p: json.loads((runs / f"{p}-seed7" / "config.json").read_text()) for p in ("baseline", "cmn")}
    flat = {p: flatten(c["config"]) for p, c in saved.items()}
    differ = {k for k in flat["baseline"] if flat["baseline"][k] != flat["cmn"].get(k)}
    assert differ == {"out", "preset", "model.memory"}
    assert saved["cmn"]["seed"] == 7 and flat["cmn"]["optim.epochs"] == 1 and flat["cmn"]["model.d_model"] == 32
    grid = json.loads((out / "ablate.json").read_text())
    assert grid["seeds"] == [7] and [r["name"] for r in grid["runs"]] == ["baseline-seed7", "cmn-seed7"]
    assert "preset" not in grid["config"]["train"] and grid["config"]["train"]["optim"]["epochs"] == 1
    assert grid["runs"][1]["command"].startswith("irralctl train ") and "--preset cmn" in grid["runs"][1]["command"]

    # A run left without its test metrics is trained again; the other is skipped.
    (runs / "baseline-seed7" / "test_metrics.json").unlink()
    kept = _mtime(runs / "cmn-seed7" / "last.pt")
    result = _ablate(toy, out)
    assert result.exit_code == 0, said(result)
    assert "baseline-seed7: unfinished without a checkpoint, training again" in result.output
    assert "cmn-seed7: finished, skipped" in result.output
    assert (runs / "baseline-seed7" / "test_metrics.json").is_file() and _mtime(runs / "cmn-seed7" / "last.pt") == kept

    # Other options than the grid's: refused before anything trains, naming the option.
    result = _ablate(toy, out, "--lr", "0.001")
    assert result.exit_code == 1
    assert "was trained with other options than this grid's: --lr (run: 0.0001, grid: 0.001)" in said(result)


@pytest.fixture
def captured(monkeypatch):
    """Run `irralctl ablate` up to the library call and keep the config it would run."""
    seen = {}

    def fake(cfg, progress=None, *, config_file=None):
        seen["cfg"], seen["config_file"] = cfg, config_file
        raise SystemExit(0)

    monkeypatch.setattr("irralctl.ablate.grid.run_ablation", fake)
    return seen


def test_presets_set_only_their_switches_and_the_seed(captured, tmp_path):
    config = tmp_path / "shared.json"
    config.write_text(json.dumps({"preset": "irral", "seed": 42, "out": "elsewhere",
                                  "model": {"mfa": True, "acl": True, "d_model": 64, "n_heads": 4},
                                  "optim": {"epochs": 5, "lr": 0.0003}}))
    runner.invoke(app, ["ablate", str(tmp_path / "data"), "--out", str(tmp_path / "g"), "--config", str(config),
                        "--presets", "no-image,acl", "--seeds", "2", "--epochs", "3"])
    cfg = captured["cfg"]
    assert cfg.presets == ("no-image", "acl") and cfg.seed_values == (0, 1) and cfg.reference_preset == "no-image"
    runs = grid_runs(cfg)
    assert [r.name for r in runs] == ["no-image-seed0", "acl-seed0", "no-image-seed1", "acl-seed1"]
    for r in runs:
        c = run_config(cfg, r)
        assert c.preset == r.preset and c.seed == r.seed and c.out == tmp_path / "g" / "runs" / r.name
        assert {k: getattr(c.model, k) for k in PRESETS[r.preset]} == PRESETS[r.preset]
        # from the file, with the typed flag on top
        assert c.model.d_model == 64 and c.optim.lr == 0.0003 and c.optim.epochs == 3 and not c.overwrite
    shared = [flatten(to_jsonable(run_config(cfg, r))) for r in runs]
    per_run = {p.removeprefix("train.") for p in PER_RUN}
    assert all({k: v for k, v in s.items() if k not in per_run} == {k: v for k, v in shared[0].items()
                                                                    if k not in per_run} for s in shared)
    runner.invoke(app, ["ablate", str(tmp_path / "data"), "--out", str(tmp_path / "g")])
    assert captured["cfg"].presets == DEFAULT_PRESETS and captured["cfg"].seed_values == (0, 1, 2)


@pytest.mark.parametrize("args, message", [
    (["--presets", "baseline,nope"], "unknown preset(s) nope"),
    (["--presets", "cmn,cmn"], "must name each preset once"),
    (["--presets", "baseline,cmn", "--reference", "irral"], "--reference irral is not one of --presets"),
    (["--seeds", "2", "--seed-list", "0,1"], "give --seeds N or --seed-list, not both"),
    (["--seed-list", "0,x"], "--seed-list: expected integers, comma-separated, not 'x'"),
    (["--seed-list", "1,1"], "--seed-list must hold distinct seeds"),
    (["--memory"], "No such option: --memory"),
    (["--preset", "cmn"], "No such option: --preset"),
])
def test_bad_grids_are_one_line_errors(tmp_path, args, message):
    result = runner.invoke(app, ["ablate", str(tmp_path), "--out", str(tmp_path / "g"), *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_every_option_has_a_unique_flag_and_help():
    from irralctl.ablate.config import AblateConfig
    from irralctl.cli._bind import leaves

    found = [leaf for leaf in leaves(AblateConfig) if leaf.dotted not in PER_RUN]
    flags = [leaf.flag for leaf in found]
    assert len(flags) == len(set(flags)) and "--epochs" in flags and "--seed-list" in flags
    assert not {"--preset", "--seed", "--memory", "--no-image"} & set(flags)
    assert all(leaf.meta.get("help") for leaf in found)
