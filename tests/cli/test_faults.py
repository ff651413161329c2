"""Faults while writing: a full or read-only disk at every writer of every command, Ctrl-C and kill -9 at
random points of real command processes.

What every failure must leave (the output transaction of irralctl.utils.outputs): exit code 1 and one
`error:` line (plus at most a `hint:`) saying why, the previous output byte for byte, and no stage,
temporary file or journal, except a resumable stage that the error names (a preparation's decoded
images, a training run's checkpoint, a generation journal with rows), which the named way of
continuing turns into a correct output.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.cli import invoke, refused
from tests.fixtures.faults import FaultyDisk, debris, error_line, is_debris, snapshot
from tests.fixtures.generation import write_png
from tests.fixtures.marks import fast_few

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")

# --size paper: these sizes and the defaults for the rest on any machine (auto would give a CPU the
# small model's learning rate, 0.001, which the previous output below is told apart by).
TINY_TRAIN = ["--size", "paper", "--backbone", "tiny", "--tiny-width", "8", "--image-size", "64", "--resize", "72", "--d-model", "32",
              "--n-heads", "4", "--d-ff", "32", "--enc-layers", "1", "--dec-layers", "1", "--memory-slots", "32",
              "--memory-topk", "4", "--batch-size", "8", "--eval-batch-size", "16", "--workers", "0",
              "--warmup", "2", "--max-report-tokens", "20", "--meteor", "off", "--no-mfa"]
REASONS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only"}
# The commands whose faults the fast subset checks: they run in a fraction of a second. The others
# (generate, heatmap, phantoms, train: a model or a dataset per case) run in the full suite.
FAST = ("label", "score")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The inputs of the commands, outside every output folder."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "reports.txt").write_text("Mild cardiomegaly.\nNo pneumothorax.\nSmall left pleural effusion.\n",
                                        encoding="utf-8")
    rows = [{"id": f"s{i}", "prediction": "the heart is normal . no effusion .",
             "reference": "the lungs are clear ." if i % 2 else "the heart is normal ."} for i in range(6)]
    (folder / "preds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_png(folder / "study" / "a.png", 72, 64, disc="left")
    write_png(folder / "study" / "b.png", 72, 64, seed=1)
    # Other inputs for the previous outputs: a new output that replaced one would differ from it.
    (folder / "old_reports.txt").write_text("The heart is enlarged.\n", encoding="utf-8")
    (folder / "old_preds.jsonl").write_text("".join(json.dumps({**r, "prediction": "no acute disease ."}) + "\n"
                                                    for r in rows), encoding="utf-8")
    write_png(folder / "old_study" / "a.png", 72, 64, seed=2, disc="right")
    return folder


@dataclass
class Command:
    """One command line of the CLI with the output it writes into folder `out`."""

    args: list[str]
    target: str                # the output's name in `out`
    resume: list[str] | None   # how a kept stage is continued (None: the same command)
    before: dict[str, str]     # arguments changed for the previous output, so that it differs from a new one

    def line(self, out: Path, *, previous: bool = False) -> list[str]:
        args = [self.before.get(a, a) for a in self.args] if previous else self.args
        return [a.replace("{out}", str(out)) for a in args]


def commands(toy: Path, run_dir: Path, inputs: Path) -> dict[str, Command]:
    return {
        "label": Command(["label", str(inputs / "reports.txt"), "--out", "{out}/labels.csv", "--overwrite"],
                         "labels.csv", None, {str(inputs / "reports.txt"): str(inputs / "old_reports.txt")}),
        "score": Command(["score", str(inputs / "preds.jsonl"), "--meteor", "off", "--json", "{out}/scores.json",
                          "--overwrite"], "scores.json", None, {str(inputs / "preds.jsonl"): str(inputs / "old_preds.jsonl")}),
        "generate": Command(["generate", "--dataset", str(toy), "--split", "test", "--checkpoint", str(run_dir),
                             "--out", "{out}/preds.jsonl", "--device", "cpu", "--batch-size", "3", "--overwrite"],
                            "preds.jsonl",
                            ["generate", "--dataset", str(toy), "--split", "test", "--checkpoint", str(run_dir),
                             "--out", "{out}/preds.jsonl", "--device", "cpu", "--batch-size", "3", "--resume"],
                            {"test": "val"}),
        "generate-csv": Command(["generate", "--dataset", str(toy), "--split", "test", "--checkpoint", str(run_dir),
                                 "--out", "{out}/preds.csv", "--format", "csv", "--device", "cpu", "--batch-size", "3",
                                 "--overwrite"], "preds.csv",
                                ["generate", "--dataset", str(toy), "--split", "test", "--checkpoint", str(run_dir),
                                 "--out", "{out}/preds.csv", "--format", "csv", "--device", "cpu", "--batch-size", "3",
                                 "--resume"], {"test": "val"}),
        "heatmap": Command(["heatmap", "--checkpoint", str(run_dir), "--study", str(inputs / "study"), "--words",
                            "heart", "--out", "{out}/maps", "--device", "cpu", "--overwrite"], "maps", None,
                           {str(inputs / "study"): str(inputs / "old_study")}),
        "phantoms": Command(["prepare", "phantoms", "--n", "60", "--image-size", "32", "--workers", "1",
                             "--out", "{out}/ph", "--overwrite"], "ph", None, {"60": "50"}),
        "train": Command(["train", str(toy), "--out", "{out}/run", "--epochs", "1", *TINY_TRAIN, "--overwrite"], "run",
                         ["train", str(toy), "--resume", "{out}/run"], {"--overwrite": "--lr=0.001"}),
    }


# Every file each command writes (as `writer_key` names it, relative to the output's folder):
# `test_every_writer_is_listed` keeps this list complete, so each one gets its faults below.
WRITERS = {
    "label": ["labels.csv", "labels.csv.config.json"],
    "score": ["scores.json"],
    "generate": ["preds.jsonl.partial", "preds.jsonl.partial.json", "preds.jsonl.partial.config.json"],
    "generate-csv": ["preds.csv.partial", "preds.csv.partial.json", "preds.csv.partial.config.json", "preds.csv"],
    "heatmap": ["maps/heart.png", "maps/heart.view1.png", "maps/heart.view2.png", "maps/heatmaps.json"],
    "phantoms": ["ph.partial/options.json", "ph.partial/images/store.bin", "ph.partial/images/index.tmp.npz",
                 "ph.partial/tokenizers/bpe.json", "ph.partial/tokenizers/legacy.json", "ph.partial/train.jsonl",
                 "ph.partial/val.jsonl", "ph.partial/test.jsonl", "ph.partial/problems.csv",
                 "ph.partial/dataset.json"],
    "train": ["run.partial/config.json", "run.partial/tokenizer.json", "run.partial/last.pt", "run.partial/best.pt",
              "run.partial/metrics.jsonl", "run.partial/steps.csv", "run.partial/test_predictions.jsonl.partial",
              "run.partial/test_predictions.jsonl.partial.json", "run.partial/test_predictions.jsonl.partial.config.json",
              "run.partial/test_metrics.json"],
}
# A full disk later in a file's life: (command, writer, writes that succeed first).
LATER = [
    ("generate", "preds.jsonl.partial", 1),   # the second batch of rows: the first stays for --resume
    ("heatmap", "maps/heart.png", 3),         # inside a PNG
    ("train", "run.partial/last.pt", 5),      # inside torch.save's zip
]


@pytest.fixture(scope="module")
def previous(toy, run_dir, inputs, tmp_path_factory):
    """Each command's output from an earlier successful run (built once, copied into each test)."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            folder = tmp_path_factory.mktemp(f"previous-{name}")
            result = invoke(*commands(toy, run_dir, inputs)[name].line(folder, previous=True))
            assert result.exit_code == 0, result.output
            built[name] = folder
        return built[name]

    return get


