"""`scripts/readme_demo.py`: the README's demo figures come from a run of the demo, never by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_readme import README, ROOT

pytestmark = pytest.mark.slow  # end to end: `-m "not slow"` leaves it out

SCRIPT = ROOT / "scripts" / "readme_demo.py"
SECTIONS = ("demo", "demo-train", "demo-score")


def _run(readme: Path, work: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "IRRALCTL_TINY": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", "--readme", str(readme), "--work", str(work)],
                          env=env, text=True, capture_output=True, timeout=600)


def _section(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n")[1].split(f"\n<!-- {name}:end -->")[0]


def test_the_readme_holds_each_section_once():
    text = README.read_text(encoding="utf-8")
    for name in SECTIONS:
        assert text.count(f"<!-- {name}:start -->") == 1 and text.count(f"<!-- {name}:end -->") == 1, name


def test_quick_run_rewrites_the_sections_and_nothing_else(tmp_path):
    markers = "".join(f"<!-- {n}:start -->\ntyped by hand: 4 min 45 s\n<!-- {n}:end -->\nbetween {n}\n" for n in SECTIONS)
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{markers}after\n", encoding="utf-8")
    result = _run(readme, tmp_path / "work")
    assert result.returncode == 0, result.stderr[-3000:]
    text = readme.read_text(encoding="utf-8")
    assert "typed by hand" not in text
    assert text.startswith("# title\n\nbefore\n<!-- demo:start -->") and text.endswith("between demo-score\nafter\n")
    demo = _section(text, "demo")
    # What ran, how long, on what: labelled as a --quick run (IRRALCTL_TINY made it 40 studies, 1 epoch).
    assert re.search(r"`irralctl demo --quick` \(40 studies, 1 epoch\(s\) per run: .*\) took (\d+ min )?\d+ s on \d+ "
                     r"CPU cores", demo), demo
    assert "ce_macro_f1_14" in demo and "the same steps by hand" in demo and "irralctl ablate demo/data" in demo
    train = _section(text, "demo-train").split("```")[1].strip().splitlines()
    # One epoch under IRRALCTL_TINY, IRRAL-Net's (its clinical head has an F1; the language prior's has none).
    assert len(train) == 1 and train[0].startswith("epoch 1, train nll ") and "head F1" in train[0], train
    score = _section(text, "demo-score")
    assert "`irralctl score demo/preds/irral.jsonl --bootstrap 1000`" in score and "95% CI" in score
    assert "Per observation" not in score
    # The printed figures are the run's own: the score table holds the scores of the saved predictions.
    bleu4 = re.search(r"│ bleu_4\s+│\s+([0-9.]+) │", score).group(1)
    scores = json.loads((tmp_path / "work" / "demo" / "scores" / "irral.json").read_text())
    assert f"{scores['metrics']['bleu_4']:.4f}" == bleu4


def test_a_readme_without_the_sections_is_refused_before_the_demo(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n", encoding="utf-8")
    result = _run(readme, tmp_path / "work")
    assert result.returncode != 0 and "<!-- demo:start -->" in result.stderr
    assert not (tmp_path / "work").exists() and readme.read_text() == "# no markers\n"
