"""Distributed training: two CPU processes on gloo (torchrun) end where one process does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from irralctl.runs.checkpoint import load_checkpoint
from irralctl.training import train
from irralctl.training.distributed import DistState
from irralctl.utils.io import iter_jsonl
from tests.fixtures.train_data import make_dataset, make_tiny_bert
from tests.training.test_train import TINY_FLAGS, tiny_cfg

ROOT = Path(__file__).resolve().parents[2]


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


def test_dist_state_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    state = DistState.from_env()
    assert (state.rank, state.local_rank, state.world_size) == (3, 1, 4)
    assert state.distributed and not state.is_main
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name)
    assert DistState.from_env() == DistState(0, 0, 1)


def test_two_gloo_processes_match_one_process(tmp_path):
    data = make_dataset(tmp_path, n_train=24, n_val=6, n_test=6)
    bert = make_tiny_bert(tmp_path / "bert")
    # Dropout off (its masks are drawn per process); random crops stay on: they are seeded per
    # (seed, epoch, study), so they do not depend on the process a study lands in.
    one = train(tiny_cfg(data, tmp_path / "one", dropout=0.0, mfa=True, text_encoder=bert, epochs=2))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--workers") + 1] = "0"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           # `--` ends torchrun's options: argparse would read our --monitor as its --monitor-interval.
           "-m", "--", "irralctl", "train", str(data), "--out", str(tmp_path / "two"), *flags, "--epochs", "2",
           "--dropout", "0", "--text-encoder", str(bert), "--monitor", "val_loss", "--device", "cpu"]
    # Its own session, so a hang kills torchrun's worker processes too, not only torchrun.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("torchrun did not finish in 240 s:\n" + output[-3000:])
    assert proc.returncode == 0, output[-3000:]
    a = load_checkpoint(one.run_dir / "last.pt")
    b = load_checkpoint(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 2 * 3  # same global batches: 24 studies / 8 per step
    # Adam divides by sqrt(v), so an element whose gradient is ~0 turns the summation-order noise of
    # the all-reduce into a visible fraction of a step (lr 1e-4 here): bound every element well below
    # one step, and the whole weight vector tightly. Studies sharded wrongly, or a missing gradient
    # reduction, move many elements by whole steps (relative differences around 1e-3).
    wa = torch.cat([a["model"][k].float().flatten() for k in a["model"] if a["model"][k].is_floating_point()])
    wb = torch.cat([b["model"][k].float().flatten() for k in a["model"] if a["model"][k].is_floating_point()])
    assert (wa - wb).abs().max().item() < 0.5 * 1e-4
    assert ((wa - wb).norm() / wa.norm()).item() < 1e-5
    va = [r["val_loss"] for _, r in iter_jsonl(one.run_dir / "metrics.jsonl")]
    vb = [r["val_loss"] for _, r in iter_jsonl(tmp_path / "two" / "metrics.jsonl")]
    assert vb == pytest.approx(va, abs=1e-5)
    # Rank 0 alone wrote the outputs; predictions of every study, gathered from both processes.
    preds = [r["id"] for _, r in iter_jsonl(tmp_path / "two" / "test_predictions.jsonl")]
    assert preds == [r["id"] for _, r in iter_jsonl(data / "test.jsonl")]