def _kept_stages(line: str, out: Path) -> set[str]:
    """The entries of `out` that a failure kept, as its error line names them ('... kept in PATH ...'):
    a stage beside the output, or a journal (with its settings file)."""
    kept = set()
    for m in re.finditer(r"kept in (\S+?)(?::|;|,| for a rerun|$)", line):
        path = Path(m.group(1))
        assert path.exists() and out in path.parents, line
        top = path.relative_to(out).parts[0]
        kept |= {top, top + ".json"}
    return kept


def _check_failed_run(result, out: Path, before: dict[str, bytes], reason: str) -> set[str]:
    """The checks of every failed run; returns the resumable stages it kept (named in the error)."""
    line = refused(result, reason)
    kept = _kept_stages(line, out)
    after = {k: v for k, v in snapshot(out).items() if k.split("/")[0] not in kept}
    assert after.keys() == before.keys(), sorted(after.keys() ^ before.keys())
    assert [k for k in before if after[k] != before[k]] == []  # the previous output, byte for byte
    assert [d for d in debris(out) if d.split("/")[0] not in kept] == []
    return kept


def _fault_cases():
    def marks(name):
        return () if name in FAST else pytest.mark.slow

    cases = []
    for name, writers in WRITERS.items():
        for writer in writers:
            for kind in (errno.ENOSPC, errno.EROFS):
                cases.append(pytest.param(name, writer, kind, 0, marks=marks(name),
                                          id=f"{name}-{writer.split('/')[-1]}-{errno.errorcode[kind]}"))
    for name, writer, skip_writes in LATER:
        cases.append(pytest.param(name, writer, errno.ENOSPC, skip_writes, marks=marks(name),
                                  id=f"{name}-{writer.split('/')[-1]}-ENOSPC-later"))
    return cases


