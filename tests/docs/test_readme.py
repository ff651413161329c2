"""README.md is a script: its shell examples run in order, in one folder, and print what it shows.

A marker, an HTML comment on the line right before a fence (invisible on GitHub), says what a
block is:

    <!-- runnable -->       before a ```bash block: run here, in README order, all in one folder,
                            so later examples use what earlier ones wrote; it must exit 0
    <!-- skip: REASON -->   before a ```bash block: not run here; REASON (what it needs: a GPU,
                            MIMIC-CXR, ...) is reported as a pytest skip
    <!-- exact -->          before a plain ``` block right after a runnable one: what that block
                            printed on stdout, line for line (trailing spaces aside; `...` inside
                            a line stands for any text, a line of only `...` for any lines)

Every ```bash block carries runnable or skip: an example nobody classified fails here.

The folder holds what the quick start tells a user to bring: the real `NLMCXR_reports.tgz` and
`nlmcxr_dicom_metadata.csv.gz` (from ../shared/data), `xrays/` with two real radiographs (a DICOM
and a JPEG), and, where MIMIC-CXR goes, the test suite's MIMIC-shaped fixture. `irralctl` is
this checkout's, run by this Python; IRRALCTL_TINY=1 makes every size tiny, COLUMNS=100 fixes
the width of rich's tables.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: `-m "not slow"` leaves it out

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- (runnable|exact|skip: (?P<reason>.+?)) -->$")
BLOCK_TIMEOUT_S = 600
# Tiny sizes; a fixed width for rich's tables; one thread per process (tiny models only lose to
# thread start-up, and the suite's processes share the machine's cores).
ENV = {"IRRALCTL_TINY": "1", "COLUMNS": "100", "OMP_NUM_THREADS": "1"}


@dataclass
class Block:
    line: int                  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str | None         # "runnable", "exact", "skip" or None
    reason: str | None = None
    sample: Block | None = None   # a runnable block's exact output sample


def parse(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each with the marker right above it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("```"):
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise AssertionError(f"README.md:{i + 1}: a fence that never closes")
        found = MARKER.match(lines[i - 1].strip()) if i else None
        kind = None if found is None else found.group(1).split(":")[0]
        blocks.append(Block(i + 1, lines[i][3:].strip(), "\n".join(lines[i + 1:end]), kind,
                            found.group("reason") if found else None))
        i = end + 1
    return blocks


def examples(blocks: list[Block]) -> list[Block]:
    """The shell blocks, with their exact samples attached; a marker out of place is an error."""
    out: list[Block] = []
    for k, b in enumerate(blocks):
        if b.lang in ("bash", "sh", "shell"):
            assert b.marker in ("runnable", "skip"), (
                f"README.md:{b.line}: a shell block needs <!-- runnable --> or <!-- skip: REASON --> on the line above")
            out.append(b)
        elif b.marker == "exact":
            before = blocks[k - 1] if k else None
            assert before is not None and before.marker == "runnable", (
                f"README.md:{b.line}: <!-- exact --> must follow a runnable shell block")
            before.sample = b
        else:
            assert b.marker is None, f"README.md:{b.line}: <!-- {b.marker} --> on a {b.lang or 'plain'} block"
    return out


def matches(sample: str, printed: str) -> bool:
    """`printed` as `sample` shows it: line for line, trailing spaces aside, `...` for any text
    inside a line, a line of only `...` for any number of lines."""
    pattern = []
    for line in sample.strip("\n").splitlines():
        line = line.rstrip()
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*?".join(map(re.escape, line.split("..."))) + r"\n")
    text = "".join(line.rstrip() + "\n" for line in printed.strip("\n").splitlines())
    return re.fullmatch("".join(pattern), text) is not None


BLOCKS = examples(parse(README.read_text(encoding="utf-8")))


# -- the folder a user would work in ----------------------------------------------------------

def user_folder(root: Path, shared: Path, fixtures: Path) -> Path:
    """An empty folder with what the quick start says a user brings (see the module docstring)."""
    from tests.fixtures.mimic import build_mimic_tree

    folder = root / "work"
    folder.mkdir()
    for name in ("NLMCXR_reports.tgz", "nlmcxr_dicom_metadata.csv.gz"):
        (folder / name).symlink_to(shared / "iu_xray" / name)
    (folder / "xrays" / "patient1").mkdir(parents=True)
    (folder / "xrays" / "patient1" / "frontal.dcm").symlink_to(shared / "images" / "dicom" / "RG1_UNCR.dcm")
    (folder / "xrays" / "patient2").mkdir()
    jpeg = sorted((shared / "images" / "kermany").glob("NORMAL*.jpeg"))[0]
    (folder / "xrays" / "patient2" / "frontal.jpeg").symlink_to(jpeg)
    fixtures.mkdir()
    tree = build_mimic_tree(fixtures, reports_zip=True)
    jpg = folder / "physionet.org" / "files" / "mimic-cxr-jpg"
    jpg.mkdir(parents=True)
    (jpg / "2.1.0").symlink_to(tree.root)
    (folder / "mimic-cxr-reports.zip").symlink_to(tree.reports)
    return folder


def shim(bin_dir: Path) -> None:
    """`irralctl` on PATH: this checkout's package, run by the Python running the tests."""
    bin_dir.mkdir()
    script = bin_dir / "irralctl"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m irralctl \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@dataclass
