"""`irralctl train`: the run directory, inference loading, exact resume, and every bad-input path."""

from __future__ import annotations

import errno
import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.errors import ConfigError, InputError, IrralError, TrainingError
from irralctl.model import losses
from irralctl.runs import checkpoint as ckpt_mod
from irralctl.runs.checkpoint import load_checkpoint
from irralctl.runs.loaded import load_run
from irralctl.training import TrainConfig, resume_config, train
from irralctl.utils.config import from_flat
from irralctl.utils.io import iter_jsonl
from tests.fixtures.cli import said
from tests.fixtures.train_data import make_dataset

runner = CliRunner()
# --size paper: the sizes typed here and the defaults for the rest, on any machine (auto would pick
# the small model's learning rate and epochs on a CPU); tiny_cfg builds the same config in code.
TINY_FLAGS = ["--size", "paper", "--backbone", "tiny", "--tiny-width", "8", "--image-size", "64", "--resize", "72", "--d-model", "32",
              "--n-heads", "4", "--d-ff", "32", "--enc-layers", "1", "--dec-layers", "1", "--memory-slots", "32",
              "--memory-topk", "4", "--batch-size", "8", "--eval-batch-size", "16", "--workers", "0",
              "--warmup", "2", "--max-report-tokens", "20", "--meteor", "off"]


pytestmark = pytest.mark.usefixtures("one_thread")
# `toy` (the dataset) and `tiny_bert` (MFA's text encoder) are the session's (tests/conftest.py).


def tiny_cfg(dataset, out, **kw) -> TrainConfig:
    base = dict(dataset=dataset, out=out, size="paper", backbone="tiny", tiny_width=8, image_size=64, resize=72, d_model=32,
                n_heads=4, d_ff=32, enc_layers=1, dec_layers=1, memory_slots=32, memory_topk=4, batch_size=8,
                eval_batch_size=16, workers=0, warmup=2, monitor="val_loss", max_report_tokens=20, epochs=2,
                mfa=False, meteor="off")
    base.update(kw)
    return from_flat(TrainConfig, **base)


@pytest.fixture(scope="module")
def one_epoch(toy, tmp_path_factory):
    """A run of `tiny_cfg` trained for one epoch; a test that resumes it works on a copy."""
    run = tmp_path_factory.mktemp("one_epoch") / "run"
    train(tiny_cfg(toy, run, epochs=1))
    return run


