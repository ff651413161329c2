"""How the `irralctl` process ends (irralctl.cli.main._exit): without tearing the interpreter down,
but with everything that must happen at exit done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import atexit, sys, threading, time
from pathlib import Path
from irralctl.cli.main import main
out = Path(sys.argv[1])
atexit.register(lambda: out.with_suffix(".atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    out.with_suffix(".thread").write_text("joined")
threading.Thread(target=late).start()
print("buffered line")  # stdout is a pipe: block-buffered until flushed
sys.argv = ["irralctl", *sys.argv[2:]]
main()
"""


@pytest.mark.slow  # starts an interpreter per case
@pytest.mark.parametrize("args, code", [(["--version"], 0), (["no-such-command"], 1), (["label", "/no/such.txt"], 1)])
def test_the_process_ends_with_its_code_after_the_exit_work(args, code, tmp_path):
    out = tmp_path / "marker"
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(out), *args], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stdout.startswith("buffered line\n")
    assert out.with_suffix(".atexit").read_text() == "ran"
    assert out.with_suffix(".thread").read_text() == "joined"
    if code == 0:
        assert proc.stdout.strip().endswith(tuple("0123456789")), proc.stdout  # irralctl X.Y.Z
