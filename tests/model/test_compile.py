"""`train --compile`: regional compilation of the repeated blocks, and eager validation.

Dynamo's "eager" backend traces exactly what the default (inductor) backend would compile, without
generating code, so these checks run in seconds on a CPU; inductor's speed is a GPU matter
(scripts/bench_gpu.py --compile).
"""

from __future__ import annotations

import pytest
import torch

from irralctl.model import IRRALNet, apply_preset
from irralctl.model.compile import REPEATED_BLOCKS, compile_repeated_blocks, eager
from tests.model.test_model import batch, tiny

pytestmark = pytest.mark.usefixtures("one_thread")


def _loss(out):
    loss = out.logits.square().mean() + out.clinical_logits.square().mean()
    return loss + (out.z_img * out.z_txt).sum()


@pytest.mark.slow  # Dynamo traces every block
def test_every_repeated_block_is_compiled_in_place_and_nothing_else_changes():
    torch._dynamo.reset()
    cfg = tiny(**apply_preset("irral"), enc_layers=2, dec_layers=2)
    plain, model = IRRALNet(cfg), IRRALNet(cfg)
    images, view_mask, tokens = batch()
    text = torch.randn(3, 24, generator=torch.Generator().manual_seed(1))
    blocks = [m for m in model.modules() if isinstance(m, REPEATED_BLOCKS)]
    assert compile_repeated_blocks(model, backend="eager") == len(blocks) >= 6
    assert all(b._compiled_call_impl is not None for b in blocks)
    assert set(model.state_dict()) == set(plain.state_dict())  # checkpoints keep their names
    want, got = plain(images, view_mask, tokens, text), model(images, view_mask, tokens, text)
    torch.testing.assert_close(got.logits, want.logits)
    _loss(want).backward()
    _loss(got).backward()
    grads = dict(plain.named_parameters())
    for name, p in model.named_parameters():
        assert (p.grad is None) == (grads[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name].grad, msg=name)


@pytest.mark.slow  # Dynamo traces the blocks
def test_blocks_run_eagerly_inside_eager():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    model = IRRALNet(tiny(enc_layers=1, dec_layers=1))
    compile_repeated_blocks(model, backend="eager")
    images, view_mask, tokens = batch()
    counters.clear()
    with eager(), torch.no_grad():
        model.encode(images, view_mask)
    assert sum(counters["frames"].values()) == 0, dict(counters["frames"])
    with torch.no_grad():
        model.encode(images, view_mask)
    assert sum(counters["frames"].values()) > 0  # outside, the blocks are traced