@pytest.mark.slow  # trains, generates and scores: the end-to-end run of the CLI
def test_cli_run_directory_explains_itself(toy, tmp_path, tiny_bert):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(toy), "--out", str(run), "--epochs", "2", "--text-encoder", str(tiny_bert),
                                 *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    assert "trained 2 epoch(s)" in result.output
    for name in ("config.json", "tokenizer.json", "metrics.jsonl", "best.pt", "last.pt",
                 "test_predictions.jsonl", "test_metrics.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    dataset_info = json.loads((toy / "dataset.json").read_text())
    assert config["dataset"]["fingerprint"] == dataset_info["fingerprint"]
    assert config["config"]["preset"] == "irral" and config["config"]["model"]["mfa"] and config["config"]["model"]["acl"]
    assert config["seed"] == 42 and "torch" in config["versions"]
    assert config["cleaner"] == dataset_info["cleaner"]
    assert config["model"]["vocab_size"] == dataset_info["tokenizers"]["bpe"]["vocab_size"]
    assert (run / "tokenizer.json").read_text() == (toy / "tokenizers" / "bpe.json").read_text()

    records = [r for _, r in iter_jsonl(run / "metrics.jsonl")]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert {"train_nll", "train_mfa", "train_clinical_bce", "val_loss", "val_bleu_4", "val_cider",
                "val_ce_macro_f1_14", "val_head_f1", "val_head_f1_macro", "lr", "obs_weights", "images_per_s",
                "monitor_value", "val_mfa", "val_mfa_text_cos", "val_mfa_image_cos", "val_mfa_matched_cos",
                "val_mfa_mismatched_cos", "val_mfa_recall_at_1"} <= set(r)
        assert r["monitor"] == "bleu_4" and r["monitor_value"] == r["val_bleu_4"]
        assert len(r["obs_weights"]) == 14

    # steps.csv: one row per optimiser step, every loss term of the preset, the rate of each group.
    import csv

    with open(run / "steps.csv", encoding="utf-8", newline="") as f:
        steps = list(csv.DictReader(f))
    assert list(steps[0]) == ["step", "epoch", "loss", "nll", "clinical_bce", "mfa", "lr_visual", "lr_decay",
                              "lr_no_decay", "grad_norm", "images_per_s"]
    assert [int(r["step"]) for r in steps] == list(range(1, 7)) and [r["epoch"] for r in steps] == ["1"] * 3 + ["2"] * 3
    assert all(float(r["grad_norm"]) > 0 and float(r["images_per_s"]) > 0 for r in steps)
    assert float(steps[0]["lr_decay"]) == pytest.approx(1e-4 / 2)       # --warmup 2: the first step at half rate
    # The clinical head's confusion counts agree with its F1 (over the validation studies it is scored on).
    n_val = sum(1 for _ in iter_jsonl(toy / "val.jsonl"))
    for (tp, fp, fn, tn), f1 in zip(records[-1]["val_head_confusion"], records[-1]["val_head_f1"]):
        assert tp + fp + fn + tn <= n_val
        assert f1 == (None if tp + fn == 0 else pytest.approx(2 * tp / (2 * tp + fp + fn)))

    ckpt = load_checkpoint(run / "last.pt", verify="all")
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "step", "rng", "train_config", "tokenizer",
                "cleaner", "inference", "sha256", "mfa"):
        assert key in ckpt
    assert ckpt["epoch"] == 2 and ckpt["step"] == 2 * 3

    preds = [r for _, r in iter_jsonl(run / "test_predictions.jsonl")]
    test_ids = [r["id"] for _, r in iter_jsonl(toy / "test.jsonl")]
    assert [p["id"] for p in preds] == test_ids
    assert all({"id", "prediction", "reference", "observations", "views"} <= set(p) for p in preds)
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert metrics["run"]["checkpoint"] == "best.pt" and metrics["n_studies"] == len(test_ids)
    assert "beam search (beam 3)" in metrics["run"]["decoding"]
    assert {"bleu_1", "bleu_4", "rouge_l", "cider", "ce_macro_f1_14"} <= set(metrics["metrics"])
    assert "meteor" not in metrics["metrics"] and "coco-caption" in metrics["protocol"]["nlg"]

    # The checkpoint alone rebuilds the model; `irralctl generate` + `irralctl score` on the test
    # split give test_metrics.json's numbers exactly (one decoder, one protocol).
    loaded = load_run(run, "cpu")
    assert loaded.model.cfg.image_size == 64 and loaded.tokenizer.vocab_size == loaded.model.cfg.vocab_size
    assert not loaded.model.training and loaded.max_tokens == 20
    again = run.parent / "again.jsonl"
    r = runner.invoke(app, ["generate", "--dataset", str(toy), "--split", "test", "--checkpoint", str(run),
                            "--out", str(again)])
    assert r.exit_code == 0, said(r)
    assert [x["prediction"] for _, x in iter_jsonl(again)] == [p["prediction"] for p in preds]
    r = runner.invoke(app, ["score", str(again), "--meteor", "off", "--json", str(run.parent / "again.json")])
    assert r.exit_code == 0, said(r)
    assert json.loads((run.parent / "again.json").read_text())["metrics"] == metrics["metrics"]

    # The saved config.json trains the same run again (nested config round trip).
    from irralctl.utils.config import from_dict, load_config_file

    assert from_dict(TrainConfig, load_config_file(run / "config.json")) == from_dict(TrainConfig, ckpt["train_config"])


def test_legacy_tokenizer_baseline_and_language_prior(toy, tmp_path):
    r = train(tiny_cfg(toy, tmp_path / "legacy", tokenizer="legacy", memory=False, acl=False, multiscale=False,
                       no_image=True, epochs=1))
    assert r.epochs_run == 1
    loaded = load_run(tmp_path / "legacy", "cpu")
    model = loaded.model
    assert loaded.tokenizer.kind == "legacy" and model.cfg.bos_id == model.cfg.eos_id == model.cfg.pad_id == 0
    assert model.visual is None and model.cfg.no_image and loaded.text_field == "legacy_target"


