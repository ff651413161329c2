"""`prepare mimic` on a small MIMIC-shaped tree (tests/fixtures/mimic.py): content, layouts, views,
sections, official labels, every input problem, --strict, resume, and an end-to-end CLI run whose
output is read by the loader and trains for one step."""

from __future__ import annotations

import csv
import functools
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from irralctl.cli.main import app
from irralctl.constants import OBSERVATIONS as CHEXPERT_OBSERVATIONS
from irralctl.data import store
from irralctl.data.images import load_grey
from irralctl.data.loader import LoaderConfig, ReportDataset, collate
from irralctl.data.pipeline import staging_dir_for
from irralctl.data.prepared import PreparedDataset
from irralctl.data.sources.mimic import prepare as mimic
from irralctl.data.sources.mimic.config import MimicPrepareConfig
from irralctl.data.sources.mimic.prepare import prepare_mimic
from irralctl.errors import ConfigError, InputError
from irralctl.progress import Silent
from irralctl.utils.outputs import Interrupted
from tests.fixtures.mimic import (
    MISSING_IMAGE_STUDY,
    NO_REPORT_STUDY,
    NOT_IN_SPLIT_STUDY,
    UNREADABLE_IMAGE_STUDY,
    build_mimic_tree,
)

SIZE = 64


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return build_mimic_tree(tmp_path_factory.mktemp("mimic"))


def _cfg(tree, out: Path, **kw) -> MimicPrepareConfig:
    base = dict(root=tree.root, reports=tree.reports, out=out, image_size=SIZE, bpe_vocab_size=300,
                legacy_threshold=1, workers=1)
    return MimicPrepareConfig(**{**base, **kw})


def _records(out: Path) -> dict[str, dict]:
    ds = PreparedDataset(out)
    return {r["id"]: {**r, "split": s} for s in ("train", "val", "test") for r in ds.records(s)}


