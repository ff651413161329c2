"""scripts/bench_all.py's page and README table: generated from the figures, between the README's markers,
the GPU rows from bench_gpu.py's lines or marked unmeasured. (The benchmarks themselves are whole
processes timed on a quiet machine: `python scripts/bench_all.py --quick` checks them, not the suite.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


INFO = {"date": "2030-01-01 12:00", "cpu": "Some CPU", "cores": 2, "os": "Linux", "python": "3.11", "torch": "2.x",
        "numpy": "2.x", "pycocoevalcap": "1.2", "runs": 5, "load_before": 0.1, "load_after": 0.2, "other_cpus": 0.02,
        "quick": False}
ROWS = [
    {"figure": "startup", "what": "irralctl --help", "seconds": 0.2345, "reference": "python -c pass",
     "reference_seconds": 0.02, "target": "< 0.3 s", "meets_target": True, "command": "time irralctl --help"},
    {"figure": "score_nlg", "what": "irralctl score", "seconds": 0.5, "reference": "pycocoevalcap", "reference_seconds": 6.0,
     "ratio": 0.0833, "target": "ratio <= 0.1", "meets_target": True, "command": "time irralctl score p.jsonl"},
    {"figure": "jpeg_decode", "what": "JPEG", "images_per_s": 70.0, "reference": "full decode", "reference_images_per_s": 40.0,
     "speedup": 1.75, "mean_file_mb": 1.6, "target": ">= 150 images/s per core", "meets_target": False, "command": "x"},
]


def test_the_readme_has_the_markers_once():
    bench = load_script("bench_all")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(bench.README_START) == 1 and text.count(bench.README_END) == 1
    assert text.index(bench.README_START) < text.index(bench.README_END) < text.index("## Development")


def test_the_table_replaces_only_what_lies_between_the_markers(tmp_path):
    bench = load_script("bench_all")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench.README_START}\nold table 1.23 s\n{bench.README_END}\nafter\n", encoding="utf-8")
    rows = ROWS + bench.gpu_rows(None)
    bench.update_readme(readme, INFO, rows)
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n\nbefore\n") and text.endswith("after\n") and "old table" not in text
    assert "| irralctl --help | 0.23 s | python -c pass: 0.02 s | < 0.3 s | met |" in text
    assert "ratio 0.083" in text and "70 images/s" in text and "**not met**" in text
    assert text.count(bench.GPU_COMMAND) == 3 and "unmeasured" in text
    bench.update_readme(readme, INFO, rows)  # idempotent
    assert readme.read_text(encoding="utf-8") == text
    page = bench.page(INFO, rows)
    assert "Some CPU, 2 cores" in page and "busy" not in page
    assert all(json.dumps(r) in page for r in rows)
    assert "busy" not in bench.page({**INFO, "load_before": 3.0}, rows)  # the benchmark's own load
    assert "busy" in bench.page({**INFO, "other_cpus": 0.6}, rows)
    assert "Quick mode" in bench.page({**INFO, "quick": True}, rows)


def test_gpu_rows_from_bench_gpu_lines(tmp_path):
    bench = load_script("bench_all")
    lines = [
        {"figure": "environment", "device": "NVIDIA H200", "date": "2030-01-02", "cpu_smoke": False, "compile": False},
        {"figure": "ceiling", "batch_studies": 16, "images_per_s": 1000.0},
        {"figure": "train_end_to_end", "batch_studies": 16, "images_per_s": 700.0, "ratio_to_ceiling": 0.7,
         "peak_memory_gib": 9.5, "meets_target": True},
        {"figure": "ceiling", "batch_studies": 64, "images_per_s": 2000.0},
        {"figure": "train_end_to_end", "batch_studies": 64, "images_per_s": 1300.0, "ratio_to_ceiling": 0.65,
         "peak_memory_gib": 30.0, "meets_target": False},
        {"figure": "generation", "studies_per_s": 1500.0, "peak_memory_gib": 20.0, "meets_target": True},
    ]
    (tmp_path / "gpu.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows = {r["figure"]: r for r in bench.gpu_rows(tmp_path / "gpu.jsonl")}
    assert rows["gpu_train_16"]["shown"] == "700 images/s, 9.5 GiB (NVIDIA H200, 2030-01-02)"
    assert "ceiling: 2,000 images/s (ratio 0.65)" in rows["gpu_train_64"]["shown_reference"]
    assert rows["gpu_train_64"]["meets_target"] is False and rows["gpu_generation"]["meets_target"] is True
    assert "| 1,500 studies/s, 20.0 GiB" in bench.table(list(rows.values()))
    lines[0]["cpu_smoke"] = True
    (tmp_path / "smoke.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(SystemExit, match="cpu-smoke"):
        bench.gpu_rows(tmp_path / "smoke.jsonl")