@pytest.mark.slow  # three trainings
def test_resume_continues_exactly(toy, tmp_path, tiny_bert):
    # Dropout, random crops and MFA's cached BERT features are all on: every RNG must be restored.
    kw = dict(dropout=0.1, mfa=True, text_encoder=tiny_bert, epochs=2)
    train(tiny_cfg(toy, tmp_path / "straight", **kw))
    train(tiny_cfg(toy, tmp_path / "split", **{**kw, "epochs": 1}))
    steps = tmp_path / "split" / "steps.csv"
    with open(steps, "a", encoding="utf-8") as f:  # rows of an epoch whose checkpoint was never written
        f.write("4,2,9.9,9.9,,,0.1,0.1,0.1,1.0,1.0\n5,2,9.9,9.9,,,0.1,0.1,0.1,1.0,1.0\n")
    r = train(resume_config(tmp_path / "split", {"optim.epochs": 2}), resume=True)
    assert r.epochs_run == 2
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "last.pt")
    assert a["step"] == b["step"] == 6
    for name, tensor in a["model"].items():
        assert torch.equal(b["model"][name], tensor), name
    lines = [r["epoch"] for _, r in iter_jsonl(tmp_path / "split" / "metrics.jsonl")]
    assert lines == [1, 2]
    # steps.csv holds each step once, with the losses and gradient norms of the uninterrupted run.
    from irralctl.plots.runs import read_steps

    straight, split = read_steps(tmp_path / "straight" / "steps.csv"), read_steps(steps)
    assert split["step"] == straight["step"] == [1, 2, 3, 4, 5, 6]
    for column in ("loss", "nll", "mfa", "grad_norm", "lr_decay"):
        assert split[column] == straight[column], column


@pytest.mark.slow  # two trainings
def test_gradient_norm_is_logged_with_clipping_off(toy, tmp_path):
    from irralctl.plots.runs import read_steps

    train(tiny_cfg(toy, tmp_path / "off", epochs=1, grad_clip=0.0))
    train(tiny_cfg(toy, tmp_path / "loose", epochs=1, grad_clip=1e9))    # clips nothing: the same training
    off, loose = read_steps(tmp_path / "off" / "steps.csv"), read_steps(tmp_path / "loose" / "steps.csv")
    assert all(n > 0 for n in off["grad_norm"])
    assert off["grad_norm"] == pytest.approx(loose["grad_norm"], rel=1e-5) and off["loss"] == loose["loss"]


@pytest.mark.slow  # two trainings with loader worker processes
def test_same_seed_same_weights(toy, tmp_path, tiny_bert):
    # The full preset (memory, MFA with a cached BERT, ACL with its head and label context, dropout,
    # random crops) with loader worker processes: two runs of one config end bit-identical.
    kw = dict(preset="irral", memory=True, mfa=True, acl=True, multiscale=True, text_encoder=tiny_bert, dropout=0.1,
              workers=2, epochs=2, seed=5)
    train(tiny_cfg(toy, tmp_path / "a", **kw))
    train(tiny_cfg(toy, tmp_path / "b", **kw))
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(b["model"][name], tensor), name
    assert a["mfa"] is not None and all(torch.equal(a["mfa"][k], b["mfa"][k]) for k in a["mfa"])
    ma = [r for _, r in iter_jsonl(tmp_path / "a" / "metrics.jsonl")]
    mb = [r for _, r in iter_jsonl(tmp_path / "b" / "metrics.jsonl")]
    assert [r["val_loss"] for r in ma] == [r["val_loss"] for r in mb]
    assert "val_mfa_recall_at_1" in ma[-1] and "val_head_f1_macro" in ma[-1]


def test_resume_refuses_another_tokenizer(one_epoch, tmp_path):
    shutil.copytree(one_epoch, tmp_path / "run")
    other = make_dataset(tmp_path, name="other", bpe_vocab_size=280)
    with pytest.raises(TrainingError, match="tokeniser"):
        train(resume_config(tmp_path / "run", {"optim.epochs": 2, "dataset": other}), resume=True)
    with pytest.raises(InputError, match="nothing to resume"):
        resume_config(tmp_path / "nowhere")


