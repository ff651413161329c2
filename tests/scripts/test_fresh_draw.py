"""scripts/fresh_draw.py: the acceptance thresholds read from compare.json, and the whole script on tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _result(irral: float, prior: float, low: float, high: float) -> dict:
    def group(name, mean):
        return {"name": name, "n_seeds": 3, "metrics": {"ce_macro_f1_14": {"mean": mean, "std": 0.01}}}

    row = {"mean": irral, "reference_mean": prior, "difference": irral - prior, "low": low, "high": high,
           "p_value": 0.002, "verdict": "better" if low > 0 else "not distinguishable"}
    return {"reference": "no-image", "groups": [group("no-image", prior), group("irral", irral)],
            "comparisons": [{"group": "irral", "reference": "no-image", "metrics": {"ce_macro_f1_14": row}}]}


def test_thresholds_are_decided_on_the_means_and_say_so():
    checks = load_script("fresh_draw").checks
    met = checks(_result(0.40, 0.03, 0.30, 0.44))
    assert "**0.400 ± 0.010**" in met[0] and "**met**" in met[0]
    assert "**+0.370**" in met[1] and "[+0.300, +0.440]" in met[1] and "**met**" in met[1]
    low = checks(_result(0.34, 0.20, 0.05, 0.20))
    assert "**not met**" in low[0] and "**not met**" in low[1]


@pytest.mark.slow
def test_the_whole_script_on_tiny_sizes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    page = tmp_path / "page.md"
    proc = subprocess.run([sys.executable, "scripts/fresh_draw.py", "--out", str(tmp_path / "w"), "--quick",
                           "--draw-seed", "5", "--doc", str(page)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    text = page.read_text()
    assert "Quick mode" in text and "seed **5**" in text
    assert "`irral` − `no-image`" in text and "`irral` − `irral[ctx-words=off]`" in text
    assert "| irral[ctx-words=off] (2) |" in text  # the design option's own group, two seeds
    # Running it again continues: every run is finished, so nothing is trained twice.
    again = subprocess.run([sys.executable, "scripts/fresh_draw.py", "--out", str(tmp_path / "w"), "--quick",
                            "--doc", str(page)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                           check=False)
    assert again.returncode == 0 and "training" not in again.stdout + again.stderr
    assert "seed **5**" in page.read_text()  # the draw seed is kept with the work folder