class Walk:
    results: dict[int, subprocess.CompletedProcess] = field(default_factory=dict)  # block line -> result
    seconds: dict[int, float] = field(default_factory=dict)
    failed: Block | None = None


@pytest.fixture(scope="module")
def walk(shared_data, tmp_path_factory) -> Walk:
    """Every runnable block, in README order, in one folder; stops at the first failure (the
    blocks after it would fail for its sake)."""
    root = tmp_path_factory.mktemp("readme")
    folder = user_folder(root, shared_data, root / "fixtures")
    shim(root / "bin")
    env = {**os.environ, **ENV, "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("IRRALCTL_DEBUG", None)
    walk = Walk()
    for block in BLOCKS:
        if block.marker != "runnable":
            continue
        started = time.perf_counter()
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=folder, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=BLOCK_TIMEOUT_S)
        walk.results[block.line], walk.seconds[block.line] = result, time.perf_counter() - started
        if result.returncode != 0:
            walk.failed = block
            break
    return walk


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"README.md:{b.line}")
def test_example(block: Block, walk: Walk):
    if block.marker == "skip":
        pytest.skip(block.reason)
    result = walk.results.get(block.line)
    if result is None:
        pytest.skip(f"not run: the example at README.md:{walk.failed.line} failed before it")
    assert result.returncode == 0, (
        f"README.md:{block.line} exited {result.returncode}:\n{block.text}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}")
    if block.sample is not None:
        assert matches(block.sample.text, result.stdout), (
            f"README.md:{block.sample.line} shows another output than README.md:{block.line} printed:\n"
            f"{result.stdout}")


def test_the_walk_is_short(walk: Walk):
    """CI runs the whole suite in minutes: the README's examples must stay tiny under IRRALCTL_TINY."""
    if walk.failed is not None:
        pytest.skip(f"the example at README.md:{walk.failed.line} failed")
    slow = {line: round(s) for line, s in walk.seconds.items() if s > 90}
    assert not slow, f"examples (README line: seconds) too slow for the suite: {slow}"


# -- the markers themselves ---------------------------------------------------------------------

def test_every_shell_block_is_classified_and_some_run():
    runnable = [b for b in BLOCKS if b.marker == "runnable"]
    assert len(runnable) >= 10 and any(b.sample for b in runnable)
    for b in BLOCKS:
        assert b.marker == "runnable" or (b.reason and b.reason.strip()), f"README.md:{b.line}: skip without a reason"


def test_markers_and_samples_are_read_as_documented():
    text = ("<!-- runnable -->\n```bash\necho a\n```\n<!-- exact -->\n```\na\n```\n"
            "<!-- skip: needs a GPU -->\n```bash\nnvidia-smi\n```\n```\nfree text\n```\n")
    [run, skip] = examples(parse(text))
    assert run.text == "echo a" and run.sample.text == "a" and skip.reason == "needs a GPU"
    with pytest.raises(AssertionError, match="needs <!-- runnable -->"):
        examples(parse("```bash\necho unmarked\n```\n"))
    with pytest.raises(AssertionError, match="must follow a runnable"):
        examples(parse("<!-- exact -->\n```\na\n```\n"))
    assert matches("a   \nspeed: ... reports/s\n...\nend", "a\nspeed: 55 reports/s\nx\ny\nend\n")
    assert matches("a\n...\nb", "a\nb")
    assert not matches("a\nb", "a\nb\nc") and not matches("speed: ... reports/s", "speed: 55 studies/s")


def test_the_first_lines_keep_the_commands_ci_runs():
    """CI and newcomers read the set-up and test commands at the top of the README."""
    first = next(b for b in BLOCKS)
    assert first.marker == "skip" and "./scripts/setup.sh && irralctl demo" in first.text
    assert any(line.split("#")[0].strip() == "python3 -m pytest" for line in first.text.splitlines())
