"""The device policy's thread choice for small CPU steps (irralctl.runs.device)."""

from __future__ import annotations

import sys

import pytest
import torch

from irralctl.runs.device import CpuSample, CpuShare, read_cpu_sample, small_step_threads, threads_for_small_steps


def _share(*samples: CpuSample | None) -> CpuShare:
    it = iter(samples)
    return CpuShare(read=lambda: next(it))


def test_free_cpus_subtracts_this_process_own_time():
    # 1 s of wall time on 2 CPUs: the machine was busy 1.9 CPU-seconds, 1.8 of them this process's.
    share = _share(CpuSample(100.0, 5.0, 10.0, 2), CpuSample(101.9, 6.8, 11.0, 2))
    assert share.free_cpus() == pytest.approx(1.9)


def test_another_busy_process_takes_its_core():
    share = _share(CpuSample(100.0, 5.0, 10.0, 2), CpuSample(102.0, 6.0, 11.0, 2))
    assert share.free_cpus() == pytest.approx(1.0)


def test_other_cpus_leave_out_this_process_and_its_children():
    # 2 s of wall time: the machine was busy 3.0 CPU-seconds, 2.2 of them this process's and its children's.
    share = _share(CpuSample(10.0, 1.0, 100.0, 2), CpuSample(13.0, 3.2, 102.0, 2))
    assert share.other_cpus() == pytest.approx(0.4)


@pytest.mark.parametrize("later", [None, CpuSample(100.1, 5.0, 10.05, 2)], ids=["no /proc/stat", "window too short"])
def test_unknown_when_it_cannot_be_measured(later):
    assert _share(CpuSample(100.0, 5.0, 10.0, 2), later).free_cpus() is None
    assert _share(CpuSample(100.0, 5.0, 10.0, 2), later).other_cpus() is None
    assert _share(None, CpuSample(100.0, 5.0, 10.0, 2)).free_cpus() is None


@pytest.mark.parametrize("free, threads, want", [(None, 8, 1), (1.95, 2, 2), (1.0, 2, 1), (1.5, 2, 1), (0.2, 2, 1),
                                                (7.9, 8, 8), (12.0, 4, 4), (3.8, 16, 4)])
def test_threads_follow_the_free_cpus(free, threads, want):
    assert threads_for_small_steps(free, threads) == want


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_the_real_sample_counts_this_process():
    before = read_cpu_sample()
    x = 0
    while read_cpu_sample().own_s - before.own_s < 0.05:  # some CPU time of this process
        x += 1
    after = read_cpu_sample()
    assert after.cpus >= 1 and after.busy_s >= before.busy_s
    assert after.own_s - before.own_s >= 0.05
    # A waited-for child's CPU time counts as this process's own (bench_all's children, for one).
    import subprocess

    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"],
                   check=True)
    assert read_cpu_sample().own_s - after.own_s >= 0.25


def test_small_steps_change_the_thread_count_only_inside():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        share = _share(CpuSample(100.0, 5.0, 10.0, 2), CpuSample(102.0, 6.0, 11.0, 2))  # one CPU free
        with small_step_threads(torch.device("cpu"), 3, share):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with small_step_threads(torch.device("cpu"), 64, None):  # a big step keeps every thread
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