@pytest.mark.parametrize("name", fast_few(WRITERS, FAST))
def test_every_writer_is_listed(name, toy, run_dir, inputs, tmp_path, monkeypatch):
    """WRITERS names every file the command writes (a new writer must get its faults too)."""
    cmd = commands(toy, run_dir, inputs)[name]
    out = tmp_path / "out"
    out.mkdir()
    disk = FaultyDisk(out, None).install(monkeypatch)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert sorted(set(disk.keys)) == sorted(WRITERS[name])
    assert debris(out) == []


@pytest.mark.parametrize("name, writer, kind, skip_writes", _fault_cases())
def test_a_failing_writer_leaves_the_previous_output(name, writer, kind, skip_writes, toy, run_dir, inputs, previous,
                                                     tmp_path, monkeypatch):
    """A full or read-only disk at one writer of a command that replaces an older output (--overwrite)."""
    cmd = commands(toy, run_dir, inputs)[name]
    out = tmp_path / "out"
    shutil.copytree(previous(name), out)
    before = snapshot(out)
    disk = FaultyDisk(out, kind, lambda key: key == writer, skip_writes=skip_writes).install(monkeypatch)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    assert disk.failed, f"no write to {writer} failed"
    if _check_failed_run(result, out, before, REASONS[kind]):
        # What was kept is continued as the message says, into a complete output and no stage.
        rerun = invoke(*[a.replace("{out}", str(out)) for a in (cmd.resume or cmd.args)])
        assert rerun.exit_code == 0, rerun.output
        assert debris(out) == [] and (out / cmd.target).exists()


def _train_finished_run_further(toy, previous, tmp_path, monkeypatch, writer: str):
    """`train --resume RUN --epochs 2` of a finished one-epoch run, on a disk where `writer` is read-only."""
    out = tmp_path / "out"
    shutil.copytree(previous("train"), out)
    before = snapshot(out)
    resume = ["train", str(toy), "--resume", str(out / "run"), "--epochs", "2"]
    disk = FaultyDisk(out, errno.EROFS, lambda key: key == writer).install(monkeypatch)
    result = invoke(*resume)
    monkeypatch.undo()
    assert disk.failed
    return out, before, resume, result


