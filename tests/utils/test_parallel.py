"""Worker processes: Ctrl-C reaches only the parent, even while the workers start."""

from __future__ import annotations

import os
import signal

import pytest

from irralctl.utils.parallel import spawn_quietly


class _Handlers:
    """A dataset whose items say how the process that loads them would take a Ctrl-C."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> bool:
        return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_workers_never_raise_on_ctrl_c_and_the_parent_still_does():
    from torch.utils.data import DataLoader

    loader = DataLoader(_Handlers(), batch_size=None, num_workers=1)
    assert list(spawn_quietly(loader)) == [False, False]             # the worker would not raise
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's handler is back


def test_a_ctrl_c_during_the_start_is_raised_once_the_workers_exist():
    class Starting:
        def __iter__(self):
            os.kill(os.getpid(), signal.SIGINT)  # lands while the workers start
            return iter([1, 2])

    with pytest.raises(KeyboardInterrupt):
        spawn_quietly(Starting())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
