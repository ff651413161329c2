"""`irralctl heatmap`: attention maps per word and view, their files, sources, the comparison figure, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.data.images import load_grey
from irralctl.data.prepared import PreparedDataset
from irralctl.runs.loaded import load_run
from irralctl.heatmaps import find_phrase, normalize, phrase_map, split_views, token_attention
from irralctl.model import TokenGrid
from tests.fixtures.generation import write_png

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


def heatmap(*args):
    return runner.invoke(app, ["heatmap", *map(str, args), "--device", "cpu"])


def sidecar(out) -> dict:
    return json.loads((out / "heatmaps.json").read_text())


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


@pytest.mark.slow  # full-size real radiographs, four words drawn
def test_two_view_study_of_real_radiographs(shared_data, run_dir, tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    jpeg = shutil.copy(shared_data / "images" / "kermany" / "NORMAL2-IM-1427-0001.jpeg", study / "a.jpeg")
    dicom = shutil.copy(shared_data / "images" / "dicom" / "RG1_UNCR.dcm", study / "b.dcm")
    out = tmp_path / "maps"
    result = heatmap("--checkpoint", run_dir, "--study", study, "--out", out,
                     "--words", "heart,lung,pleural effusion,the heart is", "--text", "small left pleural effusion .")
    assert result.exit_code == 0, result.output
    meta = sidecar(out)
    run = meta["runs"][0]
    assert [v["view"] for v in run["views"]] == ["PA", "UNKNOWN"]           # the DICOM's PA first
    generated = run["generated"]
    words = {w["word"]: w for w in run["words"]}
    for word in ("heart", "lung", "the heart is"):
        expected = "generated" if f" {word} " in f" {generated} " else "text" if word in "small left pleural effusion ." else None
        assert words[word]["source"] == expected, (word, generated)
    effusion = words["pleural effusion"]
    assert effusion["source"] == "text" and len(effusion["positions"]) == len(effusion["tokens"]) >= 2
    assert "pleural effusion" in result.output and "text" in result.output

    # Every drawn word: one panel figure and one overlay per view, each overlay at its image's aspect.
    shapes = [load_grey(dicom, 512).shape, load_grey(jpeg, 512).shape]
    originals = [(1955, 1841), Image.open(jpeg).size[::-1]]
    for w in run["words"]:
        if w["source"] is None:
            continue
        assert len(w["files"]["views"]) == 2 and w["files"]["panel"].endswith(".png")
        assert sum(w["view_shares"]) == pytest.approx(1.0, abs=1e-3)
        for file, (h, width), (oh, ow) in zip(w["files"]["views"], shapes, originals):
            assert png_size(out / file) == (width, h)
            assert width / h == pytest.approx(ow / oh, rel=0.01)
        pw, ph = png_size(out / w["files"]["panel"])
        assert pw > ph  # two panels side by side
    assert meta["attention"]["layer"] == "mean" and meta["attention"]["colormap"] == "jet, 0 to 1"


@pytest.mark.slow  # two runs' maps and the comparison figure
def test_dataset_study_words_from_reference_and_the_comparison_figure(toy, run_dir, tmp_path):
    record = next(r for r in PreparedDataset(toy).records("test") if len(r["images"]) == 1)
    out = tmp_path / "fig3"
    result = heatmap("--compare", f"{run_dir},{run_dir}", "--labels", "Base,+ACL", "--dataset", toy, "--id", record["id"],
                     "--words", "heart,lesion,pneumothorax", "--max-tokens", "3", "--out", out)
    assert result.exit_code == 0, result.output
    meta = sidecar(out)
    assert [r["label"] for r in meta["runs"]] == ["Base", "+ACL"] and meta["compare"] == "compare.png"
    for run in meta["runs"]:
        words = {w["word"]: w for w in run["words"]}
        assert len(run["generated"].split()) <= 3 and run["reference"] == record["target"]
        assert words["heart"]["source"] == "reference"                  # past the 3 generated tokens
        assert words["pneumothorax"]["source"] is None and words["pneumothorax"]["files"] == {}
        assert len(words["heart"]["files"]["views"]) == 1              # a one-view study: one panel
        assert words["heart"]["files"]["panel"].startswith(("base/", "acl/"))
    assert (out / "compare.png").is_file() and (out / "base" / "heart.png").is_file()
    assert "absent" in result.output
    w, h = png_size(out / "compare.png")
    assert h > w / 3  # three rows of words


@pytest.mark.slow  # three heatmap runs
def test_layer_and_head_choice(toy, run_dir, tmp_path):
    record = PreparedDataset(toy).records("test")[0]
    base = ["--checkpoint", run_dir, "--dataset", toy, "--id", record["id"], "--words", "heart"]
    assert heatmap(*base, "--out", tmp_path / "mean").exit_code == 0
    assert heatmap(*base, "--out", tmp_path / "l1h2", "--layer", "1", "--head", "2").exit_code == 0
    assert sidecar(tmp_path / "l1h2")["attention"]["layer"] == 1 and sidecar(tmp_path / "l1h2")["attention"]["head"] == 2
    a = (tmp_path / "mean" / "heart.view1.png").read_bytes()
    b = (tmp_path / "l1h2" / "heart.view1.png").read_bytes()
    assert a != b
    result = heatmap(*base, "--out", tmp_path / "bad", "--layer", "7")
    assert result.exit_code == 1 and "--layer 7: the decoder has 2 layer(s)" in result.output
    assert not (tmp_path / "bad").exists()


def test_attention_maps_follow_the_token_grid(toy, run_dir):
    run = load_run(run_dir, "cpu")
    model = run.model
    grid = model.grid
    weights = torch.arange(grid.tokens, dtype=torch.float32)
    views = split_views(weights, grid, 2)
    for n in (0, grid.height * grid.width - 1, grid.height * grid.width + 5, grid.tokens - 1):
        v, i, j = grid.position(n)
        assert views[v][i, j] == n
    small = split_views(torch.arange(32.0), TokenGrid(2, 4, 4), 1)
    assert len(small) == 1 and small[0].tolist() == torch.arange(16.0).view(4, 4).tolist()

    from irralctl.data.loader import LoaderConfig, ReportDataset

    ds = ReportDataset(PreparedDataset(toy), "test", run.tokenizer, LoaderConfig(image_size=64))
    item = next(ds[i] for i in range(len(ds)) if ds[i]["n_views"] == 1)
    images, mask = item["images"][None], torch.tensor([[True, False]])
    with torch.no_grad():
        encoded = model.encode(images, mask)
    ids = run.tokenizer.encode("the heart is normal .")
    att = token_attention(model, encoded, ids)                         # (T, L, H, N)
    assert att.shape == (len(ids), 2, model.cfg.n_heads, grid.tokens)
    assert torch.allclose(att.sum(-1), torch.ones(att.shape[:3]), atol=1e-5)
    assert att[..., grid.height * grid.width:].abs().max() == 0         # the missing view gets no attention
    # Step t's map is the one decode_step returns while predicting token t.
    state = model.init_decode_state(encoded)
    _, state, first = model.decode_step(torch.tensor([model.cfg.bos_id]), state, need_attention=True)
    _, _, second = model.decode_step(torch.tensor([ids[0]]), state, need_attention=True)
    assert torch.allclose(att[1, 1], second[1][0]) and torch.allclose(att[0, 0], first[0][0])

    positions = find_phrase(ids, run.tokenizer.encode("heart is"))
    assert positions is not None and len(positions) == 2
    m = phrase_map(att, positions)
    assert torch.allclose(m, att[positions].mean(dim=(0, 1, 2)))
    assert torch.allclose(phrase_map(att, positions, layer=-1, head=0), att[positions, -1, 0].mean(0))
    assert find_phrase(ids, run.tokenizer.encode("pneumothorax")) is None
    # Whole words only: "lung" is not the first piece of "lungs".
    lungs = run.tokenizer.encode("the lungs are clear")
    lung = run.tokenizer.encode("lung")
    assert find_phrase(lungs, lung) is not None                           # as raw pieces it is there
    assert find_phrase(lungs, lung, lambda i: run.tokenizer.id_to_token(i) == "s") is None
    grids = normalize(split_views(m, grid, 1))
    assert grids[0].min() == 0.0 and grids[0].max() == 1.0


def test_bad_inputs(toy, run_dir, tmp_path):
    image = write_png(tmp_path / "x.png", 100, 80)
    ok = ["--checkpoint", run_dir, "--words", "heart"]
    cases = [
        (["--checkpoint", run_dir, "--words", "heart", "--study", tmp_path / "missing"], "study not found"),
        ([*ok, "--study", tmp_path / "empty_dir"], "no images"),
        ([*ok, "--dataset", toy], "--dataset needs --id"),
        ([*ok, "--dataset", toy, "--id", "nope"], "no study with id 'nope'"),
        (["--words", "heart", "--study", image], "give a checkpoint"),
        ([*ok, "--study", image, "--labels", "a,b"], "2 label(s) for 1 checkpoint(s)"),
        (["--checkpoint", tmp_path, "--words", "heart", "--study", image], "no checkpoint (best.pt or last.pt)"),
        (["--checkpoint", run_dir, "--words", " , ", "--study", image], "give the words"),
    ]
    (tmp_path / "empty_dir").mkdir()
    for args, message in cases:
        result = heatmap(*args, "--out", tmp_path / "o")
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep").write_text("x")
    result = heatmap(*ok, "--study", image, "--out", tmp_path / "taken")
    assert result.exit_code == 1 and "already exists" in result.output
    assert (tmp_path / "taken" / "keep").read_text() == "x"
    result = heatmap(*ok, "--study", image, "--text", "the heart", "--out", tmp_path / "one")
    assert result.exit_code == 0, result.output
    assert sidecar(tmp_path / "one")["runs"][0]["words"][0]["source"] in ("generated", "text")
    assert png_size(tmp_path / "one" / "heart.view1.png") == (80, 100)  # small images are drawn at their own size
