"""`irralctl generate`: real radiographs end to end, prepared splits, formats, resume, and bad inputs."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.prepared import PreparedDataset
from irralctl.errors import InputError
from irralctl.utils.outputs import Interrupted
from irralctl.generation import GenerateConfig, discover_studies, generate_reports
from irralctl.generation import pipeline as pipeline_mod
from irralctl.generation.inputs import View, choose_views
from irralctl.generation.output import journal_paths, read_rows
from irralctl.labeling import OBSERVATIONS
from irralctl.runs.loaded import load_run
from tests.fixtures.generation import write_png
from tests.fixtures.train_data import make_dataset

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def generate(*args):
    return runner.invoke(app, ["generate", *map(str, args)])


def error_lines(result) -> list[str]:
    """The lines a failed command printed: one 'error:' line and possibly one 'hint:' line."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith(("generate", "WARNING"))]
    assert lines[0].startswith("error:") and len(lines) <= 2 and all(not x.startswith("Traceback") for x in lines), lines
    return lines


# -- real radiographs -------------------------------------------------------------------------------

def _lateral_copy(src, dst):
    import pydicom

    ds = pydicom.dcmread(src)
    ds.ViewPosition = "LATERAL"
    ds.save_as(dst)
    return dst


@pytest.mark.slow  # full-size real radiographs, decoded and run through the model
def test_real_radiographs_end_to_end(shared_data, run_dir, tmp_path):
    images = shared_data / "images"
    studies = tmp_path / "in"
    # Study "pair": the lateral comes first in file order; its DICOM ViewPosition puts the PA first.
    (studies / "pair").mkdir(parents=True)
    _lateral_copy(images / "dicom" / "RG1_UNCR.dcm", studies / "pair" / "a_side.dcm")
    shutil.copy(images / "dicom" / "RG1_J2KR.dcm", studies / "pair" / "b_front.dcm")  # JPEG 2000, MONOCHROME1
    (studies / "jpegs").mkdir()
    shutil.copy(images / "kermany" / "NORMAL2-IM-1427-0001.jpeg", studies / "jpegs")
    shutil.copy(images / "kermany" / "person1946_bacteria_4874.jpeg", studies / "jpegs")
    (studies / "single").mkdir()
    shutil.copy(images / "kermany" / "person1947_bacteria_4876.jpeg", studies / "single")
    out = tmp_path / "preds.jsonl"

    result = generate(studies, "--checkpoint", run_dir, "--out", out, "--n-best", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "generated 3 report(s) of 3 stud(y/ies)" in result.output and "one_view 1" in result.output
    rows = {r["id"]: r for r in read_rows(out)}
    assert list(rows) == ["jpegs", "pair", "single"]
    pair = rows["pair"]
    assert [(v["id"], v["view"]) for v in pair["views"]] == [("b_front", "PA"), ("a_side", "LATERAL")]
    assert pair["flags"] == [] and rows["single"]["flags"] == ["one_view"]
    assert [v["view"] for v in rows["jpegs"]["views"]] == ["UNKNOWN", "UNKNOWN"]
    for row in rows.values():
        assert row["prediction"] and row["prediction"] == row["hypotheses"][0]["prediction"]
        assert list(row["observations"]) == list(OBSERVATIONS)
        assert all(0.0 <= p <= 1.0 for p in row["observations"].values())
        assert len(row["hypotheses"]) == 2 and row["hypotheses"][0]["rank_score"] >= row["hypotheses"][1]["rank_score"]
        assert row["score"] == row["hypotheses"][0]["score"] < 0 and 0 < row["length"] <= 24
        assert "reference" not in row
    saved = json.loads((tmp_path / "preds.jsonl.config.json").read_text())
    assert saved["config"]["decoding"]["n_best"] == 2 and saved["settings"]["decoding"]["max_tokens"] == 24
    assert saved["counts"]["generated"] == 3 and saved["checkpoint"]["path"].endswith("best.pt")
    assert not journal_paths(out)[0].exists()

    # The same study as a single image and as a flat folder keyed by --group-by.
    one = tmp_path / "one.txt"
    result = generate(studies / "single" / "person1947_bacteria_4876.jpeg", "--checkpoint", run_dir, "--out", one,
                      "--format", "txt", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert one.read_text() == f"person1947_bacteria_4876\t{rows['single']['prediction']}\n"


def test_files_and_prepared_split_give_the_same_reports(toy, run_dir, tmp_path):
    from_dataset = tmp_path / "ds.jsonl"
    result = generate("--dataset", toy, "--split", "test", "--checkpoint", run_dir, "--out", from_dataset,
                      "--batch-size", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    records = PreparedDataset(toy).records("test")
    rows = read_rows(from_dataset)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert [r["reference"] for r in rows] == [r["target"] for r in records]
    assert [("one_view" in r["flags"]) for r in rows] == [len(r["images"]) == 1 for r in records]
    # The tiny model learnt the task (up to the 24 tokens it was trained on).
    tok = load_run(run_dir, "cpu").tokenizer
    assert sum(r["prediction"] == tok.decode(tok.encode(r["reference"])[:24]) for r in rows) >= len(rows) // 2
    # The scorer reads the file as it is.
    scored = runner.invoke(app, ["score", str(from_dataset), "--meteor", "off", "--no-clinical"])
    assert scored.exit_code == 0, scored.output

    # The same studies from their image files (grouped by a regex) decode to the same reports.
    test_ids = {r["id"] for r in records}
    flat = tmp_path / "flat"
    flat.mkdir()
    for png in (toy.parent / "toy_png").glob("*.png"):
        if png.stem.split("-")[0] in test_ids:
            shutil.copy(png, flat / png.name)
    from_files = tmp_path / "files.csv"
    result = generate(flat, "--group-by", r"^(?P<study>T\d{4})-\d", "--checkpoint", run_dir, "--out", from_files,
                      "--format", "csv", "--device", "cpu")
    assert result.exit_code == 0, result.output
    import csv

    table = list(csv.DictReader(from_files.open()))
    assert [t["id"] for t in table] == [r["id"] for r in rows]
    assert [t["prediction"] for t in table] == [r["prediction"] for r in rows]
    for t, r in zip(table, rows):
        assert float(t["Lung Lesion"]) == pytest.approx(r["observations"]["Lung Lesion"], abs=1e-4)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, InputError])
def test_a_failed_generate_ends_its_checkpoint_verification(failure, toy, run_dir, tmp_path, monkeypatch):
    """The checkpoint is verified in a thread while generate starts; a command that fails or is
    interrupted meanwhile lets that thread end before it returns. (A thread still in torch's C++ code
    when Python shuts down made the process abort with SIGABRT after its "interrupted" line.)"""
    import threading
    import time

    from irralctl.runs import loaded

    real, verifying = loaded.verify_checkpoint, threading.Event()

    def slow_verify(*args, **kwargs):
        verifying.set()
        time.sleep(0.5)
        return real(*args, **kwargs)

    def fail(*args, **kwargs):
        assert verifying.wait(5)
        raise failure("stopped while the checkpoint was verified") if failure is InputError else failure

    monkeypatch.setattr(loaded, "verify_checkpoint", slow_verify)
    monkeypatch.setattr(pipeline_mod, "_find_studies", fail)
    cfg = GenerateConfig(input=None, dataset=toy, split="test", checkpoint=run_dir, out=tmp_path / "p.jsonl",
                         device="cpu")
    with pytest.raises((Interrupted, InputError, KeyboardInterrupt)):
        generate_reports(cfg)
    assert [t.name for t in threading.enumerate() if t.name == "verify-checkpoint"] == []
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.slow  # five generate runs
def test_resume_after_a_crash_keeps_whole_batches(toy, run_dir, tmp_path, monkeypatch):
    out = tmp_path / "preds.jsonl"
    out.write_text("an older file that must survive a failed run\n")
    cfg = GenerateConfig(checkpoint=run_dir, out=out, dataset=toy, split="test", batch_size=3, device="cpu",
                         workers=0, overwrite=True)
    real = pipeline_mod._decode_batch
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a user's ^C, or a killed process
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_mod, "_decode_batch", crash_on_third)
    with pytest.raises(Interrupted, match="6 report.*kept in .*preds.jsonl.partial: continue with --resume"):
        generate_reports(cfg)
    monkeypatch.setattr(pipeline_mod, "_decode_batch", real)
    assert out.read_text() == "an older file that must survive a failed run\n"
    journal, _ = journal_paths(out)
    assert len(read_rows(journal)) == 6
    with open(journal, "a") as f:
        f.write('{"id": "T00')  # a torn last line, as a crash in the middle of a write leaves

    # Without --resume the journal is not silently discarded.
    with pytest.raises(InputError, match="interrupted run"):
        generate_reports(GenerateConfig(checkpoint=run_dir, out=out, dataset=toy, split="test", device="cpu"))
    # Other decoding options cannot resume it.
    result = generate("--dataset", toy, "--checkpoint", run_dir, "--out", out, "--resume", "--beam-size", "2")
    line = error_lines(result)[0]
    assert "other settings than the interrupted run" in line and "decoding" in line

    result = generate("--dataset", toy, "--checkpoint", run_dir, "--out", out, "--resume", "--batch-size", "3",
                      "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "(6 already written)" in result.output
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [r["id"] for r in PreparedDataset(toy).records("test")]
    uninterrupted = tmp_path / "straight.jsonl"
    generate_reports(GenerateConfig(checkpoint=run_dir, out=uninterrupted, dataset=toy, split="test", device="cpu"))
    assert [r["prediction"] for r in rows] == [r["prediction"] for r in read_rows(uninterrupted)]
    assert not journal.exists()

    # A finished jsonl output: --resume adds nothing and changes nothing.
    before = out.read_bytes()
    result = generate("--dataset", toy, "--checkpoint", run_dir, "--out", out, "--resume", "--device", "cpu")
    assert result.exit_code == 0 and "generated 0 report(s)" in result.output
    assert out.read_bytes() == before


def test_sampling_and_decoding_options_reach_the_output(toy, run_dir, tmp_path):
    out = tmp_path / "s.jsonl"
    result = generate("--dataset", toy, "--checkpoint", run_dir, "--out", out, "--sample", "--n-best", "3",
                      "--temperature", "1.3", "--seed", "5", "--max-tokens", "12", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "sampling (3 per study" in result.output
    rows = read_rows(out)
    assert all(len(r["hypotheses"]) == 3 and r["length"] <= 12 for r in rows)
    again = tmp_path / "s2.jsonl"
    generate("--dataset", toy, "--checkpoint", run_dir, "--out", again, "--sample", "--n-best", "3",
             "--temperature", "1.3", "--seed", "5", "--max-tokens", "12", "--device", "cpu")
    assert read_rows(again) == rows


# -- finding studies --------------------------------------------------------------------------------

def test_default_grouping_rules(tmp_path):
    for rel in ("flat/CXR2384_IM-0942-1001.png", "flat/CXR2384_IM-0942-2001.png", "flat/CXR1_1_IM-0001-3001.png",
                "flat/CXR1_1_IM-0001-4001.png", "flat/loose.png",
                "mimic/files/p10/p10000032/s50414267/02aa804e.jpg", "mimic/files/p10/p10000032/s50414267/174413ec.jpg",
                "mimic/files/p10/p10000032/s53189527/2a2277a9.jpg",
                "r2gen/CXR10_IM-0002/0.png", "r2gen/CXR10_IM-0002/1.png", "r2gen/CXR10_IM-0002/notes.txt"):
        path = tmp_path / rel
        if path.suffix == ".txt":
            path.write_text("not an image")
        else:
            write_png(path, 40, 32)
    flat = discover_studies(tmp_path / "flat", views=2)
    assert [(s.id, [v.id for v in s.views], s.flags) for s in flat] == [
        ("CXR1_1_IM-0001", ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"], ()),
        ("CXR2384_IM-0942", ["CXR2384_IM-0942-1001", "CXR2384_IM-0942-2001"], ()),
        ("loose", ["loose"], ("one_view",)),
    ]
    mimic = discover_studies(tmp_path / "mimic", views=2)
    assert [(s.id, len(s.views)) for s in mimic] == [("50414267", 2), ("53189527", 1)]
    r2gen = discover_studies(tmp_path / "r2gen", views=2)
    assert [(s.id, [v.id for v in s.views]) for s in r2gen] == [("CXR10_IM-0002", ["0", "1"])]
    custom = discover_studies(tmp_path / "flat", views=1, group_by=r"^(CXR\d+|loose)")
    assert [(s.id, len(s.views), s.flags) for s in custom] == [
        ("CXR1", 1, ("extra_views",)), ("CXR2384", 1, ("extra_views",)), ("loose", 1, ())]
    with pytest.raises(InputError, match="do not match --group-by"):
        discover_studies(tmp_path / "flat", views=2, group_by=r"CXR(\d+)")


def test_view_choice_prefers_a_frontal_and_a_lateral():
    views = [View("a", "AP"), View("b", "PA"), View("c", "LL"), View("d", "UNKNOWN")]
    kept, dropped = choose_views(views, 2)
    # One view order everywhere (irralctl.constants.view_rank): PA before AP, as in MIMIC's records.
    assert [v.id for v in kept] == ["b", "c"] and [v.id for v in dropped] == ["a", "d"]
    kept, _ = choose_views([View("x", "LATERAL"), View("y", "UNKNOWN")], 2)
    assert [v.id for v in kept] == ["y", "x"]


# -- bad inputs -------------------------------------------------------------------------------------

def test_bad_inputs_give_one_line(toy, run_dir, tmp_path):
    def run(*args):
        return generate(*args, "--checkpoint", run_dir, "--out", tmp_path / "o.jsonl", "--device", "cpu")

    folder = tmp_path / "studies"
    write_png(folder / "good" / "a.png", 80, 64, disc="left")
    write_png(folder / "good" / "b.png", 80, 64, disc="left")
    (folder / "bad").mkdir()
    (folder / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lines = error_lines(run(folder))
    assert "broken.png" in lines[0] and "unreadable image" in lines[0] and "--skip-unreadable" in lines[1]
    assert not (tmp_path / "o.jsonl").exists() and not journal_paths(tmp_path / "o.jsonl")[0].exists()
    result = run(folder, "--skip-unreadable")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_rows(tmp_path / "o.jsonl")] == ["good"] and "skipped" in result.output
    (tmp_path / "o.jsonl").unlink()

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    assert "no images (PNG, JPEG or DICOM) found" in error_lines(run(empty))[0]
    assert "input not found" in error_lines(run(tmp_path / "missing"))[0]
    assert "not an image file" in error_lines(run(empty / "sub" / "readme.txt"))[0]
    assert "either INPUT" in error_lines(run(folder, "--dataset", toy))[0]
    assert "exceeds the beam size" in error_lines(run(folder, "--n-best", "5"))[0]
    assert "not a valid regular expression" in error_lines(run(folder, "--group-by", "(["))[0]

    bare = tmp_path / "bare_run"
    bare.mkdir()
    (bare / "config.json").write_text("{}")
    lines = error_lines(generate(folder, "--checkpoint", bare, "--out", tmp_path / "x.jsonl"))
    assert "no checkpoint (best.pt or last.pt)" in lines[0] and "irralctl train" in lines[1]

    other = make_dataset(tmp_path, name="other", bpe_vocab_size=280)
    lines = error_lines(run("--dataset", other))
    assert "tokeniser of this dataset differs" in lines[0] and "config.json" in lines[1]

    (tmp_path / "taken.jsonl").write_text("keep me\n")
    lines = error_lines(generate(folder / "good", "--checkpoint", run_dir, "--out", tmp_path / "taken.jsonl"))
    assert "already exists" in lines[0] and "--overwrite" in lines[1]
    assert (tmp_path / "taken.jsonl").read_text() == "keep me\n"