def test_resume_refuses_changes_that_break_exact_continuation(one_epoch, toy, tmp_path):
    shutil.copytree(one_epoch, tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        resume_config(tmp_path / "run", {"optim.lr": 0.5, "model.d_model": 64, "optim.epochs": 3})
    assert "--lr (run: 0.0001, given: 0.5)" in info.value.message and "--d-model (run: 32, given: 64)" in info.value.message
    assert "--epochs" in info.value.hint
    cfg = resume_config(tmp_path / "run", {"optim.epochs": 3, "optim.lr": 0.0001})  # an unchanged value is fine
    assert cfg.optim.epochs == 3 and cfg.out == tmp_path / "run"
    r = runner.invoke(app, ["train", str(toy), "--resume", str(tmp_path / "run"), "--lr", "0.5"])
    assert r.exit_code == 1 and "cannot change --lr" in said(r)


@pytest.mark.slow  # trains twice, the second time resuming the first
def test_full_disk_keeps_previous_checkpoint(toy, tmp_path, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f, *a, **kw):
        calls["n"] += 1
        if calls["n"] >= 3:  # epoch 1 writes last.pt and best.pt; epoch 2's last.pt hits a full disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(ckpt_mod.torch, "save", failing_save)
    run = tmp_path / "run"
    with pytest.raises(IrralError, match="disk is full; the previous checkpoint is intact.*epoch 1 kept in .*run.partial"):
        train(tiny_cfg(toy, run, epochs=2))
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    stage = tmp_path / ".run.partial"
    assert not run.exists() and load_checkpoint(stage / "last.pt")["epoch"] == 1   # --out only on success
    assert sorted(p.name for p in stage.iterdir() if p.name.startswith(".")) == []  # no temp file left
    r = train(resume_config(run), resume=True)                                     # the rerun continues it
    assert r.epochs_run == 2 and load_checkpoint(run / "last.pt")["epoch"] == 2 and not stage.exists()


@pytest.mark.slow  # trains into its second epoch
def test_non_finite_loss_names_step_and_studies(toy, tmp_path, monkeypatch):
    real = losses.token_nll
    calls = {"n": 0}

    def nan_on_fifth(logits, tokens, lengths):
        calls["n"] += 1
        total, count = real(logits, tokens, lengths)
        return (total * float("nan"), count) if calls["n"] == 5 else (total, count)

    monkeypatch.setattr(losses, "token_nll", nan_on_fifth)
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        train(tiny_cfg(toy, run, epochs=3))
    message = info.value.message
    assert "non-finite loss (nan) at epoch 2, step 5" in message
    assert "T00" in message and "last good checkpoint" in message and "(epoch 1)" in message
    assert "kept in" in message and load_checkpoint(tmp_path / ".run.partial" / "last.pt")["epoch"] == 1


def test_out_of_memory_names_a_batch_size_that_fits(toy, tmp_path, monkeypatch):
    real = losses.token_nll

    def small_memory(logits, tokens, lengths):
        if logits.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(logits, tokens, lengths)

    monkeypatch.setattr(losses, "token_nll", small_memory)
    with pytest.raises(TrainingError) as info:
        train(tiny_cfg(toy, tmp_path / "run", epochs=1))
    assert "at 8 studies per process" in info.value.message and "2 per process fits" in info.value.message
    assert info.value.hint == "rerun with --batch-size 2"


def test_cli_bad_inputs_give_one_line_and_exit_1(toy, tmp_path):
    def run(*args):
        return runner.invoke(app, ["train", *map(str, args), *TINY_FLAGS, "--epochs", "1"])

    r = run(tmp_path / "missing", "--out", tmp_path / "a")
    assert r.exit_code == 1 and "dataset directory not found" in said(r)
    raw = tmp_path / "raw_pngs"
    raw.mkdir()
    (raw / "CXR1_1_IM-0001-3001.png").write_bytes(b"")
    r = run(raw, "--out", tmp_path / "a")
    assert r.exit_code == 1 and "not a prepared dataset" in said(r) and "irralctl prepare" in said(r)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "dataset.json").write_text((toy / "dataset.json").read_text())
    r = run(broken, "--out", tmp_path / "a")
    assert r.exit_code == 1 and "train.jsonl missing" in said(r)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    r = run(toy, "--out", tmp_path / "taken")
    assert r.exit_code == 1 and "already exists" in said(r) and "--resume" in said(r)
    r = run(toy, "--resume", tmp_path / "taken")
    assert r.exit_code == 1 and "nothing to resume" in said(r)
    r = run(toy, "--out", tmp_path / "b", "--preset", "fancy")
    assert r.exit_code == 1 and "'fancy' is not one of" in said(r) and "irral" in said(r)
    r = run(toy, "--out", tmp_path / "b", "--backbone", "tiny", "--visual-weights", tmp_path / "w.pth")
    assert r.exit_code == 1 and "resnet" in said(r)
    r = run(toy)
    assert r.exit_code == 1 and "--out" in said(r)


