"""Shared fixtures. Real data lives beside the repository in ../shared/data (never copied in)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder, or a skip with the reason when this checkout has none beside it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (present in CI; absent in a bare clone)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's torch work: tiny models run faster, and results do not
    depend on how many cores the machine has."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """A small prepared dataset with images (`tests.fixtures.train_data.make_dataset`), shared by the
    training, generation and heatmap tests; treat it as read-only."""
    from tests.fixtures.generation import toy_dataset

    return toy_dataset(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def run_dir(toy, tmp_path_factory):
    """A tiny IRRAL-Net trained for a few steps on `toy` (BPE tokeniser); treat it as read-only."""
    import torch

    from tests.fixtures.generation import tiny_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return tiny_run(toy, tmp_path_factory.mktemp("runs") / "bpe")
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 1-layer BERT with its own vocabulary (`make_tiny_bert`), for MFA's text encoder; read-only."""
    from tests.fixtures.train_data import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
