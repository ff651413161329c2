"""scripts/ablation_study.py: the README's study, on tiny sizes, with grids trained at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_study_on_tiny_sizes_two_grids_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    readme = tmp_path / "README.md"
    (tmp_path / "docs").mkdir()
    readme.write_text("before\n<!-- ablation:start -->\nold\n<!-- ablation:end -->\nafter\n", encoding="utf-8")
    out = tmp_path / "study"
    command = [sys.executable, "scripts/ablation_study.py", "--out", str(out), "--quick", "--variants", "standard,small",
               "--presets", "baseline,no-image", "--seeds", "1", "--epochs", "1", "--long-epochs", "2",
               "--no-options", "--workers", "0", "--jobs", "2", "--write-readme", "--readme", str(readme)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("before\n<!-- ablation:start -->\nPhantoms: 120 studies per variant") and "\nold\n" not in text
    assert "1 epochs, 1 seeds per preset" in text and "(1 torch thread per run, 2 runs at once)" in text
    assert "- `standard`: no-image vs baseline: " in text and "- `small`: no-image vs baseline: " in text
    assert "#### Without ACL, given more steps (`standard`, seed 0, 2 epochs)" in text
    assert "at 1 epochs (seed 0) | at 2 epochs" in text
    assert (tmp_path / "docs" / "ablation.md").read_text(encoding="utf-8").startswith("# The ablation on phantoms")
    # Each grid trained at once wrote its own log, and its runs the epochs asked for.
    assert {p.name for p in (out / "logs").iterdir()} == {"standard.log", "small.log", "long-2.log"}
    epochs = [json.loads(x)["epoch"] for x in
              (out / "grids" / "long-2" / "runs" / "baseline-seed0" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    # Run again, it trains nothing: every grid is finished.
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "epoch 1," not in (out / "logs" / "standard.log").read_text()