def test_observation_weights_follow_validation_f1():
    from irralctl.training.feedback import ObservationWeights

    w = ObservationWeights(4, momentum=0.5)
    w.update([1.0, 0.0, None, 0.5])
    # difficulty 1 - F1 + 0.05 = 0.05, 1.05, -, 0.55; mean 0.55 -> targets 1/11, 21/11, -, 1
    assert w.weights[2] == 1.0
    assert w.weights[0] == pytest.approx(0.5 + 0.5 / 11) and w.weights[1] == pytest.approx(0.5 + 0.5 * 21 / 11)
    assert w.weights[3] == pytest.approx(1.0)
    for _ in range(20):
        w.update([1.0, 0.0, None, 0.5])
    assert w.weights[0] == 0.25 and w.weights[1] < 4.0  # clipped to [0.25, 4]
    t = w.tensor(torch.device("cpu"))
    assert t is w.tensor(torch.device("cpu"))  # copied to the device only when the weights change


def test_lr_warmup_cosine_and_plateau():
    from irralctl.training.optim import LRController

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p], "lr": 1.0, "name": "rest"}])
    lr = LRController(opt, warmup=4, total_steps=10, schedule="constant", plateau_factor=0.5,
                      plateau_patience=1, higher_is_better=True)
    assert opt.param_groups[0]["lr"] == 0.25
    for _ in range(5):
        lr.step()
    assert opt.param_groups[0]["lr"] == 1.0
    # No cut before the monitor has first improved on its first value (0.2 and 0.25 do not count):
    # a flat start is the model not learning yet, not a plateau.
    assert [lr.observe(v) for v in (0.3, 0.2, 0.25, 0.4, 0.1, 0.1)] == [False, False, False, False, False, True]
    assert [lr.observe(v) for v in (0.1, 0.1)] == [False, True]
    assert opt.param_groups[0]["lr"] == 0.25 and lr.lrs() == {"rest": 0.25}
    flat = LRController(opt, warmup=0, total_steps=10, plateau_factor=0.5, plateau_patience=0)
    assert not any(flat.observe(0.037) for _ in range(6)) and flat.scale == 1.0
    again = LRController(opt, warmup=4, total_steps=10)
    again.load_state_dict(lr.state_dict())
    assert opt.param_groups[0]["lr"] == 0.25
    cos = LRController(opt, warmup=0, total_steps=10, schedule="cosine")
    for _ in range(10):
        cos.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_warmup_is_a_fraction_of_the_run_or_a_number_of_steps():
    from irralctl.training.config import WARMUP_CAP
    from irralctl.training.optim import LRController, warmup_steps

    assert warmup_steps(0.05, 1000) == 50 and warmup_steps(0.25, 10) == 2 and warmup_steps(0, 1000) == 0
    assert warmup_steps(0.05, 10**7) == WARMUP_CAP            # a fraction of a very long run is capped
    assert warmup_steps(300, 100) == 300 and warmup_steps(1, 100) == 1   # steps are taken as given
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p], "lr": 1.0}])
    lr = LRController(opt, warmup=0.5, total_steps=1)
    lr.set_total_steps(8)                                      # the loader's length arrives later
    assert lr.warmup_steps == 4 and opt.param_groups[0]["lr"] == 0.25
    for _ in range(3):
        lr.step()
    assert lr.in_warmup and opt.param_groups[0]["lr"] == 1.0   # the 4th step runs at the base rate
    lr.step()
    assert not lr.in_warmup
    # --resume keeps the warm-up the run started with, even when --epochs (the total) changes.
    again = LRController(opt, warmup=0.5, total_steps=1)
    again.set_total_steps(100)
    again.load_state_dict(lr.state_dict())
    assert again.warmup_steps == 4
    with pytest.raises(ConfigError, match="whole number"):
        tiny_cfg("d", "o", warmup=2.5)
    # Configs saved before --warmup (optim.warmup_steps) still load, as the same number of steps.
    from irralctl.utils.config import from_dict

    assert from_dict(TrainConfig, {"dataset": "d", "optim": {"warmup_steps": 200}}).optim.warmup == 200


def test_a_run_that_ends_in_warmup_says_so(toy, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="irralctl.training.trainer"):
        train(tiny_cfg(toy, tmp_path / "run", epochs=1, warmup=50))
    assert "ended in its learning-rate warm-up (step 3 of 50)" in caplog.text
