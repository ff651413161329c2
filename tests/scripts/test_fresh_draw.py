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


def test_a_design_option_group_counts_as_its_preset():
    """With --train-options the irral runs form `irral[ctx-decisions=on]`: the checks read that group."""
    checks = load_script("fresh_draw").checks
    result = _result(0.40, 0.03, 0.30, 0.44)
    result["groups"][1]["name"] = result["comparisons"][0]["group"] = "irral[ctx-decisions=on]"
    assert "**0.400 ± 0.010**" in checks(result)[0]


def test_the_readme_quotes_every_page_as_the_script_wrote_it():
    """The README's fresh-draw block is what `update_readme` makes of docs/fresh-draw*.md: no figure
    there is typed by hand, and a new page is listed."""
    script = load_script("fresh_draw")
    start, end = script.README_MARKERS
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(start)[1].split(end)[0]
    assert block == "\n" + script.readme_block(ROOT / "docs", ROOT)
    pages = sorted((ROOT / "docs").glob("fresh-draw*.md"))
    assert pages and all(f"]({p.relative_to(ROOT).as_posix()})" in block for p in pages)


def test_update_readme_replaces_only_its_block(tmp_path):
    script = load_script("fresh_draw")
    (tmp_path / "docs").mkdir()
    page = (ROOT / "docs" / "fresh-draw.md").read_text(encoding="utf-8")
    (tmp_path / "docs" / "fresh-draw-x.md").write_text(page, encoding="utf-8")
    readme = tmp_path / "README.md"
    start, end = script.README_MARKERS
    readme.write_text(f"before\n{start}\nold\n{end}\nafter\n", encoding="utf-8")
    script.update_readme(readme, tmp_path / "docs")
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(f"before\n{start}\n- [docs/fresh-draw-x.md](docs/fresh-draw-x.md), `python scripts/")
    assert text.endswith(f"{end}\nafter\n") and "\nold\n" not in text
    assert "  - `irral` reaches test ce_macro_f1_14 **" in text
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="markers"):
        script.update_readme(readme, tmp_path / "docs")


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


@pytest.mark.slow
def test_train_options_are_compared_with_the_defaults_on_the_same_draw(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    page = tmp_path / "page.md"
    proc = subprocess.run([sys.executable, "scripts/fresh_draw.py", "--out", str(tmp_path / "w"), "--quick",
                           "--draw-seed", "5", "--presets", "no-image,irral", "--no-context-off",
                           "--train-options", "--context-from-labels 1 --ctx-decisions", "--doc", str(page)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    text = page.read_text()
    assert "with `--context-from-labels 1 --ctx-decisions`" in text
    assert "`irral` reaches test" in text and "| irral[ctx-decisions=on] (2) |" in text
    assert "## The options against the defaults" in text
    assert "`irral[ctx-decisions=on]` − `irral` (the defaults, " in text and "(seeds paired; 2 per group)" in text
    refused = subprocess.run([sys.executable, "scripts/fresh_draw.py", "--out", str(tmp_path / "x"), "--quick",
                              "--train-options", "--ctx-decisions"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert refused.returncode == 2 and "--no-context-off" in refused.stderr
