"""scripts/bench_gpu.py, the GPU proof, runs end to end in its reduced CPU mode and prints the figures
the GPU run reports (its numbers at these sizes mean nothing: the GPU run is one command away)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: `-m "not slow"` leaves it out

ROOT = Path(__file__).resolve().parents[2]

# figure -> keys its line must carry
EXPECTED = {
    "environment": {"device", "torch", "python", "preset", "image_size", "views", "date"},
    "dataset": {"studies", "seconds"},
    "ceiling": {"batch_studies", "images", "images_per_s", "runs_s", "peak_memory_gib", "model"},
    "train_end_to_end": {"batch_studies", "images", "images_per_s", "ratio_to_ceiling", "peak_memory_gib"},
    "train_model_only": {"batch_studies", "images", "images_per_s", "ratio_to_ceiling", "peak_memory_gib"},
    "generation": {"studies", "beam", "tokens", "studies_per_s", "peak_memory_gib", "all_beams_ran_full_length",
                   "target", "meets_target"},
    "generation_ceiling": {"images_per_s", "studies_per_s"},
    "total": {"seconds", "targets"},
}


def test_cpu_smoke_prints_every_figure_with_its_keys():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "scripts/bench_gpu.py", "--cpu-smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    figures = [line["figure"] for line in lines]
    assert "error" not in figures, [line for line in lines if line["figure"] == "error"]
    for figure, keys in EXPECTED.items():
        rows = [line for line in lines if line["figure"] == figure]
        assert rows, f"no {figure} line"
        for row in rows:
            assert keys <= set(row), (figure, keys - set(row))
    # Both batch sizes, each beside its ceiling.
    assert [r["batch_studies"] for r in lines if r["figure"] == "train_end_to_end"] == [2, 4]
    assert all(r["images_per_s"] > 0 and r["ratio_to_ceiling"] > 0 for r in lines if r["figure"].startswith("train_"))
    generation = next(r for r in lines if r["figure"] == "generation")
    assert generation["beam"] == 3 and generation["all_beams_ran_full_length"] is True
    assert lines[0]["cpu_smoke"] is True