def _problems(out: Path) -> list[dict]:
    path = out / "problems.csv"
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def prepared(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "mimic"
    prepare_mimic(_cfg(tree, out, workers=2))
    return out


def test_official_split_groups_and_dropped_counts(prepared):
    recs = _records(prepared)
    assert {sid: r["split"] for sid, r in recs.items()} == {
        "50000001": "train", "50000002": "train", "50000003": "train", "53000009": "train",
        "51000005": "val", "52000007": "test", "52000008": "test",
    }
    assert recs["50000001"]["group"] == recs["50000002"]["group"] == "10000001"
    info = PreparedDataset(prepared).info
    assert info["name"] == "mimic_cxr"
    assert info["example_layout"] == "study"
    # 50000004 (impression only) and 52000006 (no headings) have no findings; 53000010 no report.
    assert info["counts"]["dropped"] == {"empty_target": 2, "no_report": 1}
    assert info["counts"]["studies"] == 7
    assert info["tokenizers"]["legacy"]["threshold"] == 1
    assert info["legacy_cleaner"]["name"] == "legacy-mimic"


def test_views_frontal_first_with_store_rows(prepared, tree):
    recs = _records(prepared)
    views = [im["view"] for im in recs["50000003"]["images"]]
    assert views == ["PA", "LATERAL", "UNKNOWN"]  # the blank ViewPosition is UNKNOWN, last
    ds = PreparedDataset(prepared)
    first = recs["50000001"]["images"][0]
    assert first["file"] == str(tree.image(recs["50000001"]["id"], 0).relative_to(tree.root))
    stored = ds.images[first["row"]]
    # Decoded once, through the same function generation uses: identical pixels.
    assert np.array_equal(stored, load_grey(tree.image("50000001", 0), SIZE))
    assert min(stored.shape) == SIZE
    rows = [im["row"] for r in recs.values() for im in r["images"]]
    assert sorted(rows) == list(range(len(ds.images)))


def test_targets_are_the_findings_cleaned_both_ways(prepared):
    r = _records(prepared)["52000007"]
    assert r["report"] == r["sections"]["findings"]
    assert r["report"].startswith("Single frontal view. Endotracheal tube tip is 4.5 cm")
    assert "4.5 cm" in r["target"]            # the default cleaner keeps decimals
    assert "45 cm" in r["legacy_target"]      # R2Gen's cleaner does not (its quirk, kept)


def test_official_chexpert_labels_by_column_name(prepared):
    recs = _records(prepared)
    labels = recs["50000002"]["labels"]["chexpert_official"]
    named = dict(zip(CHEXPERT_OBSERVATIONS, labels))
    assert named["Cardiomegaly"] == 1 and named["Pleural Effusion"] == 1
    assert named["Atelectasis"] == -1 and named["Pneumothorax"] == 0
    assert named["No Finding"] is None and len(labels) == 14
    assert recs["52000008"]["labels"]["chexpert_official"] == [None] * 14  # no row in the csv
    assert PreparedDataset(prepared).info["counts"]["no_official_labels"] == 1


def test_every_problem_is_listed(prepared, tree):
    by_kind = {p["kind"]: p for p in _problems(prepared)}
    assert set(by_kind) == {"missing_image", "unreadable_image", "no_report", "not_in_split"}
    assert by_kind["missing_image"]["path"] == str(tree.image(MISSING_IMAGE_STUDY, 1))
    assert by_kind["unreadable_image"]["record"] == tree.dicoms[UNREADABLE_IMAGE_STUDY][1][0]
    assert by_kind["no_report"]["record"] == NO_REPORT_STUDY
    assert by_kind["not_in_split"]["record"] == NOT_IN_SPLIT_STUDY
    recs = _records(prepared)
    # The studies stay, with the views that could be read.
    assert [im["view"] for im in recs[MISSING_IMAGE_STUDY]["images"]] == ["PA"]
    assert [im["view"] for im in recs[UNREADABLE_IMAGE_STUDY]["images"]] == ["PA"]
    assert PreparedDataset(prepared).info["counts"]["problems"] == 4


def test_per_image_layout(tree, tmp_path):
    out = tmp_path / "per_image"
    prepare_mimic(_cfg(tree, out, per_image=True))
    recs = _records(out)
    info = PreparedDataset(out).info
    assert info["example_layout"] == "image"
    assert all(len(r["images"]) == 1 for r in recs.values())
    assert all(rid == f"{r['study_id']}/{r['images'][0]['id']}" for rid, r in recs.items())
    study_images = sum(len(r["images"]) for r in _records_of_default(tree, tmp_path).values())
    assert len(recs) == study_images == info["counts"]["images"]
    by_study = {}
    for r in recs.values():
        by_study.setdefault(r["study_id"], set()).add((r["group"], r["split"], r["target"]))
    assert all(len(v) == 1 for v in by_study.values())  # one group, split and report per study


def _records_of_default(tree, tmp_path):
    out = tmp_path / "default"
    prepare_mimic(_cfg(tree, out))
    return _records(out)


@pytest.mark.parametrize("views, expected", [
    ("frontal", {"PA", "AP"}),
    ("LATERAL", {"LATERAL"}),
    ("PA,LATERAL", {"PA", "LATERAL"}),
])
def test_views_option(tree, tmp_path, views, expected):
    out = tmp_path / "v"
    prepare_mimic(_cfg(tree, out, views=views, images=False))
    recs = _records(out)
    assert {im["view"] for r in recs.values() for im in r["images"]} == expected
    if views == "LATERAL":
        assert "50000002" not in recs  # AP only
        assert PreparedDataset(out).info["counts"]["dropped"]["no_selected_view"] >= 1


def test_sections_option(tree, tmp_path):
    out = tmp_path / "fi"
    prepare_mimic(_cfg(tree, out, sections="findings+impression", images=False))
    recs = _records(out)
    assert recs["50000001"]["report"].endswith("thoracic spine. No acute cardiopulmonary abnormality.")
    assert recs["50000003"]["report"].count("Interval improvement") == 1
    assert "50000004" in recs  # impression only
    assert "52000006" not in recs
    assert PreparedDataset(out).info["counts"]["dropped"]["empty_target"] == 1
    out = tmp_path / "imp"
    prepare_mimic(_cfg(tree, out, sections="impression", images=False))
    assert _records(out)["50000004"]["report"].startswith("1. Right internal jugular")


def test_text_only_and_zip_reports_and_subset(tree, tmp_path):
    zipped = build_mimic_tree(tmp_path / "z", reports_zip=True, large=(300, 360))
    out = tmp_path / "zip"
    prepare_mimic(_cfg(zipped, out, images=False))
    assert not PreparedDataset(out).has_images
    assert _records(out).keys() == _records_of_default(tree, tmp_path).keys()
    sub = tmp_path / "sub"
    prepare_mimic(_cfg(tree, sub, images=False, max_studies=6, seed=3))
    again = tmp_path / "sub2"
    prepare_mimic(_cfg(tree, again, images=False, max_studies=6, seed=3))
    assert _records(sub).keys() == _records(again).keys()
    assert len(_records(sub)) < 7


def test_strict_stops_before_writing_anything(tree, tmp_path):
    out = tmp_path / "strict"
    with pytest.raises(InputError) as e:
        prepare_mimic(_cfg(tree, out, strict=True))
    assert "--strict" in e.value.message and "missing_image 1" in e.value.message
    assert not out.exists() and not staging_dir_for(out).exists()


def test_strict_on_an_unreadable_image_only(tree, tmp_path):
    fixed = tmp_path / "fixed"
    shutil.copytree(tree.root.parent, fixed)
    root, reports = fixed / "mimic-cxr-jpg", fixed / "mimic-cxr" / "files"
    shutil.copy(tree.image("50000001", 0), root / tree.image(MISSING_IMAGE_STUDY, 1).relative_to(tree.root))
    _drop_study_from(root / "mimic-cxr-2.0.0-split.csv.gz", NO_REPORT_STUDY)
    for study in (NO_REPORT_STUDY, NOT_IN_SPLIT_STUDY):
        _drop_study_from(root / "mimic-cxr-2.0.0-metadata.csv.gz", study)
    out = tmp_path / "strict"
    cfg = MimicPrepareConfig(root=root, reports=reports, out=out, image_size=SIZE, bpe_vocab_size=300,
                             legacy_threshold=1, strict=True)
    with pytest.raises(InputError, match="unreadable_image 1"):
        prepare_mimic(cfg)
    assert not out.exists()


def _drop_study_from(path: Path, study: str) -> None:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("study_id")
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([r for r in rows if r[col] != study])


def test_missing_inputs_are_clear_errors(tree, tmp_path):
    with pytest.raises(InputError, match="split file not found"):
        prepare_mimic(_cfg(tree, tmp_path / "o", root=tmp_path))
    with pytest.raises(InputError, match="no report found for any study"):
        prepare_mimic(_cfg(tree, tmp_path / "o", reports=tmp_path))
    with pytest.raises(ConfigError, match="sections"):
        prepare_mimic(_cfg(tree, tmp_path / "o", sections="history"))
    empty = tmp_path / "empty_root"
    shutil.copytree(tree.root, empty, ignore=shutil.ignore_patterns("*.jpg"))
    with pytest.raises(InputError, match="none of the images"):
        prepare_mimic(_cfg(tree, tmp_path / "o", root=empty))
    assert not (tmp_path / "o").exists()


def test_bad_official_label_value_names_row_and_column(tree, tmp_path):
    path = tmp_path / "chexpert.csv"
    path.write_text("subject_id,study_id," + ",".join(CHEXPERT_OBSERVATIONS) + "\n"
                    "10000001,50000001," + ",".join(["2.0"] + [""] * 13) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        prepare_mimic(_cfg(tree, tmp_path / "o", chexpert=path, images=False))
    assert "line 2" in e.value.message and "No Finding" in e.value.message


def test_resume_decodes_only_the_remaining_images(tree, tmp_path, monkeypatch):
    out = tmp_path / "resume"
    monkeypatch.setattr(store, "build_image_store", functools.partial(store.build_image_store, chunk=4))
    decoded: list[str] = []

    def counting(path, shorter=256):
        decoded.append(Path(path).name)
        return load_grey(path, shorter)

    monkeypatch.setattr("irralctl.data.images.load_grey", counting)

    class Interrupting(Silent):
        """A progress display whose user presses Ctrl-C once 8 images are decoded."""

        def task(self, description, total=None, done=0):
            seen = [done]
            task = super().task(description, total, done)

            def advance(n=1, **info):
                seen[0] += n
                if description == "decoding images" and seen[0] >= 8:
                    raise KeyboardInterrupt
            task.advance = advance
            return task

    with pytest.raises(Interrupted, match="8 decoded image.*run the same command again to continue"):
        prepare_mimic(_cfg(tree, out), progress=Interrupting())
    assert not out.exists() and staging_dir_for(out).exists()
    first = list(decoded)
    assert len(first) == 8
    decoded.clear()
    prepare_mimic(_cfg(tree, out))
    assert decoded and not set(decoded) & set(first)   # nothing decoded twice
    assert len(first) + len(decoded) == 11              # 11 chosen image files exist
    ds = PreparedDataset(out)
    recs = _records(out)
    im = recs["50000001"]["images"][0]
    assert np.array_equal(ds.images[im["row"]], load_grey(tree.image("50000001", 0), SIZE))
    assert not staging_dir_for(out).exists()


def test_rerun_after_a_late_failure_reuses_the_finished_store(tree, tmp_path, monkeypatch):
    out = tmp_path / "late"

    def failing_finish(*a, **k):
        raise InputError("simulated failure after the image store was finished")

    monkeypatch.setattr(mimic, "finish_dataset", failing_finish)
    with pytest.raises(InputError):
        prepare_mimic(_cfg(tree, out))
    monkeypatch.undo()
    decoded = []
    monkeypatch.setattr("irralctl.data.images.load_grey", lambda p, s=256: decoded.append(p) or load_grey(p, s))
    prepare_mimic(_cfg(tree, out))
    assert decoded == [] or all("53000009" in str(p) for p in decoded)  # only the unreadable one is retried
    assert len(PreparedDataset(out).images) == 10


def test_cli_end_to_end_loader_and_one_training_step(tree, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "prepare", "mimic", "--root", str(tree.root), "--reports", str(tree.reports), "--out", str(out),
        "--image-size", str(SIZE), "--bpe-vocab-size", "300", "--legacy-threshold", "1", "--workers", "2",
    ])
    assert result.exit_code == 0, result.output
    assert "prepared mimic_cxr" in result.output
    assert "missing_image 1" in result.output and "problems.csv" in result.output
    ds = PreparedDataset(out)
    tok = ds.tokenizer("bpe")
    data = ReportDataset(ds, "train", tok, LoaderConfig(views=2, image_size=48, resize=56, train=True))
    batch = collate([data[k] for k in range(len(data))], pad_id=tok.pad_id)
    assert batch["images"].shape == (4, 2, 48, 48) and batch["images"].dtype == torch.uint8
    assert batch["view_mask"].sum().item() == 2 + 1 + 2 + 1  # 50000003's third view is cut by views=2
    torch.manual_seed(0)
    model = _TinyReportModel(tok.vocab_size)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    loss = model(batch)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert model(batch).item() < loss.item()


def test_cli_strict_is_one_line_and_exit_1(tree, tmp_path):
    out = tmp_path / "cli_strict"
    result = CliRunner().invoke(app, ["prepare", "mimic", "--root", str(tree.root), "--reports", str(tree.reports),
                                      "--out", str(out), "--strict", "--workers", "1"])
    assert result.exit_code == 1
    assert "error:" in result.output and "--strict" in result.output
    assert not out.exists()


class _TinyReportModel(torch.nn.Module):
    """Pooled views -> a context vector added to token embeddings -> next-token logits."""

    def __init__(self, vocab: int, d: int = 16):
        super().__init__()
        self.image = torch.nn.Linear(1, d)
        self.embed = torch.nn.Embedding(vocab, d)
        self.out = torch.nn.Linear(d, vocab)

    def forward(self, batch: dict) -> torch.Tensor:
        imgs = batch["images"].float() / 255.0                                   # (B, V, S, S)
        mask = batch["view_mask"].float()                                        # (B, V)
        pooled = (imgs.mean(dim=(2, 3)) * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B,)
        ctx = self.image(pooled[:, None])                                        # (B, d)
        tokens = batch["tokens"]                                                 # (B, T)
        h = self.embed(tokens[:, :-1]) + ctx[:, None, :]                         # (B, T-1, d)
        logits = self.out(h)                                                     # (B, T-1, vocab)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                                 ignore_index=0)


def test_real_radiographs(shared_data, tmp_path):
    sources = sorted((shared_data / "images" / "kermany").glob("*.jpeg"))
    real_tree = build_mimic_tree(tmp_path / "real", sources=sources, large=(1416, 1776), small=(400, 480))
    out = tmp_path / "out"
    prepare_mimic(_cfg(real_tree, out, image_size=128, workers=2))
    ds = PreparedDataset(out)
    recs = _records(out)
    for r in recs.values():
        for im in r["images"]:
            arr = ds.images[im["row"]]
            assert min(arr.shape) == 128
            assert 20 < float(arr.mean()) < 235 and float(arr.std()) > 10  # a picture, not a blank
    first = recs["50000001"]["images"][0]
    assert np.array_equal(ds.images[first["row"]], load_grey(real_tree.image("50000001", 0), 128))


def test_dataset_json_options_round_trip(prepared):
    info = json.loads((prepared / "dataset.json").read_text())
    assert info["options"]["sections"] == "findings" and info["options"]["views"] == "all"
    assert info["label_names"] == list(CHEXPERT_OBSERVATIONS)