COPIED = ["run.partial/config.json", "run.partial/last.pt", "run.partial/metrics.jsonl"]


@pytest.mark.slow
@pytest.mark.parametrize("writer", COPIED)
def test_a_failed_copy_of_a_finished_run_is_one_line(writer, toy, previous, tmp_path, monkeypatch):
    """`train --resume RUN` of a finished run copies it into its stage first (shutil.copytree, whose
    error lists every file): one line naming the file and the reason, the run untouched."""
    out, before, _, result = _train_finished_run_further(toy, previous, tmp_path, monkeypatch, writer)
    assert result.exit_code == 1, result.output
    line = error_line(result.output)
    source = out / "run" / writer.split("/", 1)[1]
    assert line == f"error: could not copy {source} to train the run further: the file system is read-only; " \
                   "nothing was written", line
    assert snapshot(out / "run") == {k.split("/", 1)[1]: v for k, v in before.items()}


@pytest.mark.slow
@pytest.mark.parametrize("writer", COPIED)
def test_a_failed_copy_of_a_finished_run_leaves_no_stage(writer, toy, previous, tmp_path, monkeypatch):
    out, _, resume, _ = _train_finished_run_further(toy, previous, tmp_path, monkeypatch, writer)
    assert debris(out) == []
    rerun = invoke(*resume)
    assert rerun.exit_code == 0, rerun.output
    assert [json.loads(x)["epoch"] for x in (out / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def _train_with_ctrl_c_at(where, name: str, cmd: Command, previous, tmp_path, monkeypatch):
    """`train --overwrite` over the previous run, with Ctrl-C where `where.name` is called:
    (the folder, its files before, the result)."""
    out = tmp_path / "out"
    shutil.copytree(previous("train"), out)
    before = snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, name, interrupted)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    return out, before, result


@pytest.mark.slow  # trains a run
def test_an_interrupted_training_run_is_kept_and_named(toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    """Ctrl-C after the first checkpoint: exit 1, one line naming the kept stage, the previous run intact;
    `--resume` then finishes the run from that checkpoint."""
    from irralctl.training import trainer

    cmd = commands(toy, run_dir, inputs)["train"]
    out, before, result = _train_with_ctrl_c_at(trainer, "test", cmd, previous, tmp_path, monkeypatch)
    line = error_line(result.output)
    assert line.startswith("error: interrupted; the checkpoint of epoch 1 kept in ") and ".run.partial" in line, line
    assert _check_failed_run(result, out, before, "interrupted") == {".run.partial", ".run.partial.json"}
    rerun = invoke(*[a.replace("{out}", str(out)) for a in cmd.resume])
    assert rerun.exit_code == 0, rerun.output
    assert debris(out) == [] and (out / "run" / "test_metrics.json").is_file()


@pytest.mark.slow  # trains a run
def test_an_interrupted_training_run_says_how_to_continue(toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    from irralctl.training import trainer

    cmd = commands(toy, run_dir, inputs)["train"]
    line = error_line(_train_with_ctrl_c_at(trainer, "test", cmd, previous, tmp_path, monkeypatch)[2].output)
    assert "--resume" in line and "run the same command again" not in line, line


@pytest.mark.slow  # trains a run
def test_ctrl_c_while_the_test_split_is_decoded(toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    from irralctl.generation import pipeline

    cmd = commands(toy, run_dir, inputs)["train"]
    out, _, result = _train_with_ctrl_c_at(pipeline, "_decode_batch", cmd, previous, tmp_path, monkeypatch)
    line = error_line(result.output)
    assert line.startswith("error: interrupted; the checkpoint of epoch 1 kept in "), line
    assert "scoring" not in line and f"irralctl train --resume {out / 'run'}" in line, line


# -- Ctrl-C and kill -9 of real command processes ----------------------------------------------------

@pytest.fixture(scope="module")
def big_inputs(inputs) -> Path:
    """Inputs that keep label and score busy for a moment (a signal lands during the work, not after)."""
    rng = random.Random(0)
    sentences = ["The heart is normal in size.", "Mild cardiomegaly.", "No pneumothorax.", "Small left pleural effusion.",
                 "Possible right lower lobe pneumonia.", "The lungs are clear.", "Atelectasis at the left base.",
                 "No acute cardiopulmonary abnormality.", "Degenerative changes of the spine.", "Stable 4 mm nodule."]
    (inputs / "many.txt").write_text("".join(" ".join(rng.sample(sentences, 4)) + "\n" for _ in range(3000)),
                                     encoding="utf-8")
    rows = [{"id": f"s{i}", "prediction": " ".join(rng.sample(sentences, 3)),
             "reference": " ".join(rng.sample(sentences, 3))} for i in range(1500)]
    (inputs / "many.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return inputs


# command -> what the process runs instead of the in-process line (bigger inputs, two epochs)
PROCESS = {
    "label": {"reports.txt": "many.txt"},
    "score": {"preds.jsonl": "many.jsonl"},
    "phantoms": {},
    "generate": {"test": "train"},
    "train": {"1": "2"},  # --epochs 2 (the tiny flags use no bare "1" for other options)
}
SIGNAL_POINTS = 3


def process_line(cmd: Command, name: str, out: Path, inputs: Path) -> list[str]:
    changes = PROCESS[name]
    line = []
    for a in cmd.line(out):
        for old, new in changes.items():
            if a == old or a == str(inputs / old):
                a = a.replace(old, new)
        line.append(a)
    return line


def _signal_cases():
    """(command, when, signal): `when` is a fraction of the command's run time after its start-up."""
    rng = random.Random(0)
    cases = []
    for name in PROCESS:
        for _ in range(SIGNAL_POINTS):
            when = round(rng.random(), 2)
            for sig in (signal.SIGINT, signal.SIGKILL):
                cases.append(pytest.param(name, when, sig, id=f"{name}-{sig.name}-{when}"))
    return cases


def _start(line: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("IRRALCTL_DEBUG", None)
    # A session of its own: the signal goes to the command's whole process group, as a terminal's ^C does.
    return subprocess.Popen([sys.executable, "-m", "irralctl", *line], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _started(proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until the CLI runs (main() installs its SIGTERM handler first); False if it ended before."""
    bit = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except FileNotFoundError:
            return False
        caught = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.MULTILINE)
        if proc.poll() is not None:
            return False
        if caught and int(caught.group(1), 16) & bit:
            return True
        time.sleep(0.005)
    raise AssertionError("the command did not start")


def _signal_after(proc: subprocess.Popen, delay: float, sig: int) -> bool:
    """Send `sig` to the command `delay` s after it started; False if it had finished by then."""
    if not _started(proc):
        return False
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def reference(toy, run_dir, big_inputs, tmp_path_factory):
    """Each process command's output from an uninterrupted process, built once, and how long that
    process ran after its start-up (the signals land at fractions of it)."""
    built: dict[str, tuple[Path, float]] = {}

    def get(name: str) -> tuple[Path, float]:
        if name not in built:
            folder = tmp_path_factory.mktemp(f"reference-{name}")
            proc = _start(process_line(commands(toy, run_dir, big_inputs)[name], name, folder, big_inputs))
            assert _started(proc)
            started = time.monotonic()
            _, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr
            built[name] = folder, time.monotonic() - started
        return built[name]

    return get


def _content(name: str, out: Path) -> object:
    """What an output holds, without its timestamps: equal for two complete runs of one command."""
    from irralctl.runs.checkpoint import load_checkpoint

    if name == "label":
        return (out / "labels.csv").read_bytes(), json.loads((out / "labels.csv.config.json").read_text())["counts"]
    if name == "score":
        return json.loads((out / "scores.json").read_text())["metrics"]
    if name == "generate":
        rows = [json.loads(x) for x in (out / "preds.jsonl").read_text().splitlines()]
        return [(r["id"], r["prediction"]) for r in rows], json.loads((out / "preds.jsonl.config.json").read_text())["counts"]["studies"]
    if name == "phantoms":
        return {p: (out / "ph" / p).read_bytes() for p in ("train.jsonl", "val.jsonl", "test.jsonl", "images/store.bin",
                                                           "images/index.npz", "tokenizers/bpe.json")}
    ckpt = load_checkpoint(out / "run" / "last.pt", verify="all")  # train: a complete, verified run of 2 epochs
    return ckpt["epoch"], sorted(json.loads((out / "run" / "test_metrics.json").read_text())["metrics"])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc to see the CLI start")
@pytest.mark.parametrize("name, when, sig", _signal_cases())
def test_a_signal_at_a_random_point(name, when, sig, toy, run_dir, big_inputs, previous, reference, tmp_path):
    """Ctrl-C (SIGINT to the process group) or kill -9 at a seeded random point of a real command,
    over an older output (--overwrite); then the same command again."""
    cmd = commands(toy, run_dir, big_inputs)[name]
    reference_out, seconds = reference(name)
    want = _content(name, reference_out)
    out = tmp_path / "out"
    shutil.copytree(previous(name), out)
    before = snapshot(out)
    proc = _start(process_line(cmd, name, out, big_inputs))
    try:
        sent = _signal_after(proc, when * seconds, sig)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    said = f"signal sent: {sent}, exit {proc.returncode}, stderr:\n{stderr}"
    print(said)  # where the signal landed, for -rP / -s
    if not sent or proc.returncode in (0, -signal.SIGINT):
        # The command was done before the signal came (-SIGINT: it came while Python shut down).
        assert (proc.returncode == 0 or sent) and "error:" not in stderr, said
        assert debris(out) == [] and _content(name, out) == want, said
        return
    kept: set[str] = set()
    line = ""
    if sig == signal.SIGINT:
        assert proc.returncode == 1, said
        line = error_line(stderr)
        assert line.startswith("error: interrupted"), said
        kept = _kept_stages(line, out)
        assert [d for d in debris(out) if d.split("/")[0] not in kept] == [], said
    else:
        assert proc.returncode == -signal.SIGKILL, said
    outputs = {k: v for k, v in snapshot(out).items() if k.split("/")[0] not in kept and not is_debris(k)}
    if outputs != before:
        # Only a signal that came after the new output was in place may leave it, and then complete.
        assert _content(name, out) == want, said
        assert "nothing was written" not in line, said
    # The same command again, uninterrupted: it cleans or resumes what the signal left, and ends complete.
    rerun = invoke(*process_line(cmd, name, out, big_inputs))
    assert rerun.exit_code == 0, rerun.output
    assert debris(out) == [] and _content(name, out) == want, f"{said}\nrerun:\n{rerun.output}"


# Ctrl-C at the edges of a command, made deterministic: a KeyboardInterrupt raised where the signal would
# raise it. The command runs in a process of its own (the exit status is the point).
CTRL_C_AT = {
    # while Typer builds the click command from the app (before the root group's handler runs)
    "building": "import typer.main as t\nreal = t.get_command\n"
                "def get_command(*a):\n    raise KeyboardInterrupt\nt.get_command = get_command\n",
    # while the arguments are parsed (Typer turns this into a silent exit 130)
    "parsing": "from irralctl.cli.main import _Root\n"
               "def make_context(*a, **k):\n    raise KeyboardInterrupt\n_Root.make_context = make_context\n",
    # inside exec()'d source, as when it lands while a dataclass is built by an import in the command
    # (CPython then marks the interrupt unhandled and ends the process by SIGINT)
    "exec": "import irralctl.labeling.files as files\n"
            "def label_reports(*a, **k):\n    exec('raise KeyboardInterrupt')\nfiles.label_reports = label_reports\n",
}


def _run_patched(patch: str, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`python -m irralctl ARGV` as runpy runs it, after `patch` (a package whose __main__ patches, then
    calls main())."""
    package = tmp_path / "modules" / "patched_irralctl"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(f"{patch}\nimport sys\nfrom irralctl.cli.main import main\n"
                                         f"sys.argv = {['irralctl', *map(str, argv)]!r}\nmain()\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path / 'modules'}", "OMP_NUM_THREADS": "1"}
    env.pop("IRRALCTL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "patched_irralctl"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.slow  # a process per case
@pytest.mark.parametrize("where", list(CTRL_C_AT))
def test_ctrl_c_at_the_edges_of_a_command_is_one_line_and_exit_1(where, inputs, tmp_path):
    proc = _run_patched(CTRL_C_AT[where], ["label", inputs / "reports.txt", "--out", tmp_path / "l.csv"], tmp_path)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert error_line(proc.stderr) == "error: interrupted" and not (tmp_path / "l.csv").exists()


@pytest.mark.slow  # a process of its own, which trains a run
def test_ctrl_c_as_a_checkpoint_is_closed_does_not_abort_the_process(toy, tmp_path):
    """A Ctrl-C as torch.save's zip writer closes leaves the writer unfinished; it writes its end when it
    is destroyed, into the closed file, and an exception there (std::terminate) aborted the process after
    the error line (found at a random point of `irralctl train`)."""
    patch = ("import torch.serialization as s\nreal = s._open_zipfile_writer_buffer.__exit__\ncalls = []\n"
             "def exit_(self, *a):\n    calls.append(1)\n    if len(calls) == 1:\n        raise KeyboardInterrupt\n"
             "    return real(self, *a)\ns._open_zipfile_writer_buffer.__exit__ = exit_\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = _run_patched(patch, ["train", toy, "--out", out / "run", "--epochs", "1", *TINY_TRAIN], tmp_path)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert error_line(proc.stderr) == "error: interrupted; nothing was written" and snapshot(out) == {}

def test_an_error_after_a_line_cut_short_starts_its_own_line(inputs, tmp_path, monkeypatch):
    """A Ctrl-C inside rich's drawing of a progress bar leaves the bar's line unfinished on stderr (found at
    a random point of prepare phantoms): the error line must still start a line."""
    import irralctl.cli.label as label_cli
    from irralctl.cli._common import err_console

    def build(*args, **kwargs):
        err_console.print("rendering phantoms ━━━━━━━━ 60/60  0:00:00", end="")
        raise KeyboardInterrupt

    monkeypatch.setattr(label_cli, "build", build)
    result = invoke("label", inputs / "reports.txt", "--out", tmp_path / "labels.csv")
    assert result.exit_code == 1 and error_line(result.output) == "error: interrupted", result.output


# -- a replacement cut short ----------------------------------------------------------------------
# Replacing an output is two renames (the old one aside as `.NAME.old-PID`, the stage onto NAME) and
# the removal of the old one. A process killed in between leaves what the next run must repair.

def _reaped_pid() -> int:
    """The id of a process that has ended (a killed command's, for its leftovers)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("name", fast_few(["label", "heatmap"], FAST))
@pytest.mark.parametrize("moment", ["between the renames", "removing the old output"])
def test_a_replacement_killed_half_way_is_repaired_by_the_next_run(name, moment, toy, run_dir, inputs, previous,
                                                                   tmp_path):
    cmd = commands(toy, run_dir, inputs)[name]
    out = tmp_path / "out"
    shutil.copytree(previous(name), out)
    before = snapshot(out)
    target = out / cmd.target
    old = out / f".{target.name}.old-{_reaped_pid()}"
    if moment == "between the renames":   # the previous output aside, the new one not yet in place
        os.replace(target, old)
    else:                                 # the new output in place, the old one half removed
        shutil.copytree(target, old) if target.is_dir() else shutil.copy(target, old)
    no_overwrite = [a for a in cmd.line(out) if a != "--overwrite"]
    result = invoke(*no_overwrite)
    assert result.exit_code == 1 and "already exists" in error_line(result.output), result.output
    assert snapshot(out) == before  # the previous output is back in place, nothing else is left
    assert invoke(*cmd.line(out)).exit_code == 0 and debris(out) == []


@pytest.mark.parametrize("name", ["train", "phantoms", "heatmap"])
def test_ctrl_c_as_the_stage_is_created(name, toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    """A Ctrl-C is raised as soon as a system call returns: one that lands while the output's stage is
    created must find the stage under the transaction's care (seen once as a `.ph.partial` left by
    `prepare phantoms` after a bare "interrupted")."""
    cmd = commands(toy, run_dir, inputs)[name]
    out = tmp_path / "out"
    shutil.copytree(previous(name), out)
    before = snapshot(out)
    real, created = Path.mkdir, []

    def mkdir(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if out in self.parents and self.name.startswith(".") and not created:
            created.append(self.name)
            raise KeyboardInterrupt

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    assert created, "no stage was created"
    assert error_line(result.output) == "error: interrupted; nothing was written", result.output
    assert _check_failed_run(result, out, before, "interrupted") == set()
    rerun = invoke(*cmd.line(out))
    assert rerun.exit_code == 0 and debris(out) == [], rerun.output


@pytest.mark.parametrize("name", fast_few(["label", "heatmap", "phantoms"], FAST))
def test_ctrl_c_while_the_old_output_is_removed(name, toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    """The new output is in place when Ctrl-C comes during the removal of the old one: the removal
    finishes, and the error says the output is complete."""
    from irralctl.utils import outputs

    cmd = commands(toy, run_dir, inputs)[name]
    out = tmp_path / "out"
    shutil.copytree(previous(name), out)
    real, interrupted = outputs._remove, []

    def remove(path):
        if ".old-" in path.name and path.exists() and not interrupted:
            interrupted.append(path)
            for child in sorted(path.iterdir())[:1] if path.is_dir() else []:  # half removed, as a ^C leaves it
                real(child)
            raise KeyboardInterrupt
        real(path)

    monkeypatch.setattr(outputs, "_remove", remove)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    assert interrupted
    line = error_line(result.output)
    assert result.exit_code == 1 and line.startswith("error: interrupted after the new output was in place"), line
    assert debris(out) == []
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert invoke(*cmd.line(fresh)).exit_code == 0
    assert snapshot(out).keys() == snapshot(fresh).keys()


@pytest.mark.slow  # trains a run
def test_ctrl_c_while_a_checkpoint_is_saved(toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    """Ctrl-C inside torch.save (which reports the torn archive as a RuntimeError): an interruption like
    any other, not a traceback; the previous run intact."""
    from irralctl.runs import checkpoint

    cmd = commands(toy, run_dir, inputs)["train"]
    out = tmp_path / "out"
    shutil.copytree(previous("train"), out)
    before = snapshot(out)
    real, writes = checkpoint._RecordingFile.write, []

    def write(self, data):
        writes.append(len(data))
        if len(writes) == 5:
            raise KeyboardInterrupt
        return real(self, data)

    monkeypatch.setattr(checkpoint._RecordingFile, "write", write)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    assert error_line(result.output).startswith("error: interrupted"), result.output
    _check_failed_run(result, out, before, "interrupted")


def test_an_output_and_its_options_are_replaced_together(toy, run_dir, inputs, previous, tmp_path, monkeypatch):
    """label writes labels.csv and labels.csv.config.json as one output: a failure while the second one
    moves in puts the first one back as it was."""
    from irralctl.utils import outputs

    cmd = commands(toy, run_dir, inputs)["label"]
    out = tmp_path / "out"
    shutil.copytree(previous("label"), out)
    before = snapshot(out)
    real, calls = outputs.replace, []

    def replace(stage, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(stage, target)

    monkeypatch.setattr(outputs, "replace", replace)
    result = invoke(*cmd.line(out))
    monkeypatch.undo()
    assert [c.name for c in calls] == ["labels.csv", "labels.csv.config.json"]
    _check_failed_run(result, out, before, REASONS[errno.ENOSPC])
