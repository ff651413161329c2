#!/usr/bin/env python3
"""Run `irralctl demo` and write its figures into README.md: nothing there is typed by hand.

Three sections of the README are this script's, each between its markers:

    <!-- demo:start --> ... <!-- demo:end -->              the demo's wall time, and what it printed
    <!-- demo-train:start --> ... <!-- demo-train:end -->  the last epochs of its IRRAL-Net, as printed
    <!-- demo-score:start --> ... <!-- demo-score:end -->  `irralctl score` of its IRRAL-Net's test
                                                           reports with --bootstrap 1000

The time depends on the machine: run the script on a quiet one (nothing else using its cores);
the text says how many cores and which processor. `--quick` runs `irralctl demo --quick` instead
(seconds, nothing learned) and says so in the text: for checking the script, not for figures.

    python scripts/readme_demo.py                      # about 10 minutes on 2 cores
    python scripts/readme_demo.py --quick --readme /tmp/README.md --work /tmp/demo
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("demo", "demo-train", "demo-score")
COLUMNS = "100"      # the terminal width the samples are printed at
TRAIN_EPOCHS_SHOWN = 3


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def irralctl(args: list[str], cwd: Path) -> tuple[str, float]:
    """Run `irralctl ARGS` as a user would (a fresh process, in `cwd`); its stdout and wall time."""
    env = {**os.environ, "COLUMNS": COLUMNS, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "irralctl", *args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"irralctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout, seconds


def processor() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def fence(text: str) -> str:
    return "```\n" + "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n```"


def sections(work: Path, quick: bool) -> dict[str, str]:
    """Run the demo in `work` and render the three sections."""
    demo, seconds = irralctl(["demo", "--out", "demo", *(["--quick"] if quick else [])], work)
    config = json.loads((work / "demo" / "demo.config.json").read_text())["config"]
    summary = json.loads((work / "demo" / "demo.json").read_text())
    score, _ = irralctl(["score", summary["predictions"]["irral"], "--bootstrap", "1000"], work)
    lines = demo.splitlines()
    printed = "\n".join(lines[next(i for i, line in enumerate(lines) if line.strip().startswith("test split")):])
    n, e = config["n"], config["epochs"]
    # The grid trains the language prior first, then IRRAL-Net: its epochs are the last ones printed.
    epochs = [line for line in lines if line.startswith("epoch ")][-min(TRAIN_EPOCHS_SHOWN, e):]
    cores, cpu, day = os.cpu_count(), processor(), dt.date.today().isoformat()
    made = f"`python scripts/readme_demo.py{' --quick' if quick else ''}` ({day})"
    if quick:
        what = (f"`irralctl demo --quick` ({n} studies, {e} epoch(s) per run: every step runs, nothing is learned, "
                f"so these are not the demo's figures) took {duration(seconds)} on {cores} CPU cores ({cpu}). "
                "Run the script without --quick, on a quiet machine, to put the full demo's here.")
    else:
        what = f"`irralctl demo` ({n} studies, {e} epochs per run) took {duration(seconds)} on {cores} CPU cores ({cpu})."
    return {
        "demo": f"Written by {made}: {what}\n\n{fence(printed)}",
        "demo-train": f"The last epochs of the demo's IRRAL-Net (`{summary['runs']['irral']}`, {e} epoch(s), written by "
                      f"{made}):\n\n"
                      f"{fence(chr(10).join(epochs))}",
        "demo-score": f"`irralctl score {summary['predictions']['irral']} --bootstrap 1000` on the demo's IRRAL-Net "
                      f"(written by {made}; the per-observation table follows in the real output):\n\n"
                      f"{fence(score.split('Per observation')[0])}",
    }


def rewrite(readme: Path, texts: dict[str, str]) -> None:
    """Replace what lies between each section's markers; every section must be there once."""
    body = readme.read_text(encoding="utf-8")
    for name, text in texts.items():
        start, end = markers(name)
        if body.count(start) != 1 or body.count(end) != 1 or body.index(start) > body.index(end):
            raise SystemExit(f"{readme}: expected one {start} ... {end} section")
        head, rest = body.split(start)
        _, tail = rest.split(end)
        body = f"{head}{start}\n{text}\n{end}{tail}"
    readme.write_text(body, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="run `irralctl demo --quick` (checks the script only)")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README to rewrite")
    ap.add_argument("--work", type=Path, help="folder to run the demo in (default: a temporary one)")
    args = ap.parse_args()
    for name in SECTIONS:  # a README without the markers fails before minutes of demo
        start, end = markers(name)
        if start not in args.readme.read_text(encoding="utf-8") or end not in args.readme.read_text(encoding="utf-8"):
            raise SystemExit(f"{args.readme}: no {start} ... {end} section")
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        texts = sections(args.work, args.quick)
    else:
        with tempfile.TemporaryDirectory(prefix="readme_demo.") as work:
            texts = sections(Path(work), args.quick)
    rewrite(args.readme, texts)
    print(re.sub(r"\n{3,}", "\n\n", "\n\n".join(texts.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
